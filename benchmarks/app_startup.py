"""Time from typing `gptwiz` to its first screen being drawn (goal: under a second, no torch import).

`python -m gptwiz` runs in a real pseudo-terminal (100x30, an empty runs folder); the clock stops when
the welcome screen's title has been written to the terminal. Beside it, the same machine's floor:
`python -c pass`, and `gptwiz --help`. Median of REPEAT runs each, side by side (the machine is noisy).

    python benchmarks/app_startup.py [--repeat 7]
"""

from __future__ import annotations

import argparse
import os
import pty
import select
import statistics
import subprocess
import sys
import tempfile
import time


def time_first_screen(cwd: str, marker: bytes = b"Welcome", timeout: float = 30.0) -> float:
    master, slave = pty.openpty()
    env = dict(os.environ, TERM="xterm-256color", COLUMNS="100", LINES="30")
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "gptwiz"], cwd=cwd, stdin=slave, stdout=slave, stderr=slave,
                            env=env, start_new_session=True)
    os.close(slave)
    out = b""
    elapsed = float("nan")
    try:
        while time.perf_counter() - t0 < timeout:
            ready, _, _ = select.select([master], [], [], 0.05)
            if ready:
                try:
                    out += os.read(master, 1 << 16)
                except OSError:
                    break
                if marker in out:
                    elapsed = time.perf_counter() - t0
                    break
        os.write(master, b"q")
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
    finally:
        os.close(master)
    return elapsed


def time_command(args: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(args, capture_output=True, check=True)
    return time.perf_counter() - t0


def torch_on_startup_path() -> bool:
    """Whether importing everything the first screen needs pulls torch in."""
    code = ("import sys, gptwiz.cli, gptwiz.tui.app, gptwiz.tui.screens.welcome, gptwiz.tui.screens.use_case; "
            "print('torch' in sys.modules)")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "True"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args()
    rows: dict[str, list[float]] = {"python -c pass": [], "gptwiz --help": [], "gptwiz: first screen drawn": []}
    with tempfile.TemporaryDirectory() as cwd:
        for _ in range(args.repeat):
            rows["python -c pass"].append(time_command([sys.executable, "-c", "pass"]))
            rows["gptwiz --help"].append(time_command([sys.executable, "-m", "gptwiz", "--help"]))
            rows["gptwiz: first screen drawn"].append(time_first_screen(cwd))
    print(f"{'what':<28} {'median s':>9} {'min s':>7} {'max s':>7}")
    for name, values in rows.items():
        print(f"{name:<28} {statistics.median(values):>9.3f} {min(values):>7.3f} {max(values):>7.3f}")
    print(f"torch imported on the way to the first screen: {torch_on_startup_path()}")


if __name__ == "__main__":
    main()
