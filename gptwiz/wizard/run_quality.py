"""The dashboard's prediction of a run's final validation loss while it trains: quality.json (what was predicted
before the run, and after its probe) refitted on the run's own evaluations so far
(gptwiz.planning.quality.refit_from_run), with the predicted curve to draw and the words to show.

Pure: the run folder's reader (gptwiz.runs.monitor) hands over the record as read; a record that is not what the
trainer writes (damaged, edited, another version) is no prediction, never an error.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

from gptwiz.common.records import Bound, RecordError, read_record, rule
from gptwiz.data.facts import DataFacts
from gptwiz.planning.quality import Quality, RunShape, loss_at, refit_from_run
from gptwiz.runs.status import ITER_MAX

CURVE_POINTS = 40  # a terminal-wide chart needs no more to draw a smooth curve
_BIG = 10**15
# What the quality model computes with must be in its range: a zero context or vocabulary would divide by zero.
_RULES = {
    "shape.params": Bound(0, _BIG), "shape.vocab_size": Bound(2, 10**7), "shape.block_size": Bound(1, 10**7),
    "shape.tokens_per_iter": Bound(1, _BIG), "shape.max_iters": Bound(1, ITER_MAX),
    "shape.learning_rate": Bound(0, 10, whole=False), "shape.min_lr": Bound(0, 10, whole=False),
    "shape.warmup_iters": Bound(0, ITER_MAX), "data.bigram": Bound(0, 100, whole=False),
    "data.unigram": Bound(0, 100, whole=False),
    "data.train_tokens": Bound(1, _BIG), "data.bytes_per_token": Bound(0, 1000, whole=False, low_open=True),
}


@dataclass(frozen=True)
class Reached:
    """What the finished run reached: its final weights' validation loss."""
    iter: int = field(metadata=rule(Bound(0, ITER_MAX)))
    val_loss: float
    bits_per_byte: float | None = None


@dataclass(frozen=True)
class QualityRecord:
    """quality.json as gptwiz.training.quality_record writes it."""
    version: Literal[1]
    shape: RunShape
    data: DataFacts
    before: Quality
    after_probe: Quality | None = None
    reached: Reached | None = None
    model: str = ""  # what the quality model was fitted on, when the record was written


def read_quality_record(data: dict[str, Any] | None) -> QualityRecord | None:
    """The record, checked; None when there is none or it is not one (the dashboard then draws no band)."""
    if data is None:
        return None
    try:
        return read_record(QualityRecord, data, "quality.json", open_keys=(QualityRecord,), rules=_RULES)
    except RecordError:
        return None


@dataclass(frozen=True)
class RunPrediction:
    """The run's final validation loss as predicted now, and the curve towards it."""
    quality: Quality             # the prior refitted on the run's evaluations so far (the prior itself before any)
    prior: Quality               # before the run: after its probe where there was one
    curve_x: list[float]         # iterations, 0 to max_iters
    curve_y: list[float]         # the model's curve there, shifted by the refit's miss: it ends at quality.val_loss
    max_iters: int
    reached: Reached | None      # once the run finished

    @property
    def band(self) -> tuple[float, float, float]:
        """(iteration, low, high): the 80% band of the final loss, at the run's end."""
        return float(self.max_iters), self.quality.low, self.quality.high


class RunPredictor:
    """Keeps the checked record and the model's curve between polls: the curve (the costly part: tens of loss_at
    calls) is worked out again only when quality.json changes, the refit only when an evaluation is added."""

    def __init__(self, points: int = CURVE_POINTS) -> None:
        self.points = max(2, points)
        self._record_data: dict[str, Any] | None = None
        self._record: QualityRecord | None = None
        self._base: tuple[list[float], list[float]] = ([], [])
        self._evals: tuple[tuple[int, float], ...] | None = None
        self._last: RunPrediction | None = None

    def predict(self, record: dict[str, Any] | None, eval_iters: list[float],
                eval_losses: list[float]) -> RunPrediction | None:
        """The prediction from the record (as the snapshot carries it) and the run's evaluations so far."""
        if record is not self._record_data:
            self._record_data, self._evals, self._last = record, None, None
            self._record, self._base = self._load(record)
        if self._record is None:
            return None
        evals = tuple((int(it), loss) for it, loss in zip(eval_iters, eval_losses)
                      if math.isfinite(it) and 0 <= it <= ITER_MAX and math.isfinite(loss))
        if evals != self._evals:
            self._evals, self._last = evals, self._refit(self._record, list(evals))
        return self._last

    def _load(self, data: dict[str, Any] | None) -> tuple[QualityRecord | None, tuple[list[float], list[float]]]:
        rec = read_quality_record(data)
        if rec is None:
            return None, ([], [])
        m = rec.shape.max_iters
        xs = sorted({round(m * i / self.points) for i in range(self.points + 1)})
        try:
            ys = [loss_at(rec.shape, rec.data, x) for x in xs]
        except (ArithmeticError, ValueError):  # values in range, yet out of the model's: no band
            return None, ([], [])
        if not all(math.isfinite(y) for y in ys):
            return None, ([], [])
        return rec, ([float(x) for x in xs], ys)

    def _refit(self, rec: QualityRecord, evals: list[tuple[int, float]]) -> RunPrediction | None:
        prior = rec.after_probe or rec.before
        try:
            now = refit_from_run(prior, rec.shape, rec.data, evals)
        except (ArithmeticError, ValueError):
            return None
        xs, ys = self._base
        shift = now.val_loss - ys[-1]
        return RunPrediction(quality=now, prior=prior, curve_x=xs, curve_y=[y + shift for y in ys],
                             max_iters=rec.shape.max_iters, reached=rec.reached)


BASIS = {"run": ("from the run's curve", "run's curve"), "probe": ("from the probe", "probe"),
         "fit": ("from the prior", "prior")}


def prediction_lines(pred: RunPrediction, width: int) -> list[str]:
    """The prediction in words, on one line where `width` allows, else on two, fewer words where narrow:
    'predicted final val loss 4.31 (4.22-4.40) · 1.66 bits/byte, from the run's curve'; once the run finished,
    'reached 4.28 (predicted 4.31)' and its bits per byte."""
    if pred.reached is not None:
        r, p = pred.reached, pred.prior
        first = [f"reached {r.val_loss:.2f} (predicted {p.val_loss:.2f})", f"reached {r.val_loss:.2f} (pred. "
                 f"{p.val_loss:.2f})", f"reached {r.val_loss:.2f}"]
        bits = f"{r.bits_per_byte:.2f} bits/byte" if r.bits_per_byte is not None else ""
        second = [", ".join(x for x in (bits, f"band {p.low:.2f}-{p.high:.2f}") if x), bits]
    else:
        q = pred.quality
        loss, band = f"{q.val_loss:.2f}", f"({q.low:.2f}-{q.high:.2f})"
        long, short = BASIS.get(q.basis, (q.basis, q.basis))
        bits = f"{q.bits_per_byte:.2f} bits/byte, " if q.bits_per_byte is not None else ""
        bpb = f"{q.bits_per_byte:.2f} bpb, " if q.bits_per_byte is not None else ""
        whole = f"predicted final val loss {loss} {band} · {bits}{long}"
        if len(whole) <= width:
            return [whole]
        first = [f"predicted final val loss {loss} {band}", f"predicted final {loss} {band}",
                 f"final val {loss} {band}", f"final {loss} {band}",
                 f"final {q.val_loss:.1f} ({q.low:.1f}-{q.high:.1f})", f"final {loss}"]
        second = [bits + long, bits + short, bpb + short, bits.rstrip(", ")]
    return [_fitting(first, width), _fitting(second, width)]


def _fitting(candidates: list[str], width: int) -> str:
    """The first candidate that fits `width`, else the last (cut by the panel)."""
    return next((c for c in candidates if len(c) <= width), candidates[-1])


__all__ = ["QualityRecord", "Reached", "RunPrediction", "RunPredictor", "read_quality_record", "prediction_lines",
           "CURVE_POINTS"]
