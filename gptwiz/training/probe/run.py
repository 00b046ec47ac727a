"""`run_probe`: settle the settings, run attempts (at half the micro-batch after each out-of-memory), judge the
last, and keep the result in the named run's folder."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from gptwiz.common.atomic import atomic_write_json
from gptwiz.planning.verdict import ProbeFacts, judge, shrink_batch
from gptwiz.training.probe.attempt import AttemptRun, run_attempt
from gptwiz.training.probe.measure import measured_result
from gptwiz.training.probe.options import Attempt, ProbeOptions, ProbeProgress
from gptwiz.training.probe.plan import ProbePlan, data_too_small, make_plan
from gptwiz.training.probe.result import ProbeResult, judged_result
from gptwiz.training.probe.scratch import scratch_folder


def run_probe(opts: ProbeOptions, on_progress: Callable[[ProbeProgress], None] | None = None,
              should_cancel: Callable[[], bool] | None = None) -> ProbeResult:
    """Probe a preset on the real data: train `opts.iters` iterations in a child process, measure, judge.

    Raises UsageError for bad options before anything starts. `on_progress` is called in the calling
    thread after every iteration; `should_cancel` is polled a few times a second and, when it returns
    True, the child is stopped and the result's verdict is "cancelled".
    """
    on_progress = on_progress or (lambda p: None)
    should_cancel = should_cancel or (lambda: False)
    with scratch_folder() as scratch:
        return _probe(opts, scratch, on_progress, should_cancel)


def _probe(opts: ProbeOptions, scratch: Path, on_progress: Callable[[ProbeProgress], None],
           should_cancel: Callable[[], bool]) -> ProbeResult:
    plan = make_plan(opts, scratch)
    if plan.iters < opts.iters:
        # A run shorter than the probe asked for is its own probe: the probe trains all of it, and says so.
        on_progress(ProbeProgress(iter=0, iters=plan.iters, batch_size=plan.preset.train.batch_size,
                                  grad_accum=plan.preset.train.grad_accum, attempt=1,
                                  message=f"the run is {plan.iters} iterations, fewer than the {opts.iters} asked for: "
                                          f"the probe trains all {plan.iters} (the run is its own probe)"))
        opts = replace(opts, iters=plan.iters)
    preset = plan.preset
    batch, accum, block = preset.train.batch_size, preset.train.grad_accum, preset.model.block_size
    base = dict(iters_requested=opts.iters, full_run_iters=plan.full_iters, block_size=block,
                learning_rate=preset.train.learning_rate, preset=preset.name,
                run_dir=str(plan.paths.root) if plan.paths else None,
                memory_kind="cuda" if plan.device.startswith("cuda") else "cpu_rss",
                input_file=opts.input_file, dataset_dir=opts.dataset_dir)

    too_small = data_too_small(plan.dataset_dir, block)
    if too_small is not None:
        facts = ProbeFacts(learning_rate=preset.train.learning_rate, batch_size=batch, grad_accum=accum,
                           block_size=block, data_tokens=too_small)
        return _finish(plan, judged_result(judge(facts), batch, accum, [], base))
    run, attempts = _attempts(opts, plan, scratch, on_progress, should_cancel)
    return _finish(plan, measured_result(opts, plan, run, attempts, base))


def _attempts(opts: ProbeOptions, plan: ProbePlan, scratch: Path, on_progress: Callable[[ProbeProgress], None],
              should_cancel: Callable[[], bool]) -> tuple[AttemptRun, list[Attempt]]:
    """Attempts at the preset's micro-batch, then at half of it after each out-of-memory, down to 1: the last
    attempt, and every attempt's outcome."""
    batch, accum = plan.preset.train.batch_size, plan.preset.train.grad_accum
    attempts: list[Attempt] = []
    number = 0
    while True:
        number += 1
        run = run_attempt(opts, plan, batch, accum, number, scratch, on_progress, should_cancel)
        attempts.append(run.attempt)
        if run.attempt.outcome != "oom":
            return run, attempts
        smaller = shrink_batch(batch, accum)
        if smaller is None:
            return run, attempts
        on_progress(ProbeProgress(iter=0, iters=opts.iters, batch_size=smaller[0], grad_accum=smaller[1],
                                  attempt=number + 1,
                                  message=f"out of memory at --batch_size {batch} ({run.attempt.detail}); "
                                          f"retrying at --batch_size {smaller[0]} --grad_accum {smaller[1]}"))
        batch, accum = smaller


def _finish(plan: ProbePlan, result: ProbeResult) -> ProbeResult:
    """With a run name, the result is also kept as runs/<name>/probe.json (not for a cancelled probe)."""
    if plan.paths is not None and result.verdict != "cancelled":
        plan.paths.root.mkdir(parents=True, exist_ok=True)
        atomic_write_json(plan.paths.probe, result.to_json())
    return result
