"""SIGTERM and SIGINT (a dropped SSH session, `kill`, Ctrl-C) during an evaluation and during a checkpoint write:
a clean stop, exit 0, state "stopped", a whole checkpoint of the iteration it stopped at, nothing half-written."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from gptwiz.training.checkpoint import load_checkpoint

from faults.support import (every_line_is_json, fault_env, micro_preset, records, start, status, temp_files,
                            train_args, train_iters, wait_for)

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
    proc = start(train_args(preset, "sig", "--ckpt_interval_s", "1", data_dir=data_dir), tmp_path, env, log)
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
        assert any(r["iter"] == at for r in records(run, "eval"))  # the evaluation it was in was finished
    assert f"stopped at iteration {st['iter']}" in output
    report(f"{sig.name} during {'an' if moment == 'evaluation' else 'a'} {moment}", 1,
           f"exit 0, \"stopped\" at iteration {st['iter']} with its whole checkpoint, no temporary file, no lock")
