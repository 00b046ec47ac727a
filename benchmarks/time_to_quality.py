"""The race: how soon gptwiz reaches the held-out bits per byte that the nanoGPT recipe reaches in N iterations.

The baseline is written here, as nanoGPT's train.py trains: a plain float32 eager loop, GPT-2's tokenizer, AdamW
(lr 1e-3, betas 0.9/0.99, weight decay 0.1 on matrices), linear warmup then cosine decay to a tenth, dropout 0,
gradient clipping at 1, random windows of the training tokens. gptwiz's arms are real `gptwiz train` runs on the
same prepared dataset (the same training tokens and the same held-out documents), each with one lever changed, so
that each lever's share shows:

    default      the preset as it stands, no flags (tiny and small: Muon at 1e-3, no dropout for a single pass over
                 the data, --dtype auto, compiled as decided)
    guide        the guide's recipe, the presets' default before: AdamW at 3e-4, dropout 0.1, compiled as decided
    recipe       AdamW with the baseline's learning rate 1e-3 and dropout 0, not compiled
    compile      the recipe, compiled (--compile)
    muon         the recipe with --optimizer muon, not compiled
    bpe          the recipe (AdamW) on the same documents prepared with --tokenizer bpe:8192 (a vocabulary of 8,192)
    muon-bpe     both
    all          muon, bpe and compiled
    rate         the guide's recipe with the baseline's learning rate only (AdamW, dropout 0.1), compiled
    muon-compile the recipe with --optimizer muon, compiled

The BPE arms (and `all`) run 4 times the iterations (--bpe_iters): a step over 8,192 entries costs a fraction of one over
50,304, and what counts is the time to the target, not the iterations. Losses are compared as held-out bits per byte (each arm's loss a token over its own tokenizer's bytes a token of
the held-out text), so that tokenizers compare fairly.

Time is training wall time (start-up and compilation included, evaluations left out: they are the measurement;
the compiled arms' first evaluation compiles its own graph, about 11 s for tiny, which is left out with it).
The baseline's held-out bits per byte after N iterations is the target; each arm's time is that of its first
evaluation at or below it (gptwiz evaluates a sample of held-out batches, the baseline all of them), the
baseline's own too: a long run may pass through its final quality before its end.

    python benchmarks/time_to_quality.py [--preset tiny] [--iters 300] [--batch 8] [--block 128]
                                         [--corpus shakespeare|demo]
"""

from __future__ import annotations

import argparse
import json
import math
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from eta_accuracy import DATA, ROOT, cpu_capability  # noqa: E402  (a sibling script)

from gptwiz.data.manifest import TOKEN_DTYPE  # noqa: E402
from gptwiz.data.tokenizer import folder_tokenizer  # noqa: E402
from gptwiz.model.gpt import GPT  # noqa: E402
from gptwiz.planning.presets import load_preset  # noqa: E402

RECIPE = ["--learning_rate", "1e-3", "--dropout", "0"]
EAGER, COMPILED, MUON, ADAMW = ["--no-compile"], ["--compile"], ["--optimizer", "muon"], ["--optimizer", "adamw"]
GUIDE = ["--learning_rate", "3e-4", "--dropout", "0.1", *ADAMW]
ARMS = {"default": [], "guide": GUIDE, "recipe": [*RECIPE, *ADAMW, *EAGER], "compile": [*RECIPE, *ADAMW, *COMPILED],
        "muon": [*RECIPE, *MUON, *EAGER], "bpe": [*RECIPE, *ADAMW, *EAGER], "muon-bpe": [*RECIPE, *MUON, *EAGER],
        "all": [*RECIPE, *MUON, *COMPILED], "rate": ["--learning_rate", "1e-3", *ADAMW, *COMPILED],
        "muon-compile": [*RECIPE, *MUON, *COMPILED]}
BPE = "bpe:8192"


def corpus_text(corpus: str, work: Path) -> str:
    """The race's text: tinyshakespeare, or the built-in demo corpus's records (the standard library's docstrings
    and source) in a fixed shuffle, so that the held-out end holds both kinds."""
    if corpus == "shakespeare":
        return DATA.read_text()
    from gptwiz.data.demo import write_sources

    src = write_sources(work / "data")
    records = [json.loads(line)["text"] for name in ("docstrings", "code")
               for line in (src / f"{name}.jsonl").read_text().splitlines()]
    random.Random(0).shuffle(records)
    return "\n\n".join(records)


def prepare(work: Path, block: int, tokenizer: str = "gpt2", corpus: str = "shakespeare") -> Path:
    """The text as one prepared dataset (its last documents held out), made once a tokenizer by `gptwiz prepare`."""
    docs = work / "docs"
    docs.mkdir(exist_ok=True)
    text = corpus_text(corpus, work)
    parts = 20  # documents, so that the held-out split is whole documents at the end of the text
    size = len(text) // parts
    for i in range(parts):
        (docs / f"{i:02d}.txt").write_text(text[i * size:(i + 1) * size])
    out = work / f"ds-{tokenizer.replace(':', '')}"
    subprocess.run([sys.executable, "-m", "gptwiz", "prepare", "--source", f"text:{docs}/*.txt", "--out_dir",
                    str(out), "--block_size", str(block), "--tokenizer", tokenizer, "--quiet"], check=True)
    return out


def split_tokens(dataset: Path, split: str) -> np.ndarray:
    source = json.loads((dataset / "manifest.json").read_text())["sources"][0]
    return np.concatenate([np.fromfile(dataset / name, dtype=TOKEN_DTYPE) for name in source[f"{split}_shards"]])


def bytes_per_token(dataset: Path) -> float:
    """The held-out text's bytes a token, the documents' separators not counted as text (as `gptwiz eval` counts)."""
    tokens = split_tokens(dataset, "val")
    enc = folder_tokenizer(dataset)
    return len(enc.decode_bytes(tokens[tokens != enc.eot_token].tolist())) / len(tokens)


def full_val_loss(model: GPT, val: np.ndarray, block: int) -> float:
    """Mean loss over every whole window of the held-out tokens."""
    model.eval()
    n = (len(val) - 1) // block
    x = torch.from_numpy(val[: n * block].astype(np.int64)).view(n, block)
    y = torch.from_numpy(val[1: n * block + 1].astype(np.int64)).view(n, block)
    with torch.no_grad():
        losses = [model(x[i:i + 16], y[i:i + 16]).item() * len(x[i:i + 16]) for i in range(0, n, 16)]
    model.train()
    return sum(losses) / n


def baseline(preset: str, train: np.ndarray, val: np.ndarray, iters: int, batch: int, block: int,
             eval_every: int) -> list[tuple[int, float, float]]:
    """(iteration, training seconds, held-out loss) at each evaluation of the nanoGPT recipe."""
    torch.manual_seed(1337)
    model = GPT(load_preset(preset).with_overrides(block_size=block, dropout=0.0).model)
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": 0.1},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, lr=1e-3, betas=(0.9, 0.99))
    warmup, lr, min_lr = 100, 1e-3, 1e-4
    data = torch.from_numpy(train.astype(np.int64))
    points, trained = [(0, 0.0, full_val_loss(model, val, block))], 0.0
    for it in range(1, iters + 1):
        t0 = time.perf_counter()
        ratio = (it - warmup) / max(1, iters - warmup)
        for g in opt.param_groups:
            g["lr"] = lr * it / warmup if it < warmup else min_lr + 0.5 * (1 + math.cos(math.pi * ratio)) * (lr - min_lr)
        ix = torch.randint(len(data) - block - 1, (batch,))
        x = torch.stack([data[i:i + block] for i in ix])
        y = torch.stack([data[i + 1:i + 1 + block] for i in ix])
        loss = model(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        trained += time.perf_counter() - t0
        if it % eval_every == 0 or it == iters:
            points.append((it, trained, full_val_loss(model, val, block)))
    return points


def gptwiz_arm(work: Path, dataset: Path, name: str, extra: list[str], preset: str, iters: int, batch: int,
               block: int, eval_every: int) -> list[tuple[int, float, float]]:
    """(iteration, training seconds, held-out loss) at each evaluation of a real `gptwiz train` run."""
    subprocess.run([sys.executable, "-m", "gptwiz", "train", "--config_file", preset, "--model_name", name,
                    "--dataset_dir", str(dataset), "--max_iters", str(iters), "--batch_size", str(batch),
                    "--block_size", str(block), "--eval_interval", str(eval_every), "--runs_dir", str(work / "runs"),
                    "--quiet", *extra], check=True, capture_output=True)
    records = [json.loads(line) for line in (work / "runs" / name / "metrics.jsonl").read_text().splitlines()]
    points, evals_s, elapsed = [], 0.0, 0.0
    for r in records:
        if r["type"] == "train":
            elapsed = r["elapsed_s"]
        elif r["type"] == "eval":
            points.append((r["iter"], max(0.0, elapsed - evals_s), r["val_loss"]))
            evals_s += r.get("eval_s", 0.0)
    return points


def first_at(points: list[tuple[int, float, float]], target: float) -> tuple[int, float] | None:
    return next(((it, s) for it, s, loss in points if loss <= target), None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--iters", type=int, default=300)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--block", type=int, default=128)
    parser.add_argument("--arms", default=",".join(ARMS))
    parser.add_argument("--corpus", choices=("shakespeare", "demo"), default="shakespeare")
    parser.add_argument("--curves", type=Path, help="also write each arm's (iteration, seconds, held-out bits per "
                        "byte) points to this JSON file")
    parser.add_argument("--bpe_iters", type=int, help="the BPE arms' iterations (default 4 x --iters: their steps "
                        "are cheaper, so they may take more in the same time)")
    args = parser.parse_args()
    eval_every = max(10, args.iters // 15)
    print(cpu_capability())
    with tempfile.TemporaryDirectory(dir=ROOT) as tmp:
        work = Path(tmp)
        gpt2, bpe = prepare(work, args.block, corpus=args.corpus), prepare(work, args.block, BPE, args.corpus)
        train, val = split_tokens(gpt2, "train"), split_tokens(gpt2, "val")
        to_bpb = {d: 1 / (math.log(2) * bytes_per_token(d)) for d in (gpt2, bpe)}
        base = baseline(args.preset, train, val, args.iters, args.batch, args.block, eval_every)
        target = base[-1][2] * to_bpb[gpt2]
        # The baseline's own time to its final quality: a long run can pass through it before its end.
        base_s = next(s for _, s, loss in base if loss * to_bpb[gpt2] <= target)
        print(f"{args.preset}, {args.iters} iterations, batch {args.batch} x block {args.block}, "
              f"{len(train):,} training and {len(val):,} held-out tokens of "
              f"{DATA.name if args.corpus == 'shakespeare' else 'the demo corpus'}")
        print(f"target: the baseline's held-out {target:.3f} bits/byte after {args.iters} iterations")
        print(f"{'arm':28} {'iters':>5} {'train s':>7} {'final bpb':>9} {'reached at':>11} {'seconds':>8} "
              f"{'speed-up':>8}")
        curves = {"baseline": [(i, s, loss * to_bpb[gpt2]) for i, s, loss in base]}
        row("nanoGPT recipe (baseline)", curves["baseline"], target, base_s)
        for name in args.arms.split(","):  # each arm's row as soon as it has run
            own = "bpe" in name or name == "all"
            dataset = bpe if own else gpt2
            iters = (args.bpe_iters or 4 * args.iters) if own else args.iters
            points = gptwiz_arm(work, dataset, name, ARMS[name], args.preset, iters, args.batch, args.block,
                                eval_every)
            curves[name] = [(i, s, loss * to_bpb[dataset]) for i, s, loss in points]
            row(name, curves[name], target, base_s)
        if args.curves:
            args.curves.write_text(json.dumps({"machine": cpu_capability(), "args": vars(args) | {"curves": None},
                                               "curves": curves}, indent=1))


def row(name: str, points: list[tuple[int, float, float]], target: float, base_s: float) -> None:
    hit = first_at(points, target)
    at, secs = (f"iter {hit[0]}", f"{hit[1]:.0f}") if hit else ("not reached", "-")
    speed = f"{base_s / hit[1]:.2f}x" if hit and hit[1] > 0 else "-"
    print(f"{name:28} {points[-1][0]:5} {points[-1][1]:7.0f} {points[-1][2]:9.3f} {at:>11} {secs:>8} {speed:>8}",
          flush=True)


if __name__ == "__main__":
    main()
