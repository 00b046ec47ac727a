"""Keeping score: each finished run's quality.json against what it reached, over the runs in a folder
(`gptwiz runs --calibration`), and the local correction the quality model takes from them.

The correction is the mean miss (reached minus predicted, before any probe), shrunk towards zero by
n / (n + PRIOR_RUNS) so that one surprising run moves it little, and bounded to MAX_SHIFT nats: a machine's
runs can tell the model that it is biased on the data they train on, not replace it.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from gptwiz.runs.jsonfile import read_json
from gptwiz.runs.paths import RunPaths, run_folders

PRIOR_RUNS = 4
MAX_SHIFT = 0.3


@dataclass(frozen=True)
class Scored:
    """One finished run: the prediction's centre and 80% band before the run and after its probe, and the final
    validation loss it reached."""
    name: str
    iters: int
    predicted: float
    low: float
    high: float
    reached: float
    after_probe: float | None
    after_low: float | None
    after_high: float | None

    @property
    def error(self) -> float:
        """Predicted minus reached, before any probe."""
        return self.predicted - self.reached

    @property
    def error_after(self) -> float | None:
        return self.after_probe - self.reached if self.after_probe is not None else None

    @property
    def inside(self) -> bool:
        return self.low <= self.reached <= self.high

    @property
    def inside_after(self) -> bool | None:
        if self.after_low is None or self.after_high is None:
            return None
        return self.after_low <= self.reached <= self.after_high

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "error": self.error, "error_after": self.error_after, "inside": self.inside,
                "inside_after": self.inside_after}


@dataclass(frozen=True)
class Calibration:
    runs: list[Scored]

    @property
    def median_abs_error(self) -> float | None:
        return statistics.median(abs(r.error) for r in self.runs) if self.runs else None

    @property
    def median_abs_error_after(self) -> float | None:
        after = [abs(e) for r in self.runs if (e := r.error_after) is not None]
        return statistics.median(after) if after else None

    @property
    def shift(self) -> float:
        """What the local correction adds to a prediction: the mean miss, shrunk and bounded."""
        if not self.runs:
            return 0.0
        miss = statistics.fmean(r.reached - r.predicted for r in self.runs)
        shrunk = miss * len(self.runs) / (len(self.runs) + PRIOR_RUNS)
        return max(-MAX_SHIFT, min(MAX_SHIFT, shrunk))

    def to_json(self) -> dict[str, Any]:
        return {"runs": [r.to_json() for r in self.runs], "median_abs_error": self.median_abs_error,
                "median_abs_error_after_probe": self.median_abs_error_after,
                "inside_band": sum(r.inside for r in self.runs),
                "inside_band_after_probe": sum(1 for r in self.runs if r.inside_after),
                "local_shift": self.shift, "max_shift": MAX_SHIFT, "prior_runs": PRIOR_RUNS}


def scored(paths: RunPaths) -> Scored | None:
    """The run's record as scored, None where it has none, is not finished, or is malformed."""
    rec = read_json(paths.quality)
    if rec is None:
        return None
    try:
        before, reached, after = rec["before"], rec["reached"], rec.get("after_probe")
        if not reached:
            return None
        values = [float(before["val_loss"]), float(before["low"]), float(before["high"]), float(reached["val_loss"])]
        probe = [float(after[k]) for k in ("val_loss", "low", "high")] if isinstance(after, dict) else [None] * 3
        if not all(math.isfinite(v) for v in values + [p for p in probe if p is not None]):
            return None
        return Scored(paths.name, int(reached["iter"]), *values, *probe)
    except (KeyError, TypeError, ValueError):  # written by someone else: not a record to learn from
        return None


def calibration(runs_dir: Path | str) -> Calibration:
    """Every finished run's score in the folder, by name."""
    found = [s for p in run_folders(runs_dir) if (s := scored(p)) is not None]
    return Calibration(found)


__all__ = ["Scored", "Calibration", "scored", "calibration", "PRIOR_RUNS", "MAX_SHIFT"]
