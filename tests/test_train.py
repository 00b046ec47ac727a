import json
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import SHAKESPEARE, TINY_FAST, assert_one_line_error, build_once, cli_env, run_cli, session_folder

from gptwiz.runs.metrics import read_metrics
from gptwiz.training.checkpoint import load_checkpoint


def _metrics(run: Path, kind: str = "train") -> list[dict]:
    return [r for r in read_metrics(run / "metrics.jsonl") if r.get("type") == kind]


def _status(run: Path) -> dict:
    return json.loads((run / "status.json").read_text())


@dataclass(frozen=True)
class TrainedRun:
    cwd: Path    # where `gptwiz train` ran: its runs/ and data/ folders are here
    run: Path    # cwd / "runs" / NAME
    stdout: str


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> TrainedRun:
    """50 iterations of the tiny preset on Shakespeare, trained once a session (`build_once`): the test of its loss
    reads it, and the tests that need some trained run start from a copy."""

    def train(folder: Path) -> None:
        proc = run_cli(["train", "--config_file", "tiny", "--model_name", "drop", "--input_file", str(SHAKESPEARE),
                        "--max_iters", "50", "--batch_size", "16", "--block_size", "64", "--eval_iters", "2",
                        "--quiet"], cwd=folder, check=True)
        (folder / "stdout.txt").write_text(proc.stdout)

    folder = build_once(session_folder(tmp_path_factory) / "tiny_run", train)
    return TrainedRun(cwd=folder, run=folder / "runs" / "drop", stdout=(folder / "stdout.txt").read_text())


def _copy_run(trained: TrainedRun, runs_dir: Path, name: str) -> Path:
    return Path(shutil.copytree(trained.run, runs_dir / name))


@pytest.mark.slow
def test_tiny_loss_falls_well_below_start_within_50_iterations(tiny_run):
    run = tiny_run.run
    losses = [r["loss"] for r in _metrics(run)]
    assert len(losses) == 50
    assert losses[0] > 10.0  # about ln(50257) = 10.8 at initialisation
    assert sum(losses[-5:]) / 5 < 8.5, losses[-5:]
    status = _status(run)
    assert status["state"] == "finished" and status["iter"] == 50
    config = json.loads((run / "config.json").read_text())
    assert config["preset"] == "tiny" and config["train"]["batch_size"] == 16
    assert config["data"]["kind"] == "input_file"
    for rec in _metrics(run):
        assert {"iter", "loss", "lr", "tokens_per_sec", "mfu", "elapsed_s", "peak_mem_bytes"} <= set(rec)
    evals = _metrics(run, "eval")
    assert evals[0]["iter"] == 0 and evals[-1]["iter"] == 50
    assert (run / "ckpt_last.pt").exists() and (run / "ckpt_best.pt").exists()
    assert "finished at iteration 50" in (run / "train.log").read_text()
    # The token cache is reused by the next run of the same file.
    assert len(list((tiny_run.cwd / "data" / "cache").iterdir())) == 1
    assert "finished" in tiny_run.stdout


def _start(args: list[str], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "gptwiz", *args], cwd=cwd, env=cli_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(predicate, timeout: float = 300) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError("timed out waiting")


# What a kill and a resume must keep does not depend on the size of a step: these runs take the smallest that
# keeps the kill's window (from the iteration it waits for to the end of the run) seconds wide.
SMALL_STEPS = [*TINY_FAST, "--batch_size", "4", "--block_size", "32"]


@pytest.mark.slow
def test_kill_9_then_resume_continues_from_last_checkpoint(tmp_path, shakespeare):
    args = ["train", *SMALL_STEPS, "--model_name", "k", "--input_file", str(shakespeare),
            "--max_iters", "40", "--eval_interval", "10"]
    run = tmp_path / "runs" / "k"
    proc = _start(args, tmp_path)
    _wait_for(lambda: any(r["iter"] >= 23 for r in _metrics(run)) if (run / "metrics.jsonl").exists() else False)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    state = load_checkpoint(run / "ckpt_last.pt")  # whole, and loadable with weights_only
    ckpt_iter = state["iter"]
    assert ckpt_iter in (20, 30)
    assert not [p for p in run.iterdir() if p.name.endswith(".pt") and p.name not in ("ckpt_last.pt", "ckpt_best.pt")]
    assert _status(run)["state"] == "running"  # what the dead trainer left; viewers see it as failed

    resumed = run_cli(["train", "--model_name", "k", "--resume", "--quiet"], cwd=tmp_path, check=True)
    assert f"at iteration {ckpt_iter}" in resumed.stdout
    iters = [r["iter"] for r in _metrics(run)]
    assert iters == sorted(iters) and iters[-1] == 40
    assert iters.count(ckpt_iter + 1) == 1  # records past the checkpoint were replaced, not duplicated
    status = _status(run)
    assert status["state"] == "finished" and status["iter"] == 40
    assert load_checkpoint(run / "ckpt_last.pt")["iter"] == 40


@pytest.mark.slow
def test_resume_reproduces_the_uninterrupted_run(tmp_path, shakespeare):
    """Same optimizer state, schedule position and data order: a kill and a resume change no loss."""
    base = ["train", *SMALL_STEPS, "--input_file", str(shakespeare), "--eval_interval", "6", "--max_iters", "24",
            "--dtype", "float32", "--dropout", "0"]
    run_cli([*base, "--model_name", "whole"], cwd=tmp_path, check=True)
    whole = [r["loss"] for r in _metrics(tmp_path / "runs" / "whole")]
    cut = tmp_path / "runs" / "cut"
    proc = _start([*base, "--model_name", "cut"], tmp_path)
    _wait_for(lambda: (cut / "metrics.jsonl").exists() and any(r["iter"] >= 8 for r in _metrics(cut)))
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    if load_checkpoint(cut / "ckpt_last.pt")["iter"] == 24:
        pytest.skip("the run finished before it could be killed")
    run_cli(["train", "--model_name", "cut", "--resume", "--quiet"], cwd=tmp_path, check=True)
    resumed = [r["loss"] for r in _metrics(cut)]
    assert len(resumed) == 24
    assert resumed == pytest.approx(whole, abs=1e-4)


@pytest.mark.slow
def test_sigint_stops_gracefully_with_a_checkpoint(tmp_path, shakespeare):
    run = tmp_path / "runs" / "s"
    # Eager: 5000 iterations of bfloat16 would compile by default, tens of seconds on a CPU before the first step,
    # and the stop is the same either way (test_tui_e2e's run launched from the app compiles, and is stopped).
    proc = _start(["train", *TINY_FAST, "--model_name", "s", "--input_file", str(shakespeare),
                   "--max_iters", "5000", "--no-compile"], tmp_path)
    _wait_for(lambda: (run / "metrics.jsonl").exists() and len(_metrics(run)) >= 3)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    status = _status(run)
    assert status["state"] == "stopped"
    assert load_checkpoint(run / "ckpt_last.pt")["iter"] == status["iter"] >= 3
    assert "Traceback" not in err


def test_init_from_model_starts_from_the_source_runs_loss(tmp_path, shakespeare, tiny_run):
    common = ["train", *TINY_FAST, "--input_file", str(shakespeare)]
    base_last = _metrics(_copy_run(tiny_run, tmp_path / "runs", "base"))[-1]["loss"]  # 50 iterations of tiny
    run_cli([*common, "--model_name", "adapted", "--max_iters", "3", "--learning_rate", "5e-5",
             "--init_from_model", "checkpoints/base"], cwd=tmp_path, check=True)
    first = _metrics(tmp_path / "runs" / "adapted")[0]["loss"]
    assert first < 9.0 and abs(first - base_last) < 0.5, (first, base_last)
    config = json.loads((tmp_path / "runs" / "adapted" / "config.json").read_text())
    assert config["init_from"].endswith("base")


@pytest.mark.slow
def test_guide_example_1_runs_as_printed(tmp_path, shakespeare):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "blog_posts.txt").write_text(shakespeare.read_text()[:200_000])
    # The guide's line, one iteration of a small batch long: the preset's own batch of 32 x 256 tokens is a step
    # of half a minute on one core, and the estimate tests train the preset's shapes already.
    proc = run_cli(["train", "--config_file", "presets/small.json", "--model_name", "my_blog_model",
                    "--input_file", "data/blog_posts.txt", "--max_iters", "1", "--batch_size", "2"], cwd=tmp_path,
                   check=True)
    status = _status(tmp_path / "runs" / "my_blog_model")
    assert status["state"] == "finished" and status["iter"] == 1
    assert json.loads((tmp_path / "runs" / "my_blog_model" / "config.json").read_text())["preset"] == "small"
    assert "Traceback" not in proc.stderr


def test_sample_prints_a_continuation(tmp_path, tiny_run):
    _copy_run(tiny_run, tmp_path / "runs", "smp")
    proc = run_cli(["sample", "--model_name", "smp", "--prompt", "ROMEO:", "--max_new_tokens", "12",
                    "--temperature", "0.8", "--top_k", "50", "--seed", "1"], cwd=tmp_path, check=True)
    assert proc.stdout.startswith("ROMEO:") and len(proc.stdout) > len("ROMEO:")


def test_sample_json_reports_each_sample_with_its_checkpoint_and_speed(tmp_path, tiny_run):
    _copy_run(tiny_run, tmp_path / "runs", "smj")
    proc = run_cli(["sample", "--model_name", "smj", "--prompt", "ROMEO:", "--max_new_tokens", "5", "--num_samples",
                    "2", "--json", "--seed", "1"], cwd=tmp_path, check=True)
    records = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(records) == 2
    for r in records:
        assert set(r) == {"text", "new_tokens", "tokens_per_sec", "checkpoint", "iter"}
        assert r["new_tokens"] == 5 and r["tokens_per_sec"] > 0 and r["text"].startswith("ROMEO:")
        assert r["checkpoint"] in ("ckpt_best.pt", "ckpt_last.pt") and isinstance(r["iter"], int)


# --- bad input ---------------------------------------------------------------------------------------

def test_missing_input_file(tmp_path):
    assert_one_line_error(run_cli(["train", *TINY_FAST, "--input_file", "nope.txt"], cwd=tmp_path), "nope.txt")


def test_empty_input_file(tmp_path):
    (tmp_path / "empty.txt").write_text("")
    assert_one_line_error(run_cli(["train", *TINY_FAST, "--input_file", "empty.txt"], cwd=tmp_path),
                          "empty.txt", "empty")


def test_input_shorter_than_one_block(tmp_path):
    (tmp_path / "short.txt").write_text("To be, or not to be, that is the question.\n")
    proc = run_cli(["train", *TINY_FAST, "--input_file", "short.txt"], cwd=tmp_path)
    assert_one_line_error(proc, "short.txt", "block")
    assert not (tmp_path / "runs" / "run").exists()


def test_unknown_preset(tmp_path, shakespeare):
    proc = run_cli(["train", "--config_file", "huge", "--input_file", str(shakespeare)], cwd=tmp_path)
    assert_one_line_error(proc, "huge", "tiny", "small")


def test_malformed_preset_names_file_and_key(tmp_path, shakespeare):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"n_layer": 2, "n_head": 3, "n_embd": 64, "block_size": 32, "batch_size": 2,
                               "learning_rate": 3e-4, "max_iters": 5}))
    proc = run_cli(["train", "--config_file", str(bad), "--input_file", str(shakespeare)], cwd=tmp_path)
    assert_one_line_error(proc, str(bad), "n_embd")


@pytest.mark.parametrize("name", ["../escape", "a/b", "..", "/abs"])
def test_model_name_cannot_name_a_path(tmp_path, shakespeare, name):
    proc = run_cli(["train", *TINY_FAST, "--model_name", name, "--input_file", str(shakespeare)], cwd=tmp_path)
    assert_one_line_error(proc, "--model_name")
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_resume_without_checkpoint(tmp_path):
    proc = run_cli(["train", "--model_name", "ghost", "--resume"], cwd=tmp_path)
    assert_one_line_error(proc, "ghost", "resume")


def test_existing_run_is_not_overwritten(tmp_path, shakespeare):
    args = ["train", *TINY_FAST, "--model_name", "once", "--input_file", str(shakespeare), "--max_iters", "1"]
    run_cli(args, cwd=tmp_path, check=True)
    before = (tmp_path / "runs" / "once" / "ckpt_last.pt").read_bytes()
    assert_one_line_error(run_cli(args, cwd=tmp_path), "once", "--resume")
    assert (tmp_path / "runs" / "once" / "ckpt_last.pt").read_bytes() == before


def test_bad_flag_values_are_one_line(tmp_path):
    assert_one_line_error(run_cli(["train", "--max_iters", "-5"], cwd=tmp_path), "-5")
    assert_one_line_error(run_cli(["train", "--learning-rate", "fast"], cwd=tmp_path), "fast")


def test_offline_without_tokenizer_cache_is_one_line(tmp_path, shakespeare):
    env = cli_env(TIKTOKEN_CACHE_DIR=str(tmp_path / "no-cache"), HTTPS_PROXY="http://127.0.0.1:9",
                  HTTP_PROXY="http://127.0.0.1:9")
    proc = run_cli(["train", *TINY_FAST, "--input_file", str(shakespeare)], cwd=tmp_path, env=env)
    assert_one_line_error(proc, "TIKTOKEN_CACHE_DIR")


def test_help_is_fast_and_does_not_import_torch():
    code = ("import sys, time; t = time.perf_counter(); from gptwiz.cli import build_parser; build_parser(); "
            "print('torch' in sys.modules, time.perf_counter() - t)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out[0] == "False" and float(out[1]) < 0.5
