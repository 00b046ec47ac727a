"""Run folders written the way the trainer writes them (config.json, status.json, metrics.jsonl), without
training: for the report's and the trackers' tests, which read folders and need runs that differ in one setting."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Any


def config(name: str, *, lr: float = 3e-4, batch: int = 4, block: int = 64, max_iters: int = 60,
           eval_interval: int = 10) -> dict[str, Any]:
    return {
        "name": name, "preset": "tiny", "preset_path": "presets/tiny.json",
        "model": {"n_layer": 4, "n_head": 4, "n_embd": 192, "block_size": block, "vocab_size": 50304,
                  "dropout": 0.1, "bias": False},
        "train": {"batch_size": batch, "learning_rate": lr, "max_iters": max_iters, "warmup_iters": 100,
                  "min_lr": lr / 10, "weight_decay": 0.1, "betas": [0.9, 0.95], "grad_clip": 1.0, "grad_accum": 1,
                  "eval_interval": eval_interval, "eval_iters": 2},
        "warmup_iters": max(1, max_iters // 10),
        "data": {"kind": "input_file", "input_file": "/data/tinyshakespeare.txt", "dataset_dir": "data/cache/ts",
                 "manifest": "data/cache/ts/manifest.json", "manifest_checksum": "0" * 64,
                 "sources": [{"name": "tinyshakespeare", "weight": 1.0}], "train_tokens": 304224,
                 "val_tokens": 33802},
        "device": "cpu", "dtype": "float32", "compile": False, "seed": 1337, "init_from": None,
        "params": 11435712, "tokens_per_iter": batch * block, "ckpt_interval_s": 300.0, "probe": False,
        "world_size": 1, "fsdp": False, "created_at": "2026-12-01T10:00:00+0000", "gptwiz_version": "0.1.0",
    }


def records(cfg: dict[str, Any], upto: int | None = None, seed: int = 0) -> list[dict[str, Any]]:
    """Train records for iterations 1..upto and eval records at 0 and every eval_interval, as the trainer
    writes them; the loss falls faster for a higher learning rate, with noise."""
    rng = random.Random(seed)
    train = cfg["train"]
    lr, last = train["learning_rate"], upto if upto is not None else train["max_iters"]
    speed = min(4.0, lr / 3e-4)
    t0, out = 1_796_000_000.0, []
    best = math.inf
    for it in range(0, last + 1):
        level = 4.0 + 6.9 * math.exp(-speed * it / 25)
        if it % train["eval_interval"] == 0:
            val = level + 0.05
            best = min(best, val)
            out.append({"type": "eval", "iter": it, "train_loss": level, "val_loss": val, "best_val_loss": best,
                        "batches": 4, "eval_s": 0.5, "time": t0 + it})
        if it == 0:
            continue
        out.append({"type": "train", "iter": it, "loss": level + rng.uniform(-0.15, 0.15), "lr": lr * min(1, it / 6),
                    "tokens_per_sec": 900 + rng.uniform(-50, 50), "mfu": 0.5 + rng.uniform(-0.02, 0.02),
                    "dt_s": 0.3, "elapsed_s": 0.3 * it, "peak_mem_bytes": 700 * 2**20 + it * 2**16,
                    "time": t0 + it + 0.5, "world_size": 1, "source_counts": {"tinyshakespeare": it * 4}})
    return out


def write_run(runs_dir: Path, name: str, *, state: str = "finished", upto: int | None = None, tail: str = "",
              seed: int = 0, **settings: Any) -> Path:
    """runs_dir/name/ with its three files; `tail` is appended to metrics.jsonl as it is (a line cut mid-write)."""
    folder = runs_dir / name
    folder.mkdir(parents=True)
    cfg = config(name, **settings)
    recs = records(cfg, upto, seed)
    (folder / "config.json").write_text(json.dumps(cfg, indent=2))
    last = max(r["iter"] for r in recs)
    (folder / "status.json").write_text(json.dumps({
        "state": state, "name": name, "pid": 1, "iter": last, "max_iters": cfg["train"]["max_iters"],
        "started_at": "2026-12-01T10:00:00+0000", "updated_at": "2026-12-01T10:05:00+0000", "error": None,
        "last_loss": recs[-1].get("loss"), "best_val_loss": None, "peak_mem_bytes": None}))
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs) + tail)
    return folder
