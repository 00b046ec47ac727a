"""A model's text written to stdout in the forms that are not the terminal's filtered one: its bytes as generated
(`--raw`), and one JSON object a line with every control character escaped."""

from __future__ import annotations

import json
import sys
from typing import Any

from gptwiz.common.inert import generated


def write_raw(data: bytes) -> None:
    """`data` to stdout as it is, after what the text layer still holds."""
    sys.stdout.flush()
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()


def json_line(record: dict[str, Any]) -> str:
    """One JSON object on one line, non-ASCII text as itself but every control character escaped: JSON escapes
    C0 only, and a C1 character (U+009B) or a reordering mark left as it is would act on a terminal shown the line.
    The characters escaped are those `generated` drops; a JSON reader gets the same value."""
    line = json.dumps(record, ensure_ascii=False)
    if generated(line) == line:
        return line
    return "".join(c if generated(c) else f"\\u{ord(c):04x}" for c in line)


__all__ = ["write_raw", "json_line"]
