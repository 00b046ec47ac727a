"""Endurance: a 2,000-iteration CPU run of a micro model. The trainer's resident memory after iteration 200
grows by less than 5% by the end (nothing accumulates per step), and metrics.jsonl grows linearly."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import psutil
import pytest

from faults.support import micro_preset, start, status, train_args
from gptwiz.runs.metrics import MetricsReader

ITERS = 2000


@pytest.mark.slow
def test_2000_iterations_memory_flat_and_metrics_linear(tmp_path: Path, data_dir: Path, report) -> None:
    preset = micro_preset(tmp_path, max_iters=ITERS, block_size=16, batch_size=2, eval_interval=1000, eval_iters=1,
                          warmup_iters=10)
    run = tmp_path / "runs" / "long"
    proc = start(train_args(preset, "long", "--ckpt_interval_s", "100000", data_dir=data_dir), tmp_path,
                 log=tmp_path / "console.log")
    child = psutil.Process(proc.pid)
    reader = MetricsReader(run / "metrics.jsonl")
    rss: list[tuple[int, int]] = []    # (iteration, resident bytes)
    sizes: list[tuple[int, int]] = []  # (iteration, metrics.jsonl bytes)
    last = 0
    deadline = time.monotonic() + 900
    while proc.poll() is None and time.monotonic() < deadline:
        for rec in reader.read_new():
            if rec.get("type") == "train":
                last = rec["iter"]
        try:
            rss.append((last, child.memory_info().rss))
        except psutil.NoSuchProcess:
            break
        sizes.append((last, reader.offset))
        time.sleep(0.1)
    assert proc.wait(timeout=60) == 0, (tmp_path / "console.log").read_text()[-2000:]
    assert status(run)["state"] == "finished" and status(run)["iter"] == ITERS

    base = statistics.median(r for i, r in rss if 200 <= i <= 300)
    end = statistics.median(r for i, r in rss if i >= ITERS - 100)
    peak_late = max(r for i, r in rss if i >= 300)
    growth = end / base - 1
    assert growth < 0.05, (base, end)
    assert peak_late / base - 1 < 0.10, (base, peak_late)  # no transient balloon either

    def rate(lo: int, hi: int) -> float:
        a = min((i, s) for i, s in sizes if i >= lo)
        b = max((i, s) for i, s in sizes if i <= hi)
        return (b[1] - a[1]) / (b[0] - a[0])

    early, late = rate(200, 900), rate(1100, ITERS - 50)  # between the evaluations at 0, 1000 and 2000
    assert abs(late / early - 1) < 0.1, (early, late)
    final = (run / "metrics.jsonl").stat().st_size
    report(f"endurance: {ITERS} iterations of a micro model on the CPU", 1,
           f"resident memory {base / 2**20:.0f} MiB at iteration 200-300, {end / 2**20:.0f} MiB at the end "
           f"({100 * growth:+.1f}%, bound +5%); metrics.jsonl {early:.0f} then {late:.0f} bytes per iteration "
           f"({final / 1e6:.2f} MB in all)")
