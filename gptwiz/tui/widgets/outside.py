"""Text from outside (a run's name, a path, a status error, a log line, another process's message) as a widget
draws it: made inert by gptwiz.common.inert, and a Text, so that nothing in it is taken for markup either."""

from __future__ import annotations

from rich.text import Text

from gptwiz.common.inert import generated, inert


def outside(text: object, style: str = "", *, multiline: bool = False) -> Text:
    """`text` drawn as it reads: every control character shown as its escape (newline and tab kept when
    `multiline`), no markup."""
    return Text(inert(text, multiline=multiline), style=style)


def model_text(text: str, style: str = "") -> Text:
    """A model's output drawn as a terminal shows it (gptwiz.common.inert.generated), no markup."""
    return Text(generated(text), style=style)
