"""`train --resume` of a run trained on an --input_file whose text changed, or is gone.

A changed file is named with what changed (its size, or its content at the same size) on the console and in
train.log, and the run goes on with the tokens it started with, as a resume on a changed --dataset_dir warns and
goes on; a missing file is refused in one line naming it, and the refused resume changes no byte of the run.
"""

from __future__ import annotations

from pathlib import Path

from conftest import SHAKESPEARE, assert_one_line_error, run_cli

from faults.support import fault_env, micro_preset


def _folder(run: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(run.iterdir()) if p.is_file()}


def test_resume_on_changed_or_missing_input_file(tmp_path: Path, report) -> None:
    text = tmp_path / "text.txt"
    text.write_bytes(SHAKESPEARE.read_bytes()[:20_000])
    preset = micro_preset(tmp_path, max_iters=1, eval_interval=1)
    common = ["--model_name", "r", "--input_file", str(text), "--data_dir", str(tmp_path / "data"), "--quiet"]
    run_cli(["train", "--config_file", str(preset), "--dtype", "float32", *common], cwd=tmp_path, env=fault_env(),
            check=True)
    run = tmp_path / "runs" / "r"

    with open(text, "ab") as f:
        f.write(b"\nAnd a line added since the run started.\n")
    proc = run_cli(["train", "--resume", "--max_iters", "2", *common], cwd=tmp_path, env=fault_env())
    assert proc.returncode == 0, proc.stderr
    warned = [line for line in proc.stdout.splitlines() if "changed since this run started" in line]
    assert len(warned) == 1 and "text.txt" in warned[0] and "20,000" in warned[0], proc.stdout
    assert "changed since this run started" in (run / "train.log").read_text()

    text.write_bytes(SHAKESPEARE.read_bytes()[20_000:40_000])  # the same size, other words
    proc = run_cli(["train", "--resume", "--max_iters", "3", *common], cwd=tmp_path, env=fault_env())
    assert proc.returncode == 0, proc.stderr
    assert "same size" in proc.stdout, proc.stdout

    text.unlink()
    before = _folder(run)
    proc = run_cli(["train", "--resume", "--max_iters", "4", *common], cwd=tmp_path, env=fault_env())
    assert_one_line_error(proc, "text.txt", "does not exist")
    assert _folder(run) == before
    report(fault="train --resume after the --input_file grew, after it changed at the same size, and once it is gone",
           trials=3, outcome="a changed file is named with its old and new size (or 'same size, other content') on "
                             "the console and in train.log, and the run goes on with its cached tokens; a missing "
                             "file is refused in one line naming it (exit 2), the run folder unchanged")
