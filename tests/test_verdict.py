"""The probe's judgement on synthetic loss curves, memory and timings: pure functions, no training."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gptwiz.common.fmt import learning_rate as fmt_number
from gptwiz.planning.verdict import (
    Judgement,
    ProbeFacts,
    curve_stats,
    judge,
    least_squares_slope,
    loss_unjudged_reason,
    shrink_batch,
    timing,
    warmup_iterations,
)

GIB = 2**30
N = 100
WARMUP = 10


def _facts(losses, lr=3e-4, **extra) -> ProbeFacts:
    kwargs = dict(learning_rate=lr, batch_size=8, grad_accum=1, block_size=256,
                  stats=curve_stats(losses, WARMUP), peak_memory_bytes=2 * GIB, device_memory_total_bytes=16 * GIB,
                  projected_full_run_s=3600.0, sec_per_iter=0.5)
    kwargs.update(extra)
    return ProbeFacts(**kwargs)


def advice_text(j: Judgement) -> list[str]:
    """The advice as the probe prints it."""
    return [str(a) for a in j.advice]


def _noise(scale: float, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, scale, N)


def decreasing() -> list[float]:
    i = np.arange(N)
    return list(6 + 4.8 * np.exp(-i / 30) + _noise(0.08))


def test_decreasing_curve_passes_with_negative_slope():
    j = judge(_facts(decreasing()))
    assert j.verdict == "pass" and j.loss == "falls", j
    assert advice_text(j) == []
    stats = curve_stats(decreasing(), WARMUP)
    assert stats.slope < 0 and stats.relative_drop > 0.3 and stats.finite
    assert any("loss falls" in r for r in j.reasons)


def test_flat_curve_warns_with_a_higher_learning_rate():
    # Falls about 3% over the probe: flat (under 5%), but moving, so one 3x step.
    losses = list(10.8 - 0.003 * np.arange(N) + _noise(0.02))
    j = judge(_facts(losses, lr=3e-4))
    assert j.verdict == "warn" and j.loss == "flat" and j.loss_unjudged is None
    assert 0.01 < curve_stats(losses, WARMUP).relative_drop < 0.05
    assert len(advice_text(j)) == 1 and advice_text(j)[0].startswith("--learning_rate 9e-4"), advice_text(j)
    assert any("flat" in r for r in j.reasons)


def test_very_flat_curve_steps_the_learning_rate_by_10x():
    j = judge(_facts(list(10.8 + _noise(0.02)), lr=3e-4))  # noise only: it did not move at all
    assert j.verdict == "warn" and j.loss == "flat"
    assert advice_text(j) == ["--learning_rate 3e-3 (10x higher: the loss barely moved, and 3x steps would take "
                              "several probes)"]
    # Never past the ceiling.
    assert judge(_facts(list(10.8 + _noise(0.02)), lr=3e-2)).advice[0].changes == (("learning_rate", 0.1),)


def test_a_rate_far_under_the_presets_goes_back_to_the_presets_in_one_step():
    # A probe from 1e-6 on a preset of 3e-4: one piece of advice reaches the preset's rate (3x steps took 5).
    flat = list(10.8 + _noise(0.02))
    j = judge(_facts(flat, lr=1e-6, preset_learning_rate=3e-4))
    assert j.advice[0].changes == (("learning_rate", 3e-4),)
    assert advice_text(j) == ["--learning_rate 3e-4 (the preset's own rate, 300x higher: 1e-6 is far under it)"]
    # The preset's exact value, not rounded to one digit (750M_1024's 1.5e-4).
    assert judge(_facts(flat, lr=1e-6, preset_learning_rate=1.5e-4)).advice[0].changes == (("learning_rate", 1.5e-4),)
    # Within a 3x step of the preset's rate, the usual steps: 2e-4 flat -> 10x (barely moved).
    assert judge(_facts(flat, lr=2e-4, preset_learning_rate=3e-4)).advice[0].changes == (("learning_rate", 2e-3),)
    # Far over the preset's rate and rising (or diverged): back to the preset's.
    rising = list(5 + 0.02 * np.arange(N) + _noise(0.8, seed=1))
    assert judge(_facts(rising, lr=1e-2, preset_learning_rate=3e-4)).advice[0].changes == (("learning_rate", 3e-4),)
    assert judge(_facts(rising, lr=6e-4, preset_learning_rate=3e-4)).advice[0].changes == (("learning_rate", 2e-4),)
    diverged = judge(_facts(decreasing(), lr=1e-2, preset_learning_rate=3e-4, diverged=True))
    assert diverged.verdict == "fail" and diverged.advice[0].changes == (("learning_rate", 3e-4),)


def test_advice_rounds_from_1e_6_reach_the_presets_rate_in_one_probe():
    # The wizard's loop: probe, apply the learning-rate advice, probe again, while the loss stays flat below 3e-4.
    lr, rounds = 1e-6, 0
    while lr < 3e-4:
        lr = float(dict(judge(_facts(list(10.8 + _noise(0.02)), lr=lr, preset_learning_rate=3e-4))
                        .advice[0].changes)["learning_rate"])
        rounds += 1
    assert rounds == 1 and lr == 3e-4
    # Without a preset's rate to go back to, 10x steps: 3 rounds instead of 5.
    lr, rounds = 1e-6, 0
    while lr < 3e-4:
        lr = float(dict(judge(_facts(list(10.8 + _noise(0.02)), lr=lr)).advice[0].changes)["learning_rate"])
        rounds += 1
    assert rounds == 3


def test_a_cancelled_probe_gives_no_verdict_and_no_advice():
    # Even a curve that would warn (flat, memory over 90%, a 5-day run) gets neither verdict nor advice...
    flat = list(10.8 + _noise(0.02))
    j = judge(_facts(flat[:60], cancelled=True, iters_requested=N, lr_warmup=WARMUP,
                     peak_memory_bytes=int(15 * GIB), projected_full_run_s=5 * 86400.0))
    assert j.verdict == "cancelled" and j.advice == [] and j.loss is None
    assert j.loss_unjudged == "cancelled after 60 of 100 iterations: the loss of an unfinished probe is not judged"
    # ... but the memory measured so far is reported, as measured.
    assert j.reasons == [j.loss_unjudged, "peak memory so far is 94% of the device's (measured, not judged)"]
    # Cancelled in warm-up, or before the first iteration.
    early = judge(_facts(flat[:3], cancelled=True, iters_requested=N, lr_warmup=WARMUP))
    assert early.verdict == "cancelled" and early.advice == [] and "still in warm-up" in early.loss_unjudged
    none = judge(ProbeFacts(learning_rate=3e-4, batch_size=8, grad_accum=1, block_size=64, cancelled=True))
    assert none.verdict == "cancelled" and none.advice == [] and none.loss is None


def test_a_curve_still_in_warm_up_is_not_judged():
    # 12 iterations with a warm-up of 10: 2 after it, no slope to speak of. A flat curve, but no advice on the rate.
    j = judge(_facts(list(10.8 + _noise(0.02))[:12], lr_warmup=WARMUP, iters_requested=N))
    assert j.loss is None and j.verdict == "warn" and j.advice == []
    assert j.loss_unjudged == ("only 12 of 100 iterations ran, still in warm-up: the loss is judged only after the "
                               "first 10 iterations and 5 more")
    assert j.reasons[0] == j.loss_unjudged and "peak memory is 12%" in j.reasons[1]
    # Memory advice still stands: it was measured.
    high = judge(_facts(list(10.8 + _noise(0.02))[:12], lr_warmup=WARMUP, peak_memory_bytes=int(15 * GIB)))
    assert [a.split()[0] for a in advice_text(high)] == ["--batch_size"]
    assert loss_unjudged_reason(15, 10) is None and loss_unjudged_reason(14, 10) is not None
    assert loss_unjudged_reason(7, 0) is None  # at least the first two are warm-up: 5 after them
    # A complete probe of any allowed length (10 or more, with its tenth of warm-up) is always judged.
    assert all(loss_unjudged_reason(n, n // 10) is None for n in range(10, 2000))


def test_rising_noisy_curve_warns_with_a_lower_learning_rate():
    losses = list(5 + 0.02 * np.arange(N) + _noise(0.8, seed=1))
    j = judge(_facts(losses, lr=6e-4))
    assert j.verdict == "warn"
    assert advice_text(j)[0].startswith("--learning_rate 2e-4"), advice_text(j)


def test_erratic_curve_without_trend_warns_with_a_lower_learning_rate():
    # Falls overall, but jumps by a fifth of its level from one iteration to the next.
    losses = list(8 - 0.01 * np.arange(N) + _noise(1.6, seed=2))
    stats = curve_stats(losses, WARMUP)
    assert stats.noise > 0.1
    j = judge(_facts(losses, lr=1e-3))
    assert j.verdict == "warn" and advice_text(j)[0].startswith("--learning_rate 3e-4"), advice_text(j)


def test_loss_that_falls_in_warmup_then_climbs_is_rising():
    i = np.arange(N)
    losses = list(np.where(i < WARMUP, 10.8 - 0.4 * i, 6.8 + 0.01 * (i - WARMUP)) + _noise(0.05, seed=3))
    stats = curve_stats(losses, WARMUP)
    assert stats.relative_drop > 0.1 and stats.slope > 0
    j = judge(_facts(losses, lr=1e-3))
    assert j.verdict == "warn" and "--learning_rate 3e-4" in advice_text(j)[0]


def test_nan_loss_fails_with_a_lower_learning_rate():
    losses = decreasing()
    losses[57] = float("nan")
    stats = curve_stats(losses, WARMUP)
    assert not stats.finite
    j = judge(_facts(losses, lr=6e-4))
    assert j.verdict == "fail" and advice_text(j) == ["--learning_rate 2e-4 (a lower learning rate)"]
    # The trainer stops at a non-finite loss without recording it: the probe passes that on as `diverged`.
    assert judge(_facts(decreasing(), diverged=True)).verdict == "fail"
    assert curve_stats([1.0, float("inf"), 0.5], 0).finite is False


def test_memory_over_90_percent_warns_with_smaller_batch_and_same_effective_batch():
    j = judge(_facts(decreasing(), peak_memory_bytes=int(15 * GIB), device_memory_total_bytes=16 * GIB,
                     batch_size=12, grad_accum=2))
    assert j.verdict == "warn"
    assert advice_text(j) == ["--batch_size 6 --grad_accum 4 (same effective batch of 24, less activation memory)"]
    assert any("94%" in r for r in j.reasons)
    # At batch 1 the only lever left is the block.
    j1 = judge(_facts(decreasing(), peak_memory_bytes=int(15 * GIB), batch_size=1, block_size=1024))
    assert advice_text(j1)[0].startswith("--block_size 512")
    # 89% is still a pass.
    assert judge(_facts(decreasing(), peak_memory_bytes=int(0.89 * 16 * GIB))).verdict == "pass"


def test_very_long_projection_warns_with_fewer_iterations():
    j = judge(_facts(decreasing(), projected_full_run_s=5 * 86400.0, sec_per_iter=2.0))
    assert j.verdict == "warn"
    assert advice_text(j)[0].startswith("--max_iters 43000 "), advice_text(j)  # 24 h / 2 s = 43200, rounded down
    assert judge(_facts(decreasing(), projected_full_run_s=40 * 3600.0)).verdict == "pass"


def test_several_problems_give_one_change_each():
    j = judge(_facts(list(10.8 + _noise(0.02)), peak_memory_bytes=int(15.5 * GIB), projected_full_run_s=4e6,
                     sec_per_iter=10.0))
    assert j.verdict == "warn"
    assert [a.split()[0] for a in advice_text(j)] == ["--learning_rate", "--batch_size", "--max_iters"]


def test_out_of_memory_at_batch_1_fails_with_a_smaller_preset_or_block():
    j = judge(ProbeFacts(learning_rate=3e-4, batch_size=1, grad_accum=8, block_size=1024, oom_at_batch_1=True,
                         smaller_preset="350M_1024"))
    assert j.verdict == "fail" and advice_text(j) == ["--config_file 350M_1024 (a smaller model)"]
    j = judge(ProbeFacts(learning_rate=3e-4, batch_size=1, grad_accum=8, block_size=256, oom_at_batch_1=True))
    assert j.verdict == "fail" and advice_text(j)[0].startswith("--block_size 128")


def test_data_smaller_than_one_block_fails_with_a_block_that_fits():
    j = judge(ProbeFacts(learning_rate=3e-4, batch_size=8, grad_accum=1, block_size=256, data_tokens=100))
    assert j.verdict == "fail" and advice_text(j)[0].startswith("--block_size 64 ")
    j = judge(ProbeFacts(learning_rate=3e-4, batch_size=8, grad_accum=1, block_size=256, data_tokens=9))
    assert j.verdict == "fail" and "more text" in advice_text(j)[0]


def test_other_failure_and_no_iterations_fail():
    assert judge(ProbeFacts(learning_rate=3e-4, batch_size=8, grad_accum=1, block_size=64,
                            error="RuntimeError: boom")).verdict == "fail"
    assert judge(ProbeFacts(learning_rate=3e-4, batch_size=8, grad_accum=1, block_size=64)).verdict == "fail"


def test_curve_stats_numbers():
    losses = [10.0 - 0.05 * i for i in range(40)]  # a straight line: no noise at all
    s = curve_stats(losses, 4)
    assert s.slope == pytest.approx(-0.05)
    assert s.window == 10 and s.loss_first == pytest.approx(10 - 0.05 * 4.5)
    assert s.relative_drop == pytest.approx((s.loss_first - s.loss_last) / s.loss_first)
    assert s.noise == pytest.approx(0.0, abs=1e-9)
    assert least_squares_slope([3.0]) != least_squares_slope([3.0])  # NaN for one point


def test_noise_measures_scatter_not_trend():
    steep = curve_stats(list(10 - 0.05 * np.arange(N)), WARMUP)
    noisy = curve_stats(list(7.5 + _noise(0.75, seed=4)), WARMUP)
    assert steep.noise < 1e-6
    assert noisy.noise == pytest.approx(0.1, rel=0.25)


def test_warmup_and_timing():
    assert warmup_iterations(100, 10) == 10
    assert warmup_iterations(100, 0) == 2   # the first iterations warm the allocator (or compile)
    assert warmup_iterations(10, 100) == 5  # never more than half
    t = timing([30.0, 2.0, 1.0, 1.0, 1.2, 0.8], 2)
    assert t.warmup_s == 32.0 and t.sec_per_iter == pytest.approx(1.0) and t.warm_iters == 4


def test_shrink_batch_halves_and_keeps_the_effective_batch():
    assert shrink_batch(8, 1) == (4, 2)
    assert shrink_batch(12, 2) == (6, 4)
    assert shrink_batch(7, 1) == (1, 7)
    assert shrink_batch(1, 4) is None


@given(st.integers(2, 4096), st.integers(1, 64))
def test_shrink_batch_property(batch, accum):
    b, g = shrink_batch(batch, accum)
    assert b * g == batch * accum
    assert 1 <= b <= batch // 2


def test_fmt_number():
    assert fmt_number(3e-4) == "3e-4"
    assert fmt_number(3e-4 * 3) == "9e-4"
    assert fmt_number(6e-4 / 3) == "2e-4"
    assert fmt_number(1e-3 / 3) == "3e-4"
    assert not math.isnan(float(fmt_number(1.8e-3)))


def test_advice_is_structured_and_prints_as_flags():
    from gptwiz.planning.knobs import Advice, flag_value

    lower = judge(_facts([5.0] * N, diverged=True)).advice[0]
    assert lower.changes == (("learning_rate", 1e-4),) and lower.why == "a lower learning rate"
    assert lower.flags() == "--learning_rate 1e-4" and str(lower) == "--learning_rate 1e-4 (a lower learning rate)"
    shrink = judge(_facts(decreasing(), batch_size=12, grad_accum=2, peak_memory_bytes=15 * GIB)).advice[0]
    assert shrink.changes == (("batch_size", 6), ("grad_accum", 4)) and shrink.to_json() == {"batch_size": 6,
                                                                                            "grad_accum": 4}
    more_text = Advice((), "more text: use a bigger --input_file or --dataset_dir")
    assert str(more_text) == more_text.why and more_text.flags() == ""
    assert [flag_value(v) for v in (3e-4, 1.5e-4, 0.1, 256, "tiny")] == ["3e-4", "1.5e-4", "1e-1", "256", "tiny"]
    assert flag_value(float(fmt_number(3e-4 * 3))) == fmt_number(3e-4 * 3)


def test_probe_eta_counts_the_iterations_left_at_the_warm_step_time():
    from gptwiz.planning.verdict import probe_eta

    assert probe_eta([], 100) is None
    # Only the slow first steps so far (compilation): the latest stands in, an overestimate.
    first = probe_eta([40.0], 100)
    assert first.rough and first.sec_per_iter == 40.0 and first.seconds == 99 * 40.0
    assert probe_eta([40.0, 2.0], 100).seconds == 98 * 2.0
    # Then the mean of the steps after them.
    warm = probe_eta([40.0, 2.0, 1.0, 1.2, 0.8], 100)
    assert not warm.rough and warm.sec_per_iter == pytest.approx(1.0) and warm.seconds == pytest.approx(95.0)
    assert probe_eta([1.0] * 100, 100).seconds == 0


def test_the_probe_says_when_the_runs_checkpoint_will_peak_above_what_it_measured() -> None:
    from gptwiz.planning.verdict import UnmeasuredPeak

    losses = list(np.linspace(10, 6, N))
    above = judge(_facts(losses, unmeasured_peak=UnmeasuredPeak("checkpoint", 3 * GIB)))
    said = [r for r in above.reasons if "checkpoint" in r]
    assert said == ["the run's first checkpoint will peak at about 3 GiB (19% of the device's), above what the "
                    "probe measured (a probe neither evaluates nor checkpoints; the figure is estimated)"]
    over = judge(_facts(losses, unmeasured_peak=UnmeasuredPeak("evaluation", 15 * GIB)))
    assert any("first evaluation will peak" in r and "over 90%" in r for r in over.reasons)
    # Not above the measured peak, or nothing unmeasured: nothing said.
    for facts in (_facts(losses, unmeasured_peak=UnmeasuredPeak("checkpoint", GIB)), _facts(losses)):
        assert not any("will peak" in r for r in judge(facts).reasons)
