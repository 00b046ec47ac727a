"""From the final attempt's records to a judged ProbeResult: the loss curve, the speed and the full run's
projected time, the memory peak against the estimate, and gptwiz.planning.verdict's judgement on them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gptwiz.common import fmt
from gptwiz.data.facts import DataFacts
from gptwiz.planning.memory import estimate_memory, unmeasured_moment
from gptwiz.planning.time_budget import Budget, BudgetOption
from gptwiz.planning.timing import RunPlan, from_probe_rate, preset_plan
from gptwiz.planning.verdict import (
    CurveStats,
    ProbeFacts,
    Timing,
    UnmeasuredPeak,
    curve_stats,
    judge,
    timing,
    warmup_iterations,
)
from gptwiz.training.options import RunConfig
from gptwiz.training.probe.attempt import AttemptRun
from gptwiz.training.probe.memory import device_total
from gptwiz.training.probe.options import Attempt, ProbeOptions
from gptwiz.training.probe.plan import ProbePlan, smaller_preset
from gptwiz.training.probe.quality import probe_budget_options, probe_data, probe_quality
from gptwiz.training.probe.result import ProbeResult, judged_result
from gptwiz.training.throughput import measured_start_s


@dataclass
class _Curve:
    losses: list[float]
    warmup: int | None = None
    stats: CurveStats | None = None
    timing: Timing | None = None


@dataclass
class _Memory:
    peak: int | None
    total: int | None
    cuda: dict[str, int] | None
    estimate: int | None
    unmeasured: UnmeasuredPeak | None = None  # the full run's evaluation or checkpoint, above the step


def measured_result(opts: ProbeOptions, plan: ProbePlan, run: AttemptRun, attempts: list[Attempt],
                    base: dict[str, Any]) -> ProbeResult:
    """The result of the probe whose final attempt is `run`; `base`: the probe's settled settings."""
    a = run.attempt
    cfg = RunConfig.from_json(run.config) if run.config else None
    device = cfg.device if cfg else plan.device
    curve = _curve(run, cfg)
    tm, stats = curve.timing, curve.stats
    run_plan = _run_plan(plan, a, cfg, device)
    rate = (run_plan.tokens_per_iter / tm.sec_per_iter) if tm is not None and tm.sec_per_iter > 0 else None
    import_s = measured_start_s(run_plan.device_type, run_plan.dtype)
    projected = from_probe_rate(run_plan, rate, import_s).seconds if rate else None
    memory = _memory(run, cfg, device)
    data = probe_data(plan) if a.outcome == "ok" else None
    budget, options = _budget(opts, plan, a, curve.losses, data, run_plan, rate, import_s)
    facts = ProbeFacts(
        learning_rate=plan.preset.train.learning_rate, batch_size=a.batch_size, grad_accum=a.grad_accum,
        block_size=plan.preset.model.block_size, stats=stats, peak_memory_bytes=memory.peak,
        device_memory_total_bytes=memory.total, projected_full_run_s=projected,
        sec_per_iter=tm.sec_per_iter if tm else None,
        diverged=a.outcome == "diverged", oom_at_batch_1=a.outcome == "oom",
        smaller_preset=smaller_preset(plan.preset.name),
        error=a.detail if a.outcome == "failed" else None,
        preset_learning_rate=plan.preset_learning_rate, lr_warmup=cfg.warmup_iters if cfg else 0,
        cancelled=a.outcome == "cancelled", iters_requested=opts.iters, budget=budget, budget_options=options,
        unmeasured_peak=memory.unmeasured,
    )
    before, after = probe_quality(plan, a, curve.losses, opts.iters, data)
    return judged_result(
        judge(facts), a.batch_size, a.grad_accum, attempts, base,
        quality_before=before.to_json() if before else None, quality=after.to_json() if after else None,
        budget_s=opts.budget_s, budget_label=budget.label if budget else None,
        budget_options=[o.to_json() for o in options],
        iters=len(curve.losses), losses=curve.losses,
        loss_first=stats.loss_first if stats else None, loss_last=stats.loss_last if stats else None,
        loss_slope=stats.slope if stats else None, relative_drop=stats.relative_drop if stats else None,
        loss_noise=stats.noise if stats else None, warmup_iters=curve.warmup,
        tokens_per_sec=(cfg.tokens_per_iter / tm.sec_per_iter) if tm and cfg else None,
        sec_per_iter=tm.sec_per_iter if tm else None, warmup_s=tm.warmup_s if tm else None,
        startup_s=run.startup_s, projected_full_run_s=projected, peak_memory_bytes=memory.peak,
        device_memory_total_bytes=memory.total, estimate_bytes=memory.estimate, device=device,
        dtype=cfg.dtype if cfg else None, compile=cfg.compile if cfg else None, cuda=memory.cuda,
        memory_kind="cuda" if device.startswith("cuda") else "cpu_rss",
        error=a.detail if a.outcome in ("failed", "oom") else None,
    )


def _budget(opts: ProbeOptions, plan: ProbePlan, a: Attempt, losses: list[float], data: DataFacts | None,
            run_plan: RunPlan, rate: float | None, import_s: float) -> tuple[Budget | None, tuple[BudgetOption, ...]]:
    """The time budget asked for, and the runs that keep it where the full run at the measured rate does not."""
    if not opts.budget_s:
        return None, ()
    budget = Budget(opts.budget_s, opts.budget_label or f"a budget of {fmt.duration(opts.budget_s)}")
    if not rate or a.outcome != "ok":
        return budget, ()
    return budget, probe_budget_options(plan, a, losses, opts.iters, data, run_plan, rate, budget.seconds, import_s)


def _curve(run: AttemptRun, cfg: RunConfig | None) -> _Curve:
    """The loss curve's statistics and the step times, past the warm-up."""
    curve = _Curve(losses=[float(r["loss"]) for r in run.records])
    if curve.losses:
        curve.warmup = warmup_iterations(len(curve.losses), cfg.warmup_iters if cfg else 0)
        curve.stats = curve_stats(curve.losses, curve.warmup)
        curve.timing = timing([float(r["dt_s"]) for r in run.records], curve.warmup)
    return curve


def _run_plan(plan: ProbePlan, a: Attempt, cfg: RunConfig | None, device: str) -> RunPlan:
    """The full run at the probe's settled batch, which its measured rate prices (gptwiz.planning.timing: its
    evaluations, checkpoints and start)."""
    return preset_plan(plan.preset, device_type="cuda" if device.startswith("cuda") else "cpu",
                       dtype=cfg.dtype if cfg else "float32", batch_size=a.batch_size, grad_accum=a.grad_accum,
                       max_iters=plan.full_iters, compiled=cfg.compile if cfg else None)


def _memory(run: AttemptRun, cfg: RunConfig | None, device: str) -> _Memory:
    """The peak the trainer and this process saw, the device's total, the card's own figures, the estimate."""
    peaks = [int(r.get("peak_mem_bytes") or 0) for r in run.records]
    peak = max(peaks + [int(run.status.get("peak_mem_bytes") or 0)]) or None
    if peak and not device.startswith("cuda"):
        peak = max(peak, int(run.detail.get("peak_rss") or 0))
    cuda_detail = None
    if device.startswith("cuda"):
        cuda_detail = {k: int(v) for k, v in (("max_memory_allocated", run.detail.get("max_memory_allocated")),
                                              ("max_memory_reserved", run.detail.get("max_memory_reserved")),
                                              ("nvml_used_peak", run.nvml_peak)) if v is not None}
    estimate = None
    if cfg is not None:
        estimate = _estimate(cfg.model, run.attempt, cfg.model.block_size, cfg.dtype, device, cfg.compile,
                             cfg.train.optimizer)
    unmeasured = _unmeasured(cfg, run.attempt, device, peak) if cfg is not None and peak else None
    return _Memory(peak=peak, total=device_total(device, run.detail), cuda=cuda_detail, estimate=estimate,
                   unmeasured=unmeasured)


def _estimate(model: Any, a: Attempt, block_size: int, dtype: str, device: str, compiled: bool,
              optimizer: str) -> int | None:
    """`gptwiz estimate`'s figure for the same settings: the whole process's peak, as the probe measures it.
    A probe writes no checkpoint, so the checkpoint's moment is left out of the estimate as it is of the run."""
    est = estimate_memory(model, batch_size=a.batch_size, block_size=block_size, dtype=dtype,
                          device_type="cuda" if device.startswith("cuda") else "cpu", grad_accum=a.grad_accum,
                          compiled=compiled, checkpoints=False, optimizer=optimizer)
    return int(est.total)


def _unmeasured(cfg: RunConfig, a: Attempt, device: str, peak: int) -> UnmeasuredPeak | None:
    """The full run's first evaluation or checkpoint where the estimate puts it above the training step: what it
    adds to the step, on top of the peak measured."""
    moment = unmeasured_moment(cfg.model, batch_size=a.batch_size, block_size=cfg.model.block_size, dtype=cfg.dtype,
                               device_type="cuda" if device.startswith("cuda") else "cpu", grad_accum=a.grad_accum,
                               compiled=cfg.compile)
    return UnmeasuredPeak(moment[0], peak + moment[1]) if moment else None
