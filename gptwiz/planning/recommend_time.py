"""Fitting a recommendation into time: the run and its probe within the guide's Training Time for the use case
(or the user's budget) on this machine, trading the preset, the batch, the context and last the iterations."""

from __future__ import annotations

from dataclasses import dataclass

from gptwiz.common import fmt
from gptwiz.common.errors import UsageError
from gptwiz.planning.batch_fit import Fit, fit_batch
from gptwiz.planning.decision import Ask, Sized, Step
from gptwiz.planning.guide_tables import USE_CASES, combination, ladder
from gptwiz.planning.policy import COMPILE_MIN_ITERS
from gptwiz.planning.presets import Preset
from gptwiz.planning.quality import Quality
from gptwiz.planning.quality_choice import setting_quality, trade_words
from gptwiz.planning.timing import (
    RunTime,
    Throughput,
    iters_within,
    predict_probe_time,
    predict_run_time,
    preset_plan,
    round_iters,
)

# The guide's Training Time column as the longest a use case's run should take (its preset's upper bound, for
# 10,000 iterations on an RTX 3090), and how the guide says it. Testing/Learning: tiny's "Minutes", as 20 min.
USE_CASE_TIME: dict[str, tuple[float, str]] = {
    "testing": (20 * 60, "tiny: minutes"), "prototype": (4 * 3600, "150M: 2-4 hours"),
    "chat": (6 * 3600, "200M: 4-6 hours"), "rag": (12 * 3600, "350M_1024: 8-12 hours"),
    "code": (48 * 3600, "750M_1024: 24-48 hours"), "domain": (48 * 3600, "750M_1024: 24-48 hours"),
}
PROBE_SHARE = 0.1          # the probe may take a tenth of the run's budget (Testing/Learning: 2 minutes)
MAX_HOURS = 24 * 365
# The least a time-fitted run keeps, so that it still learns something visible: tokens a step and iterations
# (tiny at 1,000 tokens a step falls from 10.8 to ~6 on Shakespeare in 500 iterations), and a context.
MIN_TOKENS_PER_ITER = 1024
MIN_ITERS = 500
MIN_BLOCK = 64


def check_hours(hours: float | None) -> None:
    if hours is None:
        return
    if isinstance(hours, bool) or not isinstance(hours, (int, float)) or not 0 < hours <= MAX_HOURS:
        raise UsageError(f"invalid --hours {hours!r}: must be a number of hours above 0, at most {MAX_HOURS}")


@dataclass(frozen=True)
class Timed:
    """A setting with the predicted times of its run and of its probe."""
    preset: str
    block_size: int
    fit: Fit
    run: RunTime
    probe: RunTime

    @property
    def tokens_per_iter(self) -> int:
        return self.fit.batch_size * self.fit.grad_accum * self.block_size


def timed(preset: Preset, block: int, fit: Fit, device_type: str, dtype: str, gpu_count: int,
          throughput: Throughput, iters: int | None = None) -> Timed:
    plan = preset_plan(preset, device_type=device_type, dtype=dtype, batch_size=fit.batch_size, block_size=block,
                       grad_accum=fit.grad_accum, max_iters=iters, gpu_count=gpu_count)
    return Timed(preset.name, block, fit, predict_run_time(plan, throughput), predict_probe_time(plan, throughput))


def _halvings(n: int, low: int) -> list[int]:
    out = [n]
    while out[-1] // 2 >= low:
        out.append(out[-1] // 2)
    return out


def _candidates(names: list[str], ask: Ask, batch: int, throughput: Throughput,
                budget: float) -> list[tuple[Timed, int]]:
    """Every preset, context and batch (halved down to their least) with the iterations the budget allows."""
    device_type, dtype = ask.device_type, ask.dtype
    out: list[tuple[Timed, int]] = []
    for name in names:
        p = ask.presets[name]
        for block in _halvings(p.model.block_size, MIN_BLOCK):
            for effective in _halvings(batch, 1):
                fit = fit_batch(p, block, effective, device_type, dtype, ask.memory_bytes)
                plan = preset_plan(p, device_type=device_type, dtype=dtype, batch_size=fit.batch_size,
                                   block_size=block, grad_accum=fit.grad_accum, gpu_count=ask.gpu_count)
                iters = iters_within(plan, throughput, budget)
                # Timed at the iterations kept: a run cut short may no longer compile, nor its probe. Where the
                # compile time alone spoils the probe, the same run just under the compile threshold is offered too.
                below_compile = min(iters, COMPILE_MIN_ITERS[device_type] - 1)
                for n in {max(1, round_iters(k)) for k in (iters, below_compile)}:
                    out.append((timed(p, block, fit, device_type, dtype, ask.gpu_count, throughput, iters=n), n))
    return out


def time_fit(names: list[str], ask: Ask, batch: int, throughput: Throughput, budget: float) -> Timed | None:
    """The setting with the best predicted quality (gptwiz.planning.quality) among those whose probe takes at
    most PROBE_SHARE of the budget and whose run fits the budget with enough iterations and tokens a step to
    learn something visible; ties go to the bigger preset, then more tokens a step (batch x context), then the
    longer context. Iterations are cut to what the budget allows (at most the preset's)."""
    candidates = _candidates(names, ask, batch, throughput, budget)
    rank = {n: i for i, n in enumerate(names)}

    def passes(t: Timed, iters: int, min_tokens: int, min_iters: int) -> bool:
        return (t.fit.fits and t.probe.seconds <= budget * PROBE_SHARE and t.tokens_per_iter >= min_tokens
                and iters >= min(min_iters, ask.presets[t.preset].train.max_iters))

    def preference(c: tuple[Timed, int]) -> tuple[float, int, int, int, int]:
        t, iters = c
        return (round(timed_quality(ask, t).val_loss, 3), rank[t.preset], -t.tokens_per_iter, -t.block_size, -iters)

    keep = [c for c in candidates if passes(*c, MIN_TOKENS_PER_ITER, MIN_ITERS)]
    # Nothing that big fits: whatever learns something visible at all, still by quality.
    keep = keep or [c for c in candidates if passes(*c, 1, 100)]
    return min(keep, key=preference)[0] if keep else None


def timed_quality(ask: Ask, t: Timed) -> Quality:
    combo = combination(t.preset, ask.vram_gb)
    return setting_quality(ask, t.preset, block_size=t.block_size, iters=t.run.iters,
                           sequences=t.fit.batch_size * t.fit.grad_accum * ask.gpu_count,
                           learning_rate=combo.learning_rate)


def time_reason(use_case: str, hours: float | None, budget: float, first: Timed, chosen: Timed,
                where: str = "on this machine") -> str:
    """What the time budget changed, or that it changed nothing; `where` the times are for."""
    if hours is not None:
        why = f"time budget {hours:g} h"
    else:
        name = USE_CASES[use_case][0]
        why = (f"the guide's Training Time for {name} ({USE_CASE_TIME[use_case][1]}: here at most "
               f"{fmt.duration(budget)}, a probe at most {fmt.duration(budget * PROBE_SHARE)})")
    times = f"run about {fmt.duration(chosen.run.seconds)}, probe about {fmt.duration(chosen.probe.seconds)} {where}"
    if chosen is first and first.run.seconds <= budget:
        return f"{why}: {first.preset} as it is fits ({times})"
    if chosen is first:
        return f"{why}: no setting of {first.preset} or a smaller preset fits; keeping it ({times})"
    was = (f"{first.preset} at batch {first.fit.batch_size * first.fit.grad_accum}, context {first.block_size}, "
           f"{first.run.iters:,} iterations would take about {fmt.duration(first.run.seconds)} "
           f"(probe {fmt.duration(first.probe.seconds)})")
    now = (f"{chosen.preset} at batch {chosen.fit.batch_size * chosen.fit.grad_accum}, context {chosen.block_size}, "
           f"{chosen.run.iters:,} iterations")
    return f"{why}: {was}; {now} instead ({times})"


def the_run_fits_the_time_budget(ask: Ask, sized: Sized, throughput: Throughput,
                                 hours: float | None) -> Step[tuple[Sized, Timed]]:
    """The pick as it is where its run and probe fit the budget on this machine; else the first setting, in
    order of preference, that does (the user's own preset keeps its name); else the pick, warned."""
    pick, fit = sized.preset, sized.fit
    names = [pick] if ask.choice is not None else ladder(ask.use_case, pick)[ladder(ask.use_case, pick).index(pick)::-1]
    budget = hours * 3600 if hours is not None else USE_CASE_TIME[ask.use_case][0]
    first = timed(ask.presets[pick], sized.block_size, fit, ask.device_type, ask.dtype, ask.gpu_count, throughput)
    chosen = first if first.run.seconds <= budget and first.probe.seconds <= budget * PROBE_SHARE else \
        time_fit(names, ask, fit.batch_size * fit.grad_accum, throughput, budget) or first
    if chosen is not first:
        combo = combination(chosen.preset, ask.vram_gb)
        sized = Sized(chosen.preset, chosen.block_size, chosen.fit, combo.learning_rate, combo.dropout,
                      chosen.run.iters)
    warnings: tuple[str, ...] = ()
    if chosen.run.seconds > budget:
        warnings = (f"even {sized.preset} at batch {sized.fit.batch_size * sized.fit.grad_accum}, context "
                    f"{sized.block_size} takes about {fmt.duration(chosen.run.seconds)}, more than "
                    f"{fmt.duration(budget)}",)
    where = f"on the {throughput.prior} (a prior, not measured)" if throughput.prior else "on this machine"
    reasons: tuple[str, ...] = (time_reason(ask.use_case, hours, budget, first, chosen, where),)
    if chosen is not first:
        reasons += (trade_reason(ask, first, chosen),)
    return Step((sized, chosen), reasons, warnings)


def trade_reason(ask: Ask, first: Timed, chosen: Timed) -> str:
    """What the longer run would buy: 'predicted: small for 17h10m: 1.41 bits/byte; tiny for 19m: 1.62 bits/byte'."""
    return (f"predicted: {trade_words(first.preset, first.run.seconds, timed_quality(ask, first))}; "
            f"{trade_words(chosen.preset, chosen.run.seconds, timed_quality(ask, chosen))}")


__all__ = ["USE_CASE_TIME", "PROBE_SHARE", "MAX_HOURS", "check_hours", "Timed", "timed", "time_fit", "time_reason",
           "the_run_fits_the_time_budget"]
