"""The one test of whether a file is text: no NUL byte in its first BINARY_PROBE bytes. `train --input_file`,
`prepare` (which skips such a file) and `eval --input_file` all apply it."""

from __future__ import annotations

from pathlib import Path

from gptwiz.common.errors import UsageError
from gptwiz.common.inert import quote

BINARY_PROBE = 8192  # a NUL byte in this many leading bytes: not a text file


def looks_binary(head: bytes) -> bool:
    """Whether the first bytes of a file say it is not text."""
    return b"\0" in head[:BINARY_PROBE]


def refuse_binary(path: Path | str, flag: str) -> None:
    """A UsageError naming `flag` and the file when it is not text; nothing when it cannot be opened (the reader
    says why then, in its own words)."""
    try:
        with open(path, "rb") as f:
            head = f.read(BINARY_PROBE)
    except OSError:
        return
    if looks_binary(head):
        raise UsageError(f"{flag} {quote(path)} is not a text file (it holds NUL bytes); give a UTF-8 text file")


__all__ = ["BINARY_PROBE", "looks_binary", "refuse_binary"]
