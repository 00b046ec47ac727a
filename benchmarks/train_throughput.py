"""Training throughput: the trainer's variants beside a plain float32 eager loop of the same model.

    python benchmarks/train_throughput.py [--iters 300] [--batch_size 8] [--block_size 256]
    python benchmarks/train_throughput.py --device cuda --preset 150M --batch_size 24 --iters 200   # on a GPU

Each variant runs in its own process on the preset (default tiny) with the same data order. Tokens/s is the median
over the iterations after the first 10% (warm-up and compilation are excluded and reported apart); the loss
is the mean of the last 10 iterations, compared with the float32 run's. MFU is against the peak the trainer
itself uses (gptwiz.training.device.peak_flops): on CPU this machine's measured matmul peak for the variant's dtype, on
CUDA the card's dense bf16 tensor-core peak (half of it for TF32/float32).
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

REPO = Path(__file__).resolve().parent.parent
DATA = REPO.parent / "shared" / "data" / "tinyshakespeare.txt"

VARIANTS = {
    "plain fp32 eager (hand-written loop)": None,
    "trainer fp32 eager": ["--dtype", "float32", "--no-compile"],
    "trainer fp32 compiled": ["--dtype", "float32", "--compile"],
    "trainer bf16 autocast eager": ["--dtype", "bfloat16", "--no-compile"],
    "trainer bf16 compiled": ["--dtype", "bfloat16", "--compile"],
}


def plain_loop(iters: int, batch_size: int, block_size: int, data_dir: str, out: str, preset_name: str,
               device: str) -> None:
    """The loop a user writes by hand: float32, eager, torch's default AdamW, the textbook loss over the
    model's logits (nanoGPT's), where the trainer lets the model compute its loss (gptwiz.model.loss)."""
    import numpy as np
    import torch
    from torch.nn import functional as F

    from gptwiz.common.schedule import effective_warmup, lr_at
    from gptwiz.data.dataset import TokenDataset
    from gptwiz.model.gpt import GPT
    from gptwiz.planning.presets import load_preset

    preset = load_preset(preset_name).with_overrides(block_size=block_size)
    torch.manual_seed(1337)
    model = GPT(preset.model).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=preset.train.learning_rate, betas=(0.9, 0.95), weight_decay=0.1)
    ds = TokenDataset(data_dir)
    warmup = effective_warmup(preset.train.warmup_iters, iters)
    records = []
    for it in range(iters):
        for g in opt.param_groups:
            g["lr"] = lr_at(it, learning_rate=preset.train.learning_rate, min_lr=preset.train.min_lr,
                            warmup_iters=warmup, decay_iters=iters)
        t0 = time.perf_counter()
        x, y, _ = ds.batch("train", batch_size, block_size, np.random.default_rng([1337, it, 0]))
        logits = model.logits(torch.from_numpy(x).to(device))
        loss = F.cross_entropy(logits.view(-1, logits.size(-1)), torch.from_numpy(y).to(device).view(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        loss_value = loss.item()  # waits for the device: dt below is the step's real time
        records.append({"iter": it + 1, "loss": loss_value, "dt_s": time.perf_counter() - t0})
    Path(out).write_text("\n".join(json.dumps(r) for r in records))


def run_variant(name: str, extra: list[str] | None, args: argparse.Namespace, work: Path) -> dict:
    env = dict(os.environ, TIKTOKEN_CACHE_DIR=os.environ.get("TIKTOKEN_CACHE_DIR", str(REPO.parent / "shared" / "tiktoken")))
    if extra is None:
        from gptwiz.data.cache import cache_text_file

        data_dir = cache_text_file(DATA, work / "data")
        out = work / "plain.jsonl"
        subprocess.run([sys.executable, __file__, "--_plain", str(out), "--iters", str(args.iters),
                        "--batch_size", str(args.batch_size), "--block_size", str(args.block_size),
                        "--_data", str(data_dir), "--preset", args.preset, "--device", args.device],
                       check=True, env=env)
        records = [json.loads(l) for l in out.read_text().splitlines()]
        dtype = "float32"
    else:
        run_name = f"v{len(list((work / 'runs').glob('*'))) if (work / 'runs').exists() else 0}"
        cmd = [sys.executable, "-m", "gptwiz", "train", "--config_file", args.preset, "--model_name", run_name,
               "--input_file", str(DATA), "--max_iters", str(args.iters), "--batch_size", str(args.batch_size),
               "--block_size", str(args.block_size), "--eval_interval", str(10 * args.iters), "--eval_iters", "1",
               "--device", args.device, "--quiet", *extra]
        subprocess.run(cmd, cwd=work, check=True, env=env, stdout=subprocess.DEVNULL)
        run = work / "runs" / run_name
        records = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]
        records = [r for r in records if r.get("type") == "train"]
        dtype = json.loads((run / "config.json").read_text())["dtype"]
    skip = max(2, len(records) // 10)
    warm = [r["dt_s"] for r in records[skip:]]
    tokens = args.batch_size * args.block_size
    return {"name": name, "dtype": dtype, "tokens_per_sec": tokens / statistics.median(warm),
            "warmup_s": sum(r["dt_s"] for r in records[:skip]),
            "final_loss": statistics.mean(r["loss"] for r in records[-10:])}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--iters", type=int, default=300)
    p.add_argument("--batch_size", type=int, default=8)
    p.add_argument("--block_size", type=int, default=256)
    p.add_argument("--preset", default="tiny")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--only", action="append", help="run only variants whose name contains this")
    p.add_argument("--slow_bf16", action="store_true",
                   help="time bf16 on a CPU without AVX-512 BF16 or AMX too (emulated there: hours for 300 iterations)")
    p.add_argument("--_plain")
    p.add_argument("--_data")
    args = p.parse_args()
    if args._plain:
        plain_loop(args.iters, args.batch_size, args.block_size, args._data, args._plain, args.preset, args.device)
        return

    import torch

    from gptwiz.model.gpt import GPT
    from gptwiz.planning.presets import load_preset
    from gptwiz.training.device import Runtime, cpu_has_fast_bf16, peak_flops

    model_cfg = load_preset(args.preset).with_overrides(block_size=args.block_size).model
    with torch.device("meta"):
        flops_per_token = GPT(model_cfg).flops_per_token()
    peaks = {d: peak_flops(Runtime(args.device, d, False)) for d in ("float32", "bfloat16")}
    skip_bf16 = args.device == "cpu" and not cpu_has_fast_bf16() and not args.slow_bf16
    results, skipped = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for name, extra in VARIANTS.items():
            if args.only and not any(o in name for o in args.only):
                continue
            if skip_bf16 and "bf16" in name:
                skipped.append(name)
                continue
            results.append(run_variant(name, extra, args, Path(tmp)))
            print(f"  done: {name}", file=sys.stderr, flush=True)
    # The trainer's default for a long run: what --dtype auto and the compile heuristic pick at the preset's
    # own length (2,000 iterations); it is one of the rows above, marked rather than run twice.
    from gptwiz.training.device import resolve_runtime

    rt = resolve_runtime(args.device, "auto", None, load_preset(args.preset).train.max_iters)
    default = f"trainer {'bf16 autocast' if rt.dtype == 'bfloat16' else 'fp32'}{' compiled' if rt.compile else ' eager'}"
    default = default.replace("bf16 autocast compiled", "bf16 compiled")
    for r in results:
        if r["name"] == default:
            r["name"] += " = default"
    base = next((r for r in results if r["name"].startswith("plain")), results[0])
    ref = next((r for r in results if r["name"].startswith("trainer fp32 eager")), base)
    where = torch.cuda.get_device_name(args.device) if args.device.startswith("cuda") else f"{os.cpu_count()} cores"
    print(f"\n{args.preset} preset, batch {args.batch_size}, block {args.block_size}, {args.iters} iterations, "
          f"{args.device} ({where}); peak fp32 {peaks['float32'] / 1e9:,.0f} GFLOP/s, "
          f"bf16 {peaks['bfloat16'] / 1e9:,.0f} GFLOP/s\n")
    print(f"| variant | tokens/s | vs plain | MFU | warm-up s | loss@{args.iters} | vs fp32 |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in results:
        mfu = flops_per_token * r["tokens_per_sec"] / peaks[r["dtype"]]
        print(f"| {r['name']} | {r['tokens_per_sec']:,.0f} | {r['tokens_per_sec'] / base['tokens_per_sec']:.2f}x | "
              f"{100 * mfu:.1f}% | {r['warmup_s']:.1f} | {r['final_loss']:.3f} | {r['final_loss'] - ref['final_loss']:+.3f} |")
    for name in skipped:
        print(f"| {name} | not run: this CPU has no AVX-512 BF16 or AMX, so bf16 is emulated (--slow_bf16 times it) "
              f"| | | | | |")


if __name__ == "__main__":
    main()
