"""Starting a detached trainer: launch it, wait until it writes its status (or fails), then its dashboard."""

from __future__ import annotations

import threading
from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import LoadingIndicator, Static
from textual.worker import get_current_worker

from gptwiz.common.inert import inert
from gptwiz.common.rich_text import outside
from gptwiz.runs.launch import StartOutcome, console_tail, launch_detached, wait_for_start
from gptwiz.runs.paths import RunPaths
from gptwiz.tui.context import AppContext
from gptwiz.tui.messages import RunStarted

START_TIMEOUT_S = 600.0  # a first run tokenizes its --input_file before it writes its status


class StartingScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape", "leave", "close"), Binding("q", "app.leave", "quit gptwiz")]

    def __init__(self, train_args: list[str], name: str, context: AppContext) -> None:
        super().__init__(id="starting")
        self.train_args, self.run_name, self.context = train_args, name, context
        self.paths: RunPaths | None = None
        self.outcome: StartOutcome | None = None

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog wide"):
            yield Static(Text(f"Starting run {inert(self.run_name)} in the background", style="bold"),
                         classes="dialog-title")
            yield LoadingIndicator(id="starting-spinner")
            yield Static(Text("launching `gptwiz train` in its own session ..."), id="starting-message")
            yield Static(Text("escape: stop waiting (the training goes on; watch it from the welcome screen) · "
                              "q: quit gptwiz (the training goes on)", style="dim"), id="starting-hint")

    def on_mount(self) -> None:
        self._launch()

    def leaving_run(self) -> str | None:
        """The farewell line (gptwiz.tui.app) speaks of the run being started."""
        return self.run_name

    @work(thread=True, exclusive=True, group="starting")
    def _launch(self) -> None:
        worker = get_current_worker()
        context = self.context
        try:
            run = launch_detached(self.train_args, runs_dir=context.runs_dir, name=self.run_name, cwd=context.cwd)
        except Exception as exc:  # could not even start the process
            self._from_thread(self._failed, f"could not start the trainer: {exc}")
            return
        self.paths = run.paths
        # Reap the child when it ends, without holding the app's exit: training outlives the app.
        threading.Thread(target=run.process.wait, daemon=True, name=f"reap-{run.pid}").start()  # type: ignore[union-attr]
        self._from_thread(self._message, f"trainer started (pid {run.pid}); waiting for it to load the model and data ...")
        outcome = wait_for_start(run, timeout=START_TIMEOUT_S, should_cancel=lambda: worker.is_cancelled,
                                 poll_s=0.25)
        self.outcome = outcome
        if outcome.started:
            self._from_thread(self._started)
        elif outcome.exit_code is not None:
            self._from_thread(self._failed, f"the trainer exited (status {outcome.exit_code}): {outcome.message}")
        elif not worker.is_cancelled:
            self._from_thread(self._failed, outcome.message + (f"; last output: {console_tail(run.paths)}"
                                                               if console_tail(run.paths) else ""))

    def _from_thread(self, fn: Any, *args: Any) -> None:
        try:
            self.app.call_from_thread(fn, *args)
        except RuntimeError:
            pass

    def _message(self, text: str) -> None:
        self.query_one("#starting-message", Static).update(Text(text))

    def _started(self) -> None:
        assert self.paths is not None
        self.post_message(RunStarted(self.paths))

    def _failed(self, message: str) -> None:
        self.query_one("#starting-spinner").display = False
        # The trainer's own words (its exit message, its console's last lines) are outside text.
        self.query_one("#starting-message", Static).update(outside(message, "red", multiline=True))
        self.query_one("#starting-hint", Static).update(Text("escape: back · q: quit gptwiz", style="dim"))

    def action_leave(self) -> None:
        self.dismiss(None)
