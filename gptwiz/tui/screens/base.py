"""What every wizard step shares: a title line saying where the user is, a footer of keys, and escape to go back."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, cast

from rich.text import Text
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Static

from gptwiz.tui.context import AppContext
from gptwiz.wizard.flow import STEPS, TITLES, step_number
from gptwiz.wizard.state import WizardState

if TYPE_CHECKING:
    from gptwiz.tui.app import GptwizApp


class StepTitle(Static):
    def __init__(self, step: str) -> None:
        text = Text.assemble(("gptwiz", "bold"), ("  ·  ", "dim"), (f"step {step_number(step)}/{len(STEPS)}: ", "dim"),
                             (TITLES[step], "bold"))
        super().__init__(text, classes="wizard-title")


class WizardStep(Screen[None]):
    """One step of gptwiz.wizard.flow: it draws and collects; the app decides where a move leads."""

    STEP: ClassVar[str]  # its name in gptwiz.wizard.flow.STEPS
    BINDINGS = [Binding("escape", "back", "back")]

    @property
    def gptwiz(self) -> GptwizApp:
        return cast("GptwizApp", self.app)

    @property
    def state(self) -> WizardState:
        return self.gptwiz.wizard

    @property
    def context(self) -> AppContext:
        return self.gptwiz.context

    def advance(self, move: str = "next") -> None:
        """On to the step `move` leads to (gptwiz.wizard.flow.MOVES)."""
        self.gptwiz.advance(self, move)

    def action_back(self) -> None:
        self.gptwiz.back()
