"""Truncated or corrupted checkpoints: loading names the bad file and falls back to the other one (last or
best) when that one is whole; `--resume` from the older best checkpoint trims the metrics to the iteration it
actually loaded; with both bad, every command says so in one line."""

from __future__ import annotations

import random
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from conftest import assert_one_line_error, run_cli

from faults.support import every_line_is_json, fault_env, records, status, train_iters
from gptwiz.common.errors import UsageError
from gptwiz.runs.paths import RunPaths
from gptwiz.training.checkpoint import load_checkpoint, load_run_checkpoint


def _truncate_half(p: Path) -> None:
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])


def _truncate_empty(p: Path) -> None:
    p.write_bytes(b"")


def _flip_inside(p: Path) -> None:
    data = bytearray(p.read_bytes())
    middle = len(data) // 2  # inside a tensor's bytes: the zip still opens, torch.load alone would not notice
    for i in range(16):
        data[middle + i] ^= 0xFF
    p.write_bytes(bytes(data))


def _garbage(p: Path) -> None:
    p.write_bytes(random.Random(3).randbytes(4096))


def _foreign(p: Path) -> None:
    torch.save({"weights": torch.zeros(3)}, p)  # a whole torch file, not a gptwiz checkpoint


def _folder(p: Path) -> None:
    p.unlink()
    p.mkdir()


DAMAGES: dict[str, Callable[[Path], None]] = {
    "truncated to half its size": _truncate_half, "truncated to 0 bytes": _truncate_empty,
    "16 bytes flipped inside a tensor": _flip_inside, "4 KB of random bytes": _garbage,
    "a torch file that is not a checkpoint": _foreign, "a folder in its place": _folder,
}


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory, trained_template: Path) -> Path:
    """A run with history: ckpt_best.pt from iteration 2, ckpt_last.pt from iteration 4, metrics 1..4 (the
    session's trained template resumed for 2 more iterations)."""
    root = Path(shutil.copytree(trained_template, tmp_path_factory.mktemp("ckpt-template") / "w"))
    run = root / "runs" / "base"
    best2 = (run / "ckpt_best.pt").read_bytes()
    run_cli(["train", "--model_name", "base", "--resume", "--max_iters", "4", "--quiet"], cwd=root, env=fault_env(),
            check=True)
    (run / "ckpt_best.pt").write_bytes(best2)  # as if iteration 2 had the lowest validation loss
    assert load_checkpoint(run / "ckpt_best.pt")["iter"] == 2 and load_checkpoint(run / "ckpt_last.pt")["iter"] == 4
    return root


@pytest.fixture
def copy(template: Path, tmp_path: Path) -> Path:
    shutil.copytree(template, tmp_path / "w")
    return tmp_path / "w"


def test_every_damage_is_named_and_the_other_checkpoint_loaded(copy: Path, report) -> None:
    paths = RunPaths(copy / "runs" / "base")
    pristine = {p: p.read_bytes() for p in (paths.ckpt_last, paths.ckpt_best)}
    for label, damage in DAMAGES.items():
        for bad, good, prefer, good_iter in ((paths.ckpt_last, paths.ckpt_best, "last", 2),
                                             (paths.ckpt_best, paths.ckpt_last, "best", 4)):
            damage(bad)
            with pytest.raises(UsageError) as refused:
                load_checkpoint(bad)
            assert str(bad) in str(refused.value) and "\n" not in str(refused.value)
            warnings: list[str] = []
            path, state = load_run_checkpoint(paths, prefer=prefer, warn=warnings.append)
            assert path == good and state["iter"] == good_iter, label
            assert len(warnings) == 1 and bad.name in warnings[0] and good.name in warnings[0], warnings
            if bad.is_dir():
                bad.rmdir()
            bad.write_bytes(pristine[bad])
        report(f"checkpoint {label}", 2,
               "refused naming the file; the other of ckpt_last/ckpt_best loaded instead, with a warning naming both")


@pytest.mark.parametrize("label", ["truncated to half its size", "16 bytes flipped inside a tensor"])
def test_resume_falls_back_to_the_best_checkpoint_and_trims_to_its_iteration(copy: Path, label: str, report) -> None:
    run = copy / "runs" / "base"
    DAMAGES[label](run / "ckpt_last.pt")
    proc = run_cli(["train", "--model_name", "base", "--resume", "--quiet"], cwd=copy, env=fault_env())
    assert proc.returncode == 0, proc.stderr
    assert "ckpt_last.pt" in proc.stdout and "damaged" in proc.stdout  # says which file was bad
    assert "resumed base from ckpt_best.pt at iteration 2" in proc.stdout
    assert train_iters(run) == [1, 2, 3, 4]  # records 3..4 of the lost checkpoint were replaced
    assert [r["iter"] for r in records(run, "eval")] == [0, 1, 2, 3, 4]
    assert status(run)["state"] == "finished" and load_checkpoint(run / "ckpt_last.pt")["iter"] == 4
    assert every_line_is_json(run / "metrics.jsonl")
    report(f"--resume with ckpt_last.pt {label}", 1,
           "named the bad file, resumed from ckpt_best.pt (iteration 2), metrics trimmed to 2, finished at 4")


def test_sample_passes_over_a_damaged_best_checkpoint(copy: Path, report) -> None:
    _flip_inside(copy / "runs" / "base" / "ckpt_best.pt")
    proc = run_cli(["sample", "--model_name", "base", "--max_new_tokens", "5", "--seed", "1", "--device", "cpu"],
                   cwd=copy, env=fault_env())
    assert proc.returncode == 0, proc.stderr
    warning = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(warning) == 1 and "ckpt_best.pt" in warning[0] and "ckpt_last.pt" in warning[0], proc.stderr
    assert proc.stdout.strip()
    report("`gptwiz sample` with ckpt_best.pt corrupted", 1, "one warning line naming it; sampled from ckpt_last.pt")


def test_both_checkpoints_bad_is_one_line_everywhere(copy: Path, report) -> None:
    run = copy / "runs" / "base"
    _truncate_half(run / "ckpt_last.pt")
    _garbage(run / "ckpt_best.pt")
    resume = run_cli(["train", "--model_name", "base", "--resume", "--quiet"], cwd=copy, env=fault_env())
    sample = run_cli(["sample", "--model_name", "base", "--max_new_tokens", "5"], cwd=copy, env=fault_env())
    for proc in (resume, sample):
        assert_one_line_error(proc, "ckpt_last.pt", "ckpt_best.pt")
    assert not any(p.name.endswith(".tmp") for p in run.iterdir())
    report("both checkpoints damaged: `train --resume` and `sample`", 2, "exit 2, one line naming both files")


def test_a_checkpoint_whose_config_does_not_fit_its_weights(copy: Path, report) -> None:
    """Whole and well-formed, but its config describes another model: refused in one line, not a traceback."""
    run = copy / "runs" / "base"
    state = torch.load(run / "ckpt_best.pt", weights_only=True)
    state["config_json"] = state["config_json"].replace('"n_embd": 32', '"n_embd": 64')
    for name in ("ckpt_best.pt", "ckpt_last.pt"):
        torch.save(state, run / name)
    proc = run_cli(["sample", "--model_name", "base", "--max_new_tokens", "5", "--checkpoint", "best"], cwd=copy,
                   env=fault_env())
    assert_one_line_error(proc, "ckpt_best.pt", "does not hold the model")
    report("checkpoint whose config does not describe its weights (`sample`)", 1, "exit 2, one line naming the file")
