"""The trainer's Reporter that also logs every record to TensorBoard and/or W&B, around the console's reporter.

`gptwiz train --tensorboard [DIR] --wandb PROJECT` wraps its console reporter in a TrackingReporter. The trackers
open at the run's start (they need its resolved config) on rank 0 only, as every Reporter call is. A tracker that
fails (a full disk, a W&B error) is dropped with one line on the console: the run goes on, and metrics.jsonl
still holds everything (`gptwiz report --tensorboard NAME` writes the event files from it afterwards).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gptwiz.common.files import check_own_folder
from gptwiz.trackers import tensorboard, wandb
from gptwiz.training.options import RunConfig, TrainResult
from gptwiz.training.reporting import Reporter
from gptwiz.training.run_lifecycle import run_logger

TB_FOLDER = "tb"  # runs/NAME/tb/: the default home of a run's event files


@dataclass(frozen=True)
class Trackers:
    """Where to log: `tensorboard` True for runs/NAME/tb/, a path for that folder, None for no TensorBoard;
    `wandb` a W&B project name or None."""
    tensorboard: Path | bool | None = None
    wandb: str | None = None

    @property
    def any(self) -> bool:
        return bool(self.tensorboard) or bool(self.wandb)

    def check(self) -> None:
        """Refuse, before anything starts, a tracker whose package is missing (UsageError: one line, exit 2)."""
        if self.tensorboard:
            tensorboard.check_available()
        if self.wandb:
            wandb.check_available()

    def tensorboard_dir(self, run_dir: Path) -> Path | None:
        if not self.tensorboard:
            return None
        return run_dir / TB_FOLDER if self.tensorboard is True else Path(self.tensorboard)


class TrackingReporter(Reporter):
    """Forwards every call to `inner` (the console) and logs the records to the trackers."""

    def __init__(self, inner: Reporter, trackers: Trackers, runs_dir: Path | str):
        self.inner = inner
        self.trackers = trackers
        self.runs_dir = Path(runs_dir)
        self.sinks: list[Any] = []
        self._pending: tuple[RunConfig, int] | None = None
        self._log: logging.Logger | None = None  # the run's train.log, once the trackers open

    def start(self, cfg: RunConfig, start_iter: int) -> None:
        self.inner.start(cfg, start_iter)
        # Opened with the first record, not here: a run that fails before it leaves its folder as it found it.
        self._pending = (cfg, start_iter)

    def _open_all(self) -> None:
        if self._pending is None:
            return
        cfg, start_iter = self._pending
        self._pending = None
        run_dir = self.runs_dir / cfg.name
        self._log = run_logger(cfg.name)
        tb_dir = self.trackers.tensorboard_dir(run_dir)
        if tb_dir is not None:
            purge_step = start_iter + 1 if start_iter else None
            own = tb_dir == run_dir / TB_FOLDER  # the run's own tb/: a link there was planted, not chosen

            def open_tensorboard() -> tensorboard.TensorBoardSink:
                if own:
                    check_own_folder(tb_dir, "the event folder")
                return tensorboard.TensorBoardSink(tb_dir, cfg.to_json(), purge_step=purge_step)

            self._open("TensorBoard", open_tensorboard)
            if self.sinks:
                self.inner.log(f"logging to TensorBoard in {tb_dir} (tensorboard --logdir {tb_dir})")
        if self.trackers.wandb:
            project = self.trackers.wandb
            self._open("W&B", lambda: wandb.WandbSink(project, cfg.name, cfg.to_json(), run_dir))

    def _warn(self, message: str) -> None:
        """A tracker's failure on the console and in train.log: under --quiet the console may be a pipe nobody
        keeps, and the run's log is where a user looks later for why its event files stop."""
        self.inner.log(message)
        if self._log is not None:
            self._log.info(message)

    def _open(self, what: str, make: Any) -> None:
        try:
            self.sinks.append(make())
        except Exception as exc:  # the run trains all the same; metrics.jsonl keeps the records
            self._warn(f"warning: not logging to {what}: {_one_line(exc)}")

    def _each(self, call: str, *args: Any) -> None:
        for sink in list(self.sinks):
            try:
                getattr(sink, call)(*args)
            except Exception as exc:
                self.sinks.remove(sink)
                self._warn(f"warning: stopped logging to {type(sink).__name__}: {_one_line(exc)}")

    def step(self, record: dict[str, Any]) -> None:
        self._open_all()
        self.inner.step(record)
        self._each("add", record)

    def eval(self, record: dict[str, Any]) -> None:
        self._open_all()
        self.inner.eval(record)
        self._each("add", record)
        self._each("flush")  # at each evaluation, so a viewer sees the run up to its latest checkpoint

    def log(self, message: str) -> None:
        self.inner.log(message)

    def end(self, result: TrainResult) -> None:
        self._each("close", result.exit_code)
        self.sinks.clear()
        self._pending = None
        self.inner.end(result)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())[:200]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
