"""`gptwiz probe` end to end: the real trainer in a child process, on real text, judged."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import assert_one_line_error, cli_env, run_cli

from gptwiz.common.faults import FAKE_OOM_ENV
from gptwiz.runs.jsonfile import read_json
from gptwiz.runs.lock import RunLock
from gptwiz.runs.metrics import read_metrics
from gptwiz.runs.paths import RunPaths
from gptwiz.runs.status import pid_alive
from gptwiz.training.probe import ProbeOptions, is_oom_message, run_probe

# Small enough for a loaded 2-core CPU; the tiny preset's architecture is unchanged.
FAST = ["--config_file", "tiny", "--batch_size", "4", "--block_size", "32", "--no-compile"]

JSON_KEYS = {"iters", "verdict", "advice", "losses", "loss_first", "loss_last", "loss_slope", "relative_drop",
             "tokens_per_sec", "sec_per_iter", "warmup_s", "projected_full_run_s", "peak_memory_bytes",
             "memory_kind", "device_memory_total_bytes", "estimate_bytes", "batch_size", "grad_accum"}


def _probe_json(proc) -> dict:
    assert "Traceback" not in proc.stderr, proc.stderr
    return json.loads(proc.stdout)


@pytest.mark.slow
def test_100_iteration_probe_of_tiny_passes_then_the_same_name_trains(tmp_path, shakespeare):
    proc = run_cli(["probe", *FAST, "--input_file", str(shakespeare), "--learning_rate", "1e-3",
                    "--model_name", "tiny1", "--json"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    result = _probe_json(proc)
    assert JSON_KEYS <= set(result)
    assert result["verdict"] == "pass", result["reasons"]
    assert result["advice"] == []
    assert result["iters"] == 100 and len(result["losses"]) == 100
    assert result["loss_slope"] < 0
    assert result["relative_drop"] > 0.2 and result["loss_last"] < result["loss_first"]
    assert result["batch_size"] == 4 and result["grad_accum"] == 1 and result["memory_kind"] == "cpu_rss"
    assert 0 < result["peak_memory_bytes"] < result["device_memory_total_bytes"]
    assert result["sec_per_iter"] > 0 and result["tokens_per_sec"] == pytest.approx(4 * 32 / result["sec_per_iter"])
    # The tiny preset's 2000 iterations, plus its evaluations, at the measured rate.
    assert result["projected_full_run_s"] >= 2000 * result["sec_per_iter"]
    assert result["warmup_s"] > 0 and result["warmup_iters"] == 10

    run = tmp_path / "runs" / "tiny1"
    assert read_json(run / "probe.json") == result
    records = read_metrics(run / "metrics.jsonl")
    assert [r["iter"] for r in records] == list(range(1, 101)) and {r["type"] for r in records} == {"probe"}
    assert [r["loss"] for r in records] == result["losses"]
    assert not list(run.glob("*.pt"))
    assert read_json(run / "status.json")["probe"] is True

    # The real run under the probe's name starts in the same folder, with its own metrics.
    run_cli(["train", "--config_file", "tiny", "--model_name", "tiny1", "--input_file", str(shakespeare),
             "--max_iters", "3", "--batch_size", "4", "--block_size", "32", "--eval_iters", "1", "--quiet",
             "--no-compile"], cwd=tmp_path, check=True)
    types = {r["type"] for r in read_metrics(run / "metrics.jsonl")}
    assert types == {"train", "eval"}
    assert read_json(run / "config.json")["probe"] is False
    assert (run / "ckpt_last.pt").exists() and (run / "probe.json").exists()
    # ... and a probe may not reuse the name of a real run.
    again = run_cli(["probe", *FAST, "--input_file", str(shakespeare), "--model_name", "tiny1"], cwd=tmp_path)
    assert_one_line_error(again, "tiny1", "not a probe")


@pytest.mark.slow
def test_out_of_memory_retries_at_half_batch_keeping_the_effective_batch(tmp_path, shakespeare):
    proc = run_cli(["probe", *FAST, "--batch_size", "8", "--grad_accum", "1", "--input_file", str(shakespeare),
                    "--iters", "10", "--json"], cwd=tmp_path, env=cli_env(**{FAKE_OOM_ENV: "2"}))
    result = _probe_json(proc)
    assert [(a["batch_size"], a["grad_accum"], a["outcome"]) for a in result["attempts"]] == \
        [(8, 1, "oom"), (4, 2, "oom"), (2, 4, "ok")]
    assert "injected" in result["attempts"][0]["detail"]
    assert result["batch_size"] == 2 and result["grad_accum"] == 4
    assert result["batch_size"] * result["grad_accum"] == 8
    assert result["iters"] == 10 and result["verdict"] in ("pass", "warn")
    assert proc.returncode == 0


def test_memory_limit_crossed_even_at_batch_1_fails(tmp_path, shakespeare):
    # 0.05 GB is less than Python with torch loaded: every attempt crosses it, down to batch 1.
    proc = run_cli(["probe", *FAST, "--batch_size", "2", "--input_file", str(shakespeare),
                    "--memory_limit_gb", "0.05", "--json"], cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    result = _probe_json(proc)
    assert [(a["batch_size"], a["grad_accum"], a["outcome"]) for a in result["attempts"]] == [(2, 1, "oom"), (1, 2, "oom")]
    assert "--memory_limit_gb 0.05" in result["attempts"][-1]["detail"]
    assert result["verdict"] == "fail"
    assert result["advice"] == ["--block_size 16 (half the activation memory)"]  # tiny is the smallest preset
    assert JSON_KEYS <= set(result)


def test_data_too_small_for_one_block_fails_with_a_panel(tmp_path):
    text = tmp_path / "short.txt"
    text.write_text("To be, or not to be, that is the question. " * 30)  # about 330 tokens, 10% held out
    proc = run_cli(["probe", "--config_file", "tiny", "--input_file", str(text), "--no-compile"], cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    assert "FAIL" in proc.stdout and "--block_size 32" in proc.stdout, proc.stdout
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("args,fragments", [
    (["--config_file", "nosuch"], ["nosuch"]),
    (["--config_file", "tiny", "--input_file", "missing.txt"], ["missing.txt", "does not exist"]),
    (["--config_file", "tiny", "--iters", "5"], ["--iters 5", "at least 10"]),
    (["--config_file", "tiny", "--max_iters", "5"], ["5 iterations", "its own probe"]),
    (["--config_file", "tiny", "--memory_limit_gb", "-1"], ["--memory_limit_gb"]),
    (["--config_file", "tiny", "--dtype", "float8"], ["float8"]),
    (["--config_file", "tiny", "--model_name", "../x"], ["--model_name"]),
])
def test_bad_input_is_one_line_exit_2(tmp_path, shakespeare, args, fragments):
    if "--input_file" not in args:
        args = [*args, "--input_file", str(shakespeare)]
    proc = run_cli(["probe", *args], cwd=tmp_path)
    assert_one_line_error(proc, *fragments)
    assert not (tmp_path / "runs").exists()


def test_a_run_folder_in_use_is_refused(tmp_path, shakespeare):
    busy = tmp_path / "runs" / "busy"
    busy.mkdir(parents=True)
    lock = RunLock(RunPaths(busy))  # held by this test process, as a trainer of the run holds it
    lock.acquire()
    try:
        proc = run_cli(["probe", *FAST, "--input_file", str(shakespeare), "--model_name", "busy"], cwd=tmp_path)
        assert_one_line_error(proc, "busy", f"process {os.getpid()}")
        assert sorted(os.listdir(busy)) == ["lock"]
    finally:
        lock.release()


def test_python_api_streams_progress_live_and_cancels_cleanly(tmp_path, shakespeare):
    seen: list[int] = []
    run = tmp_path / "runs" / "live"

    def on_progress(p):
        seen.append(p.iter)
        # The dashboard's view: the record is already in the run's metrics.jsonl when we hear of it (the
        # child may have written the next one since).
        assert p.iter in [r["iter"] for r in read_metrics(run / "metrics.jsonl")]

    opts = ProbeOptions(config_file="tiny", input_file=str(shakespeare), iters=40, batch_size=2, block_size=32,
                        compile=False, model_name="live", runs_dir=str(tmp_path / "runs"),
                        data_dir=str(tmp_path / "data"))
    result = run_probe(opts, on_progress=on_progress, should_cancel=lambda: len(seen) >= 3)
    assert result.verdict == "cancelled"
    assert seen[:3] == [1, 2, 3] and result.iters == len(seen) < 40
    # No verdict on the loss and no advice: it was stopped in warm-up (4 iterations of 40) and is unfinished.
    assert result.advice == [] and result.loss_verdict is None
    assert result.loss_unjudged_reason.startswith(f"cancelled after {result.iters} of 40 iterations")
    assert result.reasons[0] == result.loss_unjudged_reason and result.peak_memory_bytes
    status = read_json(run / "status.json")
    assert status["state"] == "stopped"  # SIGTERM: the trainer finished its step and left
    assert not pid_alive(int(status["pid"]))
    assert not (run / "probe.json").exists() and not (run / "lock").exists()
    assert json.dumps(result.to_json())


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupting_the_command_stops_the_child(tmp_path, shakespeare, sig):
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "gptwiz", "probe", *FAST, "--input_file", str(shakespeare),
                             "--iters", "200", "--model_name", "int", "--json"], cwd=tmp_path,
                            env=cli_env(TMPDIR=str(scratch)), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    run = tmp_path / "runs" / "int"
    deadline = time.time() + 300
    while time.time() < deadline and (read_json(run / "status.json") or {}).get("state") != "running":
        time.sleep(0.2)
    child = int(read_json(run / "status.json")["pid"])
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert err.strip() == "gptwiz probe: interrupted"
    assert not pid_alive(child)
    assert read_json(run / "status.json")["state"] == "stopped"
    assert [p for p in os.listdir(scratch) if p.startswith("gptwiz")] == []


def test_a_probe_stopped_from_outside_says_why_it_has_no_verdict(tmp_path, shakespeare):
    # `gptwiz stop NAME` on a named probe sends its trainer SIGTERM, as here.
    proc = subprocess.Popen([sys.executable, "-m", "gptwiz", "probe", *FAST, "--input_file", str(shakespeare),
                             "--iters", "200", "--model_name", "stopped", "--json"], cwd=tmp_path, env=cli_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    run = tmp_path / "runs" / "stopped"
    deadline = time.time() + 300
    while time.time() < deadline and (read_json(run / "status.json") or {}).get("state") != "running":
        time.sleep(0.2)
    os.kill(int(read_json(run / "status.json")["pid"]), signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, err  # no verdict to go on
    result = json.loads(out)
    assert result["verdict"] == "cancelled" and result["advice"] == [] and result["loss_verdict"] is None
    assert result["loss_unjudged_reason"].startswith(f"cancelled after {result['iters']} of 200 iterations")
    assert result["attempts"][-1]["outcome"] == "cancelled" and "stopped" in result["attempts"][-1]["detail"]
    assert not (run / "probe.json").exists()


def test_a_flat_probe_far_under_the_presets_rate_advises_the_presets_rate(tmp_path, shakespeare):
    etas = []
    opts = ProbeOptions(config_file="tiny", input_file=str(shakespeare), iters=12, batch_size=2, block_size=32,
                        learning_rate=1e-6, compile=False, data_dir=str(tmp_path / "data"))
    result = run_probe(opts, on_progress=lambda p: etas.append((p.iter, p.eta_s, p.sec_per_iter, p.eta_rough)))
    assert result.verdict == "warn" and result.loss_verdict == "flat", result.reasons
    assert [a.to_json() for a in result.advice] == [{"learning_rate": 1e-3}]  # tiny's own rate, in one step
    assert "the preset's own rate, 1000x higher" in str(result.advice[0])
    # The probe's own ETA after every iteration: the iterations left at the warm step time.
    assert [e[0] for e in etas] == list(range(1, 13))
    assert all(eta is not None and eta >= 0 and rate > 0 for _, eta, rate, _ in etas)
    assert [rough for *_, rough in etas] == [True, True] + [False] * 10
    assert etas[-1][1] == 0 and etas[5][1] == pytest.approx(6 * etas[5][2])


def test_a_run_shorter_than_the_probe_is_its_own_probe(tmp_path, shakespeare):
    """The guide's 100 iterations, for a run of 12: the probe trains the 12 and says so, not 100."""
    said = []
    opts = ProbeOptions(config_file="tiny", input_file=str(shakespeare), max_iters=12, batch_size=2, block_size=32,
                        compile=False, data_dir=str(tmp_path / "data"))
    assert opts.iters == 100
    result = run_probe(opts, on_progress=lambda p: said.append((p.iters, p.message)) if p.message else None)
    assert result.iters == result.iters_requested == result.full_run_iters == 12
    assert said[0][0] == 12 and "the probe trains all 12 (the run is its own probe)" in said[0][1]


def test_unnamed_probe_leaves_nothing_behind(tmp_path, shakespeare):
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    proc = run_cli(["probe", *FAST, "--input_file", str(shakespeare), "--iters", "10", "--json"], cwd=tmp_path,
                   env=cli_env(TMPDIR=str(scratch)))
    result = _probe_json(proc)
    assert result["iters"] == 10 and result["run_dir"] is None
    assert sorted(os.listdir(tmp_path)) == ["data", "tmp"]  # the token cache only: no runs/
    # The child's temporary run folder is gone (torch keeps its own compiler cache there).
    assert [p for p in os.listdir(scratch) if p.startswith("gptwiz")] == []


def test_oom_messages_are_recognised():
    assert is_oom_message("OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB")
    assert is_oom_message("RuntimeError: [enforce fail at alloc_cpu.cpp:117] . DefaultCPUAllocator: "
                          "can't allocate memory: you tried to allocate 123 bytes")
    assert not is_oom_message("ValueError: sequence of length 300 is longer than block_size 256")
    assert not is_oom_message(None)
