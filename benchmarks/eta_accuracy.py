"""How well gptwiz predicts a run's wall time before it starts, and from a probe's rate.

For each case (tiny and small, two batch sizes, this machine's CPU) it asks `gptwiz estimate --json` for the
predicted time (the code `estimate`, `recommend` and the wizard use), then runs `gptwiz train` on
../shared/data/tinyshakespeare.txt into a temporary runs folder and times the whole process. The probe's
prediction takes the run's own first 100 iterations (or all but the warm-up of a shorter run), as `gptwiz probe`
measures them, and predicts the run from that rate (gptwiz.planning.timing.from_probe_rate).

    python benchmarks/eta_accuracy.py            # 5 runs, about 8 minutes on a 2-core CPU
    python benchmarks/eta_accuracy.py --quick    # 3 shorter runs, about 3 minutes
    python benchmarks/eta_accuracy.py --fit      # also print the CPU cost model these runs fit
    python benchmarks/eta_accuracy.py --remeasure  # measure this machine's speeds again first (best reading kept)

Goal: within +-25% before any probe, +-10% from a probe's rate. Run it on a quiet machine: other processes on
the cores slow the runs, not the prediction. To refit, put the printed coefficients into
gptwiz/planning/timing.py's COST_MODEL table with what they were fitted on.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "tinyshakespeare.txt"

# (preset, batch, iterations)
CASES = [("tiny", 4, 150), ("tiny", 8, 80), ("small", 2, 60), ("small", 4, 40), ("small", 8, 30)]
QUICK = [("tiny", 4, 60), ("tiny", 8, 30), ("small", 4, 20)]


def cpu_capability() -> str:
    import torch

    try:
        flags = set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        flags = set()
    wanted = [f for f in ("amx_bf16", "amx_tile", "avx512_bf16", "avx512f", "avx2") if f in flags]
    return (f"torch {torch.__version__}, cpu capability {torch.backends.cpu.get_cpu_capability()}, "
            f"{os.cpu_count()} cores, {torch.get_num_threads()} threads; flags: {' '.join(wanted) or 'none of amx/avx512_bf16/avx2'}")


def gptwiz(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gptwiz", *args], capture_output=True, text=True, env=env, cwd=ROOT)


def block_args(block: int | None) -> list[str]:
    return ["--block_size", str(block)] if block else []


def predict(preset: str, batch: int, iters: int, block: int | None, dtype: str, env: dict[str, str]) -> dict:
    out = gptwiz("estimate", "--config_file", preset, "--batch_size", str(batch), "--max_iters", str(iters),
                 *block_args(block), "--device", "cpu", "--dtype", dtype, "--json", env=env)
    if out.returncode:
        raise SystemExit(f"gptwiz estimate failed: {out.stderr.strip()}")
    return json.loads(out.stdout)


def run(preset: str, batch: int, iters: int, block: int | None, dtype: str, runs_dir: str,
        env: dict[str, str]) -> tuple[float, Path]:
    name = f"{preset}_b{batch}_i{iters}_c{block or 0}"
    t0 = time.perf_counter()
    out = gptwiz("train", "--config_file", preset, "--batch_size", str(batch), "--max_iters", str(iters),
                 *block_args(block), "--input_file", str(DATA), "--model_name", name, "--runs_dir", runs_dir, "--device", "cpu",
                 "--dtype", dtype, "--quiet", env=env)
    wall = time.perf_counter() - t0
    if out.returncode:
        raise SystemExit(f"gptwiz train failed ({out.returncode}): {out.stderr.strip()[-2000:]}")
    return wall, Path(runs_dir) / name


def probe_rate(run_dir: Path) -> float:
    """Tokens/s as `gptwiz probe` measures it: the mean over its first 100 iterations after the warm-up."""
    from gptwiz.planning.verdict import timing, warmup_iterations

    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    steps = [r for r in records if r.get("type") == "train"][:100]
    config = json.loads((run_dir / "config.json").read_text())
    tm = timing([r["dt_s"] for r in steps], warmup_iterations(len(steps), int(config.get("warmup_iters", 0))))
    tokens_per_iter = steps[0]["tokens_per_sec"] * steps[0]["dt_s"]
    return tokens_per_iter / tm.sec_per_iter


def steps_seconds(run_dir: Path, kind: str = "train") -> float:
    """The run's iterations' own times (metrics.jsonl's dt_s), or with kind "eval" its evaluations' (eval_s),
    summed."""
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return sum(r["dt_s" if kind == "train" else "eval_s"] for r in records if r.get("type") == kind)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="three shorter runs")
    p.add_argument("--fit", action="store_true", help="print the cost model (least squares) that fits these runs")
    p.add_argument("--remeasure", action="store_true", help="measure this machine's speeds again first")
    p.add_argument("--cases", help="PRESET:BATCH:ITERS[:BLOCK],... instead of the built-in list (a busy machine: "
                                   "fewer; BLOCK: a context other than the preset's)")
    p.add_argument("--dtype", default="auto", help="auto (what `gptwiz train` would use), float32 or bfloat16")
    args = p.parse_args()
    if not DATA.is_file():
        raise SystemExit(f"no {DATA}: the benchmark trains on it")
    from gptwiz.planning.presets import load_preset
    from gptwiz.planning.timing import COST_MODEL, cost_model, from_probe_rate, preset_plan, token_cost_terms
    from gptwiz.training.throughput import machine_throughput

    env = dict(os.environ)
    env.setdefault("TIKTOKEN_CACHE_DIR", str(ROOT.parent / "shared" / "tiktoken"))
    print(cpu_capability())
    if args.remeasure:
        for dtype in ("float32", "bfloat16"):
            machine_throughput("cpu", dtype, refresh=True)
    rows = []
    with tempfile.TemporaryDirectory() as runs_dir:
        cases = [parse_case(c) for c in args.cases.split(",")] if args.cases else \
            [(*c, None) for c in (QUICK if args.quick else CASES)]
        for preset, batch, iters, block in cases:
            predicted = predict(preset, batch, iters, block, args.dtype, env)
            t = predicted["time"]
            wall, run_dir = run(preset, batch, iters, block, args.dtype, runs_dir, env)
            plan = preset_plan(load_preset(preset), device_type="cpu", dtype=predicted["dtype"], batch_size=batch,
                               max_iters=iters, block_size=block)
            rate = probe_rate(run_dir)
            speeds = machine_throughput("cpu", predicted["dtype"])
            projected = from_probe_rate(plan, rate, speeds.start_s)
            from_probe = projected.seconds
            terms = token_cost_terms(plan, speeds)
            rows.append({"case": f"{preset} b{batch} x{iters}" + (f" c{block}" if block else ""), "dtype": predicted["dtype"], "predicted": t["seconds"],
                         "terms": terms,
                         "measured": wall, "from_probe": from_probe, "pred_tps": t["tokens_per_sec"],
                         "probe_tps": rate, "fixed": t["startup_s"] + t["checkpoint_s"],
                         "steps_s": steps_seconds(run_dir), "projected_steps_s": projected.train_s,
                         "eval_s": steps_seconds(run_dir, "eval"), "projected_eval_s": projected.eval_s,
                         "projected_rest_s": projected.seconds - projected.train_s})
            print(f"  {rows[-1]['case']}: predicted {t['seconds']:.0f} s, from its probe-rate {from_probe:.0f} s, "
                  f"measured {wall:.0f} s", file=sys.stderr, flush=True)
    amx = machine_throughput("cpu", rows[0]["dtype"]).amx if rows else False
    c = cost_model("cpu", rows[0]["dtype"], amx) if rows else COST_MODEL["cpu"]
    print(f"CPU cost model in use: matmul {c.matmul:g}, vocab {c.vocab:g}, elementwise {c.elementwise:g}, "
          f"optimizer {c.optimizer:g} ({c.fitted_on})\n")
    print("| run | dtype | predicted s | from probe s | measured s | error | error from probe | tokens/s pred / probe |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        err, perr = r["predicted"] / r["measured"] - 1, r["from_probe"] / r["measured"] - 1
        print(f"| {r['case']} | {r['dtype']} | {r['predicted']:.0f} | {r['from_probe']:.0f} | {r['measured']:.0f} | "
              f"{err:+.0%} | {perr:+.0%} | {r['pred_tps']:,.0f} / {r['probe_tps']:,.0f} |")
    worst = max(abs(r["predicted"] / r["measured"] - 1) for r in rows)
    worst_probe = max(abs(r["from_probe"] / r["measured"] - 1) for r in rows)
    print(f"\nworst error: {worst:.0%} before any probe (goal 25%), {worst_probe:.0%} from the probe's rate (goal 10%)")
    # Where a projection from the probe's rate goes wrong: the steps (the sum of the iterations' own times) or the
    # rest (start, evaluations, checkpoints, exit).
    print("\n| run | steps s: projected / measured | evaluations s | the rest s (start, checkpoints, exit) |")
    print("|---|---:|---:|---:|")
    for r in rows:
        rest = r["measured"] - r["steps_s"] - r["eval_s"]
        print(f"| {r['case']} | {r['projected_steps_s']:.0f} / {r['steps_s']:.0f} | "
              f"{r['projected_eval_s']:.0f} / {r['eval_s']:.0f} | "
              f"{r['projected_rest_s'] - r['projected_eval_s']:.0f} / {rest:.0f} |")
    if args.fit:
        print(fit_lines(rows))


def parse_case(text: str) -> tuple[str, int, int, int | None]:
    parts = text.split(":")
    return parts[0], int(parts[1]), int(parts[2]), int(parts[3]) if len(parts) > 3 else None


TERMS = ("matmul", "vocab", "elementwise", "optimizer")


def fit_lines(rows: list[dict]) -> str:
    """The cost model (least squares, no negative coefficient) that fits these runs: seconds a token each run took
    (its probe-measured rate) against the four measured costs, in relative terms so that every run weighs the
    same. With as many terms as runs the fit is exact and says nothing, so every subset of at most runs - 1 terms
    is tried and the one with the smallest worst error printed, beside the full fit."""
    import itertools

    import numpy as np

    a = np.array([[x * r["probe_tps"] for x in r["terms"]] for r in rows])
    best: tuple[float, tuple[int, ...], np.ndarray] | None = None
    for k in range(1, min(len(TERMS), len(rows) - 1) + 1):
        for cols in itertools.combinations(range(len(TERMS)), k):
            coef, *_ = np.linalg.lstsq(a[:, cols], np.ones(len(rows)), rcond=None)
            if (coef < 0).any():
                continue
            worst = float(np.abs(a[:, cols] @ coef - 1).max())
            if best is None or worst < best[0] - 1e-3:
                best = (worst, cols, coef)
    if best is None:
        return "no fit: every subset of terms needs a negative coefficient"
    _, cols, coef = best
    full = np.zeros(len(TERMS))
    full[list(cols)] = coef
    errors = a @ full - 1
    return (f"fitted CPU cost model: {', '.join(f'{t} {v:.3g}' for t, v in zip(TERMS, full))} "
            f"(rate errors {', '.join(f'{e:+.0%}' for e in errors)})")


if __name__ == "__main__":
    main()
