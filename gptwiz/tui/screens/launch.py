"""Step 7: name the run and start the full training, detached, then open its dashboard.

The probe's verdict is shown only when it is about the settings launched (gptwiz.wizard.advice.probe_summary):
after the knobs or the preset changed, the screen says which settings the probe ran with instead.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import Footer, Input, Static

from gptwiz.common.errors import UsageError
from gptwiz.common.inert import inert
from gptwiz.common.rich_text import outside
from gptwiz.runs.paths import validate_run_name
from gptwiz.tui.messages import StartTraining
from gptwiz.tui.screens.base import StepTitle, WizardStep, enter_binding
from gptwiz.tui.widgets.command import CommandLine
from gptwiz.wizard.advice import probe_summary, probed_other_settings
from gptwiz.wizard.commands import wizard_command_line


class LaunchScreen(WizardStep):
    STEP = "launch"
    # A priority binding: the focused name field would take enter first, and the footer not say what it does.
    BINDINGS = [Binding("escape", "back", "back"), enter_binding("launch", "start the training")]

    def __init__(self) -> None:
        super().__init__(id="launch")

    def compose(self) -> ComposeResult:
        yield StepTitle(self.STEP)
        with Vertical(classes="wizard-body"):
            yield Static("", id="launch-summary")
            yield Static(Text("Run name (its folder is runs/NAME):", style="bold"))
            yield Input(id="run-name", compact=True, restrict=r"[A-Za-z0-9._-]*", max_length=100)
            yield Static("", id="name-error", classes="error-text")
            yield Static(Text("Enter starts this training in the background:", style="bold"), id="launch-enter")
            yield CommandLine(id="launch-command")  # folded between its arguments: it pastes as one command
            yield Static("The training runs in the background, in its own session: quitting gptwiz or losing the "
                         "SSH connection does not stop it. `gptwiz watch NAME` shows it again from any terminal.",
                         classes="hint")
        yield Footer()

    def on_mount(self) -> None:
        s = self.state
        k = s.knobs
        box = self.query_one("#run-name", Input)
        box.value = s.run_name or s.default_run_name()
        summary = Text()
        if k is not None:
            summary.append(inert(k.preset), style="bold green")
            summary.append(f" · context {k.block_size} · batch {k.batch_size}"
                           + (f" x{k.grad_accum} accum" if k.grad_accum > 1 else "")
                           + f" · lr {k.learning_rate:g} · {k.max_iters:,} iterations\n")
        if s.dataset is not None:
            summary.append(f"data: {inert(s.dataset.describe(), multiline=True)}\n")  # it names the files
        stale = bool(probed_other_settings(s.probe_result, s))
        summary.append(inert(probe_summary(s.probe_result, s), multiline=True), style="yellow" if stale else "dim")
        self.query_one("#launch-summary", Static).update(summary)
        self._update_command(box.value)
        box.focus()

    def _update_command(self, name: str) -> None:
        self.query_one("#launch-command", CommandLine).set_command(wizard_command_line(self.state, name or "NAME"))

    def leaving_note(self, width: int) -> str | None:
        name = self.query_one("#run-name", Input).value.strip()
        return self.settings_note("at the launch", width, name or None)

    def _check_name(self, name: str) -> str | None:
        try:
            validate_run_name(name)
        except UsageError as exc:
            return str(exc).replace("--model_name", "run name")
        if (self.context.runs_dir / name).exists():
            return f"a run named {name} already exists in {inert(self.context.runs_dir)}; choose another name"
        return None

    def on_input_changed(self, event: Input.Changed) -> None:
        problem = self._check_name(event.value) if event.value else None
        self.query_one("#name-error", Static).update(outside(problem or ""))
        self._update_command(event.value)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.action_launch()

    def action_launch(self) -> None:
        self.after_typing(self._launch)

    def _launch(self) -> None:
        name = self.query_one("#run-name", Input).value.strip()
        problem = self._check_name(name)
        if problem:
            self.query_one("#name-error", Static).update(outside(problem))
            return
        try:
            args = self.state.train_args(name)
        except UsageError as exc:
            self.query_one("#name-error", Static).update(outside(exc, multiline=True))
            return
        self.state.run_name = name
        self.post_message(StartTraining(self, args, name))
