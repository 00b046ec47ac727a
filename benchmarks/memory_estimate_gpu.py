"""Estimate vs measured peak training memory, with real short training runs.

Each case runs `python -m gptwiz train ... --max_iters N` in a subprocess and reads the peak the
trainer itself records (status.json `peak_mem_bytes`, from gptwiz.training.device.MemoryMeter: peak RSS on
CPU, max_memory_reserved + CUDA context on a GPU), then compares it with gptwiz.planning.memory.estimate_memory
for the same settings. On CUDA it also replays the training step in this process to report
max_memory_allocated and max_memory_reserved separately: the ratio calibrates the estimate's
allocator term (memory.CUDA_RESERVED_OVER_ALLOCATED).

    python benchmarks/memory_estimate_gpu.py                  # CUDA if present: tiny, small, 150M, 350M_1024
    python benchmarks/memory_estimate_gpu.py --device cpu     # tiny and small at two batch sizes
    python benchmarks/memory_estimate_gpu.py --cases small:8:128:bfloat16,tiny:8:64:bfloat16:1:compile --json out.json
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

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from gptwiz.planning.memory import MiB, estimate_memory  # noqa: E402
from gptwiz.planning.presets import load_preset  # noqa: E402

CPU_CASES = ["tiny:8:64", "tiny:16:128", "small:4:64", "small:8:128", "tiny:8:64:float32", "small:4:64:float32"]
CUDA_CASES = ["tiny:64:256", "tiny:16:256", "small:32:256", "small:8:256", "150M:24:256", "150M:8:256",
              "350M_1024:12:1024", "350M_1024:4:1024", "350M_1024:4:1024:bfloat16:2", "150M:24:256:bfloat16:1:compile"]


def parse_case(text: str, default_dtype: str) -> tuple[str, int, int, str, int, bool]:
    """'preset:batch:block[:dtype[:grad_accum[:compile]]]'."""
    parts = text.split(":")
    if len(parts) < 3:
        raise SystemExit(f"bad case {text!r}: expected preset:batch:block[:dtype[:grad_accum[:compile]]]")
    dtype = parts[3] if len(parts) > 3 else default_dtype
    compiled = len(parts) > 5 and parts[5] == "compile"
    return parts[0], int(parts[1]), int(parts[2]), dtype, int(parts[4]) if len(parts) > 4 else 1, compiled


def run_case(workdir: Path, dataset: Path, device: str, preset: str, batch: int, block: int, dtype: str,
             accum: int, compiled: bool, max_iters: int) -> dict:
    name = f"{preset}_{batch}_{block}_{dtype}_{accum}{'_compiled' if compiled else ''}"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    cmd = [sys.executable, "-m", "gptwiz", "train", "--config_file", preset, "--model_name", name,
           "--dataset_dir", str(dataset), "--batch_size", str(batch), "--block_size", str(block),
           "--grad_accum", str(accum), "--max_iters", str(max_iters), "--eval_iters", "1", "--dtype", dtype,
           "--device", device, "--compile" if compiled else "--no-compile", "--quiet", "--runs_dir", str(workdir / "runs")]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    status_path = workdir / "runs" / name / "status.json"
    status = json.loads(status_path.read_text()) if status_path.exists() else {}
    records = []
    metrics = workdir / "runs" / name / "metrics.jsonl"
    if metrics.exists():
        records = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
    step_peak = max((r.get("peak_mem_bytes", 0) for r in records if r.get("type") == "train"), default=0)
    device_type = "cuda" if device.startswith("cuda") else "cpu"
    est = estimate_memory(load_preset(preset).model, batch_size=batch, block_size=block, dtype=dtype,
                          device_type=device_type, grad_accum=accum, compiled=compiled)
    out = {"preset": preset, "batch": batch, "block": block, "dtype": dtype, "grad_accum": accum, "compiled": compiled,
           "device": device_type, "state": status.get("state") or f"exit {proc.returncode}",
           "measured_bytes": status.get("peak_mem_bytes"), "step_peak_bytes": step_peak,
           "estimate_bytes": est.total, "estimate_phase": est.peak_phase, "seconds": time.perf_counter() - t0}
    if status.get("state") != "finished":
        out["error"] = status.get("error") or proc.stderr.strip().splitlines()[-1:] or None
    return out


def replay_cuda(preset: str, batch: int, block: int, dtype: str, accum: int, iters: int = 3) -> dict:
    """The trainer's step in this process: allocated vs reserved peaks, without the CUDA context."""
    import torch

    from gptwiz.model.gpt import GPT

    cfg = load_preset(preset).with_overrides(block_size=block).model
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    model = GPT(cfg).cuda()
    opt = model.configure_optimizer(0.1, 3e-4, (0.9, 0.95), fused=True)
    dt = getattr(torch, dtype)
    for _ in range(iters):
        for _ in range(accum):
            x = torch.randint(0, cfg.vocab_size, (batch, block), device="cuda")
            with torch.autocast("cuda", dtype=dt, enabled=dtype != "float32"):
                loss = model(x, x)
            (loss / accum).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
    torch.cuda.synchronize()
    result = {"max_allocated": torch.cuda.max_memory_allocated(), "max_reserved": torch.cuda.max_memory_reserved()}
    del model, opt, loss
    torch.cuda.empty_cache()
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="auto", help="auto, cpu or cuda")
    ap.add_argument("--cases", help="comma-separated preset:batch:block[:dtype[:grad_accum[:compile]]]")
    ap.add_argument("--max_iters", type=int, default=3)
    ap.add_argument("--no-replay", dest="replay", action="store_false", help="on CUDA, skip the in-process replay")
    ap.add_argument("--json", help="also write the rows to this JSON file")
    args = ap.parse_args()

    import torch

    from gptwiz.training.device import resolve_dtype

    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    default_dtype = resolve_dtype("auto", device)
    cases = [parse_case(c, default_dtype) for c in (args.cases.split(",") if args.cases else
                                                     (CUDA_CASES if device.startswith("cuda") else CPU_CASES))]
    shared_cache = REPO.parent / "shared" / "tiktoken"
    if "TIKTOKEN_CACHE_DIR" not in os.environ and shared_cache.is_dir():
        os.environ["TIKTOKEN_CACHE_DIR"] = str(shared_cache)
    from gptwiz.data.cache import cache_text_file

    text = REPO.parent / "shared" / "data" / "tinyshakespeare.txt"
    rows = []
    with tempfile.TemporaryDirectory(prefix="gptwiz-membench-") as tmp:
        work = Path(tmp)
        # Tokenized here, once: a first --input_file run would tokenize inside the measured process.
        dataset = cache_text_file(text, work / "data")
        where = torch.cuda.get_device_name() if device.startswith("cuda") else f"CPU ({os.cpu_count()} cores)"
        print(f"device: {where}; torch {torch.__version__}; max_iters {args.max_iters}, eval_iters 1")
        header = (f"{'preset':10s} {'batch':>5s} {'block':>5s} {'dtype':9s} {'acc':>3s} {'measured':>10s} "
                  f"{'estimate':>10s} {'error':>7s}  {'peak phase (estimate)':22s}")
        if device.startswith("cuda") and args.replay:
            header += f" {'allocated':>10s} {'reserved':>10s} {'res/alloc':>9s}"
        print(header)
        for preset, batch, block, dtype, accum, compiled in cases:
            row = run_case(work, dataset, device, preset, batch, block, dtype, accum, compiled, args.max_iters)
            if device.startswith("cuda") and args.replay and row["state"] == "finished" and not compiled:
                row.update(replay_cuda(preset, batch, block, dtype, accum))
            rows.append(row)
            measured = row["measured_bytes"]
            if not measured:
                print(f"{preset:10s} {batch:5d} {block:5d} {dtype:9s} {accum:3d} failed: {row.get('error')}")
                continue
            line = (f"{preset:10s} {batch:5d} {block:5d} {dtype:9s} {accum:3d} {measured / MiB:7.0f} MiB "
                    f"{row['estimate_bytes'] / MiB:7.0f} MiB {100 * (row['estimate_bytes'] / measured - 1):+6.1f}%  "
                    f"{row['estimate_phase']:22s}")
            if "max_allocated" in row:
                line += (f" {row['max_allocated'] / MiB:7.0f} MiB {row['max_reserved'] / MiB:7.0f} MiB "
                         f"{row['max_reserved'] / max(1, row['max_allocated']):9.3f}")
            print(line, flush=True)
    errors = [abs(r["estimate_bytes"] / r["measured_bytes"] - 1) for r in rows if r.get("measured_bytes")]
    if errors:
        print(f"worst error {100 * max(errors):.1f}% over {len(errors)} runs (goal: within 15%)")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0 if errors and len(errors) == len(rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
