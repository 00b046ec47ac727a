"""Judging a probe run: what its loss curve, memory and speed say, and the one change that fixes each problem.

Pure functions of the numbers a probe measured, so every rule can be tested on synthetic curves.
The verdict follows the guide's "Testing Your Choice": the loss should drop noticeably in the first
100 steps (if it is flat or erratic, adjust the learning rate) and the run must fit in memory.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from gptwiz.common import fmt
from gptwiz.planning.knobs import Advice
from gptwiz.planning.time_budget import Budget, BudgetOption, budget_verdict

# The loss must fall by at least this fraction from the first to the last iterations to count as falling.
MIN_DROP = 0.05
# Iteration-to-iteration noise above this fraction of the loss level is "erratic": the steps are too big.
NOISE_MAX = 0.10
# Above this fraction of the device's memory a run is one allocation spike away from out of memory.
MEMORY_MAX = 0.90
# A projected run longer than this gets advice to shorten it; the advice aims at TARGET_RUN_S.
LONG_RUN_S = 48 * 3600.0
TARGET_RUN_S = 24 * 3600.0
# Learning-rate advice moves by this factor: big enough to matter, small enough to stay near the preset.
LR_FACTOR = 3.0
# A loss that fell less than this fraction barely moved: a 3x step would take several probes to get anywhere,
# so the advice steps by VERY_FLAT_FACTOR instead.
VERY_FLAT_DROP = 0.01
VERY_FLAT_FACTOR = 10.0
# The highest learning rate the advice goes to.
LR_CEILING = 0.1
# The loss is judged only on a curve with at least this many iterations after warm-up: fewer measure no trend.
MIN_JUDGED_ITERS = 5
# How many iterations the first and last loss averages span (fewer for short probes).
EDGE_WINDOW = 10


@dataclass(frozen=True)
class CurveStats:
    """The shape of a loss curve. Slope and noise are over the iterations after warm-up."""
    n: int                 # iterations measured
    warmup: int            # leading iterations left out of the slope and noise
    window: int            # iterations averaged at each end for loss_first / loss_last
    loss_first: float      # mean loss of the first `window` iterations
    loss_last: float       # mean loss of the last `window` iterations
    slope: float           # least-squares loss change per iteration after warm-up
    relative_drop: float   # (loss_first - loss_last) / loss_first; negative when the loss rose
    noise: float           # iteration-to-iteration noise after warm-up, as a fraction of the mean loss
    finite: bool           # False if any loss is NaN or infinite


@dataclass(frozen=True)
class Timing:
    sec_per_iter: float    # mean seconds per iteration once warm
    warmup_s: float        # seconds spent in the warm-up iterations (compilation included)
    warm_iters: int        # iterations the mean is taken over


@dataclass(frozen=True)
class UnmeasuredPeak:
    """A moment of the full run that a probe does not reach (it neither evaluates nor checkpoints), where the
    estimate puts it above the training step: gptwiz.planning.memory's figure for it, less the step's, added to
    the peak the probe measured."""
    moment: str            # "evaluation" or "checkpoint"
    peak_bytes: int        # about what that moment will peak at


@dataclass(frozen=True)
class ProbeFacts:
    """Everything the verdict depends on. None: not measured (e.g. no iteration ran)."""
    learning_rate: float
    batch_size: int
    grad_accum: int
    block_size: int
    stats: CurveStats | None = None
    peak_memory_bytes: int | None = None
    device_memory_total_bytes: int | None = None
    projected_full_run_s: float | None = None
    sec_per_iter: float | None = None
    diverged: bool = False            # the trainer stopped on a NaN or infinite loss
    oom_at_batch_1: bool = False      # out of memory even with one sequence per micro-batch
    data_tokens: int | None = None    # set when the data holds fewer than one block: its smallest split's tokens
    smaller_preset: str | None = None # the next smaller preset, for advice when even batch 1 does not fit
    error: str | None = None          # the trainer failed for another reason
    preset_learning_rate: float | None = None  # the preset's own rate, which the advice may go back to
    lr_warmup: int = 0                # the probe's learning-rate warm-up, in iterations
    cancelled: bool = False           # stopped before its last iteration (by the user, or `gptwiz stop`)
    iters_requested: int | None = None
    budget: Budget | None = None      # the time the run may take; None: LONG_RUN_S judges the time
    budget_options: tuple[BudgetOption, ...] = ()  # runs that keep the budget, priced by the probe's measure step
    unmeasured_peak: UnmeasuredPeak | None = None  # a moment of the full run above the step the probe measured


@dataclass(frozen=True)
class Judgement:
    verdict: str                      # "pass", "warn", "fail", or "cancelled" (no verdict, no advice)
    advice: list[Advice] = field(default_factory=list)  # one concrete change each
    reasons: list[str] = field(default_factory=list)  # what was observed
    loss: str | None = None           # the loss curve's verdict: falls, flat, rising, erratic or diverged
    loss_unjudged: str | None = None  # why `loss` is None


# --- measuring ---------------------------------------------------------------------------------------

def warmup_iterations(n: int, lr_warmup: int) -> int:
    """Leading iterations to leave out: the learning-rate warm-up, and at least the first two (allocator
    warm-up, compilation), but never so many that fewer than half the iterations remain."""
    return max(0, min(max(lr_warmup, 2), n // 2))


def least_squares_slope(values: Sequence[float] | np.ndarray) -> float:
    y = np.asarray(values, dtype=np.float64)
    if len(y) < 2:
        return float("nan")
    x = np.arange(len(y), dtype=np.float64)
    x -= x.mean()
    return float(np.dot(x, y - y.mean()) / np.dot(x, x))


def curve_stats(losses: Sequence[float], warmup: int) -> CurveStats:
    """Slope, relative drop and noise of a per-iteration loss curve."""
    y = np.asarray(losses, dtype=np.float64)
    n = len(y)
    if n == 0:
        raise ValueError("no losses to judge")
    finite = bool(np.all(np.isfinite(y)))
    window = max(1, min(EDGE_WINDOW, n // 4))
    first, last = float(y[:window].mean()), float(y[-window:].mean())
    after = y[warmup:] if n - warmup >= 3 else y
    with np.errstate(invalid="ignore"):  # a NaN loss makes every figure NaN; `finite` says so
        slope = least_squares_slope(after)
        # Successive differences cancel any smooth trend, so their spread is the per-iteration noise alone;
        # a difference of two independent draws has sqrt(2) times the spread of one.
        noise_abs = float(np.std(np.diff(after)) / math.sqrt(2)) if len(after) >= 3 else 0.0
        level = float(np.mean(np.abs(after)))
    return CurveStats(
        n=n, warmup=warmup if n - warmup >= 3 else 0, window=window, loss_first=first, loss_last=last,
        slope=slope, relative_drop=(first - last) / first if first else float("nan"),
        noise=noise_abs / level if level else float("nan"), finite=finite,
    )


def timing(dts: Sequence[float], warmup: int) -> Timing:
    """Seconds per iteration once warm, and what the warm-up iterations cost apart."""
    d = [float(x) for x in dts]
    if not d:
        raise ValueError("no iteration times")
    warmup = min(warmup, len(d) - 1)
    warm = d[warmup:]
    return Timing(sec_per_iter=sum(warm) / len(warm), warmup_s=sum(d[:warmup]), warm_iters=len(warm))


# The first steps of a probe hold the allocator's warm-up and compilation, so they are slower than the rest.
SLOW_FIRST_ITERS = 2


@dataclass(frozen=True)
class ProbeEta:
    seconds: float         # what is left of the probe: its iterations left at sec_per_iter
    sec_per_iter: float    # the mean step time once warm (the latest step while only slow first steps ran)
    rough: bool            # only the slow first steps measured so far: the figure is an overestimate


def probe_eta(dts: Sequence[float], iters: int) -> ProbeEta | None:
    """The time left of a probe of `iters` iterations after the steps `dts` (seconds each): the iterations left
    times the mean warm step. The first SLOW_FIRST_ITERS steps (compilation, allocator warm-up) are left out of
    the mean once a later step is measured; before that the latest step stands in. None before the first step."""
    d = [float(x) for x in dts]
    if not d:
        return None
    rough = len(d) <= SLOW_FIRST_ITERS
    warm = d[-1:] if rough else d[SLOW_FIRST_ITERS:]
    rate = sum(warm) / len(warm)
    return ProbeEta(seconds=max(0, iters - len(d)) * rate, sec_per_iter=rate, rough=rough)


def shrink_batch(batch_size: int, grad_accum: int) -> tuple[int, int] | None:
    """The next micro-batch to try after running out of memory: about half, with gradient accumulation
    raised so that batch_size x grad_accum (the effective batch) stays exactly the same. None at batch 1."""
    if batch_size <= 1:
        return None
    smaller = next(d for d in range(batch_size // 2, 0, -1) if batch_size % d == 0)
    return smaller, grad_accum * (batch_size // smaller)


# --- judging -----------------------------------------------------------------------------------------

def _rate(x: float) -> float:
    """A learning rate to advise, rounded as fmt.learning_rate writes it: what is applied is what is printed."""
    return float(fmt.learning_rate(x))


def _round_iters(n: float) -> int:
    """A round number of iterations at or below n (two significant digits)."""
    n = int(n)
    if n < 100:
        return max(1, n)
    scale = 10 ** (len(str(n)) - 2)
    return n // scale * scale


def loss_unjudged_reason(n: int, lr_warmup: int, *, cancelled: bool = False,
                         requested: int | None = None) -> str | None:
    """Why a loss curve of `n` iterations is not judged (None when it is): a probe stopped before its last
    iteration (its curve is unfinished), or one with fewer than MIN_JUDGED_ITERS iterations after warm-up (the
    learning-rate warm-up, and at least the first two, as in warmup_iterations), where no slope is measurable."""
    settle = max(lr_warmup, 2)
    of = f" of {requested}" if requested else ""
    in_warmup = n - settle < MIN_JUDGED_ITERS
    if cancelled:
        if in_warmup:
            return (f"cancelled after {n}{of} iterations, still in warm-up: the loss is judged only after the first "
                    f"{settle} iterations and {MIN_JUDGED_ITERS} more")
        return f"cancelled after {n}{of} iterations: the loss of an unfinished probe is not judged"
    if in_warmup:
        return (f"only {n}{of} iterations ran, still in warm-up: the loss is judged only after the first {settle} "
                f"iterations and {MIN_JUDGED_ITERS} more")
    return None


def _memory_share(f: ProbeFacts) -> float | None:
    if f.peak_memory_bytes and f.device_memory_total_bytes:
        return f.peak_memory_bytes / f.device_memory_total_bytes
    return None


def _cancelled(f: ProbeFacts) -> Judgement:
    """No verdict and no advice: only what was measured before the stop."""
    n = f.stats.n if f.stats is not None else 0
    why = loss_unjudged_reason(n, f.lr_warmup, cancelled=True, requested=f.iters_requested)
    reasons = [why or "cancelled"]
    share = _memory_share(f)
    if share is not None:
        reasons.append(f"peak memory so far is {100 * share:.0f}% of the device's (measured, not judged)")
    return Judgement("cancelled", [], reasons, loss=None, loss_unjudged=why)


def _toward_preset(f: ProbeFacts, higher: bool) -> Advice | None:
    """The preset's own learning rate, when a 3x step from the probed rate (up or down) would not reach it."""
    lr, preset = f.learning_rate, f.preset_learning_rate
    if preset is None or lr <= 0 or not (preset > lr * LR_FACTOR if higher else preset < lr / LR_FACTOR):
        return None
    ratio = preset / lr if higher else lr / preset
    return Advice((("learning_rate", preset),),
                  f"the preset's own rate, {ratio:.0f}x {'higher' if higher else 'lower'}: "
                  f"{fmt.learning_rate(lr)} is far {'under' if higher else 'over'} it")


def learning_rate_advice(f: ProbeFacts, higher: bool, stats: CurveStats | None = None) -> Advice:
    """The learning rate to try next: the preset's own when it is more than a 3x step away in that direction,
    else LR_FACTOR up or down, or VERY_FLAT_FACTOR up when the loss barely moved (`stats`)."""
    toward = _toward_preset(f, higher)
    if toward is not None:
        return toward
    lr = f.learning_rate
    if not higher:
        return Advice((("learning_rate", _rate(lr / LR_FACTOR)),), f"{LR_FACTOR:g}x lower: smaller, steadier steps")
    if stats is not None and stats.relative_drop < VERY_FLAT_DROP:
        return Advice((("learning_rate", _rate(min(lr * VERY_FLAT_FACTOR, LR_CEILING))),),
                      f"{VERY_FLAT_FACTOR:g}x higher: the loss barely moved, and {LR_FACTOR:g}x steps would take "
                      "several probes")
    return Advice((("learning_rate", _rate(min(lr * LR_FACTOR, LR_CEILING))),), f"{LR_FACTOR:g}x higher: bigger steps")


def judge(f: ProbeFacts) -> Judgement:
    """pass: the loss clearly falls and memory is under 90%; warn: a problem with a fix; fail: it cannot run;
    cancelled: stopped early, so no verdict and no advice. The loss of a curve still in warm-up is not judged."""
    if f.cancelled:
        return _cancelled(f)
    half_block = Advice((("block_size", f.block_size // 2),), "half the activation memory")
    if f.data_tokens is not None:
        fits = 1 << max(0, (f.data_tokens - 1).bit_length() - 1)  # the largest power of two below the data
        change = (Advice((("block_size", fits),), f"it fits the {f.data_tokens} tokens")
                  if fits >= 16 and fits < f.block_size
                  else Advice((), "more text: use a bigger --input_file or --dataset_dir"))
        why = (f"the data holds {f.data_tokens} tokens in its smallest split, fewer than one block of "
               f"{f.block_size + 1}")
        return Judgement("fail", [change], [why], loss_unjudged="no iteration ran: " + why)
    if f.oom_at_batch_1:
        change = (Advice((("config_file", f.smaller_preset),), "a smaller model") if f.smaller_preset
                  else half_block)
        why = f"out of memory even at --batch_size 1 with block size {f.block_size}"
        return Judgement("fail", [change], [why], loss_unjudged=why)
    if f.diverged or (f.stats is not None and not f.stats.finite):
        lower = _toward_preset(f, higher=False) or Advice(
            (("learning_rate", _rate(f.learning_rate / LR_FACTOR)),), "a lower learning rate")
        return Judgement("fail", [lower], ["the loss became NaN or infinite: the updates are too big"],
                         loss="diverged")
    if f.error:
        return Judgement("fail", [], [f"the trainer failed: {f.error}"], loss_unjudged="the trainer failed")
    if f.stats is None:
        return Judgement("fail", [], ["no iteration completed"], loss_unjudged="no iteration completed")

    advice: list[Advice] = []
    reasons: list[str] = []
    s = f.stats
    loss: str | None = None
    unjudged = loss_unjudged_reason(s.n, f.lr_warmup, requested=f.iters_requested)
    noise_abs = s.noise * abs(s.loss_last)
    fitted_change = s.slope * max(1, s.n - s.warmup - 1)
    rising = (s.slope > 0 and fitted_change > noise_abs) or s.relative_drop < -MIN_DROP
    erratic = s.noise > NOISE_MAX
    if unjudged:
        reasons.append(unjudged)
    elif rising or erratic:
        loss = "rising" if rising else "erratic"
        what = "rises" if rising else "jumps about"
        reasons.append(f"the loss {what} after warm-up (slope {s.slope:+.3g}/iter, "
                       f"noise {100 * s.noise:.0f}% of its level)")
        advice.append(learning_rate_advice(f, higher=False, stats=s))
    elif s.relative_drop < MIN_DROP:
        loss = "flat"
        reasons.append(f"the loss is flat: it fell {100 * s.relative_drop:.1f}% over {s.n} iterations "
                       f"(a clear fall is at least {100 * MIN_DROP:.0f}%)")
        advice.append(learning_rate_advice(f, higher=True, stats=s))
    else:
        loss = "falls"
        reasons.append(f"the loss falls: {s.loss_first:.3f} -> {s.loss_last:.3f} "
                       f"({100 * s.relative_drop:.0f}% lower, slope {s.slope:+.3g}/iter)")

    share = _memory_share(f)
    if share is not None:
        if share > MEMORY_MAX:
            reasons.append(f"peak memory is {100 * share:.0f}% of the device's (over {100 * MEMORY_MAX:.0f}%)")
            smaller = shrink_batch(f.batch_size, f.grad_accum)
            if smaller:
                advice.append(Advice((("batch_size", smaller[0]), ("grad_accum", smaller[1])),
                                     f"same effective batch of {f.batch_size * f.grad_accum}, less activation memory"))
            else:
                advice.append(half_block)
        else:
            reasons.append(f"peak memory is {100 * share:.0f}% of the device's")
    reasons += unmeasured_peak_reasons(f)

    more, changes, over_budget = _time(f)
    reasons += more
    advice += changes
    verdict = "warn" if advice or loss is None or over_budget else "pass"
    return Judgement(verdict, advice, reasons, loss=loss, loss_unjudged=unjudged)


def unmeasured_peak_reasons(f: ProbeFacts) -> list[str]:
    """What the probe's measured peak leaves out: the full run's first evaluation or checkpoint, where it peaks
    above the training step (with its share of the device's memory, and a warning over MEMORY_MAX)."""
    u = f.unmeasured_peak
    if u is None or (f.peak_memory_bytes is not None and u.peak_bytes <= f.peak_memory_bytes):
        return []
    of = ""
    if f.device_memory_total_bytes:
        share = u.peak_bytes / f.device_memory_total_bytes
        over = f", over {100 * MEMORY_MAX:.0f}%" if share > MEMORY_MAX else ""
        of = f" ({100 * share:.0f}% of the device's{over})"
    return [f"the run's first {u.moment} will peak at about {fmt.bytes_(u.peak_bytes, binary=True)}{of}, above "
            "what the probe measured (a probe neither evaluates nor checkpoints; the figure is estimated)"]


def _time(f: ProbeFacts) -> tuple[list[str], list[Advice], bool]:
    """The full run's time: against the budget where there is one (over it: at least a warning, and the runs
    that keep it), else advice to shorten a run over LONG_RUN_S."""
    if f.projected_full_run_s is None:
        return [], [], False
    if f.budget is not None:
        return budget_verdict(f.projected_full_run_s, f.budget, f.budget_options)
    if f.projected_full_run_s > LONG_RUN_S and f.sec_per_iter:
        iters = _round_iters(TARGET_RUN_S / f.sec_per_iter)
        return ([f"the full run would take about {fmt.duration(f.projected_full_run_s)}"],
                [Advice((("max_iters", iters),),
                        f"about {fmt.duration(iters * f.sec_per_iter)} at the measured rate; or a smaller preset")],
                False)
    return [], [], False
