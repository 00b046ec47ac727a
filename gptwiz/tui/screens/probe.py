"""Step 6: the guide's 100-iteration check, run by gptwiz.training.probe in a worker, drawn live, then judged.

Each piece of advice can be applied with its number key: the knobs change and the probe runs again.
Leaving while a probe runs (escape, or quitting the app) asks first; then the probe stops its child trainer,
and the screen says so until the child has exited. c cancels and stays. The footer offers only what the
state allows: no "next" while the probe runs.
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Callable
from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.css.query import NoMatches
from textual.widgets import Footer, ProgressBar, Static
from textual.worker import Worker, get_current_worker

from gptwiz.common import fmt
from gptwiz.common.errors import UsageError
from gptwiz.common.inert import inert
from gptwiz.common.rich_text import outside
from gptwiz.planning.knobs import Advice
from gptwiz.tui.screens.base import StepTitle, WizardStep
from gptwiz.tui.screens.confirm import ConfirmScreen
from gptwiz.tui.widgets.charts import LossChart
from gptwiz.wizard.advice import apply_advice, budget_line, probe_advice

VERDICT_STYLE = {"pass": "bold white on green", "warn": "bold black on yellow", "fail": "bold white on red",
                 "cancelled": "bold white on grey37", "error": "bold white on red"}
CANCELLING = "cancelling the probe: waiting for its process to exit"
STARTING = "starting the trainer (importing torch, loading data)"
_TICK_S = 1.0  # the start-up timer and the ETA count down between iterations

# Actions offered only while a probe runs, and only while none does.
_WHILE_RUNNING = {"cancel", "back_cancel"}
_WHILE_IDLE = {"back", "launch", "reprobe", "apply"}


class ProbeScreen(WizardStep):
    STEP = "probe"
    BINDINGS = [
        Binding("escape", "back_cancel", "back (cancels probe)"),
        Binding("escape", "back", "back"),
        Binding("c", "cancel", "cancel probe"),
        Binding("enter", "launch", "next: name and launch"),
        Binding("r", "reprobe", "probe again"),
        Binding("s", "skip", "skip to launch", show=False),
    ] + [Binding(str(i), f"apply({i})", "apply advice" if i == 1 else "", show=i == 1) for i in range(1, 10)]

    def __init__(self) -> None:
        super().__init__(id="probe")
        self.iters = 100
        self.worker: Worker[Any] | None = None
        self.result: Any = None
        self.losses: list[float] = []
        self.advice: list[Advice] = []
        self.cancelling = False
        self._then: Callable[[], None] | None = None  # what to do once a cancelled probe has ended
        self._last: Any = None                         # the latest ProbeProgress
        self._last_at = 0.0                            # when it came (time.monotonic)
        self._started_at = 0.0

    def compose(self) -> ComposeResult:
        yield StepTitle(self.STEP)
        yield Static("", id="probe-command", classes="hint")
        with Horizontal(id="probe-body"):
            with Vertical(id="probe-left"):
                yield ProgressBar(id="probe-bar", total=self.iters, show_eta=False)
                yield Static("", id="probe-status")
                yield LossChart(id="probe-chart")
            with Vertical(id="probe-right"):
                yield Static("", id="probe-verdict")
                yield Static("", id="probe-reasons")
                yield Static("", id="probe-advice")
        yield Footer()

    def on_mount(self) -> None:
        self.iters = self.state.probe_iters(self.context.probe_iters)  # a shorter run is its own probe
        self.query_one("#probe-advice").display = False
        self.set_interval(_TICK_S, self._render_status)
        self.start()

    @property
    def running(self) -> bool:
        return self.worker is not None

    # -- running --

    def start(self) -> None:
        if self.running:
            return
        self.result, self.losses, self.advice = None, [], []
        self._last, self._started_at = None, time.monotonic()
        self.query_one("#probe-command", Static).update(  # its paths are outside text
            outside(f"probing {self.iters} iterations: " + shlex.join(self.state.knob_args())))
        self.query_one("#probe-bar", ProgressBar).update(total=self.iters, progress=0)
        self.query_one("#probe-verdict", Static).update(Text(" RUNNING ", style="bold white on blue"))
        self.query_one("#probe-reasons", Static).update(
            Text("escape goes back and c cancels (both stop the probe)", style="dim"))
        self.query_one("#probe-advice").display = False
        self.query_one(LossChart).set_data([], [], [], [])
        self.worker = self._run()
        self._render_status()
        self.refresh_bindings()

    @work(thread=True, exclusive=True, group="probe")
    def _run(self) -> None:
        worker = get_current_worker()
        try:
            opts = self.state.probe_options(self.iters)
            result = self.context.run_probe(opts, lambda p: self._from_thread(self._progress, p),
                                            lambda: worker.is_cancelled)
            error = None
        except UsageError as exc:
            result, error = None, str(exc)
        except Exception as exc:  # the probe module failing must not take the wizard down
            result, error = None, f"{exc.__class__.__name__}: {exc}"
        self._from_thread(self._done, result, error)

    def _from_thread(self, fn: Any, *args: Any) -> None:
        try:
            self.app.call_from_thread(self._if_shown, fn, *args)
        except RuntimeError:  # the app is closing
            pass

    def _if_shown(self, fn: Any, *args: Any) -> None:
        try:
            fn(*args)
        except NoMatches:  # the app closed this screen while the probe was ending: nothing left to draw on
            pass

    def _progress(self, p: Any) -> None:
        if not self.is_attached:
            return
        if p.message:
            # The probe's message comes from its trainer, another process: outside text.
            self.query_one("#probe-reasons", Static).update(outside(p.message, style="yellow", multiline=True))
        if p.loss is not None and p.iter > len(self.losses):
            self.losses.append(float(p.loss))
        self._last, self._last_at = p, time.monotonic()
        self.query_one("#probe-bar", ProgressBar).update(total=p.iters, progress=p.iter)
        self._render_status()
        if p.iter % 5 == 0 or p.iter == p.iters:
            xs = [float(i + 1) for i in range(len(self.losses))]
            self.query_one(LossChart).set_data(xs, self.losses, [], [])

    def eta_text(self) -> str:
        """What is left of the probe: its own measured step time times the iterations left, counted down
        between iterations; 'measuring' until its first step."""
        p = self._last
        if not self.running and p is not None:
            return "all iterations done" if p.iter >= p.iters else "stopped"
        if self.cancelling:
            return "cancelling"
        if p is None or p.iter == 0 or getattr(p, "eta_s", None) is None:
            return "time left: measuring"
        left = max(0.0, p.eta_s - (time.monotonic() - self._last_at))
        # Only the first steps (compilation, allocator warm-up) measured: they are the slow ones.
        return f"{'at most' if getattr(p, 'eta_rough', False) else 'about'} {fmt.duration(left)} left"

    def _render_status(self) -> None:
        if not self.is_attached:
            return
        status = self.query_one("#probe-status", Static)
        p = self._last
        if p is None or p.iter == 0:
            if not self.running:
                status.update("stopped before its first iteration")
            elif not self.cancelling:
                status.update(f"{STARTING} ... {fmt.duration(time.monotonic() - self._started_at)}")
            return
        memory = fmt.gib(p.peak_mem_bytes or None)
        loss = f"{p.loss:.4f}" if p.loss is not None else "-"
        tps = fmt.count(p.tokens_per_sec or None)
        attempt = f" · attempt {p.attempt}" if p.attempt > 1 else ""
        # Three short lines: the left column is under 40 characters wide at 80 columns.
        status.update(f"iter {p.iter}/{p.iters} · {self.eta_text()}\nloss {loss} · {tps} tok/s\n"
                      f"peak {memory} · batch {p.batch_size}x{p.grad_accum}{attempt}")

    def _done(self, result: Any, error: str | None) -> None:
        self.worker = None
        self.cancelling = False
        then, self._then = self._then, None
        if not self.is_attached:
            return
        self.result = result
        self.state.probe_result = result
        self._show_result(result, error)
        self._render_status()
        self.refresh_bindings()
        if then is not None:
            then()

    def _show_result(self, result: Any, error: str | None) -> None:
        verdict = getattr(result, "verdict", "error") if result is not None else "error"
        self.query_one("#probe-verdict", Static).update(Text(f" {verdict.upper()} ", style=VERDICT_STYLE.get(verdict, "bold")))
        if result is None:
            self.query_one("#probe-reasons", Static).update(outside(error or "the probe failed", style="red",
                                                                    multiline=True))
            return
        if result.losses:
            self.losses = [float(x) for x in result.losses]
            self.query_one(LossChart).set_data([float(i + 1) for i in range(len(self.losses))], self.losses, [], [])
        lines = Text()
        for reason in getattr(result, "reasons", []) or []:
            lines.append(f"· {inert(reason)}\n")
        facts = []
        if result.peak_memory_bytes:
            facts.append(f"peak {fmt.gib(result.peak_memory_bytes)}"
                         + (f" (estimate {fmt.gib(result.estimate_bytes)})" if result.estimate_bytes else ""))
        if result.projected_full_run_s and verdict != "cancelled":
            facts.append(f"full run ≈ {fmt.duration(result.projected_full_run_s)}")
        if result.quality and verdict != "cancelled":
            facts.append(f"val loss ≈ {result.quality['val_loss']:.2f} ({result.quality['low']:.2f}-"
                         f"{result.quality['high']:.2f})")
        if facts:
            lines.append(" · ".join(facts) + "\n", style="dim")
        if getattr(result, "budget_s", None) and result.projected_full_run_s and verdict != "cancelled":
            over = result.projected_full_run_s > result.budget_s
            lines.append(f"budget: {budget_line(result)}\n", style="yellow" if over else "dim")
        if result.error:
            lines.append(inert(result.error, multiline=True) + "\n", style="red")
        self.advice = probe_advice(result, self.state.knobs)
        if self.advice:
            lines.append("A number applies that advice and probes again; enter goes on to the launch as is.",
                         style="dim")
        elif verdict == "cancelled":
            lines.append("No verdict: r probes again; enter goes on to the launch without one.", style="dim")
        else:
            lines.append("Enter goes on to the launch: name the run, then start it.", style="dim")
        self.query_one("#probe-reasons", Static).update(lines)
        advice = Text()
        for i, a in enumerate(self.advice, 1):
            advice.append(f"{i} ", style="bold reverse")
            advice.append(f" {a}\n")
        self.query_one("#probe-advice", Static).update(advice)
        self.query_one("#probe-advice").display = bool(self.advice)

    # -- leaving while a probe runs --

    def leave_warning(self) -> str | None:
        """What leaving this screen (or the app) now would cancel, for the question asked first; None when
        leaving cancels nothing (no probe runs, or it is cancelling already)."""
        if not self.running or self.cancelling:
            return None
        p = self._last
        where = f" (iteration {p.iter} of {p.iters})" if p is not None and p.iter else " (starting)"
        return f"A probe is running{where}: leaving cancels it and stops its trainer."

    def finish_before_leaving(self, then: Callable[[], None]) -> None:
        """Cancel a running probe, say so on screen while its process exits, then call `then` (in the app's
        thread); at once when no probe runs. For the app's q: leaving once this calls back, the user sees what
        the wait is for."""
        if not self.running:
            then()
            return
        self._then = then
        self._cancel()

    def before_leave(self) -> None:
        """Leaving is confirmed and the app exits now: the probe starts stopping its trainer at once."""
        self._cancel()

    def leaving_note(self, width: int) -> str | None:
        verdict = getattr(self.result, "verdict", None)
        where = ("at the probe, before its verdict" if verdict is None else
                 "at the probe, cancelled before its verdict" if verdict == "cancelled" else
                 f"after the probe (verdict: {verdict})")
        return self.settings_note(where, width)

    def _cancel(self) -> None:
        if self.worker is None or self.cancelling:
            return
        self.cancelling = True
        self.worker.cancel()
        self.query_one("#probe-verdict", Static).update(Text(" CANCELLING ", style="bold black on yellow"))
        self.query_one("#probe-reasons", Static).update(Text(CANCELLING + " ...", style="yellow"))
        self.refresh_bindings()

    def _ask_then(self, then: Callable[[], None], what: str) -> None:
        """Ask before a move that would cancel the probe; cancel and make it once the probe has ended."""
        warning = self.leave_warning()
        if warning is None:
            self.finish_before_leaving(then)
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.finish_before_leaving(then)

        self.app.push_screen(ConfirmScreen(f"{warning}\n\nCancel the probe and {what}?", yes="Cancel the probe",
                                           no="Keep probing"), answered)

    # -- keys --

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if self.cancelling and (action in _WHILE_RUNNING or action in _WHILE_IDLE or action == "skip"):
            return False
        if action in _WHILE_RUNNING:
            return self.running
        if action == "apply":
            number = parameters[0] if parameters else 0
            return not self.running and isinstance(number, int) and 1 <= number <= len(self.advice)
        if action in _WHILE_IDLE:
            return not self.running
        return True

    def action_apply(self, number: int) -> None:
        if self.running or not 1 <= number <= len(self.advice):
            return
        advice = self.advice[number - 1]
        try:
            apply_advice(self.state, advice)
        except UsageError as exc:
            self.notify(inert(exc, multiline=True), severity="warning", markup=False)
            return
        self.notify(f"applied: {inert(advice.flags())}", markup=False)
        self.start()

    def action_reprobe(self) -> None:
        if not self.running:
            self.start()

    def action_cancel(self) -> None:
        self._cancel()

    def action_back_cancel(self) -> None:
        self._ask_then(super().action_back, "go back")

    def action_back(self) -> None:
        if self.running:
            self.action_back_cancel()
            return
        super().action_back()

    def action_launch(self) -> None:
        if self.running:
            return
        self.advance()

    def action_skip(self) -> None:
        self._ask_then(self.advance, "go on to the launch")
