"""The live dashboard of one run: `gptwiz watch`, and where the wizard ends after launching.

A thread worker polls the run folder a few times a second, reading only what was appended to
metrics.jsonl and train.log (RunMonitor), and hands each snapshot to the event loop, which only
draws. Charts are redrawn at most once a second: plotext is the costly part of a frame.
"""

from __future__ import annotations

import time

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.css.query import NoMatches
from textual.widgets import Footer
from textual.worker import get_current_worker

from gptwiz.common.errors import UsageError
from gptwiz.common.inert import inert
from gptwiz.runs.checkpoints import choose_checkpoint
from gptwiz.runs.launch import request_stop
from gptwiz.runs.monitor import RunMonitor
from gptwiz.runs.paths import RunPaths
from gptwiz.runs.snapshot import RunSnapshot
from gptwiz.tui.context import AppContext
from gptwiz.tui.messages import LeaveApp
from gptwiz.tui.outcome import error_file
from gptwiz.tui.screens.base import AppScreen
from gptwiz.tui.screens.confirm import ConfirmScreen
from gptwiz.tui.widgets.charts import LossChart, LrChart
from gptwiz.tui.widgets.device_panel import DevicePanel, DeviceReading
from gptwiz.tui.widgets.panels import LogTailView, ProgressPanel, StateBanner, ThroughputPanel
from gptwiz.wizard.run_quality import RunPrediction, RunPredictor

HELP = """\
The dashboard reads runs/<name>/ (metrics.jsonl, status.json, train.log, quality.json) a few times a second. Leaving it
never stops the training; `gptwiz watch NAME` picks it up again, from any terminal. s stops the run gracefully:
it finishes its step (or drops an evaluation under way), writes a checkpoint and ends as "stopped"; `gptwiz train --model_name NAME --resume`
continues it. g samples from a checkpoint (on the CPU, in the background, the tokens counted as they come), each
sample ending at end-of-text: an instruction-tuned run answers a short message through its chat template (tab, in
the dialog, asks another), a pretrained run continues a new line twice. l (or enter) opens train.log and
console.log in full, following their end. e smooths the train loss (an exponential moving average).

Panels: loss (train per iteration, val at each evaluation; for a run from random weights, the predicted curve ┄
to the end and the final loss's 80% band there, refitted on the run's evaluations so far) · learning rate over
the whole schedule, the dot is now · tokens/s with its recent history and MFU, and the predicted final val loss
(quality.json) · progress with elapsed time and ETA · each GPU's memory, utilisation, temperature and power (or the
trainer's CPU, as a share of all cores, and RAM) · train.log's end.
"""


class DashboardScreen(AppScreen):
    BINDINGS = [
        Binding("q", "leave_running", "leave (run goes on)"),
        Binding("q", "app.leave", "quit"),
        Binding("s", "stop", "stop"),
        Binding("g", "sample", "sample"),
        Binding("l", "log", "log", key_display="l/⏎"),
        Binding("enter", "log", "", show=False),
        Binding("e", "smooth", "smooth"),
        Binding("escape", "back", "back", show=False),
    ]
    HELP = HELP

    def __init__(self, paths: RunPaths, context: AppContext, *, can_go_back: bool = False) -> None:
        super().__init__(id="dashboard")
        self.paths = paths
        self.context = context
        self.can_go_back = can_go_back
        self.monitor = RunMonitor(paths, clock=context.clock)
        self.sampler = context.device_sampler()
        self.predictor = RunPredictor()  # used by the polling thread only
        self.snapshot: RunSnapshot | None = None
        self.prediction: RunPrediction | None = None
        self.polls = 0               # snapshots shown so far (tests wait on it)
        self._chart_version = -1
        self._chart_drawn_at = 0.0
        self._lr_key: tuple[object, ...] | None = None
        self._state = ""             # the state the footer's keys were last chosen for
        self.error_file: str | None = None  # a failed run's file holding its error (gptwiz.tui.outcome)

    def compose(self) -> ComposeResult:
        yield StateBanner(id="banner")
        with Horizontal(id="charts"):
            yield LossChart(id="loss-chart")
            yield LrChart(id="lr-chart")
        with Horizontal(id="panels"):
            yield ProgressPanel(id="progress", classes="panel")
            yield ThroughputPanel(id="throughput", classes="panel")
            yield DevicePanel(id="device", classes="panel")
        yield LogTailView(id="log-tail", classes="panel")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#progress").border_title = "progress"
        self.query_one("#throughput").border_title = "throughput"
        self.query_one("#device").border_title = "device"
        self.query_one("#log-tail").border_title = "train.log"
        self._poll_loop()

    # -- polling (a thread) and drawing (the event loop) --

    @work(thread=True, exclusive=True, group="dashboard-poll")
    def _poll_loop(self) -> None:
        worker = get_current_worker()
        device_at = -1e9
        while not worker.is_cancelled:
            snap = self.monitor.poll()
            # Worked out here, off the event loop: a long run's predicted curve is tens of sums over its schedule.
            prediction = self.predictor.predict(snap.quality_record, snap.eval_iters, snap.eval_val_loss)
            failed = snap.state in ("failed", "diverged")
            if failed and self.error_file is None:
                found = error_file(self.paths)
                self.error_file = str(found) if found else ""
            elif not failed:
                self.error_file = None
            reading = None
            if time.monotonic() - device_at >= self.context.device_interval_s:
                reading = self.sampler.read(snap.pid, snap.state == "running")
                device_at = time.monotonic()
            try:
                self.app.call_from_thread(self.show_snapshot, snap, reading, prediction)
            except RuntimeError:  # the app is closing
                return
            if worker.cancelled_event.wait(self.context.poll_interval_s):
                return

    def show_snapshot(self, snap: RunSnapshot, reading: DeviceReading | None = None,
                      prediction: RunPrediction | None = None) -> None:
        try:
            self._show(snap, reading, prediction)
        except NoMatches:  # the screen is being torn down while a last snapshot arrives
            pass

    def _show(self, snap: RunSnapshot, reading: DeviceReading | None, prediction: RunPrediction | None) -> None:
        self.snapshot, self.prediction = snap, prediction
        if snap.state != self._state:  # s (stop) only while running, q's words with it
            self._state = snap.state
            self.refresh_bindings()
        self.query_one(StateBanner).show(snap, self.error_file or None)
        self.query_one(ProgressPanel).show(snap)
        self.query_one(ThroughputPanel).show(snap)
        self.query_one(ThroughputPanel).show_prediction(prediction)
        self.query_one(LogTailView).show(snap.log_tail)
        if reading is not None:
            self.query_one(DevicePanel).show(reading)
        now = time.monotonic()
        first = self._chart_version < 0
        if snap.version != self._chart_version and (first or snap.state != "running"
                                                    or now - self._chart_drawn_at >= self.context.chart_interval_s):
            self._chart_version, self._chart_drawn_at = snap.version, now
            self.query_one(LossChart).set_data(snap.train_iters, snap.train_loss, snap.eval_iters, snap.eval_val_loss,
                                               prediction)
            self._draw_lr(snap)

        self.polls += 1

    def _draw_lr(self, snap: RunSnapshot) -> None:
        """Only when the marker moves a column or the value shown changes: the curve itself is fixed."""
        chart = self.query_one(LrChart)
        now_point = (float(snap.iter), snap.lr) if snap.lr is not None else None
        column = int(snap.iter * max(1, chart.size.width) / snap.max_iters) if snap.max_iters else snap.iter
        key = (column, f"{snap.lr:.2e}" if snap.lr is not None else "", snap.schedule, chart.size.width)
        if key == self._lr_key:
            return
        self._lr_key = key
        chart.set_data(snap.schedule.curve() if snap.schedule else ([], []), now_point)

    # -- keys --

    def help_title(self) -> str:
        return f"gptwiz dashboard of run {inert(self.paths.name)}"

    def leaving_run(self) -> str | None:
        return self.paths.name

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        running = self.snapshot is not None and self.snapshot.state == "running"
        if action in ("stop", "leave_running"):
            return running  # a finished, stopped or failed run offers no stop, and leaving it leaves nothing running
        if action == "back":
            return self.can_go_back
        return True

    def action_leave_running(self) -> None:
        self.post_message(LeaveApp())

    def action_back(self) -> None:
        if self.can_go_back:
            self.app.pop_screen()

    def action_log(self) -> None:
        from gptwiz.tui.screens.log_view import LogViewScreen  # loaded on the first l

        self.app.push_screen(LogViewScreen(self.paths, self.context))

    def action_smooth(self) -> None:
        chart = self.query_one(LossChart)
        chart.set_smoothing(not chart.smoothing)
        self.notify("loss chart: train loss smoothed (EMA)" if chart.smoothing else "loss chart: raw train loss",
                    timeout=2)

    def action_stop(self) -> None:
        snap = self.snapshot
        if snap is None or snap.state != "running":
            state = snap.state if snap else "unknown"
            self.notify(f"run {inert(self.paths.name)} is not running ({state}); nothing to stop", severity="warning",
                        markup=False)
            return

        def answered(yes: bool | None) -> None:
            if not yes:
                return
            try:
                pid = request_stop(self.paths)
            except UsageError as exc:
                self.notify(inert(exc, multiline=True), severity="error", markup=False)
                return
            self.notify(f"asked run {inert(self.paths.name)} (pid {pid}) to stop; it writes a checkpoint first",
                        markup=False)

        self.app.push_screen(ConfirmScreen(
            f"Stop run {inert(self.paths.name)} at iteration {snap.iter}?\n\nIt finishes its step, writes a checkpoint "
            f"and ends as \"stopped\"; `gptwiz train --model_name {inert(self.paths.name)} --resume` continues it.",
            yes="Stop it", no="Keep training"), answered)

    def action_sample(self) -> None:
        if not (self.paths.ckpt_last.exists() or self.paths.ckpt_best.exists()):
            self.notify("no checkpoint yet: the first one is written at the first evaluation", severity="warning")
            return
        from gptwiz.tui.screens.sample import SampleScreen  # loaded on the first g

        choice = choose_checkpoint(self.paths)  # (torch-free: a few kB of each checkpoint, the end of metrics.jsonl)
        title = f"sampling from {choice.title()}" + (f"\n{choice.passed_over}" if choice.passed_over else "")
        self.app.push_screen(SampleScreen(title, self.paths, choice.which, self.context.sample_text))
