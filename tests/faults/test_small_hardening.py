"""Small holes: a TensorBoard folder that cannot be used under --quiet, `gptwiz eval` on a file of NUL bytes, and
a checkpoint at a negative iteration.

The unusable TensorBoard folder is a warning in train.log too (the run goes on); eval refuses a file that is not
text, as train and prepare do; a checkpoint at iteration -5 is unusable to every reader: `gptwiz runs` lists no
checkpoint, and export and sample refuse it in one line.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import torch
from conftest import assert_one_line_error, run_cli

from faults.support import fault_env


def _cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gptwiz", *args], cwd=cwd, env=fault_env(), input="",
                          capture_output=True, text=True, timeout=300)


def test_unusable_tensorboard_folder_is_logged_under_quiet(trained_copy: Path, report) -> None:
    blocker = trained_copy / "tb-is-a-file"
    blocker.write_text("not a folder")
    proc = run_cli(["train", "--resume", "--model_name", "base", "--max_iters", "3", "--quiet", "--tensorboard",
                    str(blocker)], cwd=trained_copy, env=fault_env())
    assert proc.returncode == 0, proc.stderr
    log = (trained_copy / "runs" / "base" / "train.log").read_text()
    assert "not logging to TensorBoard" in log, log
    assert "not logging to TensorBoard" in proc.stdout
    report(fault="--tensorboard DIR where DIR is a file, under --quiet", trials=1,
           outcome="the run trains on (exit 0) and the warning is on the console and in train.log")


def test_eval_refuses_a_file_of_nul_bytes(trained_copy: Path, report) -> None:
    nul = trained_copy / "zeros.txt"
    nul.write_bytes(b"\0" * 4096)
    proc = _cli(["eval", "base", "--input_file", str(nul)], trained_copy)
    assert_one_line_error(proc, "zeros.txt", "NUL")
    assert not (trained_copy / "runs" / "base" / "eval.jsonl").exists()
    report(fault="gptwiz eval --input_file of 4,096 NUL bytes", trials=1,
           outcome="refused in one line as not text, as train and prepare refuse it (exit 2); nothing recorded")


def test_checkpoint_at_negative_iteration(trained_copy: Path, report) -> None:
    run = trained_copy / "runs" / "base"
    for name in ("ckpt_last.pt", "ckpt_best.pt"):
        state = torch.load(run / name, weights_only=True)
        state["iter"] = -5
        torch.save(state, run / name)
    listed = json.loads(run_cli(["runs", "--json"], cwd=trained_copy, env=fault_env(), check=True).stdout)
    assert listed[0]["checkpoint_iter"] is None
    for args in (["export", "base", "--out", "exported"], ["sample", "--model_name", "base", "--max_new_tokens", "2"]):
        assert_one_line_error(_cli(args, trained_copy), "ckpt_", "-5")
    assert not (trained_copy / "exported").exists()
    report(fault="both checkpoints at iteration -5", trials=3,
           outcome="`gptwiz runs` lists no usable checkpoint, and export and sample refuse them in one line "
                   "naming the checkpoint and the iteration (exit 2): one rule for all")
