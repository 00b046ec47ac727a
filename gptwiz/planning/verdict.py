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


@dataclass(frozen=True)
class Judgement:
    verdict: str                      # "pass", "warn" or "fail"
    advice: list[Advice] = field(default_factory=list)  # one concrete change each
    reasons: list[str] = field(default_factory=list)  # what was observed


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


def projected_run_seconds(sec_per_iter: float, max_iters: int, *, eval_interval: int, eval_iters: int,
                          grad_accum: int) -> float:
    """The full run at the measured rate, its evaluations included: each evaluation runs `eval_iters`
    forward-only batches on two splits, and a forward pass costs about a third of a training
    micro-step (forward + backward)."""
    evaluations = max_iters // max(1, eval_interval) + 1
    eval_s = evaluations * 2 * eval_iters * sec_per_iter / (3 * max(1, grad_accum))
    return max_iters * sec_per_iter + eval_s


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


def judge(f: ProbeFacts) -> Judgement:
    """pass: the loss clearly falls and memory is under 90%; warn: a problem with a fix; fail: it cannot run."""
    lower_lr = (("learning_rate", _rate(f.learning_rate / LR_FACTOR)),)
    half_block = Advice((("block_size", f.block_size // 2),), "half the activation memory")
    if f.data_tokens is not None:
        fits = 1 << max(0, (f.data_tokens - 1).bit_length() - 1)  # the largest power of two below the data
        change = (Advice((("block_size", fits),), f"it fits the {f.data_tokens} tokens")
                  if fits >= 16 and fits < f.block_size
                  else Advice((), "more text: use a bigger --input_file or --dataset_dir"))
        return Judgement("fail", [change], [f"the data holds {f.data_tokens} tokens in its smallest split, "
                                            f"fewer than one block of {f.block_size + 1}"])
    if f.oom_at_batch_1:
        change = (Advice((("config_file", f.smaller_preset),), "a smaller model") if f.smaller_preset
                  else half_block)
        return Judgement("fail", [change], [f"out of memory even at --batch_size 1 with block size {f.block_size}"])
    if f.diverged or (f.stats is not None and not f.stats.finite):
        return Judgement("fail", [Advice(lower_lr, "a lower learning rate")],
                         ["the loss became NaN or infinite: the updates are too big"])
    if f.error:
        return Judgement("fail", [], [f"the trainer failed: {f.error}"])
    if f.stats is None:
        return Judgement("fail", [], ["no iteration completed"])

    advice: list[Advice] = []
    reasons: list[str] = []
    s = f.stats
    noise_abs = s.noise * abs(s.loss_last)
    fitted_change = s.slope * max(1, s.n - s.warmup - 1)
    rising = (s.slope > 0 and fitted_change > noise_abs) or s.relative_drop < -MIN_DROP
    erratic = s.noise > NOISE_MAX
    if rising or erratic:
        what = "rises" if rising else "jumps about"
        reasons.append(f"the loss {what} after warm-up (slope {s.slope:+.3g}/iter, "
                       f"noise {100 * s.noise:.0f}% of its level)")
        advice.append(Advice(lower_lr, f"{LR_FACTOR:g}x lower: smaller, steadier steps"))
    elif s.relative_drop < MIN_DROP:
        reasons.append(f"the loss is flat: it fell {100 * s.relative_drop:.1f}% over {s.n} iterations "
                       f"(a clear fall is at least {100 * MIN_DROP:.0f}%)")
        higher = min(f.learning_rate * LR_FACTOR, 0.1)
        advice.append(Advice((("learning_rate", _rate(higher)),), f"{LR_FACTOR:g}x higher: bigger steps"))
    else:
        reasons.append(f"the loss falls: {s.loss_first:.3f} -> {s.loss_last:.3f} "
                       f"({100 * s.relative_drop:.0f}% lower, slope {s.slope:+.3g}/iter)")

    if f.peak_memory_bytes and f.device_memory_total_bytes:
        share = f.peak_memory_bytes / f.device_memory_total_bytes
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

    if f.projected_full_run_s is not None and f.projected_full_run_s > LONG_RUN_S and f.sec_per_iter:
        iters = _round_iters(TARGET_RUN_S / f.sec_per_iter)
        reasons.append(f"the full run would take about {fmt.duration(f.projected_full_run_s)}")
        advice.append(Advice((("max_iters", iters),),
                             f"about {fmt.duration(iters * f.sec_per_iter)} at the measured rate; or a smaller preset"))
    return Judgement("warn" if advice else "pass", advice, reasons)
