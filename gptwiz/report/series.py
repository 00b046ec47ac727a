"""A run's history as plain series, read from its folder (config.json, status.json, metrics.jsonl, probe.json).

Pure data, as the dashboard's monitor is: the figures, the page, the terminal chart and the TensorBoard writer
draw what `load_run` returns. A folder a trainer is still writing is read as it stands: a line cut mid-write at
the end of metrics.jsonl is no record yet (runs.folder.read_metrics), and a damaged record is skipped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gptwiz.runs.jsonfile import read_json
from gptwiz.runs.metrics import read_metrics
from gptwiz.runs.paths import RunPaths
from gptwiz.runs.snapshot import Schedule, schedule_from_config
from gptwiz.runs.status import effective_state

# Keys of a train record drawn as series, beside the loss.
_STEP_KEYS = ("lr", "tokens_per_sec", "mfu", "peak_mem_bytes")


def value(x: Any) -> float | None:
    """A record's number, None for anything else (a damaged record, a NaN, a value no axis can draw)."""
    ok = isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) and abs(x) < 1e30
    return float(x) if ok else None


@dataclass
class Curve:
    """Points of one quantity against iterations; `xs` and `ys` have the same length."""
    xs: list[float] = field(default_factory=list)
    ys: list[float] = field(default_factory=list)

    def add(self, x: float, y: float | None) -> None:
        if y is not None:
            self.xs.append(x)
            self.ys.append(y)

    def scaled_x(self, factor: float) -> list[float]:
        return [x * factor for x in self.xs]

    @property
    def last(self) -> float | None:
        return self.ys[-1] if self.ys else None

    @property
    def lowest(self) -> float | None:
        return min(self.ys) if self.ys else None

    def __len__(self) -> int:
        return len(self.ys)


@dataclass
class RunSeries:
    """Everything a report draws of one run."""
    name: str
    folder: Path
    config: dict[str, Any]
    state: str
    train_loss: Curve = field(default_factory=Curve)
    lr: Curve = field(default_factory=Curve)
    tokens_per_sec: Curve = field(default_factory=Curve)
    mfu: Curve = field(default_factory=Curve)
    peak_mem_bytes: Curve = field(default_factory=Curve)
    eval_train_loss: Curve = field(default_factory=Curve)
    val_loss: Curve = field(default_factory=Curve)
    probe_loss: Curve = field(default_factory=Curve)  # probe.json's losses, iterations 1..N of the probe
    probe: dict[str, Any] | None = None
    is_probe: bool = False  # the folder holds only a probe's records: they are its train loss
    schedule: Schedule | None = None

    @property
    def tokens_per_iter(self) -> float:
        """Tokens an iteration trains on (all processes), from config.json; 0 when the config does not say."""
        return value(self.config.get("tokens_per_iter")) or 0.0

    @property
    def iter(self) -> int:
        its = self.train_loss.xs + self.val_loss.xs
        return int(max(its)) if its else 0

    @property
    def max_iters(self) -> int | None:
        return self.schedule.max_iters if self.schedule else None

    @property
    def best_val_loss(self) -> float | None:
        return self.val_loss.lowest

    @property
    def has_history(self) -> bool:
        return bool(len(self.train_loss) or len(self.val_loss) or len(self.probe_loss))


def load_run(paths: RunPaths) -> RunSeries:
    """The run's series as its folder holds them now."""
    config = read_json(paths.config) or {}
    run = RunSeries(name=paths.name, folder=paths.root, config=config,
                    state=effective_state(read_json(paths.status), paths),
                    schedule=schedule_from_config(config))
    probe_records: list[dict[str, Any]] = []
    for rec in read_metrics(paths.metrics):
        it = rec.get("iter")
        if isinstance(it, bool) or not isinstance(it, int) or not 0 <= it < 10**12:
            continue
        kind = rec.get("type")
        if kind == "train":
            _add_step(run, float(it), rec)
        elif kind == "eval":
            run.eval_train_loss.add(float(it), value(rec.get("train_loss")))
            run.val_loss.add(float(it), value(rec.get("val_loss")))
        elif kind == "probe":
            probe_records.append(rec)
    if not len(run.train_loss) and probe_records:  # a probe's own folder: its records are the run
        run.is_probe = True
        for rec in probe_records:
            _add_step(run, float(rec["iter"]), rec)
    run.probe = read_json(paths.probe)
    losses = run.probe.get("losses") if run.probe else None
    if isinstance(losses, list):
        for i, loss in enumerate(losses, start=1):
            run.probe_loss.add(float(i), value(loss))
    return run


def _add_step(run: RunSeries, it: float, rec: dict[str, Any]) -> None:
    loss = value(rec.get("loss"))
    if loss is None:
        return
    run.train_loss.add(it, loss)
    for key in _STEP_KEYS:
        getattr(run, key).add(it, value(rec.get(key)))


def ema(values: list[float], smoothing: float) -> list[float]:
    """An exponential moving average with TensorBoard's meaning of `smoothing`: the weight of the past
    (0 leaves the values as they are), debiased as TensorBoard does, so that the first points are not pulled
    towards zero."""
    out: list[float] = []
    acc, weight = 0.0, 0.0
    for v in values:
        acc = smoothing * acc + (1 - smoothing) * v
        weight = smoothing * weight + (1 - smoothing)
        out.append(acc / weight if weight else v)
    return out
