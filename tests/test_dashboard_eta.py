"""The dashboard's ETA (gptwiz.runs.monitor) and `gptwiz estimate`'s prediction (gptwiz.planning.timing) count the
same evaluations and checkpoints and price them the same way: for one run state, given the same step time, the
two quote the same time for the rest of the run."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, replace
from pathlib import Path

import pytest

from gptwiz.model.config import count_params
from gptwiz.planning.presets import load_preset
from gptwiz.planning.timing import RunPlan, from_probe_rate, predict_time_left, preset_plan
from gptwiz.runs.lock import RunLock
from gptwiz.runs.monitor import RunMonitor
from gptwiz.runs.paths import RunPaths

STEP_S = 0.5


def _run_folder(root: Path, plan: RunPlan, last_iter: int) -> RunPaths:
    """A running run of `plan` (config.json as the trainer writes it) with its records to `last_iter`: the
    evaluation at iteration 0, unmeasured (no eval_s: the ETA prices evaluation batches as planned), then steps
    of STEP_S each; no checkpoint's time measured yet."""
    paths = RunPaths(root / "runs" / "eta")
    paths.root.mkdir(parents=True)
    preset = load_preset("tiny")
    train = dict(asdict(preset.train), max_iters=plan.max_iters, eval_iters=plan.eval_iters,
                 eval_interval=plan.eval_interval, grad_accum=plan.grad_accum, batch_size=plan.batch_size)
    config = {"name": "eta", "preset": "tiny", "model": asdict(plan.model), "train": train, "warmup_iters": 0,
              "device": plan.device_type, "dtype": plan.dtype, "init_from": None,
              "params": count_params(plan.model), "ckpt_interval_s": plan.ckpt_interval_s, "probe": False}
    paths.config.write_text(json.dumps(config))
    records = [{"type": "eval", "iter": 0, "train_loss": 10.8, "val_loss": 10.8, "best_val_loss": 10.8}]
    records += [{"type": "train", "iter": it, "loss": 9.0, "dt_s": STEP_S} for it in range(1, last_iter + 1)]
    paths.metrics.write_text("".join(json.dumps(r) + "\n" for r in records))
    paths.status.write_text(json.dumps({"state": "running", "pid": os.getpid(), "iter": last_iter,
                                        "max_iters": plan.max_iters, "phase": "training",
                                        "started_at": "2026-11-24T04:34:47+0000"}))
    return paths


@pytest.mark.parametrize("dtype", ["bfloat16", "float32"])
def test_the_dashboards_eta_is_what_estimate_predicts_for_the_rest_of_the_run(tmp_path: Path, dtype: str) -> None:
    # Evaluations at 250, 500 and 600 still to come; a checkpoint by time every 30 s between them.
    plan = replace(preset_plan(load_preset("tiny"), device_type="cpu", dtype=dtype, batch_size=8, max_iters=600),
                   ckpt_interval_s=30.0)
    paths = _run_folder(tmp_path, plan, last_iter=130)
    lock = RunLock(paths)
    lock.acquire()  # as the trainer holds it: only a locked run is shown running
    try:
        snap = RunMonitor(paths).poll()
    finally:
        lock.release()
    assert snap.state == "running" and snap.iter == 130 and snap.eta_s is not None
    left = predict_time_left(plan, iter=130, step_s=STEP_S, evaluated_to=0)
    assert left.evaluations == 3 and left.eval_s > 0 and left.checkpoint_s > 0
    assert snap.eta_s == pytest.approx(left.seconds)


def test_estimate_is_the_rest_of_the_run_from_its_start_plus_the_process_start() -> None:
    plan = preset_plan(load_preset("tiny"), device_type="cpu", dtype="bfloat16", batch_size=8, max_iters=600)
    run = from_probe_rate(plan, plan.tokens_per_iter / STEP_S)
    left = predict_time_left(plan, iter=0, step_s=STEP_S)
    assert (run.train_s, run.eval_s, run.checkpoint_s) == pytest.approx((left.train_s, left.eval_s, left.checkpoint_s))
    assert run.seconds == pytest.approx(left.seconds + run.startup_s)
