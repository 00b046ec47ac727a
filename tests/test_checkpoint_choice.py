"""Which checkpoint is used, and said: the rule of gptwiz.runs.checkpoints (unit), its torch-free reading of a
checkpoint, `gptwiz sample` naming the checkpoint and iteration it used, and `gptwiz runs` showing the iteration a
resume continues from. The real run is one stopped before its second evaluation (tests/checkpoint_support.py)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from checkpoint_support import MAX_ITERS, NAME, run_copy, stopped_run
from conftest import SHAKESPEARE, assert_one_line_error, run_cli
from faults.support import fault_env, one_line

from gptwiz.runs.checkpoints import CheckpointInfo, choose, choose_checkpoint, last_evaluation, read_checkpoint_info
from gptwiz.runs.listing import folder_text, summarize
from gptwiz.runs.paths import RunPaths
from gptwiz.training.checkpoint import load_checkpoint

LAST, BEST = Path("ckpt_last.pt"), Path("ckpt_best.pt")


def info(path: Path, it: int | None, val: float | None = None) -> CheckpointInfo:
    return CheckpointInfo(path, it, val)


# --- the rule ---------------------------------------------------------------------------------------------------

def test_auto_takes_the_best_when_no_evaluation_came_after_it() -> None:
    # stopped at 17 after its evaluation at 10 found the best: the last's 7 more iterations are unmeasured
    choice = choose(info(LAST, 17), info(BEST, 10, 5.0), last_eval=10)
    assert choice.which == "best" and choice.passed_over is None
    assert choice.describe() == "ckpt_best.pt (iteration 10, val loss 5.0000)"
    assert choice.title() == "ckpt_best.pt, iteration 10"


def test_auto_takes_the_last_when_an_evaluation_came_after_the_best() -> None:
    choice = choose(info(LAST, 40, 5.3), info(BEST, 20, 5.1), last_eval=40)
    assert choice.which == "last"
    assert choice.describe() == ("ckpt_last.pt (iteration 40, val loss 5.3000); not ckpt_best.pt: its iteration 20 "
                                 "is older than the last evaluation (iteration 40)")
    # metrics.jsonl gone or torn: the last checkpoint's own val loss says it was evaluated at its iteration
    assert choose(info(LAST, 40, 5.3), info(BEST, 20, 5.1), last_eval=None).which == "last"


def test_auto_never_takes_a_best_of_iteration_0_while_the_last_is_further_on() -> None:
    choice = choose(info(LAST, 17), info(BEST, 0, 10.9), last_eval=0)
    assert choice.which == "last" and not choice.untrained
    assert choice.describe() == "ckpt_last.pt (iteration 17); not ckpt_best.pt: it is iteration 0, the untrained " \
                                "initial weights"
    # a run initialised from another's weights: its iteration 0 is those weights, said so
    from_run = choose(info(LAST, 17), info(BEST, 0, 3.2), last_eval=0, init_from="runs/base")
    assert from_run.which == "last" and "the weights the run started from" in from_run.describe()


def test_a_chosen_checkpoint_of_iteration_0_says_it_is_untrained() -> None:
    for choice in (choose(info(LAST, 0, 10.9), info(BEST, 0, 10.9), last_eval=0),  # stopped at its first eval
                   choose(info(LAST, 17), info(BEST, 0, 10.9), last_eval=0, which="best"),
                   choose(None, info(BEST, 0, 10.9), last_eval=0)):
        assert choice.untrained and choice.info.name == "ckpt_best.pt"
        assert choice.describe() == "ckpt_best.pt (iteration 0, val loss 10.9000): the untrained initial weights"
        assert choice.title() == "ckpt_best.pt, iteration 0 (the untrained initial weights)"
    init = choose(None, info(BEST, 0, 3.2), last_eval=0, init_from="runs/base")
    assert "initialised from (runs/base)" in init.describe() and "untrained" not in init.describe()


def test_explicit_choice_missing_one_and_unreadable_ones() -> None:
    assert choose(info(LAST, 17), info(BEST, 10, 5.0), 10, which="last").which == "last"
    assert choose(info(LAST, 40, 5.3), info(BEST, 20, 5.1), 40, which="best").which == "best"
    assert choose(None, info(BEST, 10, 5.0), 10, which="last") is None
    assert choose(None, None, None) is None
    assert choose(info(LAST, 17), None, 10).which == "last"
    # an unreadable one (iter None) is passed over for the other; the loader says what was wrong, if it must read it
    assert choose(info(LAST, None), info(BEST, 10, 5.0), 10).which == "best"
    assert choose(info(LAST, 17), info(BEST, None), 10).which == "last"
    assert choose(info(LAST, None), None, None).iteration_text == "iteration unknown"


# --- reading a run folder, without torch ---------------------------------------------------------------------------

def test_checkpoint_metadata_is_read_as_torch_reads_it(tmp_path_factory: pytest.TempPathFactory,
                                                       tmp_path: Path) -> None:
    run = run_copy(tmp_path_factory, tmp_path) / "runs" / NAME
    for name in ("ckpt_last.pt", "ckpt_best.pt"):
        state = load_checkpoint(run / name)
        got = read_checkpoint_info(run / name)
        assert got is not None and got.iter == state["iter"]
        own = state["val_loss"] if state["val_loss"] is not None else (
            state["best_val_loss"] if name == "ckpt_best.pt" else None)
        assert got.val_loss == own
    assert read_checkpoint_info(run / "ckpt_best.pt").iter == 0
    paths = RunPaths(run)
    assert last_evaluation(paths) == 0
    # damaged files are there but unreadable; a missing one is None
    (run / "ckpt_best.pt").write_bytes((run / "ckpt_best.pt").read_bytes()[:3000])
    assert read_checkpoint_info(run / "ckpt_best.pt") == CheckpointInfo(run / "ckpt_best.pt", None)
    (run / "ckpt_best.pt").write_bytes(b"PK\x03\x04 not a zip at all")
    assert read_checkpoint_info(run / "ckpt_best.pt").iter is None
    assert read_checkpoint_info(run / "missing.pt") is None
    os.mkfifo(run / "fifo.pt")  # never opened for reading: it would block
    assert read_checkpoint_info(run / "fifo.pt").iter is None


def test_a_foreign_pickle_in_a_checkpoint_runs_nothing(tmp_path: Path) -> None:
    """The unpickler builds no class a pickle names: one whose __reduce__ calls os.system reads as an inert value."""
    marker = tmp_path / "ran"

    class Evil:
        def __reduce__(self):  # type: ignore[no-untyped-def]
            return os.system, (f"touch {marker}",)

    path = tmp_path / "ckpt_last.pt"
    torch.save({"model": {}, "iter": 5, "val_loss": None, "payload": Evil()}, path, _use_new_zipfile_serialization=True)
    assert read_checkpoint_info(path) == CheckpointInfo(path, 5, None)
    assert not marker.exists()


def test_last_evaluation_reads_back_from_the_end(tmp_path: Path) -> None:
    paths = RunPaths(tmp_path)
    assert last_evaluation(paths) is None  # no metrics.jsonl
    lines = [{"type": "eval", "iter": 0, "val_loss": 10.9}] + [{"type": "train", "iter": i, "loss": 5.0,
                                                                "pad": "x" * 200} for i in range(1, 2000)]
    lines.insert(700, {"type": "eval", "iter": 700, "val_loss": 6.0})
    text = "".join(json.dumps(r) + "\n" for r in lines)
    assert len(text) > 4 * 65536  # several chunks back from the end
    paths.metrics.write_text(text + '{"type": "eval", "iter": 2000, "val_lo')  # a record cut mid-write
    assert last_evaluation(paths) == 700
    paths.metrics.write_text("".join(json.dumps(r) + "\n" for r in lines[1:700]))
    assert last_evaluation(paths) is None


# --- gptwiz sample ----------------------------------------------------------------------------------------------------

def test_sample_uses_the_last_checkpoint_when_the_best_is_iteration_0_and_says_so(
        tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> None:
    work = run_copy(tmp_path_factory, tmp_path)
    last = load_checkpoint(work / "runs" / NAME / "ckpt_last.pt")
    best = load_checkpoint(work / "runs" / NAME / "ckpt_best.pt")
    assert best["iter"] == 0 < last["iter"]
    base = ["sample", "--model_name", NAME, "--max_new_tokens", "3", "--seed", "1", "--device", "cpu"]
    proc = run_cli(base, cwd=work, env=fault_env())
    assert proc.returncode == 0, proc.stderr
    assert one_line(proc.stderr) == [f"gptwiz sample: using ckpt_last.pt (iteration {last['iter']}); not "
                                     "ckpt_best.pt: it is iteration 0, the untrained initial weights"]
    proc = run_cli([*base, "--checkpoint", "best"], cwd=work, env=fault_env())
    assert proc.returncode == 0, proc.stderr
    assert one_line(proc.stderr) == [f"gptwiz sample: using ckpt_best.pt (iteration 0, val loss "
                                     f"{best['best_val_loss']:.4f}): the untrained initial weights"]
    assert_one_line_error(run_cli([*base, "--checkpoint", "newest"], cwd=work, env=fault_env()),
                          "--checkpoint", "'newest'", "best", "last")
    (work / "runs" / NAME / "ckpt_best.pt").unlink()
    assert_one_line_error(run_cli([*base, "--checkpoint", "best"], cwd=work, env=fault_env()),
                          "no ckpt_best.pt", "--checkpoint last")


def test_choose_checkpoint_on_the_stopped_run(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> None:
    paths = RunPaths(run_copy(tmp_path_factory, tmp_path) / "runs" / NAME)
    choice = choose_checkpoint(paths)
    assert choice.info.name == "ckpt_last.pt" and choice.info.iter > 0 and "iteration 0" in choice.passed_over
    assert choose_checkpoint(paths, "best").untrained
    for name in ("ckpt_last.pt", "ckpt_best.pt"):
        (paths.root / name).unlink()
    with pytest.raises(Exception, match="has no checkpoint"):
        choose_checkpoint(paths)


# --- gptwiz train --init_from_model: the same rule ----------------------------------------------------------------------

def _tune_from_stopped(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path,
                       *extra: str) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """A one-iteration run started from the stopped run (whose best is iteration 0), without --config_file."""
    work = run_copy(tmp_path_factory, tmp_path)
    proc = run_cli(["train", "--model_name", "tuned", "--input_file", str(SHAKESPEARE), "--data_dir",
                    str(stopped_run(tmp_path_factory) / "data"), "--max_iters", "1", "--init_from_model", NAME,
                    "--dtype", "float32", "--quiet", *extra], cwd=work, env=fault_env())
    return work, proc


def test_init_from_model_takes_the_last_checkpoint_over_an_iteration_0_best_and_says_so(
        tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> None:
    work, proc = _tune_from_stopped(tmp_path_factory, tmp_path)
    assert proc.returncode == 0, proc.stderr
    last_iter = load_checkpoint(work / "runs" / NAME / "ckpt_last.pt")["iter"]
    config = json.loads((work / "runs" / "tuned" / "config.json").read_text())
    assert (config["init_checkpoint"], config["init_iter"]) == ("ckpt_last.pt", last_iter) and last_iter > 0
    assert config["preset"] == "micro"  # no --config_file: the base's own preset
    said = f"initialised weights from {work / 'runs' / NAME / 'ckpt_last.pt'} (iteration {last_iter})"
    assert said in proc.stdout and said in (work / "runs" / "tuned" / "train.log").read_text()


def test_init_checkpoint_best_takes_the_best_even_at_iteration_0(tmp_path_factory: pytest.TempPathFactory,
                                                                  tmp_path: Path) -> None:
    work, proc = _tune_from_stopped(tmp_path_factory, tmp_path, "--init_checkpoint", "best")
    assert proc.returncode == 0, proc.stderr
    config = json.loads((work / "runs" / "tuned" / "config.json").read_text())
    assert (config["init_checkpoint"], config["init_iter"]) == ("ckpt_best.pt", 0)


def test_a_preset_the_base_does_not_fit_is_explained(tmp_path_factory: pytest.TempPathFactory,
                                                      tmp_path: Path) -> None:
    work, proc = _tune_from_stopped(tmp_path_factory, tmp_path, "--config_file", "small")
    assert_one_line_error(proc, "--init_from_model st", "n_layer", "the preset small's", "leave --config_file out")
    assert not (work / "runs" / "tuned").exists()


def test_init_checkpoint_needs_init_from_model(tmp_path: Path) -> None:
    proc = run_cli(["train", "--config_file", "tiny", "--input_file", str(SHAKESPEARE), "--init_checkpoint", "last"],
                   cwd=tmp_path)
    assert_one_line_error(proc, "--init_checkpoint", "--init_from_model")
    assert not (tmp_path / "runs").exists()


# --- gptwiz runs ------------------------------------------------------------------------------------------------------

def test_runs_shows_the_iteration_a_resume_continues_from(tmp_path_factory: pytest.TempPathFactory,
                                                          tmp_path: Path) -> None:
    work = run_copy(tmp_path_factory, tmp_path)
    run = work / "runs" / NAME
    stopped_at = json.loads((run / "status.json").read_text())["iter"]
    shutil.copytree(run, work / "runs" / "killed")
    # as a kill -9 after a later status and before its checkpoint leaves it: the checkpoint is iteration 0
    shutil.copyfile(run / "ckpt_best.pt", work / "runs" / "killed" / "ckpt_last.pt")
    rows = {r["name"]: r for r in json.loads(run_cli(["runs", "--json"], cwd=work, check=True).stdout)}
    assert rows[NAME]["checkpoint_iter"] == rows[NAME]["iter"] == stopped_at
    assert rows["killed"]["checkpoint_iter"] == 0 and rows["killed"]["iter"] == stopped_at
    proc = run_cli(["runs"], cwd=work, env=fault_env(COLUMNS="80"), check=True)
    lines = proc.stdout.splitlines()
    assert all(len(line) <= 80 for line in lines), proc.stdout
    assert "ckpt" in proc.stdout
    redo = "1" if stopped_at == 1 else f"1-{stopped_at}"
    assert (f"killed: a resume continues from its checkpoint at iteration 0 of {MAX_ITERS} "
            f"(iteration{'s' if '-' in redo else ''} {redo} will be redone)") in " ".join(proc.stdout.split())
    assert not any(line.startswith(f"{NAME}:") for line in lines)  # nothing redone: no note
    killed = summarize(RunPaths(work / "runs" / "killed"))
    assert killed.resume_text.startswith("from its checkpoint at iteration 0 of") and killed.checkpoint_text == "0"
    assert summarize(RunPaths(run)).resume_text == f"from its checkpoint at iteration {stopped_at} of {MAX_ITERS}"


def test_runs_without_runs_and_without_torch(tmp_path: Path) -> None:
    assert run_cli(["runs"], cwd=tmp_path, check=True).stdout == "No runs yet in ./runs\n"
    other = tmp_path / "elsewhere"
    assert run_cli(["runs", "--runs_dir", str(other)], cwd=tmp_path, check=True).stdout == f"No runs yet in {other}\n"
    assert folder_text("runs") == "./runs" and folder_text("./runs") == "./runs" and folder_text("/r") == "/r"
    # listing reads each checkpoint's metadata without importing torch
    run = tmp_path / "runs" / "r"
    run.mkdir(parents=True)
    torch.save({"model": {}, "iter": 7, "val_loss": None}, run / "ckpt_last.pt")
    (run / "status.json").write_text(json.dumps({"state": "stopped", "iter": 9, "max_iters": 10}))
    code = ("import sys\nfrom gptwiz.cli import main\nmain(['runs', '--json'])\n"
            "print('TORCH', any(m == 'torch' or m.startswith('torch.') for m in sys.modules), file=sys.stderr)\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)[0]["checkpoint_iter"] == 7 and "TORCH False" in proc.stderr
