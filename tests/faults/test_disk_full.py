"""A full disk while the trainer writes (ENOSPC, injected through GPTWIZ_FAULT_ATOMIC into the write of an
existing file): the previous file stays whole and loadable, the run goes to "failed" with a one-line reason
naming the disk, and `--resume` finishes the run once there is room."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import run_cli

from faults.support import (
    every_line_is_json,
    fault_env,
    micro_preset,
    one_line,
    status,
    temp_files,
    train_args,
    train_iters,
)
from gptwiz.training.checkpoint import load_checkpoint

MAX_ITERS = 30


@pytest.mark.parametrize("target", ["ckpt_last.pt", "ckpt_best.pt", "status.json"])
def test_enospc_fails_the_run_in_one_line_and_resume_finishes_it(tmp_path: Path, data_dir: Path, target: str,
                                                                  report) -> None:
    preset = micro_preset(tmp_path, max_iters=MAX_ITERS, eval_interval=10)
    run = tmp_path / "runs" / "full"
    proc = run_cli(train_args(preset, "full", data_dir=data_dir), cwd=tmp_path,
                   env=fault_env(GPTWIZ_FAULT_ATOMIC=f"enospc:{target}"))
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    lines = one_line(proc.stderr)
    assert len(lines) == 1 and "Traceback" not in proc.stderr + proc.stdout, proc.stderr
    assert "no space left on the disk" in lines[0] and target in lines[0], lines[0]

    st = status(run)
    if target != "status.json":
        assert st["state"] == "failed" and "no space left on the disk" in st["error"] and target in st["error"]
    else:
        # status.json itself cannot be rewritten: it keeps its last state and the dead pid shows it failed.
        from gptwiz.runs.paths import RunPaths
        from gptwiz.runs.status import effective_state

        assert effective_state(st, RunPaths(run)) == "failed"
    before = load_checkpoint(run / "ckpt_last.pt")["iter"]  # the previous checkpoint, whole
    assert before < MAX_ITERS
    assert not temp_files(run)

    resumed = run_cli(["train", "--model_name", "full", "--resume", "--quiet"], cwd=tmp_path, env=fault_env())
    assert resumed.returncode == 0, resumed.stderr
    assert f"at iteration {before}" in resumed.stdout
    assert status(run)["state"] == "finished" and train_iters(run) == list(range(1, MAX_ITERS + 1))
    assert every_line_is_json(run / "metrics.jsonl")
    report(f"disk full (ENOSPC) while writing {target}", 1,
           f"exit 1, one line \"{lines[0][:70]}...\"; previous checkpoint (iteration {before}) whole; "
           f"--resume finished at {MAX_ITERS}")
