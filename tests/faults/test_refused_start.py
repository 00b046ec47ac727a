"""A run refused before its first step leaves nothing: a fresh run whose --init_from_model source cannot be
loaded leaves no runs/NAME/ (so the corrected command, under the same name, simply starts), a refusal in a
folder that held a probe's files leaves those files byte for byte, and a refused --resume changes nothing
(a finished run stays finished). Under --detach only console.log stays, holding the reason."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from conftest import assert_one_line_error, run_cli

from faults.support import fault_env, one_line, process_alive, status, train_args, wait_for
from gptwiz.training.checkpoint import save_checkpoint


@pytest.fixture
def work(trained_copy: Path) -> Path:
    """micro.json and runs/base/, a finished run of 2 iterations to initialise from (this test's copy)."""
    return trained_copy


def _damage(run: Path) -> None:
    """Flip a byte in the middle of both checkpoints: their CRC check refuses them."""
    for name in ("ckpt_last.pt", "ckpt_best.pt"):
        data = bytearray((run / name).read_bytes())
        data[len(data) // 2] ^= 0xFF
        (run / name).write_bytes(bytes(data))


def _bad_sources(work: Path) -> dict[str, str]:
    """Sources an --init_from_model is refused from once training has begun setting up: label -> run name."""
    damaged = work / "runs" / "damaged"
    shutil.copytree(work / "runs" / "base", damaged)
    _damage(damaged)
    # The config says the preset's architecture; the weights are of another shape.
    shaped = work / "runs" / "misshapen"
    shutil.copytree(work / "runs" / "base", shaped)
    for name in ("ckpt_last.pt", "ckpt_best.pt"):
        save_checkpoint(shaped / name, model_state={"transformer.wpe.weight": torch.zeros(32, 8)}, optimizer_state=None,
                        iter_num=2, best_val_loss=9.0, config={})
    return {"both checkpoints damaged": "damaged", "weights of another shape": "misshapen"}


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def _assert_refused(proc) -> str:
    assert proc.returncode in (1, 2), (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stdout + proc.stderr
    lines = one_line(proc.stderr)
    assert len(lines) == 1, proc.stderr
    return lines[0]


def test_a_refused_init_from_model_leaves_no_run_folder(work: Path, data_dir: Path, report) -> None:
    sources = _bad_sources(work)
    runs_before = sorted(p.name for p in (work / "runs").iterdir())
    for label, source in sources.items():
        proc = run_cli([*train_args(work / "micro.json", "child", data_dir=data_dir), "--init_from_model", source],
                       cwd=work, env=fault_env())
        _assert_refused(proc)
        assert not (work / "runs" / "child").exists(), label
        assert sorted(p.name for p in (work / "runs").iterdir()) == runs_before
    # The same command line with a good source: it starts (no "already exists: add --resume").
    retry = run_cli([*train_args(work / "micro.json", "child", data_dir=data_dir), "--init_from_model", "base"],
                    cwd=work, env=fault_env())
    assert retry.returncode == 0, retry.stderr
    assert status(work / "runs" / "child")["state"] == "finished"
    report(f"--init_from_model refused once set-up has begun ({', '.join(sources)})", len(sources),
           "one line, exit non-zero, no runs/NAME/ left; the same --model_name with a good source then trains "
           "to the end")


def test_a_refusal_in_a_probes_folder_leaves_its_files_as_they_were(work: Path, data_dir: Path, report) -> None:
    _bad_sources(work)
    # What `gptwiz probe --model_name NAME` leaves: its config (marked probe), status, records, verdict and log.
    folder = work / "runs" / "probed"
    folder.mkdir()
    (folder / "config.json").write_text('{"name": "probed", "probe": true}\n')
    (folder / "status.json").write_text('{"name": "probed", "state": "finished", "iter": 10, "probe": true}\n')
    (folder / "metrics.jsonl").write_text('{"type": "probe", "iter": 1, "loss": 10.8}\n')
    (folder / "probe.json").write_text('{"verdict": "pass"}\n')
    (folder / "train.log").write_text("2026-01-01 00:00:00 training probed: the probe's log\n")
    before = _files(folder)
    proc = run_cli([*train_args(work / "micro.json", "probed", data_dir=data_dir), "--init_from_model", "misshapen"],
                   cwd=work, env=fault_env())
    _assert_refused(proc)
    assert _files(folder) == before
    retry = run_cli([*train_args(work / "micro.json", "probed", data_dir=data_dir), "--init_from_model", "base"],
                    cwd=work, env=fault_env())
    assert retry.returncode == 0, retry.stderr
    assert (folder / "probe.json").read_bytes() == before["probe.json"]
    report("--init_from_model refused in a folder holding a probe's files", 1,
           "one line, exit non-zero; config.json, status.json, metrics.jsonl, probe.json and train.log byte-identical "
           "and nothing added; the retry with a good source trains there")


def test_a_refused_resume_changes_nothing(work: Path, report) -> None:
    run = work / "runs" / "base"
    _damage(run)
    before = _files(run)
    proc = run_cli(["train", "--model_name", "base", "--resume", "--max_iters", "4", "--quiet"], cwd=work,
                   env=fault_env())
    assert_one_line_error(proc, "ckpt_")
    assert _files(run) == before
    assert status(run)["state"] == "finished"
    report("--resume of a finished run whose checkpoints are both damaged", 1,
           "exit 2, one line; every file of the run byte-identical (status stays finished, not failed at 0)")


def test_a_refused_detached_start_leaves_only_its_console_log(work: Path, data_dir: Path, report) -> None:
    _bad_sources(work)
    folder = work / "runs" / "bg"
    proc = run_cli([*train_args(work / "micro.json", "bg", data_dir=data_dir), "--init_from_model", "damaged",
                    "--detach"], cwd=work, env=fault_env())
    assert proc.returncode == 0, proc.stderr  # the launcher's checks pass: the source is refused when loaded
    pid = int(proc.stdout.split("(pid ", 1)[1].split(")", 1)[0])
    wait_for(lambda: not process_alive(pid), timeout=120)
    assert sorted(p.name for p in folder.iterdir()) == ["console.log"]
    console = (folder / "console.log").read_text()
    assert "Traceback" not in console and "gptwiz train: error:" in console and "damaged" in console, console
    retry = run_cli([*train_args(work / "micro.json", "bg", data_dir=data_dir), "--init_from_model", "base"],
                    cwd=work, env=fault_env())
    assert retry.returncode == 0, retry.stderr
    report("--init_from_model refused in a detached trainer (`train --detach`)", 1,
           "the folder holds only console.log, whose last line is the one-line reason; the retry under the same "
           "name trains")

