"""A scrollable text over the current screen: help, sampled text, errors. Any of escape, q, enter closes it."""

from __future__ import annotations

from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

# Rows of the dialog around its text: border and padding (4), the title and its margin (2), the closing hint (1).
DIALOG_ROWS = 7


class MessageScreen(ModalScreen[None]):
    """`title` and a `body` given as a str are drawn as they read (no markup); a caller puts outside text into
    them through inert (gptwiz.tui.widgets.outside)."""

    BINDINGS = [Binding("escape", "close", "close"), Binding("q", "close", "close", show=False),
                Binding("enter", "close", "close", show=False)]
    EXTRA_ROWS = 0  # rows a subclass adds around the text (DIALOG_ROWS counts this dialog's own)

    def __init__(self, title: str, body: str | Text, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.title_text, self.body = title, body

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog wide"):
            yield Static(Text(self.title_text, style="bold"), classes="dialog-title")
            with VerticalScroll(classes="dialog-scroll"):
                yield Static(_plain(self.body), id="message-body")
            yield Static(Text("↑/↓ pgup/pgdn scroll · escape / enter: close", style="dim"))

    def on_mount(self) -> None:
        self.query_one(VerticalScroll).focus()  # the arrow keys scroll a text longer than the terminal

    def on_resize(self, event: events.Resize) -> None:
        # The dialog is at most 90% of the terminal: the text scrolls inside it rather than pushing the hint out.
        rows = int(event.size.height * 0.9) - DIALOG_ROWS - self.EXTRA_ROWS
        self.query_one(VerticalScroll).styles.max_height = max(3, rows)

    def set_body(self, body: str | Text) -> None:
        self.body = body
        self.query_one("#message-body", Static).update(_plain(body))

    def action_close(self) -> None:
        self.dismiss(None)


def _plain(body: str | Text) -> Text:
    return Text(body) if isinstance(body, str) else body
