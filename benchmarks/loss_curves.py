"""Real runs of the trainer that gptwiz's quality model (gptwiz/planning/quality.py) is fitted on.

Each run of the grid below trains from scratch with `gptwiz train` and evaluates often; before it, `gptwiz probe`
measures the same setting for 100 iterations. What both recorded (the validation curve, the probe's losses, the
schedule, the data's size and measured difficulty) is appended to benchmarks/data/loss_curves.json, run by run,
so an interrupted collection keeps what it finished and goes on from there.

    python benchmarks/loss_curves.py collect [--jobs 2]   # the grid: about 30 minutes on 2 quiet cores
    python benchmarks/loss_curves.py fit                  # fit the quality model's constants, print its errors

Two corpora: ../shared/data/tinyshakespeare.txt (archaic verse, 1.1 MB: repeated many times by the longer
runs) and the built-in demo corpus (the Python standard library's docstrings and source, 5.5 MB). `fit` prints
the constants to put into gptwiz/planning/quality.py and the errors to document with them.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from threading import Lock
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SHAKESPEARE = ROOT.parent / "shared" / "data" / "tinyshakespeare.txt"
CURVES = ROOT / "benchmarks" / "data" / "loss_curves.json"
WORK = Path(os.environ.get("GPTWIZ_BENCH_DIR", Path(tempfile.gettempdir()) / "gptwiz-loss-curves"))

# (corpus, preset, iterations, batch, context): two lengths of each preset on each corpus, so the fit sees the
# schedule's end at two places, and batches and contexts that differ.
GRID: list[tuple[str, str, int, int, int]] = [
    ("shakespeare", "tiny", 300, 8, 64), ("demo", "tiny", 300, 8, 64),
    ("shakespeare", "tiny", 800, 4, 128), ("demo", "tiny", 800, 4, 128),
    ("shakespeare", "small", 200, 4, 64), ("demo", "small", 200, 4, 64),
    ("shakespeare", "small", 400, 4, 32), ("demo", "small", 400, 4, 32),
]
EVALS_PER_RUN = 16
EVAL_ITERS = 6


def machine() -> str:
    import torch

    try:
        flags = set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        flags = set()
    wanted = [f for f in ("amx_bf16", "avx512_bf16", "avx512f", "avx2") if f in flags]
    return (f"torch {torch.__version__}, cpu capability {torch.backends.cpu.get_cpu_capability()}, "
            f"{os.cpu_count()} cores; flags: {' '.join(wanted) or 'none'}")


def corpus_args(corpus: str) -> list[str]:
    """The trainer's data flags for a corpus (the demo corpus is built on first use)."""
    if corpus == "shakespeare":
        return ["--input_file", str(SHAKESPEARE), "--data_dir", str(WORK / "data")]
    from gptwiz.data.demo import build_demo

    return ["--dataset_dir", str(build_demo(WORK / "data").dataset_dir)]


def gptwiz(*args: str, threads: int = 1) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    return subprocess.run([sys.executable, "-m", "gptwiz", *args], capture_output=True, text=True, env=env, cwd=WORK)


# The recipe every fitted run trained with: the guide's, the presets' default when the curves were collected (the
# small presets have since moved to Muon at 1e-3 with no dropout for a single pass: docs/planning.md).
FIT_RECIPE = ["--learning_rate", "3e-4", "--dropout", "0.1", "--optimizer", "adamw"]


def run_key(corpus: str, preset: str, iters: int, batch: int, block: int, seed: int) -> str:
    return f"{corpus}-{preset}-i{iters}-b{batch}-c{block}-s{seed}"


def collect_one(corpus: str, preset: str, iters: int, batch: int, block: int, seed: int = 1337,
                threads: int = 1) -> dict[str, Any]:
    """Probe, then train, one setting; their records as one JSON object."""
    key = run_key(corpus, preset, iters, batch, block, seed)
    data = corpus_args(corpus)
    shape = ["--config_file", preset, "--batch_size", str(batch), "--block_size", str(block), *FIT_RECIPE]
    probe = gptwiz("probe", *shape, *data, "--max_iters", str(iters), "--device", "cpu", "--json",
                   "--runs_dir", str(WORK / "runs"), threads=threads)
    if probe.returncode:
        raise RuntimeError(f"{key}: probe failed: {probe.stderr.strip()[-400:]}")
    probe_json = json.loads(probe.stdout)
    interval = max(10, iters // EVALS_PER_RUN)
    train = gptwiz("train", *shape, *data, "--max_iters", str(iters), "--eval_interval", str(interval),
                   "--eval_iters", str(EVAL_ITERS), "--seed", str(seed), "--device", "cpu", "--no-compile",
                   "--quiet", "--runs_dir", str(WORK / "runs"), "--model_name", key, threads=threads)
    if train.returncode:
        raise RuntimeError(f"{key}: train failed: {train.stderr.strip()[-400:]}")
    run_dir = WORK / "runs" / key
    config = json.loads((run_dir / "config.json").read_text())
    evals = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if '"eval"' in line]
    return {"key": key, "corpus": corpus, "preset": preset, "iters": iters, "batch": batch, "block": block,
            "seed": seed, "config": config, "machine": machine(),
            "evals": [{"iter": e["iter"], "train": e["train_loss"], "val": e["val_loss"]} for e in evals
                      if e.get("type") == "eval"],
            "probe": {"losses": probe_json["losses"], "iters": probe_json["iters"],
                      "learning_rate": probe_json["learning_rate"], "tokens_per_sec": probe_json["tokens_per_sec"]}}


def load(path: Path) -> list[dict[str, Any]]:
    return json.loads(path.read_text()) if path.exists() else []


def save(path: Path, runs: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(runs, indent=1) + "\n")
    os.replace(tmp, path)


def cost(g: tuple[str, str, int, int, int]) -> float:
    """A run's relative cost: tokens, small's about 4 times tiny's a token on a CPU."""
    return g[2] * g[3] * g[4] * (4 if g[1] == "small" else 1)


def collect(grid: list[tuple[str, str, int, int, int]], out: Path, jobs: int) -> None:
    WORK.mkdir(parents=True, exist_ok=True)
    corpus_args("demo")  # build the demo corpus once, before the jobs race to
    corpus_args("shakespeare")
    done = {r["key"] for r in load(out)}
    # Longest first, so the jobs end together.
    todo = sorted((g for g in grid if run_key(*g, 1337) not in done), key=lambda g: -cost(g))
    print(f"{len(todo)} runs to make ({len(done)} already in {out}); {machine()}", flush=True)

    lock = Lock()

    def locked(g: tuple[str, str, int, int, int]) -> None:
        rec = collect_one(*g)
        with lock:
            runs = load(out)
            runs.append(rec)
            save(out, runs)
        print(f"  {rec['key']}: val {rec['evals'][-1]['val']:.3f} at {rec['evals'][-1]['iter']}", flush=True)

    with ThreadPoolExecutor(jobs) as pool:
        for f in [pool.submit(locked, g) for g in todo]:
            f.result()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["collect", "fit"])
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--out", type=Path, default=CURVES)
    a = ap.parse_args()
    if a.what == "collect":
        collect(GRID, a.out, a.jobs)
    else:
        from loss_fit import fit_and_report, with_facts  # benchmarks/loss_fit.py

        records = with_facts(load(a.out))  # each corpus measured once, kept in the records for the tests
        save(a.out, records)
        fit_and_report(records)


if __name__ == "__main__":
    main()
