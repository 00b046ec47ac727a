"""One real run stopped before its second evaluation, trained once a session and shared by the tests of which
checkpoint is used (tests/test_checkpoint_choice.py, tests/test_tui_checkpoints.py): its ckpt_best.pt is the
evaluation of iteration 0, its ckpt_last.pt the stop's, further on. Tests change copies of it in tmp_path."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import SHAKESPEARE
from faults.support import micro_preset, records, start, status, train_args, wait_for

from gptwiz.runs.paths import RunPaths

NAME = "st"
MAX_ITERS = 5000  # never reached: stopped long before its second evaluation
_DONE = "complete"


def stopped_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder holding runs/st (and its preset), made at the first call of the session, reused after."""
    root = tmp_path_factory.getbasetemp() / "stopped-before-second-eval"
    if (root / _DONE).exists():
        return root
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir()
    from gptwiz.data.cache import cache_text_file
    from gptwiz.runs.launch import request_stop

    data = root / "data"
    cache_text_file(SHAKESPEARE, data)
    preset = micro_preset(root, max_iters=MAX_ITERS, eval_interval=MAX_ITERS, eval_iters=2)
    proc = start(train_args(preset, NAME, data_dir=data), cwd=root, log=root / "train.out")
    run = root / "runs" / NAME
    try:
        wait_for(lambda: status(run).get("iter", 0) >= 3, timeout=240, proc=proc)
        request_stop(RunPaths(run))
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    st = status(run)
    assert st.get("state") == "stopped" and 0 < st["iter"] < MAX_ITERS, (st, (root / "train.out").read_text())
    assert [r["iter"] for r in records(run, "eval")] == [0]
    (root / _DONE).write_text("")
    return root


def run_copy(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> Path:
    """A copy of the stopped run's folder (runs/st inside it), to change as a test needs."""
    work = tmp_path / "w"
    shutil.copytree(stopped_run(tmp_path_factory) / "runs", work / "runs")
    return work
