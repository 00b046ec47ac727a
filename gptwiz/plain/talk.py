"""How the plain wizard talks: lines to the console (reasons wrapped, command lines folded) and menus through a
`Prompter` (gptwiz.plain.prompts), each but the first with a way back to the question before."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from typing import Any

from rich.markup import escape

from gptwiz.common.commands import paste_lines
from gptwiz.common.inert import inert
from gptwiz.common.rich_text import outside_markup
from gptwiz.plain.prompts import BACK, BACK_TITLE, Prompter

YES, NO = "yes", "no"


class Talk:
    def __init__(self, prompter: Prompter, console: Any) -> None:
        self.ask, self.console = prompter, console

    def say(self, *things: Any) -> None:
        self.console.print(*things, highlight=False)

    def say_item(self, marker: str, text: str, style: str | None = None) -> None:
        """One reason or warning, wrapped to the terminal with its continuation lines under its text."""
        lines = textwrap.wrap(inert(text), width=max(20, self.console.width - 1), initial_indent=marker,
                              subsequent_indent=" " * len(marker))
        for line in lines:
            self.say(f"[{style}]{escape(line)}[/]" if style else escape(line))

    def say_command(self, command: str) -> None:
        """A command line folded at its options (never mid-word), each line but the last ending in a backslash."""
        for line in paste_lines(command, max(20, self.console.width - 3)):
            self.say(f"  [cyan]{outside_markup(line)}[/]")  # it names files and folders

    def fit(self, title: str) -> str:
        """A choice's title cut to one line of the terminal: a menu line that wraps breaks the menu's drawing."""
        return textwrap.shorten(inert(title), width=max(20, self.console.width - 6), placeholder=" ...")

    def select(self, message: str, choices: Sequence[tuple[str, str]], default: str | None = None,
               back: bool = True) -> str:
        """A menu with a way back to the previous question (the answer BACK) unless this is the first."""
        items = [(value, self.fit(title)) for value, title in choices]
        return self.ask.select(message, items + ([(BACK, BACK_TITLE)] if back else []), default)

    def yes_no(self, message: str, yes: str, no: str) -> str:
        """YES, NO or BACK: a yes/no question that can also lead back."""
        return self.select(message, [(YES, yes), (NO, no)], default=YES)
