"""A scrollable text over the current screen: help, sampled text, errors. Any of escape, q, enter closes it."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static


class MessageScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape", "close", "close"), Binding("q", "close", "close", show=False),
                Binding("enter", "close", "close", show=False)]

    def __init__(self, title: str, body: str | Text, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.title_text, self.body = title, body

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog wide"):
            yield Static(Text(self.title_text, style="bold"), classes="dialog-title")
            with VerticalScroll(classes="dialog-scroll"):
                yield Static(self.body, id="message-body")
            yield Static(Text("escape / enter: close", style="dim"))

    def set_body(self, body: str | Text) -> None:
        self.body = body
        self.query_one("#message-body", Static).update(body)

    def action_close(self) -> None:
        self.dismiss(None)
