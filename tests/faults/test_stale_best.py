"""A stale best checkpoint: kill -9 while ckpt_best.pt is being rewritten leaves the one of an earlier evaluation,
while ckpt_last.pt (written first) already records the newer, lower best. After `--resume` the run's best val
loss and ckpt_best.pt agree again: it holds the weights that loss was measured on, and `gptwiz sample` says on
stderr which checkpoint and iteration it used."""

from __future__ import annotations

import math
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from conftest import run_cli

from faults.support import fault_env, micro_preset, one_line, records, status, temp_files, train_args
from gptwiz.training.checkpoint import load_checkpoint

NAME = "sb"
MAX_ITERS = 20
EVAL_INTERVAL = 5


@pytest.fixture(scope="module")
def killed(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Path:
    """A run killed (SIGKILL) between the temporary file and the rename of its first rewrite of ckpt_best.pt."""
    root = tmp_path_factory.mktemp("stale-best")
    preset = micro_preset(root, max_iters=MAX_ITERS, eval_interval=EVAL_INTERVAL, eval_iters=2)
    proc = run_cli(train_args(preset, NAME, data_dir=data_dir), cwd=root,
                   env=fault_env(GPTWIZ_FAULT_ATOMIC="kill:ckpt_best.pt"))
    assert proc.returncode == -9, (proc.returncode, proc.stdout, proc.stderr)
    run = root / "runs" / NAME
    last, best = load_checkpoint(run / "ckpt_last.pt"), load_checkpoint(run / "ckpt_best.pt")
    # The state the fault leaves: ckpt_last.pt records a best that the older ckpt_best.pt does not hold.
    assert best["iter"] == 0 and last["iter"] > 0 and last["best_val_loss"] < best["best_val_loss"]
    assert last["val_loss"] == last["best_val_loss"]
    return root


def _delete(run: Path) -> None:
    (run / "ckpt_best.pt").unlink()


def _truncate(run: Path) -> None:
    path = run / "ckpt_best.pt"
    path.write_bytes(path.read_bytes()[:4096])


def _lose_the_best_weights(run: Path) -> None:
    """ckpt_last.pt as a later checkpoint by time would leave it: the best recorded, but weights not evaluated."""
    path = run / "ckpt_last.pt"
    state = torch.load(path, weights_only=True)
    state["val_loss"] = None
    torch.save(state, path)


VARIANTS: dict[str, Callable[[Path], None] | None] = {
    "killed while writing": None, "then deleted": _delete, "then truncated": _truncate,
    "and the best weights lost too": _lose_the_best_weights,
}


def _check_best_is_the_recorded_one(run: Path) -> tuple[dict, float]:
    st = status(run)
    assert st["state"] == "finished" and st["iter"] == MAX_ITERS, st
    best = load_checkpoint(run / "ckpt_best.pt")
    assert best["best_val_loss"] == st["best_val_loss"] == best["val_loss"], (best["best_val_loss"], st)
    evals = {r["iter"]: r["val_loss"] for r in records(run, "eval")}
    assert evals[best["iter"]] == best["val_loss"]  # the weights it holds were measured at that loss
    assert not temp_files(run)
    return best, st["best_val_loss"]


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_resume_makes_the_best_checkpoint_the_recorded_best(killed: Path, tmp_path: Path, variant: str,
                                                            report) -> None:
    work = tmp_path / "w"
    shutil.copytree(killed, work)
    run = work / "runs" / NAME
    killed_at = load_checkpoint(run / "ckpt_last.pt")["iter"]
    change = VARIANTS[variant]
    if change is not None:
        change(run)
    proc = run_cli(["train", "--model_name", NAME, "--resume", "--quiet"], cwd=work, env=fault_env())
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stdout + proc.stderr
    log = (run / "train.log").read_text()
    best, best_val = _check_best_is_the_recorded_one(run)
    evals = {r["iter"]: r["val_loss"] for r in records(run, "eval")}
    if variant == "and the best weights lost too":
        assert "no checkpoint holds the weights of the best" in log  # said; the best is what ckpt_best.pt holds
    else:
        assert re.search(rf"ckpt_best\.pt (held|was) .*rewritten from ckpt_last\.pt \(iteration {killed_at}\)", log), log
        assert best_val == min(evals.values())  # and it is the lowest the run ever measured
    assert f"best val loss {best_val:.4f}" in proc.stdout
    if variant in ("then deleted", "then truncated"):
        report(f"kill -9 while ckpt_best.pt is rewritten (iteration {killed_at}), {variant}, then --resume", 1,
               "finished; ckpt_best.pt rewritten from the resumed weights at once: it holds the run's best val loss "
               "(status, checkpoint and its eval record agree), the lowest measured")
        return

    sample = run_cli(["sample", "--model_name", NAME, "--max_new_tokens", "4", "--seed", "1", "--device", "cpu"],
                     cwd=work, env=fault_env())
    assert sample.returncode == 0, sample.stderr
    lines = one_line(sample.stderr)
    assert lines == [f"gptwiz sample: using ckpt_best.pt (iteration {best['iter']}, val loss {best_val:.4f})"], lines
    report(f"kill -9 while ckpt_best.pt is rewritten (iteration {killed_at}), {variant}, then --resume and "
           "`gptwiz sample`", 1,
           "finished; ckpt_best.pt holds the weights of the run's best val loss (status, checkpoint and its eval "
           "record agree" + ("" if variant.startswith("and the best") else ", and it is the lowest measured")
           + "); sample names ckpt_best.pt, its iteration and val loss on stderr in one line")


def test_sample_names_the_last_checkpoint_when_the_best_is_gone(killed: Path, tmp_path: Path, report) -> None:
    work = tmp_path / "w"
    shutil.copytree(killed, work)
    run = work / "runs" / NAME
    (run / "ckpt_best.pt").unlink()
    last = load_checkpoint(run / "ckpt_last.pt")
    sample = run_cli(["sample", "--model_name", NAME, "--max_new_tokens", "4", "--device", "cpu"], cwd=work,
                     env=fault_env())
    assert sample.returncode == 0, sample.stderr
    assert math.isfinite(last["val_loss"])
    assert one_line(sample.stderr) == [f"gptwiz sample: using ckpt_last.pt (iteration {last['iter']}, "
                                       f"val loss {last['val_loss']:.4f})"], sample.stderr
    report("`gptwiz sample` of a run whose ckpt_best.pt is gone", 1,
           "exit 0; one stderr line naming ckpt_last.pt, its iteration and val loss")
