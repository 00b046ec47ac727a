"""What Muon's step costs next to AdamW's and to the training step it follows, on this CPU and on this CPU told to
use only AVX2 (oneDNN and ATen both limited: ONEDNN_MAX_CPU_ISA=AVX2, ATEN_CPU_CAPABILITY=avx2), the nearest
stand-in here for a CPU without fast bf16. torch.optim.Muon orthogonalises each matrix's momentum with five
Newton-Schulz iterations in bf16 whatever the run's dtype, so its cost depends on the CPU's bf16 matmuls.

Each row: one preset at one batch x block, the forward and backward of a step (in the dtype --dtype auto picks
for the CPU: bf16 with AVX-512 BF16 or AMX, else float32; float32 when limited to AVX2), then each optimizer's step over its gradients; median of
--steps timed steps after two warm ones.

    python benchmarks/muon_step_cost.py [--shapes tiny:8:128,small:8:128,tiny:2:32] [--steps 10]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
AVX2 = {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}


def measure(shape: str, steps: int, dtype: str) -> dict[str, float | str]:
    """One shape's timings in this process, the training step in `dtype` (auto: as --dtype auto picks)."""
    import torch

    from gptwiz.model.gpt import GPT
    from gptwiz.planning.presets import load_preset
    from gptwiz.training.device import resolve_dtype
    from gptwiz.training.optimizers import build_optimizer

    preset, batch, block = shape.split(":")
    dtype = resolve_dtype(dtype, "cpu")
    torch.manual_seed(0)
    model = GPT(load_preset(preset).with_overrides(block_size=int(block), dropout=0.0).model)
    x = torch.randint(0, 50257, (int(batch), int(block)))
    optimizers = {name: build_optimizer(model, name, 0.1, 1e-3, (0.9, 0.95), fused=False) for name in ("adamw", "muon")}

    def backward() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == "bfloat16"):
            loss = model(x, x)
        loss.backward()

    def timed(fn) -> float:  # type: ignore[no-untyped-def]
        times = []
        for i in range(steps + 2):
            t0 = time.perf_counter()
            fn()
            if i >= 2:
                times.append(time.perf_counter() - t0)
        return statistics.median(times)

    backward()
    result: dict[str, float | str] = {"dtype": dtype, "fwd_bwd": timed(backward)}
    for name, opt in optimizers.items():
        result[name] = timed(opt.step)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", default="tiny:8:128,small:8:128,tiny:2:32")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--child", help=argparse.SUPPRESS)  # the dtype a child trains in
    args = parser.parse_args()
    if args.child:
        print(json.dumps({s: measure(s, args.steps, args.child) for s in args.shapes.split(",")}))
        return
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from eta_accuracy import cpu_capability

    print(cpu_capability())
    print(f"{'isa':8} {'shape':14} {'dtype':9} {'fwd+bwd s':>9} {'adamw s':>8} {'muon s':>8} {'muon/step':>9}")
    # Limited to AVX2, the flags in /proc/cpuinfo still say bf16: the step is timed in float32, as --dtype auto
    # picks on a CPU without fast bf16.
    for isa, extra, dtype in (("native", {}, "auto"), ("avx2", AVX2, "float32")):
        out = subprocess.run([sys.executable, __file__, "--child", dtype, "--shapes", args.shapes, "--steps", str(args.steps)],
                             capture_output=True, text=True, check=True, cwd=ROOT, env={**os.environ, **extra})
        for shape, r in json.loads(out.stdout).items():
            step = float(r["fwd_bwd"]) + float(r["adamw"])
            print(f"{isa:8} {shape:14} {r['dtype']:9} {float(r['fwd_bwd']):9.3f} {float(r['adamw']):8.3f} "
                  f"{float(r['muon']):8.3f} {float(r['muon']) / step:8.0%}", flush=True)


if __name__ == "__main__":
    main()
