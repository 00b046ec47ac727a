"""Shared fixtures: real text, the offline tokenizer cache, and a way to run the real CLI in a subprocess."""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
SHAKESPEARE = SHARED / "data" / "tinyshakespeare.txt"
TIKTOKEN_CACHE = SHARED / "tiktoken"

os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(TIKTOKEN_CACHE))


def _xdist_workers() -> int:
    return int(os.environ.get("PYTEST_XDIST_WORKER_COUNT") or 1)


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


# torch starts a math thread per core in every process. Under `-n 2` on 2 cores that makes twice as many
# spin-waiting threads as cores, in the workers and in every trainer they start, and a small model's step then
# takes 1.5 to 4 times as long. So each worker gets its share of the cores: set before torch is imported, it
# holds in this process and in every process it starts. (Without xdist torch's default stays, and
# `train --nproc N` divides the cores among its ranks itself.)
if _xdist_workers() > 1:
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, _cores() // _xdist_workers())))

# A suite started in the background by a non-interactive shell (`cmd &`, nohup in a script) inherits SIGINT
# ignored, and an ignored signal stays ignored across exec: every gptwiz the tests start would then never see
# the Ctrl-C the tests send. A handler of our own is reset to the default at exec instead.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

# The tiny preset shrunk for CPU tests: the architecture is the preset's, the batch and block are not.
TINY_FAST = ["--config_file", "tiny", "--batch_size", "8", "--block_size", "64", "--eval_iters", "2", "--quiet"]


@pytest.fixture
def shakespeare() -> Path:
    return SHAKESPEARE


def session_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of this test session that every pytest-xdist worker sees (their base temporaries share a parent)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def build_once(folder: Path, build: Callable[[Path], None]) -> Path:
    """`folder`, made by `build(folder)` once a test session: under xdist the first worker to ask builds it while
    holding a lock, and the others wait for it and use the same folder. What a failed build left is started over."""
    with open(f"{folder}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        done = Path(f"{folder}.done")
        if not done.exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
            build(folder)
            done.touch()
    return folder


def cli_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["TIKTOKEN_CACHE_DIR"] = str(TIKTOKEN_CACHE)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def run_cli(args: list[str], cwd: Path, timeout: float = 600, env: dict[str, str] | None = None,
            check: bool = False) -> subprocess.CompletedProcess[str]:
    """Run `python -m gptwiz ARGS` for real, in `cwd`, and capture its output."""
    proc = subprocess.run([sys.executable, "-m", "gptwiz", *args], cwd=cwd, env=env or cli_env(),
                          capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"gptwiz {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


def assert_one_line_error(proc: subprocess.CompletedProcess[str], *fragments: str) -> None:
    """Bad input: exit status 2, exactly one line on stderr, no traceback, naming what was wrong."""
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    lines = [l for l in proc.stderr.splitlines() if l.strip()]
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The `slow` tests first, so that under pytest-xdist the many short tests fill in around them instead of
    one long test running alone at the end while the other workers idle (pyproject.toml sends each worker one
    test at a time). The order within each group is kept."""
    items[:] = sorted(items, key=lambda item: item.get_closest_marker("slow") is None)
