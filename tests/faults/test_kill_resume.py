"""kill -9 of the trainer at 20 moments spread over training steps, evaluations and checkpoint writes:
every `--resume` succeeds, continues from the last checkpoint written before the kill, loses at most one
checkpoint interval of progress, and every run ends at its final iteration with each iteration recorded once.

The moments are drawn by a seeded RNG and found by watching the run folder: a training step is "the
metrics have reached iteration N", an evaluation is "an eval is due at the last iteration and its record is
not there yet", a checkpoint write is "a checkpoint's temporary file exists". GPTWIZ_FAULT_ATOMIC makes each
checkpoint write pause 0.3 s between its temporary file and the rename, so that window can be hit.
"""

from __future__ import annotations

import random
import re
import time
from collections import Counter
from pathlib import Path

import pytest
from conftest import run_cli

from faults.support import (
    every_line_is_json,
    fault_env,
    kill9,
    micro_preset,
    records,
    start,
    status,
    temp_files,
    train_args,
    train_iters,
    wait_for,
)
from gptwiz.common.errors import UsageError
from gptwiz.runs.paths import RunPaths
from gptwiz.training.checkpoint import load_checkpoint, load_run_checkpoint

KILLS = 20
MAX_ITERS = 120
EVAL_INTERVAL = 15
CKPT_INTERVAL_S = 1.5
WRITE_PAUSE_S = 0.3
SLACK_S = 4.0  # a step, an evaluation and a checkpoint write on a loaded machine, beyond the interval


def _eval_due(run: Path) -> int | None:
    """The iteration whose evaluation is under way (its record not written yet), if any."""
    iters = train_iters(run)
    at = iters[-1] if iters else 0
    if at % EVAL_INTERVAL and at != MAX_ITERS:
        return None
    return None if any(r["iter"] == at for r in records(run, "eval")) else at


def _ckpt_temp(run: Path) -> list[str]:
    return [n for n in temp_files(run) if n.startswith(".ckpt_")]


def _started_at(run: Path) -> int:
    """The iteration the latest trainer of the run started from, as its train.log says."""
    found = re.findall(r"iterations (\d+)\.\.\d+", (run / "train.log").read_text())
    return int(found[-1])


def _check_finished(run: Path) -> None:
    st = status(run)
    assert st["state"] == "finished" and st["iter"] == MAX_ITERS, st
    assert train_iters(run) == list(range(1, MAX_ITERS + 1))  # each iteration once: nothing lost, nothing twice
    evals = [r["iter"] for r in records(run, "eval")]
    assert evals == sorted(set(range(0, MAX_ITERS + 1, EVAL_INTERVAL)) | {MAX_ITERS}), evals
    assert load_checkpoint(run / "ckpt_last.pt")["iter"] == MAX_ITERS
    assert every_line_is_json(run / "metrics.jsonl")
    assert not temp_files(run)


@pytest.mark.slow
def test_kill_9_at_20_moments_and_resume_every_time(tmp_path: Path, data_dir: Path, report) -> None:
    rng = random.Random(8_2024)
    plan = ["train"] * 7 + ["eval"] * 7 + ["ckpt"] * 6
    rng.shuffle(plan)
    preset = micro_preset(tmp_path, max_iters=MAX_ITERS, eval_interval=EVAL_INTERVAL, eval_iters=25)
    env = fault_env(GPTWIZ_FAULT_ATOMIC=f"sleep={WRITE_PAUSE_S}:ckpt_*.pt")
    log = tmp_path / "console.log"
    observed: Counter[str] = Counter()
    lost_s: list[float] = []
    lost_iters: list[int] = []
    finished_runs: list[str] = []
    name: str | None = None
    expected_start = 0
    leftovers: list[str] = []
    run_count = 0
    for phase in plan:
        while True:
            if name is None:
                run_count += 1
                name, expected_start, leftovers = f"k{run_count}", 0, []
                args = train_args(preset, name, "--ckpt_interval_s", str(CKPT_INTERVAL_S), data_dir=data_dir)
            else:
                args = ["train", "--model_name", name, "--resume", "--quiet"]
            run = tmp_path / "runs" / name
            proc = start(args, tmp_path, env, log)
            steps = rng.randint(1, 10)

            def started() -> bool:
                return status(run).get("pid") == proc.pid and status(run).get("state") == "running"

            def moment() -> bool:
                if not started():
                    return False
                if phase == "train":
                    iters = train_iters(run)
                    return bool(iters) and iters[-1] >= expected_start + steps
                if phase == "eval":
                    return _eval_due(run) is not None
                return bool(_ckpt_temp(run))

            hit = wait_for(moment, timeout=180, proc=proc)
            # The trainer continued from the checkpoint, and swept up the temporary files of the kill before.
            wait_for(lambda: _started_at(run) == expected_start, timeout=10)  # its "training ..." line follows
            assert not set(leftovers) & set(temp_files(run)), leftovers
            if hit:
                break
            assert proc.wait(timeout=60) == 0, log.read_text()[-2000:]
            _check_finished(run)  # the run ended before the moment came: the next moment goes to a new run
            finished_runs.append(name)
            name = None
        kill_time = time.time()
        kill9(proc)
        leftovers = temp_files(run)
        where = ("checkpoint write" if _ckpt_temp(run) else "evaluation" if _eval_due(run) is not None
                 else "training step")
        observed[where] += 1
        for ckpt in (run / "ckpt_last.pt", run / "ckpt_best.pt"):
            if ckpt.exists():
                load_checkpoint(ckpt)  # whole: the kill never leaves a checkpoint half-written
        reached = max(train_iters(run), default=0)
        try:
            path, state = load_run_checkpoint(RunPaths(run))
            assert path.name == "ckpt_last.pt"
            expected_start = state["iter"]
        except UsageError:  # killed before its first checkpoint: the resume starts over
            expected_start = 0
        # Progress lost: the training since the checkpoint's iteration, from the start of the step after it.
        after = [r for r in records(run, "train") if r["iter"] == expected_start + 1]
        lost_s.append(kill_time - (after[0]["time"] - after[0]["dt_s"]) if after else 0.0)
        lost_iters.append(reached - expected_start)
        assert 0 <= reached - expected_start
        assert lost_s[-1] <= CKPT_INTERVAL_S + SLACK_S, (where, lost_s[-1], reached, expected_start)

    assert run_cli(["train", "--model_name", name, "--resume", "--quiet"], cwd=tmp_path, env=fault_env(),
                   check=True).returncode == 0
    _check_finished(tmp_path / "runs" / name)
    finished_runs.append(name)

    assert sum(observed.values()) == KILLS
    assert all(observed[w] >= 3 for w in ("training step", "evaluation", "checkpoint write")), observed
    for where in ("training step", "evaluation", "checkpoint write"):
        report(f"kill -9 during {'an' if where == 'evaluation' else 'a'} {where}", observed[where],
               "--resume continued from the last checkpoint written before the kill; its temporary files removed")
    report(f"kill -9, progress lost (checkpoint interval {CKPT_INTERVAL_S:g} s plus evaluations)", KILLS,
           f"at most {max(lost_s):.1f} s / {max(lost_iters)} iterations (mean {sum(lost_iters) / KILLS:.1f} "
           f"iterations); bound: interval + {SLACK_S:g} s")
    report("runs killed repeatedly, resumed to the end", len(finished_runs),
           f"each finished at iteration {MAX_ITERS} with iterations 1..{MAX_ITERS} recorded once, every "
           f"evaluation once, and a whole ckpt_last.pt")
