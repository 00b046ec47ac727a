"""The memory estimate against `gptwiz probe` on this CPU, eager and compiled: one table, case by case.

Each case runs `gptwiz probe ... --json --device cpu` (a child trainer, no evaluation, no checkpoint) and prints
the probe's own `estimate_bytes` (gptwiz.planning.memory for a run that neither evaluates nor checkpoints) beside
its `peak_memory_bytes` (the child's peak RSS). A compiled case compiles for a minute or more on a small CPU.

    python benchmarks/memory_estimate_cpu.py                                  # the cases below
    python benchmarks/memory_estimate_cpu.py --cases tiny:16:128:compile --iters 10
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from gptwiz.planning.memory import MiB  # noqa: E402

CASES = ["tiny:16:128:compile", "tiny:8:256:compile", "small:4:128:compile", "tiny:16:128", "tiny:8:256",
         "small:4:128"]


def cpu_flags() -> str:
    """The vector extensions /proc/cpuinfo lists (AVX, AVX-512, AMX), which decide torch's kernels."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "unknown"
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    return " ".join(sorted(f for f in flags if f.startswith(("avx", "amx")))) or "none"


def run_case(case: str, text: Path, work: Path, iters: int, dtype: str) -> dict:
    preset, batch, block, *rest = case.split(":")
    cmd = [sys.executable, "-m", "gptwiz", "probe", "--config_file", preset, "--batch_size", batch, "--block_size",
           block, "--input_file", str(text), "--iters", str(iters), "--device", "cpu", "--dtype", dtype, "--json",
           "--compile" if rest[:1] == ["compile"] else "--no-compile", "--runs_dir", str(work / "runs"),
           "--data_dir", str(work / "data")]
    proc = subprocess.run(cmd, cwd=work, capture_output=True, text=True)
    try:
        return json.loads(proc.stdout)
    except json.JSONDecodeError:
        return {"error": (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", help="comma-separated preset:batch:block[:compile]")
    ap.add_argument("--iters", type=int, default=10, help="probe iterations (at least 10)")
    ap.add_argument("--dtype", default="auto")
    args = ap.parse_args()

    import torch

    shared = REPO.parent / "shared"
    if "TIKTOKEN_CACHE_DIR" not in os.environ and (shared / "tiktoken").is_dir():
        os.environ["TIKTOKEN_CACHE_DIR"] = str(shared / "tiktoken")
    text = shared / "data" / "tinyshakespeare.txt"
    print(f"torch {torch.__version__}; cpu capability {torch.backends.cpu.get_cpu_capability()}; flags: {cpu_flags()}; "
          f"{os.cpu_count()} cores; {args.iters} probe iterations")
    print(f"{'case':22s} {'dtype':9s} {'estimate':>10s} {'measured':>10s} {'error':>7s}")
    errors = []
    with tempfile.TemporaryDirectory(prefix="gptwiz-cpumem-") as tmp:
        for case in (args.cases.split(",") if args.cases else CASES):
            row = run_case(case, text, Path(tmp), args.iters, args.dtype)
            est, measured = row.get("estimate_bytes"), row.get("peak_memory_bytes")
            if not est or not measured:
                print(f"{case:22s} failed: {row.get('error')}")
                continue
            errors.append(est / measured - 1)
            print(f"{case:22s} {row.get('dtype') or '?':9s} {est / MiB:7.0f} MiB {measured / MiB:7.0f} MiB "
                  f"{100 * errors[-1]:+6.1f}%", flush=True)
    if errors:
        print(f"worst error {100 * max(map(abs, errors)):.1f}% over {len(errors)} cases (goal: within 10%)")
    return 0 if errors else 1


if __name__ == "__main__":
    raise SystemExit(main())
