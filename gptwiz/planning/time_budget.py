"""The probe's time verdict against a budget: where the budget comes from (the user's hours, or the guide's
Training Time for the use case), and the runs that keep it, each priced at the probe's measured rate and given
its predicted quality. Pure: the probe hands in what it measured and the data's facts; nothing is read here.

The options, each a change the user can apply:
- fewer iterations: the most that fit at the measured rate, evaluations and start-up priced as the full run's;
- a smaller effective batch (half the accumulation, else half the micro-batch) at the iterations that then fit,
  the measured tokens a second kept (a step's time scales with its tokens);
- the next smaller preset at the probe's batch and context, its rate scaled by training FLOPs a token.
The quality of an option that keeps the preset is refitted on the probe's curve; a smaller preset's is predicted.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from gptwiz.common import fmt
from gptwiz.data.facts import DataFacts
from gptwiz.model.config import training_flops_per_token
from gptwiz.planning.guide_tables import USE_CASES
from gptwiz.planning.knobs import Advice, Value
from gptwiz.planning.presets import Preset
from gptwiz.planning.quality import Quality, RunShape, predict_quality, preset_shape, refit_from_probe
from gptwiz.planning.quality_choice import short_quality
from gptwiz.planning.recommend_time import USE_CASE_TIME
from gptwiz.planning.timing import RunPlan, from_probe_rate, iters_at_rate, preset_plan, round_iters, with_iters


@dataclass(frozen=True)
class Budget:
    """The time a run may take, and where that figure comes from, as the verdict says it."""
    seconds: float
    label: str               # "your budget of 2 h" / "the guide's Training Time for Testing/Learning (20m00s)"


def run_budget(hours: float | None, use_case: str | None) -> Budget | None:
    """The user's hours where given, else the guide's Training Time for the use case; None without either."""
    if hours is not None:
        return Budget(hours * 3600, f"your budget of {hours:g} h")
    if use_case in USE_CASE_TIME:
        seconds = USE_CASE_TIME[use_case][0]
        return Budget(seconds, f"the guide's Training Time for {USE_CASES[use_case][0]} ({fmt.duration(seconds)})")
    return None


@dataclass(frozen=True)
class BudgetOption:
    """A run that keeps the budget: the `gptwiz train` options it changes, its time and its quality."""
    kind: str                # "fewer_iters", "smaller_batch" or "smaller_preset"
    changes: tuple[tuple[str, Value], ...]
    seconds: float           # the whole run, evaluations and start-up included
    iters: int
    quality: Quality | None  # None where the quality model does not cover the data (instructions)
    what: str                # what the change is, in words

    def advice(self) -> Advice:
        """'--max_iters 770 (fewer iterations, 770 instead of 5,000: about 19m54s, 1.90 bits/byte)'."""
        quality = f", {short_quality(self.quality)}" if self.quality is not None else ""
        return Advice(self.changes, f"{self.what}: about {fmt.duration(self.seconds)}{quality}")

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "seconds": self.seconds, "iters": self.iters,
                "quality": self.quality.to_json() if self.quality is not None else None,
                "changes": dict(self.changes), "advice": str(self.advice())}


@dataclass(frozen=True)
class ProbeCurve:
    """What refits an option's quality: the data's facts, the probe's own schedule and its training losses."""
    data: DataFacts
    probe: RunShape
    losses: list[float]


def budget_options(budget_s: float, run: RunPlan, tokens_per_sec: float, preset: Preset, smaller: Preset | None,
                   curve: ProbeCurve | None, import_s: float = 0.0) -> tuple[BudgetOption, ...]:
    """The runs that keep `budget_s`, when `run` at the probe's measured `tokens_per_sec` does not; () when it
    does. `preset`: the probed one, its overrides applied; `smaller`: the next smaller preset, if any; `import_s`:
    the machine's measured import time (gptwiz.planning.fixed_costs.start_seconds)."""
    if from_probe_rate(run, tokens_per_sec, import_s).seconds <= budget_s:
        return ()
    found = [_fewer_iters(budget_s, run, tokens_per_sec, preset, curve, import_s),
             _smaller_batch(budget_s, run, tokens_per_sec, preset, curve, import_s),
             _smaller_preset(budget_s, run, tokens_per_sec, preset, smaller, curve.data if curve else None, import_s)]
    return tuple(o for o in found if o is not None)


def _fitted(plan: RunPlan, tokens_per_sec: float, budget_s: float, cap: int,
            import_s: float) -> tuple[int, float] | None:
    """The iterations (round, up to `cap`) of `plan` that fit the budget and the run's seconds; None if none do."""
    n = round_iters(iters_at_rate(with_iters(plan, cap), tokens_per_sec, budget_s, import_s))
    if n < 1:
        return None
    return n, from_probe_rate(with_iters(plan, n), tokens_per_sec, import_s).seconds


def _refit(preset: Preset, plan: RunPlan, iters: int, curve: ProbeCurve | None) -> Quality | None:
    if curve is None:
        return None
    shape = preset_shape(preset, block_size=plan.model.block_size, tokens_per_iter=plan.tokens_per_iter,
                         max_iters=iters)
    return refit_from_probe(shape, curve.data, curve.probe, curve.losses)


def _fewer_iters(budget_s: float, run: RunPlan, tps: float, preset: Preset,
                 curve: ProbeCurve | None, import_s: float) -> BudgetOption | None:
    fit = _fitted(run, tps, budget_s, run.max_iters, import_s)
    if fit is None or fit[0] >= run.max_iters:
        return None
    n, seconds = fit
    return BudgetOption("fewer_iters", (("max_iters", n),), seconds, n, _refit(preset, run, n, curve),
                        f"fewer iterations, {n:,} instead of {run.max_iters:,}")


def _smaller_batch(budget_s: float, run: RunPlan, tps: float, preset: Preset,
                   curve: ProbeCurve | None, import_s: float) -> BudgetOption | None:
    """Half the accumulation where there is some (the micro-batch measured stays), else half the micro-batch."""
    if run.grad_accum > 1:
        smaller = replace(run, grad_accum=run.grad_accum // 2)
    elif run.batch_size > 1:
        smaller = replace(run, batch_size=run.batch_size // 2)
    else:
        return None
    fit = _fitted(smaller, tps, budget_s, run.max_iters, import_s)
    if fit is None:
        return None
    n, seconds = fit
    changes: tuple[tuple[str, Value], ...] = (("batch_size", smaller.batch_size), ("grad_accum", smaller.grad_accum))
    if n != run.max_iters:
        changes += (("max_iters", n),)
    what = (f"a smaller batch, effective {smaller.batch_size * smaller.grad_accum} instead of "
            f"{run.batch_size * run.grad_accum}, {n:,} iterations")
    return BudgetOption("smaller_batch", changes, seconds, n, _refit(preset, smaller, n, curve), what)


def _smaller_preset(budget_s: float, run: RunPlan, tps: float, preset: Preset, smaller: Preset | None,
                    data: DataFacts | None, import_s: float) -> BudgetOption | None:
    """The next smaller preset at the probe's batch and context, its own learning rate, the iterations that fit."""
    if smaller is None:
        return None
    block = run.model.block_size
    plan = preset_plan(smaller, device_type=run.device_type, dtype=run.dtype, batch_size=run.batch_size,
                       block_size=block, grad_accum=run.grad_accum, max_iters=run.max_iters, compiled=run.compiled,
                       gpu_count=run.gpu_count)
    rate = tps * training_flops_per_token(run.model) / training_flops_per_token(plan.model)
    fit = _fitted(plan, rate, budget_s, run.max_iters, import_s)
    if fit is None:
        return None
    n, seconds = fit
    changes: tuple[tuple[str, Value], ...] = (
        ("config_file", smaller.name), ("batch_size", run.batch_size), ("grad_accum", run.grad_accum),
        ("block_size", block))
    lr = smaller.train.learning_rate
    if lr != preset.train.learning_rate:
        changes += (("learning_rate", lr),)
    changes += (("max_iters", n),)
    quality = None
    if data is not None:
        shape = preset_shape(smaller, block_size=block, tokens_per_iter=plan.tokens_per_iter, max_iters=n)
        quality = predict_quality(shape, data)
    return BudgetOption("smaller_preset", changes, seconds, n, quality, f"the next smaller preset, {smaller.name}, {n:,} iterations")


def budget_verdict(projected_s: float, budget: Budget,
                   options: tuple[BudgetOption, ...]) -> tuple[list[str], list[Advice], bool]:
    """The reasons, the advice and whether the full run is over the budget (then the verdict is at least warn)."""
    if projected_s <= budget.seconds:
        return [f"the full run would take about {fmt.duration(projected_s)}, within {budget.label}"], [], False
    reasons = [f"the full run would take about {fmt.duration(projected_s)}, more than {budget.label}"]
    if not options:
        reasons.append("no shorter run priced at the probe's rate fits it")
    return reasons, [o.advice() for o in options], True


__all__ = ["Budget", "run_budget", "BudgetOption", "ProbeCurve", "budget_options",
           "budget_verdict"]
