"""Step 6: the guide's 100-iteration check, run by gptwiz.training.probe in a worker, drawn live, then judged.

Each piece of advice can be applied with its number key: the knobs change and the probe runs again.
Escape cancels a running probe (the probe stops its child trainer) and goes back.
"""

from __future__ import annotations

import shlex
from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Footer, ProgressBar, Static
from textual.worker import Worker, get_current_worker

from gptwiz.common import fmt
from gptwiz.common.errors import UsageError
from gptwiz.planning.knobs import Advice
from gptwiz.tui.screens.base import StepTitle, WizardStep
from gptwiz.tui.widgets.charts import LossChart
from gptwiz.wizard.advice import apply_advice, probe_advice

VERDICT_STYLE = {"pass": "bold white on green", "warn": "bold black on yellow", "fail": "bold white on red",
                 "cancelled": "bold white on grey37", "error": "bold white on red"}


class ProbeScreen(WizardStep):
    STEP = "probe"
    BINDINGS = [Binding("escape", "back", "back / cancel"), Binding("r", "reprobe", "probe again"),
                Binding("enter", "launch", "launch training"), Binding("s", "skip", "skip to launch", show=False)] + \
        [Binding(str(i), f"apply({i})", "apply advice" if i == 1 else "", show=i == 1) for i in range(1, 10)]

    def __init__(self) -> None:
        super().__init__(id="probe")
        self.iters = 100
        self.worker: Worker[Any] | None = None
        self.result: Any = None
        self.losses: list[float] = []
        self.advice: list[Advice] = []

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
        self.iters = self.context.probe_iters
        self.query_one("#probe-advice").display = False
        self.start()

    # -- running --

    def start(self) -> None:
        if self.worker is not None and self.worker.is_running:
            return
        self.result, self.losses, self.advice = None, [], []
        self.query_one("#probe-command", Static).update(
            f"probing {self.iters} iterations: " + shlex.join(self.state.knob_args()))
        self.query_one("#probe-bar", ProgressBar).update(total=self.iters, progress=0)
        self.query_one("#probe-verdict", Static).update(Text(" RUNNING ", style="bold white on blue"))
        self.query_one("#probe-reasons", Static).update(Text("escape cancels", style="dim"))
        self.query_one("#probe-advice").display = False
        self.query_one("#probe-status", Static).update("starting the trainer (importing torch, loading data) ...")
        self.query_one(LossChart).set_data([], [], [], [])
        self.worker = self._run()

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
            self.app.call_from_thread(fn, *args)
        except RuntimeError:  # the app is closing
            pass

    def _progress(self, p: Any) -> None:
        if not self.is_attached:
            return
        if p.message:
            self.query_one("#probe-reasons", Static).update(Text(p.message, style="yellow"))
        if p.loss is not None and p.iter > len(self.losses):
            self.losses.append(float(p.loss))
        bar = self.query_one("#probe-bar", ProgressBar)
        bar.update(total=p.iters, progress=p.iter)
        memory = fmt.gib(p.peak_mem_bytes or None)
        loss = f"{p.loss:.4f}" if p.loss is not None else "-"
        tps = fmt.count(p.tokens_per_sec or None)
        attempt = f" · attempt {p.attempt}" if p.attempt > 1 else ""
        self.query_one("#probe-status", Static).update(
            f"iter {p.iter}/{p.iters} · loss {loss}\n{tps} tok/s · peak memory {memory}\n"
            f"batch {p.batch_size} x accum {p.grad_accum}{attempt}")
        if p.iter % 5 == 0 or p.iter == p.iters:
            xs = [float(i + 1) for i in range(len(self.losses))]
            self.query_one(LossChart).set_data(xs, self.losses, [], [])

    def _done(self, result: Any, error: str | None) -> None:
        self.worker = None
        if not self.is_attached:
            return
        self.result = result
        self.state.probe_result = result
        verdict = getattr(result, "verdict", "error") if result is not None else "error"
        self.query_one("#probe-verdict", Static).update(Text(f" {verdict.upper()} ", style=VERDICT_STYLE.get(verdict, "bold")))
        if result is None:
            self.query_one("#probe-reasons", Static).update(Text(error or "the probe failed", style="red"))
            return
        if result.losses:
            self.losses = [float(x) for x in result.losses]
            self.query_one(LossChart).set_data([float(i + 1) for i in range(len(self.losses))], self.losses, [], [])
        lines = Text()
        for reason in getattr(result, "reasons", []) or []:
            lines.append(f"· {reason}\n")
        facts = []
        if result.peak_memory_bytes:
            facts.append(f"peak {fmt.gib(result.peak_memory_bytes)}"
                         + (f" (estimate {fmt.gib(result.estimate_bytes)})" if result.estimate_bytes else ""))
        if result.projected_full_run_s:
            facts.append(f"full run ≈ {fmt.duration(result.projected_full_run_s)}")
        if facts:
            lines.append(" · ".join(facts) + "\n", style="dim")
        if result.error:
            lines.append(result.error + "\n", style="red")
        self.advice = probe_advice(result, self.state.knobs)
        if self.advice:
            lines.append("Press a number to apply that advice and probe again, enter to launch as is.", style="dim")
        elif verdict != "cancelled":
            lines.append("Press enter to launch the training.", style="dim")
        self.query_one("#probe-reasons", Static).update(lines)
        advice = Text()
        for i, a in enumerate(self.advice, 1):
            advice.append(f"{i} ", style="bold reverse")
            advice.append(f" {a}\n")
        self.query_one("#probe-advice", Static).update(advice)
        self.query_one("#probe-advice").display = bool(self.advice)

    # -- keys --

    def action_apply(self, number: int) -> None:
        if self.worker is not None or not 1 <= number <= len(self.advice):
            return
        advice = self.advice[number - 1]
        try:
            apply_advice(self.state, advice)
        except UsageError as exc:
            self.notify(str(exc), severity="warning")
            return
        self.notify(f"applied: {advice.flags()}")
        self.start()

    def action_reprobe(self) -> None:
        if self.worker is None:
            self.start()

    def action_back(self) -> None:
        if self.worker is not None:
            self.worker.cancel()
            self.query_one("#probe-reasons", Static).update(Text("cancelling: stopping the probe's trainer ...",
                                                                 style="yellow"))
            return
        super().action_back()

    def action_launch(self) -> None:
        if self.worker is not None:
            self.notify("the probe is still running: wait for its verdict, or press s to skip to the launch")
            return
        self.action_skip()

    def action_skip(self) -> None:
        if self.worker is not None:
            self.worker.cancel()
        self.advance()
