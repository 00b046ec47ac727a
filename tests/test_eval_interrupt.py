"""An evaluation is interruptible and visible: a stop during one (SIGTERM, `gptwiz stop`, the caller's should_stop)
is honoured at its next batch, the partial evaluation is dropped, and status.json keeps its heartbeat meanwhile
with the batches done; the evaluation at iteration 0 of a run from random weights is a few batches only."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import SHAKESPEARE, run_cli
from faults.support import fault_env, micro_preset, records, start, status, train_args, wait_for

from gptwiz.common.schedule import FIRST_EVAL_ITERS
from gptwiz.training.checkpoint import load_checkpoint
from gptwiz.training.options import TrainOptions
from gptwiz.training.resolve import resolve_options
from gptwiz.training.trainer import train

EVAL_INTERVAL = 5
# Batches of each split: over ten minutes of evaluation for the micro model, far longer than any stop may take.
LONG_EVAL_ITERS = 200_000
# From the request to the "stopped" state: a batch, then a 20 MB checkpoint written with fsync. About 1-3 s on a
# quiet 2-core machine; the margin is for one shared with other work (it measured up to 20 s at a load of 10).
STOP_WITHIN_S = 30.0


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A --data_dir holding the token cache of tinyshakespeare, tokenized once for the module."""
    from gptwiz.data.cache import cache_text_file

    folder = tmp_path_factory.mktemp("data")
    cache_text_file(str(SHAKESPEARE), str(folder))
    return folder


def _evaluating_at(run: Path, at: int) -> dict[str, Any] | None:
    st = status(run)
    return st if st.get("phase") == "evaluating" and st.get("iter") == at and st.get("eval_done", 0) > 0 else None


def _long_eval_run(tmp_path: Path, data_dir: Path, name: str) -> tuple[subprocess.Popen, Path, Path]:
    preset = micro_preset(tmp_path, max_iters=1000, eval_interval=EVAL_INTERVAL, eval_iters=LONG_EVAL_ITERS)
    log = tmp_path / f"{name}.log"
    proc = start(train_args(preset, name, "--eval_iters", str(LONG_EVAL_ITERS), data_dir=data_dir), tmp_path,
                 fault_env(), log)
    return proc, tmp_path / "runs" / name, log


def _seconds_to_stopped(run: Path, since: float) -> float:
    wait_for(lambda: status(run).get("state") == "stopped", timeout=300, interval=0.05)
    return time.monotonic() - since


@pytest.mark.parametrize("how", ["SIGTERM", "gptwiz stop"])
def test_a_stop_during_an_evaluation_is_honoured_within_seconds(tmp_path: Path, data_dir: Path, how: str) -> None:
    proc, run, log = _long_eval_run(tmp_path, data_dir, "ev")
    try:
        first = wait_for(lambda: _evaluating_at(run, EVAL_INTERVAL), timeout=180, proc=proc)
        assert first, log.read_text()
        # The heartbeat goes on during the evaluation: status.json is rewritten with more batches done.
        later = wait_for(lambda: (st := _evaluating_at(run, EVAL_INTERVAL)) and st["eval_done"] > first["eval_done"]
                         and st, timeout=10, proc=proc)
        assert later and later["eval_total"] == 2 * LONG_EVAL_ITERS, (first, later)
        asked = time.monotonic()
        if how == "SIGTERM":
            proc.send_signal(signal.SIGTERM)
            took = _seconds_to_stopped(run, asked)
        else:
            stop = run_cli(["stop", "ev", "--wait", "120"], cwd=tmp_path, env=fault_env())
            took = time.monotonic() - asked  # (its own start-up included)
            assert stop.returncode == 0, stop.stderr
            assert "is stopped at iteration 5" in stop.stdout, stop.stdout
        assert proc.wait(timeout=120) == 0, log.read_text()
        print(f"{how}: 'stopped' {took:.2f}s after the request, exited after {time.monotonic() - asked:.2f}s")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert took < STOP_WITHIN_S, f"stopped {took:.1f}s after the request"
    st = status(run)
    assert st["state"] == "stopped" and st["iter"] == EVAL_INTERVAL, st
    assert st["phase"] is None and st["eval_done"] is None  # an ended run is busy with nothing
    # The partial evaluation left nothing: no record, no best checkpoint; the stop's checkpoint has no val loss.
    evals = records(run, "eval")
    assert [r["iter"] for r in evals] == [0], evals
    assert evals[0]["batches"] == 2 * FIRST_EVAL_ITERS and evals[0]["eval_s"] >= 0  # iteration 0: a few batches
    last, best = load_checkpoint(run / "ckpt_last.pt"), load_checkpoint(run / "ckpt_best.pt")
    assert last["iter"] == EVAL_INTERVAL and last["val_loss"] is None
    assert best["iter"] == 0
    assert "Traceback" not in log.read_text()
    assert f"stopped at iteration {EVAL_INTERVAL}" in (run / "train.log").read_text()


def test_stop_wait_says_the_run_is_evaluating(tmp_path: Path) -> None:
    """`gptwiz stop --wait` that runs out of time says what the trainer is busy with, from its status.json."""
    run = tmp_path / "runs" / "busy"
    run.mkdir(parents=True)
    (run / "config.json").write_text("{}")
    # A stand-in trainer: it holds the run's lock and ignores SIGTERM, as a trainer deep in a batch would for a while.
    holder = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, os, signal, struct, sys, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        f"fd = os.open({str(run / 'lock')!r}, os.O_CREAT | os.O_RDWR)\n"
        "fcntl.fcntl(fd, fcntl.F_OFD_SETLK, struct.pack('hhqqi', fcntl.F_WRLCK, 0, 0, 0, 0))\n"
        "os.write(fd, str(os.getpid()).encode())\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        (run / "status.json").write_text(json.dumps({
            "name": "busy", "state": "running", "pid": holder.pid, "iter": 250, "max_iters": 1000,
            "phase": "evaluating", "eval_done": 12, "eval_total": 40}))
        proc = run_cli(["stop", "busy", "--wait", "0.5"], cwd=tmp_path)
    finally:
        holder.kill()
        holder.wait()
    assert proc.returncode == 0, proc.stderr
    assert "is still evaluating (12 of 40 batches) after 0.5s" in proc.stdout, proc.stdout
    assert "checkpointing" not in proc.stdout


def _micro_options(tmp_path: Path, data_dir: Path, **overrides: Any) -> TrainOptions:
    preset = micro_preset(tmp_path, max_iters=12, eval_interval=EVAL_INTERVAL, eval_iters=6)
    opts = dict(config_file=str(preset), model_name="it", input_file=str(SHAKESPEARE), dtype="float32", eval_iters=6,
                runs_dir=str(tmp_path / "runs"), data_dir=str(data_dir), quiet=True)
    return TrainOptions(**{**opts, **overrides})


def test_should_stop_during_an_evaluation_then_resume_redoes_it(tmp_path: Path, data_dir: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """The caller's should_stop is asked between evaluation batches; a resume from the stop's checkpoint, which
    has no val loss of its own, does the dropped evaluation first: each evaluation is recorded once."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    run = tmp_path / "runs" / "it"
    asked: list[dict[str, Any]] = []

    def should_stop() -> bool:
        st = status(run)
        if st.get("phase") == "evaluating" and st.get("iter") == EVAL_INTERVAL:
            asked.append(st)
            return True
        return False

    result = train(resolve_options(_micro_options(tmp_path, data_dir)), should_stop=should_stop)
    assert result.state == "stopped" and result.iter == EVAL_INTERVAL, result
    assert asked and asked[0]["eval_total"] == 12
    assert [r["iter"] for r in records(run, "eval")] == [0]
    assert load_checkpoint(run / "ckpt_last.pt")["val_loss"] is None

    resumed = train(resolve_options(_micro_options(tmp_path, data_dir, resume=True)))
    assert resumed.state == "finished" and resumed.iter == 12, resumed
    evals = records(run, "eval")
    assert [r["iter"] for r in evals] == [0, 5, 10, 12], evals
    assert [r["batches"] for r in evals] == [2 * FIRST_EVAL_ITERS, 12, 12, 12]
    assert load_checkpoint(run / "ckpt_best.pt")["iter"] > 0
    assert status(run)["phase"] is None


def test_a_run_from_given_weights_evaluates_them_whole_at_iteration_0(tmp_path: Path, data_dir: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """--init_from_model: the loss at iteration 0 is the one the new run has to beat, so it is measured in full."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    source = train(resolve_options(_micro_options(tmp_path, data_dir, model_name="src", max_iters=2)))
    assert source.state == "finished"
    tuned = train(resolve_options(_micro_options(tmp_path, data_dir, model_name="ft", max_iters=2,
                                                 init_from_model=str(tmp_path / "runs" / "src"))))
    assert tuned.state == "finished"
    first = records(tmp_path / "runs" / "ft", "eval")[0]
    assert first["iter"] == 0 and first["batches"] == 12, first


@pytest.mark.slow
def test_two_processes_stop_together_during_an_evaluation(tmp_path: Path, data_dir: Path) -> None:
    """Under torchrun the ranks agree between evaluation batches: SIGTERM to rank 0 mid-evaluation ends both
    within seconds (no rank is left waiting in a collective), with the same result as one process."""
    preset = micro_preset(tmp_path, max_iters=1000, eval_interval=EVAL_INTERVAL, eval_iters=LONG_EVAL_ITERS)
    run = tmp_path / "runs" / "dd"
    log = tmp_path / "dd.log"
    proc = start(train_args(preset, "dd", "--nproc", "2", "--eval_iters", str(LONG_EVAL_ITERS), data_dir=data_dir),
                 tmp_path, fault_env(), log)
    try:
        st = wait_for(lambda: _evaluating_at(run, EVAL_INTERVAL), timeout=300, proc=proc)
        assert st, log.read_text()
        asked = time.monotonic()
        os.kill(st["pid"], signal.SIGTERM)  # what `gptwiz stop` sends: rank 0's pid
        took = _seconds_to_stopped(run, asked)
        assert proc.wait(timeout=120) == 0, log.read_text()  # both ranks ended: none waits in a collective
        print(f"two processes: 'stopped' {took:.2f}s after the request, exited after {time.monotonic() - asked:.2f}s")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert took < STOP_WITHIN_S, f"stopped {took:.1f}s after the request"
    st = status(run)
    assert st["state"] == "stopped" and st["iter"] == EVAL_INTERVAL and st["world_size"] == 2, st
    assert [r["iter"] for r in records(run, "eval")] == [0]
    assert load_checkpoint(run / "ckpt_last.pt")["iter"] == EVAL_INTERVAL
