"""SIGTERM and SIGINT (a dropped SSH session, `kill`, Ctrl-C) during an evaluation and during a checkpoint write:
a clean stop, exit 0, state "stopped", a whole checkpoint of the iteration it stopped at, nothing half-written."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from faults.support import (
    every_line_is_json,
    fault_env,
    micro_preset,
    records,
    start,
    status,
    temp_files,
    train_args,
    train_iters,
    wait_for,
)
from gptwiz.training.checkpoint import load_checkpoint

EVAL_INTERVAL = 5


def _evaluating(run: Path) -> bool:
    iters = train_iters(run)
    return bool(iters) and iters[-1] % EVAL_INTERVAL == 0 and not any(r["iter"] == iters[-1]
                                                                       for r in records(run, "eval"))


def _writing_checkpoint(run: Path) -> bool:
    return any(n.startswith(".ckpt_") for n in temp_files(run)) and bool(train_iters(run))


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
@pytest.mark.parametrize("moment", ["evaluation", "checkpoint write"])
def test_signal_stops_cleanly(tmp_path: Path, data_dir: Path, sig: signal.Signals, moment: str, report) -> None:
    # A long evaluation (80 batches a split) and a paused checkpoint write make each moment wide enough to hit.
    preset = micro_preset(tmp_path, max_iters=2000, eval_interval=EVAL_INTERVAL,
                          eval_iters=80 if moment == "evaluation" else 2)
    env = fault_env(GPTWIZ_FAULT_ATOMIC="sleep=0.8:ckpt_*.pt")
    run = tmp_path / "runs" / "sig"
    log = tmp_path / "console.log"
    long_eval = ["--eval_iters", "80"] if moment == "evaluation" else []  # (a short run's own is cut down)
    proc = start(train_args(preset, "sig", "--ckpt_interval_s", "1", *long_eval, data_dir=data_dir), tmp_path, env, log)
    hit = wait_for(lambda: status(run).get("pid") == proc.pid
                   and (_evaluating(run) if moment == "evaluation" else _writing_checkpoint(run)), proc=proc)
    assert hit, log.read_text()
    at = train_iters(run)[-1]
    proc.send_signal(sig)
    assert proc.wait(timeout=120) == 0, log.read_text()
    output = log.read_text()
    assert "Traceback" not in output
    st = status(run)
    assert st["state"] == "stopped" and st["iter"] >= at, st
    assert load_checkpoint(run / "ckpt_last.pt")["iter"] == st["iter"]  # the stop wrote the iteration it reached
    load_checkpoint(run / "ckpt_best.pt")
    assert not temp_files(run) and not (run / "lock").exists()
    assert every_line_is_json(run / "metrics.jsonl")
    if moment == "evaluation":
        # The evaluation it was in is dropped (no record, and the stop's checkpoint has no val loss of its own),
        # unless it had just finished as the signal came.
        evals = {r["iter"]: r["val_loss"] for r in records(run, "eval")}
        assert load_checkpoint(run / "ckpt_last.pt")["val_loss"] == evals.get(st["iter"]), evals
    assert f"stopped at iteration {st['iter']}" in output
    report(f"{sig.name} during {'an' if moment == 'evaluation' else 'a'} {moment}", 1,
           f"exit 0, \"stopped\" at iteration {st['iter']} with its whole checkpoint, no temporary file, no lock")


def _catches_sigterm(pid: int) -> bool:
    """Whether the process has a handler of its own for SIGTERM yet (the SigCgt mask of /proc/PID/status)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("SigCgt:"):
                    return bool(int(line.split()[1], 16) & (1 << (signal.SIGTERM - 1)))
    except OSError:
        pass
    return False


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc to see when the handler is in place")
def test_sigterm_while_starting_is_a_clean_exit(tmp_path: Path, data_dir: Path, report) -> None:
    """SIGTERM in the first second, while Python imports gptwiz and then torch: exit 130 and one line, as for
    Ctrl-C, rather than a death by the signal (-15) with no word; the run's folder never made."""
    import subprocess
    import sys
    import time

    preset = micro_preset(tmp_path)
    delays = (0.0, 0.3, 1.0)  # after the handler is in place: importing gptwiz.cli, then torch, then still torch
    outcomes = []
    for delay in delays:
        proc = subprocess.Popen([sys.executable, "-m", "gptwiz", *train_args(preset, "early", data_dir=data_dir)],
                                cwd=tmp_path, env=fault_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        deadline = time.monotonic() + 30
        while not _catches_sigterm(proc.pid) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.002)
        time.sleep(delay)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
        run = tmp_path / "runs" / "early"
        assert "Traceback" not in out + err, err
        if (run / "status.json").exists():  # (a machine fast enough to be training already: the graceful stop)
            assert proc.returncode == 0 and status(run)["state"] == "stopped", (proc.returncode, err)
            outcomes.append("stopped")
            continue
        lines = [line for line in err.splitlines() if line.strip()]
        assert proc.returncode == 130, (delay, proc.returncode, err)
        assert len(lines) == 1 and "interrupted" in lines[0], err
        assert not run.exists(), sorted(p.name for p in run.iterdir())
        outcomes.append(lines[0])
    report("SIGTERM 0, 0.3 and 1 s after `gptwiz train` put its handler in place (importing gptwiz, then torch)",
           len(delays), "exit 130 with one line (\"gptwiz: interrupted while starting\" or \"gptwiz train: "
           "interrupted\"), no traceback, no run folder; never a death by the signal")
