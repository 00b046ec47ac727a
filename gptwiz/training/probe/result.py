"""A probe's result: what was measured, the verdict on it, and its JSON form (`gptwiz probe --json`, probe.json)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from gptwiz.planning.knobs import Advice
from gptwiz.planning.verdict import Judgement
from gptwiz.training.probe.options import Attempt


@dataclass
class ProbeResult:
    verdict: str                       # "pass", "warn", "fail", or "cancelled" (stopped early: no verdict, no advice)
    advice: list[Advice]               # JSON: "advice" as printed, "advice_changes" the options each changes
    reasons: list[str]
    iters: int                         # iterations the final attempt completed
    iters_requested: int
    losses: list[float]
    loss_first: float | None
    loss_last: float | None
    loss_slope: float | None
    relative_drop: float | None
    loss_noise: float | None
    warmup_iters: int | None
    tokens_per_sec: float | None
    sec_per_iter: float | None
    warmup_s: float | None
    startup_s: float | None
    projected_full_run_s: float | None
    full_run_iters: int
    peak_memory_bytes: int | None
    memory_kind: str                   # "cuda" or "cpu_rss"
    device_memory_total_bytes: int | None
    estimate_bytes: int | None
    batch_size: int
    grad_accum: int
    block_size: int
    learning_rate: float
    preset: str
    device: str | None
    dtype: str | None
    compile: bool | None
    cuda: dict[str, int] | None        # max_memory_allocated, max_memory_reserved, nvml_used_peak (bytes)
    attempts: list[Attempt]
    run_dir: str | None
    error: str | None = None
    loss_verdict: str | None = None    # the loss curve's: "falls", "flat", "rising", "erratic", "diverged"
    loss_unjudged_reason: str | None = None  # why loss_verdict is None (cancelled, still in warm-up, ...)
    input_file: str | None = None      # the data probed, as given
    dataset_dir: str | None = None
    quality_before: dict[str, Any] | None = None  # the run's predicted final val loss before the probe
    quality: dict[str, Any] | None = None         # refitted on the probe's curve (gptwiz.planning.quality)
    budget_s: float | None = None      # the time the full run may take (--hours, or the wizard's use case)
    budget_label: str | None = None    # where that budget comes from, as the reasons say it
    budget_options: list[dict[str, Any]] = field(default_factory=list)  # runs that keep it (time_budget.BudgetOption)

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        for key, value in out.items():  # NaN is not JSON
            if isinstance(value, float) and not math.isfinite(value):
                out[key] = None
        out["advice"] = [str(a) for a in self.advice]
        out["advice_changes"] = [a.to_json() for a in self.advice]
        return out


def judged_result(judgement: Judgement, batch: int, accum: int, attempts: list[Attempt],
                  base: dict[str, Any], **measured: Any) -> ProbeResult:
    """A result with `judgement`'s verdict: nothing measured but what `base` (the probe's settled settings) and
    `measured` (the final attempt's figures) give."""
    fields_ = dict(verdict=judgement.verdict, advice=judgement.advice, reasons=judgement.reasons,
                   loss_verdict=judgement.loss, loss_unjudged_reason=judgement.loss_unjudged,
                   iters=0, losses=[], loss_first=None,
                   loss_last=None, loss_slope=None, relative_drop=None, loss_noise=None, warmup_iters=None,
                   tokens_per_sec=None, sec_per_iter=None, warmup_s=None, startup_s=None, projected_full_run_s=None,
                   peak_memory_bytes=None, device_memory_total_bytes=None, estimate_bytes=None, batch_size=batch,
                   grad_accum=accum, device=None, dtype=None, compile=None, cuda=None, attempts=attempts)
    fields_.update(base)
    fields_.update(measured)
    return ProbeResult(**fields_)
