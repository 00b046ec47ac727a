"""A run file's JSON object (config.json, status.json, probe.json), read without trusting the file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gptwiz.common.safe_read import read_json_object


def read_json(path: Path) -> dict[str, Any] | None:
    """A run file's JSON object; None when it is missing or cannot be used (load_json says why)."""
    try:
        return read_json_object(path)
    except OSError:  # UnreadableFile included
        return None


def load_json(path: Path) -> dict[str, Any] | None:
    """A run file's JSON object, None when there is none; UnreadableFile when it is there but is no regular
    file, too large, or not a JSON object."""
    try:
        return read_json_object(path)
    except FileNotFoundError:
        return None
