"""? on any screen: that screen's paragraph and the keys that work on it now, in a dialog that scrolls at 80x24.

The keys come from Textual's own view of the screen (its active bindings: the focused widget's, the screen's and
the app's, each key once, as a key press would resolve it), so the help never lists a key that does nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.binding import Binding
from textual.dom import DOMNode
from textual.screen import Screen

from gptwiz.tui.screens.message import MessageScreen


@dataclass(frozen=True)
class ScreenKey:
    keys: tuple[str, ...]   # as the footer writes them: "q", "^c", "?"
    description: str
    action: str
    namespace: DOMNode      # where `action` runs (the screen, the app, a widget)


# Textual's own keys on every screen (focus moves, copying a selection): not this app's actions.
TEXTUAL_ACTIONS = {"app.focus_next", "app.focus_previous", "screen.copy_text", "app.command_palette",
                   "command_palette"}


def screen_keys(screen: Screen[object]) -> list[ScreenKey]:
    """The keys that work on `screen` now and have a description, one entry per description (its keys together):
    the screen's first, then the app's (quit, help), and those a focused widget shows in its footer."""
    app = screen.app
    entries: dict[str, ScreenKey] = {}
    order: dict[str, int] = {}
    for _key, active in screen.active_bindings.items():
        binding: Binding = active.binding
        if not binding.description or not active.enabled or binding.system or binding.action in TEXTUAL_ACTIONS:
            continue
        if active.node is not screen and active.node is not app and not binding.show:
            continue  # a focused widget's own moves (cursor keys, paging) are not the screen's actions
        shown = app.get_key_display(binding)
        old = entries.get(binding.description)
        if old is None:
            entries[binding.description] = ScreenKey((shown,), binding.description, binding.action, active.node)
            order[binding.description] = 1 if active.node is app else 0
        elif shown not in old.keys:
            entries[binding.description] = ScreenKey(old.keys + (shown,), old.description, old.action, old.namespace)
    return sorted(entries.values(), key=lambda e: order[e.description])


def help_text(screen: Screen[object]) -> Text:
    paragraph = getattr(screen, "HELP", "") or ""
    text = Text()
    for part in paragraph.strip().split("\n\n") if paragraph.strip() else []:
        text.append(" ".join(part.split()) + "\n\n")  # a paragraph wraps at the dialog's width, not the source's
    text.append("Keys here\n", style="bold")
    for entry in screen_keys(screen):
        text.append(f"  {' '.join(entry.keys):<12}", style="bold cyan")
        text.append(f" {entry.description}\n")
    text.append("\n^p opens the command palette: every action of this screen, by name.", style="dim")
    return text


class HelpScreen(MessageScreen):
    """The help of the screen below it; ? (or escape, q, enter) closes it again."""

    BINDINGS = [Binding("question_mark", "close", "close", show=False), Binding("f1", "close", "close", show=False)]

    def __init__(self, screen: Screen[object], title: str) -> None:
        super().__init__(title, help_text(screen), id="help")
