"""A command line on screen, folded between its arguments (gptwiz.common.commands), refolded as the width changes."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from gptwiz.common.commands import paste_lines
from gptwiz.common.inert import inert


class CommandLine(Static):
    """Shows `command` (a shell command line) folded by gptwiz.common.commands.paste_lines to its width: pasted
    back into a shell, the lines are the one command."""

    def __init__(self, command: str = "", *, style: str = "bold cyan", **kwargs: object) -> None:
        super().__init__("", **kwargs)  # type: ignore[arg-type]
        self.command, self.command_style = command, style

    def set_command(self, command: str) -> None:
        self.command = command
        self._fold()

    def on_mount(self) -> None:
        self._fold()

    def on_resize(self) -> None:
        self._fold()

    def _fold(self) -> None:
        width = self.content_size.width or 78
        # Its paths and names are outside text: a control character in one shows as its escape.
        self.update(Text(inert("\n".join(paste_lines(self.command, width)), multiline=True), style=self.command_style,
                         no_wrap=True, overflow="fold"))
