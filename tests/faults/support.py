"""Helpers of the fault suite: a micro model that trains fast on a CPU, trainers started in the background,
waiting on what they write, and looking at a run folder the way a user would."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from conftest import SHAKESPEARE, cli_env

from gptwiz.common.atomic import is_temp_file
from gptwiz.runs.jsonfile import read_json
from gptwiz.runs.metrics import read_metrics

# One layer of 32 wide: about 1.6M parameters (nearly all the GPT-2 embedding), a step in a few ms, and a
# checkpoint of 20 MB, so that kill/resume cycles cost process start-up, not training.
MICRO = {"n_layer": 1, "n_head": 2, "n_embd": 32, "block_size": 32, "batch_size": 4, "learning_rate": 1e-3,
         "max_iters": 100, "warmup_iters": 5, "eval_interval": 10, "eval_iters": 4, "dropout": 0.0}

# The run of the session's trained template (tests/faults/conftest.py: trained_template, trained_copy).
TEMPLATE_RUN = "base"


def micro_preset(folder: Path, **overrides: Any) -> Path:
    path = folder / "micro.json"
    path.write_text(json.dumps({**MICRO, **overrides}))
    return path


def fault_env(**extra: str) -> dict[str, str]:
    """The CLI's environment, with one math thread: on a shared machine torch's default spin-waiting
    threads make a small model's step ten times slower."""
    return cli_env(OMP_NUM_THREADS="1", **extra)


def train_args(preset: Path, name: str, *extra: str, data_dir: Path | None = None) -> list[str]:
    args = ["train", "--config_file", str(preset), "--model_name", name, "--input_file", str(SHAKESPEARE),
            "--dtype", "float32", "--quiet", *extra]
    if data_dir is not None:
        args += ["--data_dir", str(data_dir)]
    return args


def start(args: list[str], cwd: Path, env: dict[str, str] | None = None, log: Path | None = None) -> subprocess.Popen:
    """`python -m gptwiz ARGS` in the background; its output goes to `log` (a pipe nobody reads would block it)."""
    out = open(log or os.devnull, "ab")
    try:
        return subprocess.Popen([sys.executable, "-m", "gptwiz", *args], cwd=cwd, env=env or fault_env(),
                                stdout=out, stderr=subprocess.STDOUT)
    finally:
        out.close()


def wait_for(predicate: Callable[[], Any], timeout: float = 120.0, interval: float = 0.02,
             proc: subprocess.Popen | None = None) -> Any:
    """Poll until `predicate()` is true (its value is returned); None if `proc` ended first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            return predicate() or None
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:g}s waiting for {getattr(predicate, '__name__', predicate)}")


def kill9(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)


def records(run: Path, kind: str | None = None) -> list[dict[str, Any]]:
    return [r for r in read_metrics(run / "metrics.jsonl") if kind is None or r.get("type") == kind]


def train_iters(run: Path) -> list[int]:
    return [int(r["iter"]) for r in records(run, "train")]


def status(run: Path) -> dict[str, Any]:
    return read_json(run / "status.json") or {}


def temp_files(run: Path) -> list[str]:
    try:
        return sorted(p.name for p in run.iterdir() if is_temp_file(p.name))
    except FileNotFoundError:
        return []


def every_line_is_json(path: Path) -> bool:
    for line in path.read_bytes().splitlines():
        try:
            if not isinstance(json.loads(line), dict):
                return False
        except ValueError:
            return False
    return True


def one_line(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def process_alive(pid: int) -> bool:
    """Still running (a zombie nobody has reaped yet has ended)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
