"""Outside text (a run's name, a path, a status error, another process's message, a model's output) handed to rich
or Textual: made inert by gptwiz.common.inert, and kept from being read as markup, whichever way it is drawn."""

from __future__ import annotations

from rich.markup import escape
from rich.text import Text

from gptwiz.common.inert import generated, inert


def outside(text: object, style: str = "", *, multiline: bool = False) -> Text:
    """`text` drawn as it reads: every control character shown as its escape (newline and tab kept when
    `multiline`), no markup."""
    return Text(inert(text, multiline=multiline), style=style)


def outside_markup(text: object) -> str:
    """`text` as part of a markup string (a `say` line, a progress bar's description): inert, and escaped."""
    return escape(inert(text))


def model_text(text: str, style: str = "") -> Text:
    """A model's output drawn as a terminal shows it (gptwiz.common.inert.generated), no markup."""
    return Text(generated(text), style=style)


__all__ = ["outside", "outside_markup", "model_text"]
