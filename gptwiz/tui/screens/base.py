"""What every screen shares (a help paragraph for ?, and the hooks the app's q asks before leaving), and what every
wizard step adds: a title line saying where the user is, a footer of keys, and escape to go back."""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from rich.text import Text
from textual.binding import ActiveBinding, Binding
from textual.dom import DOMNode
from textual.screen import Screen
from textual.widgets import Static

from gptwiz.tui.context import AppContext, shared
from gptwiz.tui.messages import GoBack, MoveOn
from gptwiz.tui.outcome import unstarted_line
from gptwiz.wizard.commands import wizard_command_line
from gptwiz.wizard.flow import STEPS, TITLES, step_number
from gptwiz.wizard.state import WizardState


def enter_binding(action: str, description: str) -> Binding:
    """Enter for a screen's main action, in its footer. A priority binding: a focused input or list would
    otherwise take enter first with its own (hidden) binding, and the footer would not say what enter does."""
    return Binding("enter", action, description, priority=True)


# Keys the footer shows first, in this order: what enter does, the way back, how to leave, the help. A footer
# wider than the terminal is cut at its right end; these must never be what is cut (the rest is in ? and ^p).
FOOTER_FIRST = ("enter", "escape", "q", "ctrl+q", "question_mark", "f1")


class AppScreen(Screen[None]):
    """A screen of the app: the app's q, ctrl+c and ? (gptwiz.tui.app) ask it through these hooks."""

    HELP: ClassVar[str] = ""  # a short paragraph shown by ? above the screen's keys

    @property
    def active_bindings(self) -> dict[str, ActiveBinding]:
        """Textual's, with the FOOTER_FIRST keys moved to the front (the footer draws them in this order)."""
        bindings = super().active_bindings
        first = {key: bindings[key] for key in FOOTER_FIRST if key in bindings}
        return first | {key: active for key, active in bindings.items() if key not in first}

    def help_title(self) -> str:
        return "gptwiz"

    def leave_warning(self) -> str | None:
        """What leaving the app now would cancel, said as the question to ask first; None: leave at once."""
        return None

    def before_leave(self) -> None:
        """Called once leaving is confirmed, before the app exits (cancel what must not outlive the screen)."""

    def finish_before_leaving(self, then: Callable[[], None]) -> None:
        """Leaving is confirmed: end what must not outlive the screen, then call `then`. A screen whose work takes
        a moment to end (a probe's trainer) says so on screen and calls `then` once it has ended."""
        self.before_leave()
        then()

    def leaving_run(self) -> str | None:
        """The run the farewell line should speak of (gptwiz.tui.app), if this screen shows one."""
        return None

    def leaving_note(self, width: int) -> str | None:
        """Where no screen shows a run: what the farewell line says on leaving from here (`width` columns), if
        anything goes on from this screen."""
        return None


class StepTitle(Static):
    def __init__(self, step: str) -> None:
        text = Text.assemble(("gptwiz", "bold"), ("  ·  ", "dim"), (f"step {step_number(step)}/{len(STEPS)}: ", "dim"),
                             (TITLES[step], "bold"))
        super().__init__(text, classes="wizard-title")


class WizardStep(AppScreen):
    """One step of gptwiz.wizard.flow: it draws and collects; the app decides where a move leads (the step asks
    with gptwiz.tui.messages)."""

    STEP: ClassVar[str]  # its name in gptwiz.wizard.flow.STEPS
    BINDINGS = [Binding("escape", "back", "back")]

    @property
    def state(self) -> WizardState:
        """The wizard's answers so far, shared by the steps."""
        return shared(self.app).wizard

    @property
    def context(self) -> AppContext:
        return shared(self.app).context

    def help_title(self) -> str:
        return f"gptwiz · step {step_number(self.STEP)}/{len(STEPS)}: {TITLES[self.STEP]}"

    def advance(self, move: str = "next") -> None:
        """On to the step `move` leads to (gptwiz.wizard.flow.MOVES)."""
        self.post_message(MoveOn(self.STEP, move))

    def after_typing(self, callback: Callable[[], object]) -> None:
        """Run `callback` once the keys already sent to the focused widget have been handled. A priority binding
        (the enter of enter_binding) runs as its key arrives, before the keys sent just before it: a path typed
        and entered in one burst (a paste, a fast typist, ssh lag) would otherwise be read half-typed, and "down
        down enter" would choose the first line. A key is handled by the focused widget, or bubbles from it
        through each parent to the app, whose bindings move a list's cursor; the callback follows the same hops,
        queued behind the key at each."""
        path: list[DOMNode] = []
        node: DOMNode | None = self.focused
        while node is not None:
            path.append(node)
            node = node.parent  # where it bubbles to: the widget's parent, the screen's app

        def hop(rest: list[DOMNode]) -> None:
            if not rest:
                callback()
                return
            rest[0].call_later(hop, rest[1:])

        hop(path)

    def action_back(self) -> None:
        self.post_message(GoBack())

    def settings_note(self, where: str, width: int, name: str | None = None) -> str | None:
        """The farewell of a step that has settings to train with (gptwiz.tui.outcome.unstarted_line), for a run
        named `name` (else the name chosen so far)."""
        if self.state.knobs is None:
            return None
        return unstarted_line(where, wizard_command_line(self.state, name), width)
