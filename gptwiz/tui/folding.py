"""A command line as rows of a width that paste back into a shell as the one command.

gptwiz.common.commands folds a command between its options (each line ending in " \\"), and gives a piece longer
than a line (a long path with its option) a line of its own, longer than the width: a terminal or a Textual
widget would then break it wherever the width runs out, and the paste would not be the command. Here such a
line is broken too, with a backslash-newline inside the word, which a POSIX shell removes before it reads the
words (inside single quotes, where a backslash is literal, the quote is closed before it and opened again after).
The rows that go on a word are not indented: an indent there would become part of the word.
"""

from __future__ import annotations

from gptwiz.common.commands import fold_command


def _open_quote(text: str) -> str:
    """The quote `text` leaves open (' or "), or ""."""
    quote = ""
    for char in text:
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
    return quote


def split_row(line: str, width: int) -> list[str]:
    """`line` in rows of at most `width` columns, each but the last ending in a continuation inside its word."""
    rows: list[str] = []
    width = max(8, width)
    while len(line) > width:
        head = line[:width - 2]  # room for the closing quote and the backslash
        if head.endswith("\\"):
            head = head[:-1]  # a backslash of the line's own stays with what it escapes
        if _open_quote(head) == "'":
            rows.append(head + "'\\")
            line = "'" + line[len(head):]
        else:
            rows.append(head + "\\")
            line = line[len(head):]
    return rows + [line]


def paste_lines(command: str, width: int) -> list[str]:
    """`command` folded between its options to `width` columns, a piece longer than a row broken inside it:
    pasted into a shell, the rows are the one command."""
    return [row for line in fold_command(command, width) for row in split_row(line, width)]


__all__ = ["paste_lines", "split_row"]
