"""A run's history as the dashboard keeps it: metrics.jsonl's records folded into a `RunSnapshot` as they arrive,
with the step and evaluation times its ETA is measured from."""

from __future__ import annotations

import math
from collections import deque
from statistics import median
from typing import Any

from gptwiz.runs.eta import EvalPlan
from gptwiz.runs.snapshot import RunSnapshot

SPARK_POINTS = 120


def number(value: Any) -> float:
    """A record's number; NaN (a gap in a chart) when a damaged record holds something else there, or a number
    no chart can draw (plotext overflows near 1e308)."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and abs(value) < 1e30
    return float(value) if ok else float("nan")


class RunHistory:
    """Applies records to `snap`; `eval_plan` (from the run's config) says how many batches an evaluation has
    where its record does not."""

    def __init__(self, snap: RunSnapshot):
        self.snap = snap
        self.eval_plan: EvalPlan | None = None
        self._dts: deque[float] = deque(maxlen=20)
        self._eval_batch_s: deque[float] = deque(maxlen=5)  # seconds an evaluation batch took, in this run's records
        self._tps: deque[float] = deque(maxlen=SPARK_POINTS)
        self._last_record_time: float | None = None

    @property
    def step_s(self) -> float | None:
        """The median of the latest steps' seconds; None before the first."""
        return median(self._dts) if self._dts else None

    @property
    def eval_batch_s(self) -> float | None:
        """The median seconds of an evaluation batch, in the latest evaluations; None before one is measured."""
        return median(self._eval_batch_s) if self._eval_batch_s else None

    @property
    def tokens_per_sec(self) -> list[float]:
        return list(self._tps)

    def reset(self) -> None:
        """Forget the records: the file was started over (a resume trimmed it)."""
        s = self.snap
        for name in ("train_iters", "train_loss", "eval_iters", "eval_train_loss", "eval_val_loss"):
            getattr(s, name).clear()
        self._dts.clear()
        self._tps.clear()
        self._eval_batch_s.clear()
        self._last_record_time = None
        s.iter = 0

    def apply(self, rec: dict[str, Any]) -> None:
        it = rec.get("iter")
        if isinstance(it, bool) or not isinstance(it, int) or not 0 <= it < 10**12:  # the trainer writes ints
            return
        kind = rec.get("type")
        if kind in ("train", "probe") and math.isfinite(number(rec.get("loss"))):
            self._apply_step(it, rec)
        elif kind == "eval":
            s = self.snap
            s.eval_iters.append(float(it))
            s.eval_train_loss.append(number(rec.get("train_loss")))
            s.eval_val_loss.append(number(rec.get("val_loss")))
            if isinstance(rec.get("best_val_loss"), (int, float)):
                s.best_val_loss = float(rec["best_val_loss"])
            self._note_eval_time(rec)
        t = number(rec.get("time"))
        self._last_record_time = t if math.isfinite(t) else None

    def _apply_step(self, it: int, rec: dict[str, Any]) -> None:
        s = self.snap
        s.train_iters.append(float(it))
        s.train_loss.append(float(rec["loss"]))
        s.iter = max(s.iter, int(it))
        if isinstance(rec.get("lr"), (int, float)):
            s.lr = float(rec["lr"])
        if isinstance(rec.get("tokens_per_sec"), (int, float)):
            s.tokens_per_sec = float(rec["tokens_per_sec"])
            self._tps.append(s.tokens_per_sec)
        if isinstance(rec.get("mfu"), (int, float)):
            s.mfu = float(rec["mfu"])
        if isinstance(rec.get("dt_s"), (int, float)):
            self._dts.append(float(rec["dt_s"]))
        if isinstance(rec.get("peak_mem_bytes"), (int, float)):
            s.peak_mem_bytes = int(rec["peak_mem_bytes"])

    def _note_eval_time(self, rec: dict[str, Any]) -> None:
        """An evaluation batch's seconds: its record's eval_s, or (a trainer that writes none) the time since the
        record before it, over its batches (a full evaluation's where it does not say)."""
        plan = self.eval_plan
        batches = number(rec.get("batches"))
        if not batches > 0:
            batches = 2.0 * plan.eval_iters if plan is not None else float("nan")
        seconds = number(rec.get("eval_s"))
        if not seconds >= 0 and self._last_record_time is not None:
            seconds = number(rec.get("time")) - self._last_record_time
        if seconds >= 0 and batches > 0:
            self._eval_batch_s.append(seconds / batches)
