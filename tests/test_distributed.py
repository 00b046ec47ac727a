"""torch.distributed on CPU: 2 processes with gloo, launched by `gptwiz train --nproc 2` through torchrun."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import cli_env, run_cli
from test_export import export_and_compare

from gptwiz.common.errors import UsageError
from gptwiz.model.config import ModelConfig
from gptwiz.model.gpt import GPT
from gptwiz.runs.metrics import read_metrics
from gptwiz.training.checkpoint import load_checkpoint

pytestmark = pytest.mark.slow

# A GPT of two blocks 32 wide (GPT-2's vocabulary, so nearly all of it the tied embedding): blocks to shard and a
# step a tenth of the tiny preset's, so that these tests pay for the processes and their collectives, not for
# the arithmetic, which is the same on one process or two.
MODEL = {"n_layer": 2, "n_head": 2, "n_embd": 32, "block_size": 32, "batch_size": 4, "learning_rate": 1e-3,
         "max_iters": 100, "warmup_iters": 2}


@pytest.fixture
def small(tmp_path: Path) -> list[str]:
    """`gptwiz train` of that model, batch 4 x 32 tokens, in float32 without dropout."""
    preset = tmp_path / "model.json"
    preset.write_text(json.dumps(MODEL))
    return ["train", "--config_file", str(preset), "--batch_size", "4", "--block_size", "32", "--eval_iters", "2",
            "--dropout", "0", "--dtype", "float32", "--quiet"]


def _train_records(run: Path) -> list[dict]:
    return [r for r in read_metrics(run / "metrics.jsonl") if r["type"] == "train"]


def test_two_processes_equal_one_with_twice_the_accumulation(tmp_path, shakespeare, small):
    common = [*small, "--input_file", str(shakespeare), "--max_iters", "20", "--eval_interval", "10"]
    run_cli([*common, "--model_name", "one", "--grad_accum", "2"], cwd=tmp_path, check=True)
    run_cli([*common, "--model_name", "two", "--grad_accum", "1", "--nproc", "2"], cwd=tmp_path, check=True)
    one, two = _train_records(tmp_path / "runs" / "one"), _train_records(tmp_path / "runs" / "two")
    assert len(one) == len(two) == 20
    assert [r["loss"] for r in two] == pytest.approx([r["loss"] for r in one], abs=1e-4)
    assert all(r["world_size"] == 2 for r in two)
    # The global batch: both ranks' tokens count in tokens/s.
    assert json.loads((tmp_path / "runs" / "two" / "config.json").read_text())["tokens_per_iter"] == 2 * 4 * 32


def test_rank_zero_alone_writes_the_run_folder(tmp_path, shakespeare, small):
    run_cli([*small, "--input_file", str(shakespeare), "--max_iters", "4", "--eval_interval", "2",
             "--model_name", "r0", "--nproc", "2"], cwd=tmp_path, check=True)
    run = tmp_path / "runs" / "r0"
    assert sorted(p.name for p in run.iterdir()) == sorted(
        ["config.json", "status.json", "metrics.jsonl", "train.log", "ckpt_last.pt", "ckpt_best.pt", "quality.json"])
    iters = [r["iter"] for r in _train_records(run)]
    assert iters == [1, 2, 3, 4]  # one writer: no record twice
    log = (run / "train.log").read_text()
    assert log.count("finished at iteration 4") == 1
    status = json.loads((run / "status.json").read_text())
    assert status["state"] == "finished" and status["world_size"] == 2
    export_and_compare(run, tmp_path / "exported", tmp_path)  # as a run of one process exports


def test_two_process_run_stopped_then_resumed_as_one(tmp_path, shakespeare, small):
    run = tmp_path / "runs" / "dist"
    proc = subprocess.Popen([sys.executable, "-m", "gptwiz", *small, "--input_file", str(shakespeare),
                             "--max_iters", "400", "--eval_interval", "400", "--model_name", "dist", "--nproc", "2"],
                            cwd=tmp_path, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while time.time() < deadline and not ((run / "metrics.jsonl").exists() and len(_train_records(run)) >= 3):
        time.sleep(0.3)
    status = json.loads((run / "status.json").read_text())
    os.kill(status["pid"], signal.SIGTERM)  # what `gptwiz stop` and the dashboard send: rank 0's pid
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    status = json.loads((run / "status.json").read_text())
    assert status["state"] == "stopped"
    stopped_at = status["iter"]
    assert load_checkpoint(run / "ckpt_last.pt")["iter"] == stopped_at

    resumed = run_cli(["train", "--model_name", "dist", "--resume", "--max_iters", str(stopped_at + 3), "--quiet"],
                      cwd=tmp_path, check=True)
    assert f"at iteration {stopped_at}" in resumed.stdout
    records = _train_records(run)
    assert [r["iter"] for r in records][-3:] == [stopped_at + 1, stopped_at + 2, stopped_at + 3]
    assert records[-1]["world_size"] == 1


def test_fsdp_trains_and_its_checkpoint_loads_in_a_plain_model(tmp_path, shakespeare, small):
    run_cli([*small, "--input_file", str(shakespeare), "--max_iters", "6", "--eval_interval", "3",
             "--model_name", "sharded", "--nproc", "2", "--fsdp"], cwd=tmp_path, check=True)
    run = tmp_path / "runs" / "sharded"
    losses = [r["loss"] for r in _train_records(run)]
    assert len(losses) == 6 and losses[-1] < losses[0]
    state = load_checkpoint(run / "ckpt_last.pt")
    model = GPT(ModelConfig(**state["config"]["model"]))
    model.load_state_dict(state["model"])  # whole tensors, plain names: no FSDP needed to read it
    assert state["optimizer"]["state"]
    x = torch.randint(0, 50257, (1, 8))
    loss = model(x, x)
    assert torch.isfinite(loss)
    export_and_compare(run, tmp_path / "exported", tmp_path)  # the gathered weights export as any run's


def test_a_dying_rank_fails_the_run_with_its_error(tmp_path, shakespeare, small):
    env = cli_env(GPTWIZ_FAULT_FAIL_RANK="1:2")
    proc = run_cli([*small, "--input_file", str(shakespeare), "--max_iters", "50", "--eval_interval", "50",
                    "--model_name", "dies", "--nproc", "2"], cwd=tmp_path, env=env, timeout=400)
    assert proc.returncode == 1
    status = json.loads((tmp_path / "runs" / "dies" / "status.json").read_text())
    assert status["state"] == "failed"
    assert "rank 1" in status["error"] and "injected failure" in status["error"]


def test_nproc_beyond_the_gpus_is_refused(monkeypatch):
    from gptwiz.runs import launch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    with pytest.raises(UsageError, match="--nproc 4 is more than the 2 GPU"):
        launch.check_nproc(4, "cuda")
    launch.check_nproc(2, "cuda")
