"""CPU used by `gptwiz watch` while a run logs every iteration (goal: under 5% of one core).

A writer process plays the trainer: it appends one metrics.jsonl record per iteration at RATE
iterations/s, rewrites status.json every second and adds a train.log line per 10 iterations, as
train.py does. `gptwiz watch` runs in a real pseudo-terminal (100x30) for SECONDS; its CPU time
(user + system, from psutil) over the wall time is its share of one core. The terminal's output is
drained by this script, whose own CPU is not counted.

    python benchmarks/dashboard_cpu.py [--seconds 30] [--rates 10,50]
"""

from __future__ import annotations

import argparse
import json
import os
import pty
import select
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

WRITER = r"""
import json, math, os, sys, time
from pathlib import Path
from gptwiz.runs.lock import RunLock
from gptwiz.runs.paths import RunPaths
root, rate, seconds = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
RunLock(RunPaths(Path(root))).acquire()  # as the trainer does: viewers show a run running only while it is held
max_iters = 100000
status = {"name": "bench", "pid": os.getpid(), "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "error": None,
          "state": "running", "iter": 0, "max_iters": max_iters}
def write_status():
    tmp = os.path.join(root, ".status.tmp")
    with open(tmp, "w") as f: json.dump(status, f)
    os.replace(tmp, os.path.join(root, "status.json"))
write_status()
metrics = open(os.path.join(root, "metrics.jsonl"), "a")
log = open(os.path.join(root, "train.log"), "a")
t0 = time.time(); last_status = t0; it = 0
while time.time() - t0 < seconds:
    it += 1
    loss = 10.8 * math.exp(-it / 3000) + 2.0
    metrics.write(json.dumps({"type": "train", "iter": it, "loss": loss, "lr": 3e-4, "tokens_per_sec": 50000.0,
                              "mfu": 0.31, "dt_s": 1 / rate, "elapsed_s": time.time() - t0,
                              "peak_mem_bytes": 3 << 30, "time": time.time()}) + "\n"); metrics.flush()
    if it % 10 == 0:
        log.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} iter {it} loss {loss:.4f}\n"); log.flush()
    if it % 250 == 0:
        metrics.write(json.dumps({"type": "eval", "iter": it, "train_loss": loss, "val_loss": loss + 0.1,
                                  "best_val_loss": loss + 0.1, "time": time.time()}) + "\n"); metrics.flush()
    if time.time() - last_status > 1.0:
        status.update(iter=it, last_loss=loss); write_status(); last_status = time.time()
    time.sleep(max(0.0, t0 + it / rate - time.time()))
status.update(state="finished", iter=it); write_status()
"""

CONFIG = {"name": "bench", "preset": "small", "model": {"n_layer": 6, "n_head": 6, "n_embd": 384, "block_size": 256},
          "train": {"learning_rate": 3e-4, "min_lr": 3e-5, "max_iters": 100000, "warmup_iters": 100},
          "warmup_iters": 100, "device": "cuda", "dtype": "bfloat16", "params": 40_000_000}


def measure(rate: float, seconds: float, warmup: float = 3.0) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="gptwiz-bench-") as tmp:
        root = Path(tmp) / "runs" / "bench"
        root.mkdir(parents=True)
        (root / "config.json").write_text(json.dumps(CONFIG))
        writer = subprocess.Popen([sys.executable, "-c", WRITER, str(root), str(rate), str(seconds + warmup + 5)])
        time.sleep(0.5)
        master, slave = pty.openpty()
        env = dict(os.environ, TERM="xterm-256color", COLUMNS="100", LINES="30")
        watch = subprocess.Popen([sys.executable, "-m", "gptwiz", "watch", "bench", "--runs_dir", str(Path(tmp) / "runs")],
                                 stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True)
        os.close(slave)
        ps = psutil.Process(watch.pid)

        def drain(until: float) -> int:
            got = 0
            while time.time() < until:
                ready, _, _ = select.select([master], [], [], 0.1)
                if ready:
                    try:
                        got += len(os.read(master, 1 << 16))
                    except OSError:
                        break
            return got

        drain(time.time() + warmup)  # startup (imports, first full draw) is not what is measured
        cpu0 = sum(ps.cpu_times()[:2])
        t0 = time.time()
        out_bytes = drain(t0 + seconds)
        cpu1 = sum(ps.cpu_times()[:2])
        wall = time.time() - t0
        os.write(master, b"q")
        try:
            watch.wait(timeout=10)
        except subprocess.TimeoutExpired:
            watch.kill()
        writer.kill()
        writer.wait()
        os.close(master)
        return {"rate": rate, "cpu_pct": 100 * (cpu1 - cpu0) / wall, "wall_s": wall,
                "terminal_kb_s": out_bytes / wall / 1024}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--rates", default="10,50", help="iterations per second the writer logs")
    args = ap.parse_args()
    print(f"{'iters/s logged':>15} {'watch CPU % of one core':>24} {'terminal output KB/s':>21} {'measured s':>11}")
    for rate in (float(r) for r in args.rates.split(",")):
        r = measure(rate, args.seconds)
        print(f"{r['rate']:>15.0f} {r['cpu_pct']:>24.2f} {r['terminal_kb_s']:>21.1f} {r['wall_s']:>11.1f}")


if __name__ == "__main__":
    main()
