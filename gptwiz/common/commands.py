"""Command lines shown to a user, folded to a width at option boundaries.

A terminal wraps a long line wherever the width runs out, mid-word included, and a copy of the wrapped screen
pastes as broken pieces. Folded here, each line ends in " \\" so that the lines paste back as one command,
and no option is ever split from its value.

A piece longer than a whole line (a long path with its option) is broken too, by `paste_lines`, with a
backslash-newline inside the word, which a POSIX shell removes before it reads the words (inside single quotes,
where a backslash is literal, the quote is closed before it and opened again after). The rows that go on a word
are not indented: an indent there would become part of the word.
"""

from __future__ import annotations

import shlex


def command_words(command: str) -> list[str]:
    """The command's pieces that stay on one line: the program and verb, then each option with its value."""
    try:
        tokens = shlex.split(command)
    except ValueError:  # an unbalanced quote: fold it as it reads
        tokens = command.split()
    pieces: list[str] = []
    for token in tokens:
        word = shlex.quote(token)
        if pieces and not token.startswith("-") and pieces[-1].startswith("-") and " " not in pieces[-1]:
            pieces[-1] += f" {word}"  # an option's value stays with its option
        elif len(pieces) == 1 and not token.startswith("-") and " " not in pieces[0]:
            pieces[0] += f" {word}"   # the verb stays with the program
        else:
            pieces.append(word)
    return pieces


def fold_command(command: str, width: int, indent: str = "  ") -> list[str]:
    """The command as lines of at most `width` columns (a piece longer than a line gets one of its own),
    each line but the last ending in a backslash, the continuation lines indented."""
    lines: list[str] = []
    current = ""
    for piece in command_words(command):
        candidate = f"{current} {piece}" if current else piece
        if current and len(candidate) + 2 > width:  # room for the " \\" that ends the line
            lines.append(current + " \\")
            current = indent + piece
        else:
            current = candidate
    lines.append(current)
    return lines


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


__all__ = ["command_words", "fold_command", "paste_lines", "split_row"]
