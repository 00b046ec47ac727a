"""The app's subcommands for real, in subprocesses: runs, stop, watch, wizard, and train --detach."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import TINY_FAST, assert_one_line_error, cli_env, run_cli
from tui_support import pty_session

from gptwiz.runs.jsonfile import read_json
from gptwiz.wizard.mode import choose_mode

RECORDED = Path(__file__).parent / "tui_data" / "recorded_run"


def runs_with(tmp_path: Path, *names: str) -> Path:
    runs = tmp_path / "runs"
    for name in names:
        shutil.copytree(RECORDED, runs / name)
    return runs


def test_runs_json_lists_state_progress_and_last_loss(tmp_path: Path) -> None:
    runs = runs_with(tmp_path, "done", "broken")
    status = json.loads((runs / "broken" / "status.json").read_text())
    status.update(state="failed", iter=42, error="boom")
    (runs / "broken" / "status.json").write_text(json.dumps(status))
    proc = run_cli(["runs", "--runs_dir", str(runs), "--json"], tmp_path, check=True)
    rows = {r["name"]: r for r in json.loads(proc.stdout)}
    assert rows["done"]["state"] == "finished" and rows["done"]["iter"] == 60 and rows["done"]["max_iters"] == 60
    assert rows["done"]["last_loss"] == pytest.approx(8.1295, abs=1e-4)
    assert rows["broken"]["state"] == "failed" and rows["broken"]["iter"] == 42


def test_runs_table_and_empty_folder(tmp_path: Path) -> None:
    runs = runs_with(tmp_path, "done")
    proc = run_cli(["runs", "--runs-dir", str(runs)], tmp_path, check=True)
    assert "done" in proc.stdout and "finished" in proc.stdout and "60/60" in proc.stdout and "8.1295" in proc.stdout
    empty = run_cli(["runs", "--runs_dir", str(tmp_path / "nothing")], tmp_path, check=True)
    assert empty.stdout == f"No runs yet in {tmp_path / 'nothing'}\n"


def test_stop_refuses_a_run_that_is_not_running(tmp_path: Path) -> None:
    runs = runs_with(tmp_path, "done")
    assert_one_line_error(run_cli(["stop", "done", "--runs_dir", str(runs)], tmp_path), "not running", "finished")
    assert_one_line_error(run_cli(["stop", "ghost", "--runs_dir", str(runs)], tmp_path), "no run 'ghost'", "done")


def test_watch_errors_are_one_line(tmp_path: Path) -> None:
    assert_one_line_error(run_cli(["watch", "--runs_dir", str(tmp_path / "none")], tmp_path), "no runs in")
    runs = runs_with(tmp_path, "done")
    # captured output is no terminal: the dashboard says so instead of drawing into a pipe
    assert_one_line_error(run_cli(["watch", "done", "--runs_dir", str(runs)], tmp_path), "needs a terminal",
                          "gptwiz runs")


def test_gptwiz_without_a_terminal_prints_a_hint(tmp_path: Path) -> None:
    for args in ([], ["wizard"], ["--plain"], ["--plain", "--runs_dir", "r"]):  # `gptwiz --plain` is the wizard too
        proc = run_cli(args, tmp_path)
        assert proc.returncode == 2 and "no terminal" in proc.stderr and "Traceback" not in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1


def test_choose_mode() -> None:
    assert choose_mode({"TERM": "xterm-256color"}, True, True) == "app"
    assert choose_mode({"TERM": "dumb"}, True, True) == "plain"
    assert choose_mode({"TERM": "xterm"}, True, True, plain_flag=True) == "plain"
    assert choose_mode({"TERM": "xterm"}, False, True) == "hint"
    assert choose_mode({"TERM": "xterm"}, True, False) == "hint"


def test_train_detach_validates_before_starting(tmp_path: Path, shakespeare: Path) -> None:
    proc = run_cli(["train", "--config_file", "nope", "--model_name", "x", "--input_file", str(shakespeare),
                    "--detach"], tmp_path)
    assert_one_line_error(proc, "nope")
    assert not (tmp_path / "runs" / "x").exists()


def _pty_run(args: list[str], cwd: Path, keys: bytes, wait_for: bytes, timeout: float = 60,
             term: str = "xterm-256color", extra_env: dict[str, str] | None = None) -> tuple[int | None, bytes]:
    """Run the CLI in a 100x30 pseudo-terminal, type `keys` once `wait_for` has been drawn, return (status, output)."""
    return pty_session(args, cwd, [(wait_for, keys)], cli_env(**(extra_env or {})), size=(100, 30), timeout=timeout,
                       term=term)


def test_watch_in_a_terminal_draws_the_run_and_q_leaves(tmp_path: Path) -> None:
    runs = runs_with(tmp_path, "done")
    code, out = _pty_run(["watch", "--runs_dir", str(runs)], tmp_path, b"q", b"FINISHED")
    assert code == 0, out[-2000:]
    assert b"FINISHED" in out and b"train.log" in out
    assert b"left gptwiz; run done finished at iteration" in out  # its real state, not "if it is training"


@pytest.mark.slow
def test_detached_training_survives_its_parent_and_stops_gracefully(tmp_path: Path, shakespeare: Path) -> None:
    """`train --detach` returns at once; the trainer runs in its own session; `stop` checkpoints it."""
    # Eager: 5000 iterations of bfloat16 would compile by default, tens of seconds on a CPU before the first step;
    # test_tui_e2e's run launched from the app is the detached run that compiles.
    args = ["train", *TINY_FAST, "--batch_size", "2", "--block_size", "32", "--model_name", "bg",
            "--input_file", str(shakespeare), "--max_iters", "5000", "--eval_interval", "100000", "--no-compile",
            "--detach"]
    started = time.time()
    proc = run_cli(args, tmp_path, check=True)
    assert time.time() - started < 60
    assert "started run bg in the background" in proc.stdout and "gptwiz watch bg" in proc.stdout
    status_path = tmp_path / "runs" / "bg" / "status.json"
    deadline = time.time() + 180
    while time.time() < deadline:
        status = read_json(status_path) or {}
        if status.get("state") == "running" and status.get("iter", 0) >= 2:
            break
        time.sleep(0.5)
    else:
        raise AssertionError(f"the detached trainer did not start: {(tmp_path / 'runs' / 'bg' / 'console.log').read_text()}")
    pid = int(status["pid"])
    assert os.getsid(pid) == pid  # its own session: a hang-up of our terminal does not reach it
    stop = run_cli(["stop", "bg", "--wait", "120"], tmp_path, check=True)
    assert "is stopped at iteration" in stop.stdout and "--resume" in stop.stdout
    final = read_json(status_path) or {}
    assert final["state"] == "stopped" and (tmp_path / "runs" / "bg" / "ckpt_last.pt").exists()
    assert "iter 1/5000" in (tmp_path / "runs" / "bg" / "console.log").read_text()


def test_a_detached_trainer_that_fails_at_once_is_reported_with_its_error(tmp_path: Path, shakespeare: Path) -> None:
    from gptwiz.runs.launch import launch_detached, wait_for_start

    run = launch_detached(["train", "--config_file", "nope", "--model_name", "x", "--input_file", str(shakespeare)],
                          runs_dir=tmp_path / "runs", name="x", cwd=tmp_path, env=cli_env())
    outcome = wait_for_start(run, timeout=120)
    assert not outcome.started and outcome.exit_code == 2
    assert "nope" in outcome.message and "gptwiz train: error" in outcome.message
    assert run.console_log.exists() and run.argv[-1] == "--quiet"
    assert not (tmp_path / "runs" / "x" / "status.json").exists()


def test_no_torch_on_the_way_to_the_wizard_and_its_decisions(tmp_path: Path) -> None:
    """The first screen, hardware detection, the recommendation and the estimate never import torch."""
    code = (
        "import sys\n"
        "import gptwiz.cli, gptwiz.tui.app, gptwiz.tui.screens.welcome, gptwiz.tui.screens.use_case\n"
        "import gptwiz.tui.screens.hardware, gptwiz.tui.screens.dataset, gptwiz.tui.screens.recommendation\n"
        "import gptwiz.tui.screens.probe, gptwiz.tui.screens.launch, gptwiz.tui.screens.dashboard, gptwiz.plain\n"
        "from gptwiz.planning.hardware import detect_hardware, read_gpu_stats\n"
        "from gptwiz.planning.recommend import recommend\n"
        "detect_hardware(); read_gpu_stats(); recommend('rag', 24, 300_000_000)\n"
        "print('torch' in sys.modules)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, env=cli_env())
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"
