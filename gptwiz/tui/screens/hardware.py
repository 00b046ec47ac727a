"""Step 3: the GPUs (or CPU and RAM) detected, and a VRAM figure or a named card to plan for another machine."""

from __future__ import annotations

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Footer, Input, LoadingIndicator, OptionList, Select, Static
from textual.worker import get_current_worker

from gptwiz.common.inert import quote
from gptwiz.common.rich_text import outside
from gptwiz.tui.screens.base import StepTitle, WizardStep, enter_binding
from gptwiz.wizard.services import THIS_MACHINE, apply_hardware_answer, gpu_choices, hardware_lines


class HardwareScreen(WizardStep):
    STEP = "hardware"
    HELP = ("What this machine has, detected through NVML (NVIDIA cards) and psutil (CPU and RAM). To plan for "
            "another machine, type its GPU memory in GiB (24 for a card sold as 24 GB, 0 for a CPU-only machine), or "
            "pick a named card (or type its name, such as 3090): its memory, dtype, and times from its data-sheet "
            "peak x an efficiency prior; leave the field empty to plan for this one.")
    BINDINGS = [Binding("escape", "back", "back"), enter_binding("next", "continue")]

    def __init__(self) -> None:
        super().__init__(id="hardware")
        self.detected = False

    def compose(self) -> ComposeResult:
        yield StepTitle(self.STEP)
        with Vertical(classes="wizard-body"):
            yield Static("Detected on this machine:", classes="hint")
            yield LoadingIndicator(id="detecting")
            yield Static("", id="hw-report")
            yield Static("", id="hw-note", classes="hint")
            with Horizontal(id="vram-row"):
                yield Static("Plan for a GPU (GiB or card): ", id="vram-label")
                yield Input(placeholder="as detected", id="vram", restrict=r"[0-9.a-zA-Z _-]*", max_length=20)
            yield Select([(label, key) for key, label in gpu_choices()], prompt="or pick a named card", id="card")
            yield Static("Leave empty to use what was detected; type 24 to plan for a 24 GiB card elsewhere, "
                         "0 for a CPU machine, or a card's name. Enter continues.", classes="hint")
            yield Static("", id="vram-error", classes="error-text")
        yield Footer()

    def on_mount(self) -> None:
        if self.state.vram_override_gb is not None:
            self.query_one("#vram", Input).value = f"{self.state.vram_override_gb:g}"
        elif self.state.planned_gpu:
            self.query_one("#vram", Input).value = self.state.planned_gpu
        if self.state.hardware is not None:
            self._show(self.state.hardware)
        else:
            self._detect()
        self.query_one("#vram", Input).focus()

    @work(thread=True, exclusive=True, group="hardware")
    def _detect(self) -> None:
        try:
            report = self.context.detect_hardware()
        except Exception as exc:  # detection must never block the wizard: plan by hand instead
            report = None
            error = f"hardware detection failed ({exc}); type the VRAM to plan for"
        else:
            error = ""
        if not get_current_worker().is_cancelled:
            self.app.call_from_thread(self._show, report, error)

    def _show(self, report: object, error: str = "") -> None:
        self.detected = True
        self.state.hardware = report
        self.query_one("#detecting").display = False
        lines = hardware_lines(report) if report is not None else []
        # The device and CPU names come from the driver and /proc: outside text.
        self.query_one("#hw-report", Static).update(outside("\n".join(lines) or error or "nothing detected",
                                                            style="bold" if lines else "red", multiline=True))
        note = ("No NVIDIA GPU found: gptwiz will train on the CPU, which is for learning and testing "
                "(tiny and small presets)." if report is not None and not self.state.gpus else "")
        self.query_one("#hw-note", Static).update(note)

    def on_input_changed(self, event: Input.Changed) -> None:
        self.query_one("#vram-error", Static).update("")

    def on_select_changed(self, event: Select.Changed) -> None:
        # The pick is typed into the field: one answer, read by the wizard's parse_hardware_answer.
        if isinstance(event.value, str):
            self.query_one("#vram", Input).value = "" if event.value == THIS_MACHINE else event.value
            self.query_one("#vram", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.action_next()

    def action_next(self) -> None:
        # Enter is the screen's (a priority binding): on the card list it opens the list, or picks from it.
        if isinstance(self.focused, OptionList):  # the open list of cards
            self.focused.action_select()
            return
        if isinstance(self.focused, Select):
            self.focused.action_show_overlay()
            return
        self.after_typing(self._next)

    def _next(self) -> None:
        text = self.query_one("#vram", Input).value
        try:
            apply_hardware_answer(self.state, text)
        except ValueError:
            self.query_one("#vram-error", Static).update(Text(
                f"{quote(text)} is neither a memory size nor a card: type a number of GiB such as 6, 24 or 80, a card "
                "such as 3090, or leave it empty"))
            return
        if not self.detected and self.state.vram_override_gb is None and not self.state.planned_gpu:
            self.notify("still detecting the hardware; type a VRAM figure to skip it", severity="warning")
            return
        self.advance()
