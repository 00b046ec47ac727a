"""What torch.compile costs and gains on this machine: the numbers behind the trainer's compile threshold
(gptwiz.planning.policy's COMPILE_MIN_ITERS) and the time model's compile seconds (gptwiz.planning.timing).

For a preset at a batch and context it trains the trainer's model (gptwiz.model.gpt.GPT, the loss the trainer
picks, AdamW, bf16 autocast where --dtype says) in a fresh process for each way of running it:

    eager     no compilation (the sliced loss, as the trainer's eager CPU runs)
    model     torch.compile of the whole model, as the trainer compiles (the loss fused by inductor)
    blocks    regional compilation: each transformer block compiled, the same code reused for all of them, the
              embeddings, head and sliced loss eager

each compiled way twice: with an empty inductor cache (cold, a shape never compiled on this machine) and again
with the cache the first process filled (warm: what a second run of the shape, or a run after its probe, pays).
A way's compile seconds are its first three steps less three steady steps; break-even is the iterations after
which compiling has paid for itself (compile seconds over the steady step's saving against eager).

    python benchmarks/compile_cost.py [--preset tiny] [--batch 8] [--block 128] [--iters 25] [--dtype bfloat16]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from eta_accuracy import ROOT, cpu_capability  # noqa: E402  (a sibling script)

WAYS = ("eager", "model", "blocks")
WARM_STEPS = 3  # the first steps, which hold the compilation (and the allocator's warm-up)


def one_process(preset: str, batch: int, block: int, way: str, iters: int, dtype: str) -> None:
    """Train `iters` steps one way; print each step's seconds as JSON (run in a child process)."""
    from dataclasses import replace

    import torch

    from gptwiz.model.gpt import GPT
    from gptwiz.model.loss import training_loss
    from gptwiz.planning.presets import load_preset

    torch.manual_seed(0)
    cfg = replace(load_preset(preset).model, block_size=block, dropout=0.0)
    model = GPT(cfg, loss_fn=training_loss("cpu", way == "model"))
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4, fused=True)
    step_model: torch.nn.Module = model
    if way == "model":
        step_model = torch.compile(model)  # type: ignore[assignment]
    elif way == "blocks":
        for b in model.transformer.h:
            b.compile()
    x = torch.randint(0, cfg.vocab_size, (batch, block))
    y = torch.randint(0, cfg.vocab_size, (batch, block))
    seconds = []
    for _ in range(iters):
        t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=getattr(torch, dtype), enabled=dtype != "float32"):
            loss = step_model(x, y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        seconds.append(time.perf_counter() - t0)
    print(json.dumps({"seconds": seconds, "loss": loss.item()}))


def measure(args: argparse.Namespace, way: str, cache: str) -> tuple[float, float]:
    """(compile seconds, steady seconds a step) of one way in a fresh process with this inductor cache."""
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import compile_cost as c; "
            "c.one_process(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5], int(sys.argv[6]), sys.argv[7])")
    out = subprocess.run([sys.executable, "-c", code, str(Path(__file__).parent), args.preset, str(args.batch),
                          str(args.block), way, str(args.iters), args.dtype], capture_output=True, text=True,
                         check=True, env={**os.environ, "TORCHINDUCTOR_CACHE_DIR": cache}, cwd=ROOT)
    seconds = json.loads(out.stdout.strip().splitlines()[-1])["seconds"]
    steady = statistics.median(seconds[WARM_STEPS + 2:])
    return max(0.0, sum(seconds[:WARM_STEPS]) - WARM_STEPS * steady), steady


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--block", type=int, default=128)
    ap.add_argument("--iters", type=int, default=25)
    ap.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float32"])
    ap.add_argument("--ways", default=",".join(WAYS))
    args = ap.parse_args()
    print(cpu_capability())
    print(f"{args.preset}, batch {args.batch} x block {args.block}, {args.dtype}, {args.iters} steps a process")
    print(f"{'way':8} {'cache':5} {'compile s':>9} {'s a step':>9} {'vs eager':>8} {'break-even':>10}")
    eager_step = None
    with tempfile.TemporaryDirectory() as tmp:
        for way in args.ways.split(","):
            cache = str(Path(tmp) / way)
            for state in (("cold",) if way == "eager" else ("cold", "warm")):
                compile_s, step = measure(args, way, cache)
                if way == "eager":
                    eager_step, compile_s = step, 0.0
                gain = f"{eager_step / step:.2f}x" if eager_step else "-"
                saving = (eager_step - step) if eager_step else 0.0
                even = "-" if way == "eager" else (f"{compile_s / saving:.0f} iters" if saving > 0 else "never")
                print(f"{way:8} {state:5} {compile_s:9.1f} {step:9.3f} {gain:>8} {even:>10}", flush=True)


if __name__ == "__main__":
    main()
