"""Text from outside made inert before a terminal, a log or a rendered page shows it.

A run folder's name, a field of status.json, an input file's name, a message from another process or a model's
output can hold control characters: ESC starts sequences that write the clipboard (OSC 52), retitle the window
(OSC 0) or clear the screen (CSI 2J), BEL rings, C1 characters (0x80-0x9f) are escapes of their own to some
terminals, and bidirectional overrides reorder what the reader sees. Everything gptwiz prints, draws or logs that it
did not write itself goes through one of the three functions here:

- `inert(text)` for names, paths and messages: every character Python would not print as itself (what
  `str.isprintable()` refuses: C0, DEL, C1, line and paragraph separators, format characters such as U+202E,
  lone surrogates from undecodable file names) is shown as its escape, as `repr` shows it (`\\x1b`, `\\u202e`);
  with `multiline=True` newline and tab stay.
- `quote(value)` for a value inside a message: the inert text between single quotes, one way everywhere.
- `generated(text)` for a model's output on a terminal: the control characters are dropped (newline and tab kept),
  so what is left of an escape sequence is plain text; a chunk can be filtered on its own, as it streams.
"""

from __future__ import annotations

import re

_KEPT_IN_MULTILINE = frozenset("\n\t")


def _escape(char: str) -> str:
    return repr(char)[1:-1]  # as Python shows it: \\x1b, \\u202e, \\udcff


def inert(text: object, *, multiline: bool = False) -> str:
    """`text` with every unprintable character shown as its escape; newline and tab kept when `multiline`."""
    s = str(text)
    if s.isprintable():
        return s
    return "".join(c if c.isprintable() or (multiline and c in _KEPT_IN_MULTILINE) else _escape(c) for c in s)


def quote(value: object) -> str:
    """A value named in a message: 'runs/x\\x1b]0;t' — inert, between single quotes."""
    return f"'{inert(value)}'"


# Every character a terminal may act on, save newline and tab: C0, DEL, C1, and the invisible reorderings.
_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def generated(text: str) -> str:
    """A model's output as a terminal should show it: control characters dropped, newline and tab kept."""
    return _CONTROLS.sub("", text)


__all__ = ["inert", "quote", "generated"]
