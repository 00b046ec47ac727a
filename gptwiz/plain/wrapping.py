"""The plain wizard's questions, and the lines their answers leave, broken between words to the terminal's width.

A terminal, and prompt_toolkit drawing a question, break a line that is too long wherever the width runs out,
mid-word included ("... or chec" / "k a pipeline"). The questions are broken here instead, at spaces, before they
are drawn; and once a question is answered, the line it leaves ("? question answer") is printed here, broken
the same way, in place of the one prompt_toolkit would leave.
"""

from __future__ import annotations

import shutil
import textwrap

QMARK = "?"
CONTINUATION = "  "  # an answered line's continuation rows, under its text


def terminal_width() -> int:
    """The columns a printed line may take: the terminal's width less one, where some terminals wrap early."""
    return max(20, shutil.get_terminal_size().columns - 1)


def wrap(text: str, width: int, indent: str = "", first: int = 0) -> list[str]:
    """`text` broken at spaces into lines of at most `width` columns, the first with `first` columns already
    taken on its line and the others indented by `indent`. A word longer than a line is broken inside."""
    lines = textwrap.wrap(" " * first + text, max(8, width), subsequent_indent=indent, break_long_words=True,
                          break_on_hyphens=False)
    if lines and first:
        lines[0] = lines[0][first:]
    return lines or [""]


def wrap_question(message: str, width: int, after: int = 0) -> str:
    """A question as prompt_toolkit is given it: broken to `width` after the "? " before it, leaving `after`
    columns free on its last line (for a menu's instruction or the start of a typed answer)."""
    lines = wrap(message, width, first=len(QMARK) + 1)
    if after and len(lines[-1]) + after > width:
        lines[-1:] = wrap(lines[-1], width - after) if len(lines) > 1 else wrap(lines[-1], width - after,
                                                                                 first=len(QMARK) + 1)
    return "\n".join(lines)


def answered_fragments(message: str, answer: str, width: int) -> list[tuple[str, str]]:
    """The line an answered question leaves, "? question answer", broken between words into lines of at most
    `width` columns, as prompt_toolkit (style class, text) fragments: questionary's look, qmark, question, answer."""
    question = " ".join(message.split())
    full = f"{QMARK} {question} {' '.join(answer.split())}".rstrip()
    ends = [(len(QMARK), "class:qmark"), (len(QMARK) + 1 + len(question), "class:question"),
            (len(full), "class:answer")]
    fragments: list[tuple[str, str]] = []
    pos = 0
    for n, line in enumerate(wrap(full, width, indent=CONTINUATION)):
        if n:
            fragments.append(("", "\n" + CONTINUATION))
        text = line[len(CONTINUATION):] if n else line
        start = full.index(text, pos)
        for end, style in ends:  # the line's text cut where the question's parts end
            if start < end and text:
                piece, text = text[:end - start], text[end - start:]
                fragments.append((style, piece))
                start += len(piece)
        pos = start
    return fragments


__all__ = ["terminal_width", "wrap", "wrap_question", "answered_fragments"]
