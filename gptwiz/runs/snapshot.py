"""What the dashboard draws of a run, as plain data: `RunSnapshot`, and the learning-rate curve from its config.

No Textual here, so the aggregation is tested without an app and the widgets only draw the snapshot they are handed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from gptwiz.common.schedule import lr_at
from gptwiz.runs.status import ITER_MAX

LR_CURVE_POINTS = 200


@dataclass(frozen=True)
class Schedule:
    """The learning-rate schedule of the run, from its config.json."""
    learning_rate: float
    min_lr: float
    warmup_iters: int
    max_iters: int

    def lr(self, it: int) -> float:
        return lr_at(it, learning_rate=self.learning_rate, min_lr=self.min_lr,
                     warmup_iters=self.warmup_iters, decay_iters=self.max_iters)

    def curve(self, points: int = LR_CURVE_POINTS) -> tuple[list[float], list[float]]:
        step = max(1, self.max_iters // points)
        xs = list(range(0, self.max_iters + 1, step))
        if xs[-1] != self.max_iters:
            xs.append(self.max_iters)
        return [float(x) for x in xs], [self.lr(x) for x in xs]


def schedule_from_config(config: dict[str, Any] | None) -> Schedule | None:
    """The schedule to draw; None when the config (damaged, or edited by hand) holds none that can be drawn."""
    try:
        train = config["train"]  # type: ignore[index]
        schedule = Schedule(float(train["learning_rate"]), float(train.get("min_lr", 0.0)),
                            int(config.get("warmup_iters", train.get("warmup_iters", 0))),  # type: ignore[union-attr]
                            int(train["max_iters"]))
    except (TypeError, KeyError, ValueError, OverflowError, AttributeError):
        return None
    rates_ok = all(math.isfinite(r) and 0 <= r < 1e30 for r in (schedule.learning_rate, schedule.min_lr))
    iters_ok = 0 <= schedule.warmup_iters <= ITER_MAX and 0 < schedule.max_iters <= ITER_MAX
    return schedule if rates_ok and iters_ok else None


@dataclass
class RunSnapshot:
    """Everything the dashboard draws, as plain data; `version` changes whenever the history changed."""
    name: str
    state: str = "unknown"
    error: str | None = None
    pid: int = 0
    preset: str = ""
    device: str = ""
    params: int = 0
    iter: int = 0
    max_iters: int = 0
    train_iters: list[float] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    eval_iters: list[float] = field(default_factory=list)
    eval_train_loss: list[float] = field(default_factory=list)
    eval_val_loss: list[float] = field(default_factory=list)
    best_val_loss: float | None = None
    lr: float | None = None
    schedule: Schedule | None = None
    tokens_per_sec: float | None = None
    tokens_per_sec_history: list[float] = field(default_factory=list)
    mfu: float | None = None
    peak_mem_bytes: int | None = None
    elapsed_s: float | None = None
    eta_s: float | None = None
    activity: str | None = None  # "evaluating (3 of 40 batches)", "checkpointing": what a running trainer is busy with
    held_out: str | None = None  # the latest `gptwiz eval` result, as one line (eval.jsonl)
    # quality.json as read (an object, not yet checked: its reader above runs/ makes the prediction of it); None
    # when the run has none, or it cannot be read. Replaced whole when the file changes, never mutated.
    quality_record: dict[str, Any] | None = None
    log_tail: list[str] = field(default_factory=list)
    version: int = 0
    exists: bool = True

    @property
    def last_loss(self) -> float | None:
        return self.train_loss[-1] if self.train_loss else None

    @property
    def progress(self) -> float:
        return min(1.0, self.iter / self.max_iters) if self.max_iters else 0.0

    @property
    def live(self) -> bool:
        return self.state == "running"


# The snapshot's lists, handed to each caller as copies (the poller goes on appending to its own).
HISTORY_LISTS = ("train_iters", "train_loss", "eval_iters", "eval_train_loss", "eval_val_loss",
                 "tokens_per_sec_history", "log_tail")


def parse_iso(text: Any) -> float | None:
    try:
        return datetime.strptime(str(text), "%Y-%m-%dT%H:%M:%S%z").timestamp()
    except ValueError:
        return None


def downsample(xs: list[float], ys: list[float], max_points: int) -> tuple[list[float], list[float]]:
    """At most `max_points` points, keeping the last one: a chart a terminal wide needs no more."""
    n = len(xs)
    if n <= max_points or max_points < 2:
        return xs, ys
    step = n / (max_points - 1)
    idx = sorted({min(n - 1, int(i * step)) for i in range(max_points - 1)} | {n - 1})
    return [xs[i] for i in idx], [ys[i] for i in idx]
