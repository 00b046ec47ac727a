"""Step 2: the guide's six use cases, each with its one-line explanation."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import Footer, OptionList, Static
from textual.widgets.option_list import Option

from gptwiz.tui.screens.base import StepTitle, WizardStep, enter_binding
from gptwiz.wizard.services import use_cases


class UseCaseScreen(WizardStep):
    STEP = "use_case"
    HELP = ("What the model is for decides its size and context length, as the model-selection guide's table "
            "says: pick the closest with ↑/↓ and enter. The next steps detect the hardware and measure the data; "
            "escape comes back here.")
    BINDINGS = [Binding("escape", "back", "back"), enter_binding("choose", "choose")]

    def __init__(self) -> None:
        super().__init__(id="use-case")
        self.cases = use_cases()

    def compose(self) -> ComposeResult:
        yield StepTitle(self.STEP)
        with Vertical(classes="wizard-body"):
            yield Static("What will the model be for? (↑/↓ then enter)", classes="hint")
            options = []
            for key, name, why in self.cases:
                prompt = Text.assemble((f"{name}", "bold"), ("\n  " + why, "dim"))
                options.append(Option(prompt, id=key))
            yield OptionList(*options, id="cases")
        yield Footer()

    def on_mount(self) -> None:
        cases = self.query_one(OptionList)
        keys = [c[0] for c in self.cases]
        cases.highlighted = keys.index(self.state.use_case) if self.state.use_case in keys else 0
        cases.focus()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self._choose(event.option.id)

    def action_choose(self) -> None:
        self.after_typing(self._choose_highlighted)  # after the arrow keys sent just before enter

    def _choose_highlighted(self) -> None:
        cases = self.query_one(OptionList)
        if cases.highlighted is not None:
            self._choose(self.cases[cases.highlighted][0])

    def _choose(self, key: str | None) -> None:
        if not key:
            return
        self.state.use_case = key
        self.advance()
