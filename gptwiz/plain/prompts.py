"""One question at a time: the `Prompter` the plain wizard asks through, and its two real faces.

`QuestionaryPrompter` draws arrow-key menus; `LinePrompter` reads numbered answers line by line and writes no
escape code at all, for TERM=dumb and NO_COLOR. Every question can lead back: a select offers BACK as a
choice when the wizard asks for it, and a text answer of "<" means back.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import IO, Any, Protocol

from gptwiz.common.inert import inert, quote
from gptwiz.plain.wrapping import answered_fragments, terminal_width, wrap, wrap_question

BACK = "<back>"         # the answer a prompter gives for "go back", to a select or a text question
BACK_TEXT = "<"         # what the user types at a text question to go back
BACK_TITLE = "back to the previous question"


class Cancelled(Exception):
    """The user pressed Ctrl-C (or closed the input) at a prompt."""


class Prompter(Protocol):
    def select(self, message: str, choices: Sequence[tuple[str, str]], default: str | None = None) -> str: ...
    def text(self, message: str, default: str = "", validate: Callable[[str], str | None] | None = None) -> str: ...


def plain_output(env: Mapping[str, str]) -> bool:
    """Whether to write no escape codes at all: a dumb terminal shows them as junk, NO_COLOR asks for none."""
    return env.get("TERM", "") in ("dumb", "") or "NO_COLOR" in env


def with_back_hint(message: str) -> str:
    """'Path:' -> 'Path (< goes back):'."""
    colon = ":" if message.endswith(":") else ""
    return f"{message.removesuffix(':')} ({BACK_TEXT} goes back){colon}"


def _is_back(answer: str) -> bool:
    return answer.strip() == BACK_TEXT


class QuestionaryPrompter:
    """Arrow-key menus. questionary answers None on Ctrl-C: that ends the wizard. Each question is broken
    between words to the terminal's width (gptwiz.plain.wrapping), and once answered it is erased and its line
    printed again broken the same way: left to prompt_toolkit, "? question answer" breaks mid-word."""

    SELECT_HINT = "(Use arrow keys)"

    def __init__(self, width: Callable[[], int] = terminal_width) -> None:
        self._width = width

    def _ask(self, question: Any) -> Any:
        answer = question.ask()
        if answer is None:
            raise Cancelled()
        return answer

    def _answered(self, message: str, answer: str, width: int) -> None:
        from prompt_toolkit import print_formatted_text  # lazy: as questionary, once a question is answered
        from prompt_toolkit.formatted_text import FormattedText  # lazy: as print_formatted_text
        from questionary.styles import merge_styles_default  # lazy: as print_formatted_text

        print_formatted_text(FormattedText(answered_fragments(inert(message), inert(answer), width)),
                             style=merge_styles_default([]))

    def select(self, message: str, choices: Sequence[tuple[str, str]], default: str | None = None) -> str:
        import questionary  # lazy: prompt_toolkit loads only when a menu is drawn (LinePrompter needs none)

        width = self._width()
        items = [questionary.Choice(title=title, value=value) for value, title in choices]
        chosen = next((c for c in items if c.value == default), None)
        shown = wrap_question(message, width, after=len(self.SELECT_HINT) + 1)
        answer = str(self._ask(questionary.select(shown, choices=items, default=chosen, instruction=self.SELECT_HINT,
                                                  erase_when_done=True)))
        self._answered(message, next((title for value, title in choices if value == answer), answer), width)
        return answer

    def text(self, message: str, default: str = "", validate: Callable[[str], str | None] | None = None) -> str:
        import questionary  # lazy: prompt_toolkit loads only when a menu is drawn (LinePrompter needs none)

        width = self._width()
        check = (lambda v: _is_back(v) or validate(v) or True) if validate else None
        shown = wrap_question(with_back_hint(message), width, after=min(20, len(default) + 2))
        answer = str(self._ask(questionary.text(shown, default=default, validate=check, erase_when_done=True)))
        self._answered(message, answer, width)
        return BACK if _is_back(answer) else answer


class LinePrompter:
    """Numbered choices and typed answers, a line each, with no escape codes: what a dumb terminal can show."""

    def __init__(self, read: Callable[[str], str] = input, out: IO[str] | None = None) -> None:
        self._read = read
        self._out = out

    def _say(self, line: str, indent: str = "") -> None:
        """`line` broken between words to the terminal's width, its continuations indented by `indent`."""
        for row in wrap(inert(line), terminal_width(), indent=indent):  # choices and problems name files and runs
            print(row, file=self._out, flush=True)

    def _line(self, prompt: str) -> str:
        *above, last = wrap(inert(prompt), terminal_width())  # the answer is typed after the last line
        for row in above:
            print(row, file=self._out, flush=True)
        try:
            return self._read(last + " ")
        except (EOFError, KeyboardInterrupt):
            raise Cancelled() from None

    def select(self, message: str, choices: Sequence[tuple[str, str]], default: str | None = None) -> str:
        self._say(message)
        for i, (value, title) in enumerate(choices, 1):
            number = f"  {i}) "
            self._say(f"{number}{title}" + ("  (default)" if value == default else ""), " " * len(number))
        values = [value for value, _ in choices]
        while True:
            answer = self._line(f"number (1-{len(choices)}{', Enter: default' if default in values else ''}): ").strip()
            if not answer and default in values:
                return default
            if _is_back(answer) and BACK in values:
                return BACK
            if answer.isdigit() and 1 <= int(answer) <= len(choices):
                return values[int(answer) - 1]
            self._say(f"  {quote(answer)} is not one of the numbers 1 to {len(choices)}")

    def text(self, message: str, default: str = "", validate: Callable[[str], str | None] | None = None) -> str:
        shown = f" [{default}]" if default else ""
        while True:
            answer = self._line(f"{with_back_hint(message.removesuffix(':') + shown)}: ")
            if _is_back(answer):
                return BACK
            answer = answer or default
            problem = validate(answer) if validate else None
            if problem is None:
                return answer
            self._say(f"  {problem}")


__all__ = ["BACK", "BACK_TEXT", "BACK_TITLE", "Cancelled", "Prompter", "QuestionaryPrompter", "LinePrompter",
           "plain_output"]
