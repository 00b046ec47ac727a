"""What every wizard step shares: a title line saying where the user is, a footer of keys, and escape to go back."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from rich.text import Text
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Static

from gptwiz.tui.context import AppContext
from gptwiz.wizard.state import WizardState

if TYPE_CHECKING:
    from gptwiz.tui.app import GptwizApp

STEPS = ("Welcome", "Use case", "Hardware", "Dataset", "Recommendation", "Probe", "Launch")


class StepTitle(Static):
    def __init__(self, step: int) -> None:
        text = Text.assemble(("gptwiz", "bold"), ("  ·  ", "dim"), (f"step {step}/{len(STEPS)}: ", "dim"),
                             (STEPS[step - 1], "bold"))
        super().__init__(text, classes="wizard-title")


class WizardStep(Screen[None]):
    STEP = 1
    BINDINGS = [Binding("escape", "back", "back")]

    @property
    def gptwiz(self) -> "GptwizApp":
        return cast("GptwizApp", self.app)

    @property
    def state(self) -> WizardState:
        return self.gptwiz.wizard

    @property
    def context(self) -> AppContext:
        return self.gptwiz.context

    def action_back(self) -> None:
        if len(self.app.screen_stack) > 2:
            self.app.pop_screen()
