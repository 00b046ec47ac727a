"""Instruction tuning's training step (masked, padded batches of whole examples) beside pretraining's (windows of a
token stream), at the same shapes, through the real trainer.

    python benchmarks/sft_throughput.py [--iters 60] [--batch_size 8] [--block_size 64] [--preset tiny]

Both runs are `gptwiz train` processes on the same preset, batch and block, one on tinyshakespeare, one on an
instruction dataset made from it (`gptwiz prepare --sft`: each example a line of the play as the prompt, the
lines after it as the answer, so that lengths vary and rows are padded). Tokens/s is the trainer's own figure
(batch x block per step time, padding included), the median over the iterations after the first 10%; "answer
tokens/s" counts only the targets the loss is taken over (measured on the same batches).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
DATA = REPO.parent / "shared" / "data" / "tinyshakespeare.txt"
sys.path.insert(0, str(Path(__file__).resolve().parent))

from eta_accuracy import cpu_capability  # noqa: E402  (the one description of this CPU the benchmarks print)


def make_examples(path: Path, n: int, seed: int = 0) -> None:
    lines = [line for line in DATA.read_text(encoding="utf-8").splitlines() if line.strip()]
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8") as f:
        for _ in range(n):
            i = rng.randrange(len(lines) - 8)
            answer = "\n".join(lines[i + 1:i + 1 + rng.randint(1, 6)])
            f.write(json.dumps({"prompt": f"Continue the play after: {lines[i]}", "response": answer}) + "\n")


def train(args: argparse.Namespace, name: str, data: list[str], cwd: Path) -> list[float]:
    cmd = [sys.executable, "-m", "gptwiz", "train", "--config_file", args.preset, "--model_name", name, *data,
           "--batch_size", str(args.batch_size), "--block_size", str(args.block_size), "--max_iters", str(args.iters),
           "--eval_interval", str(args.iters), "--eval_iters", "1", "--learning_rate", "3e-4", "--quiet"]
    subprocess.run(cmd, cwd=cwd, check=True, capture_output=True, text=True)
    records = [json.loads(line) for line in (cwd / "runs" / name / "metrics.jsonl").read_text().splitlines()]
    return [r["tokens_per_sec"] for r in records if r.get("type") == "train"]


def answer_share(dataset_dir: Path, batch_size: int, block_size: int) -> float:
    from gptwiz.data.dataset import IGNORE_INDEX, SftDataset

    ds = SftDataset(dataset_dir)
    shares = [float((ds.batch("train", batch_size, block_size, np.random.default_rng([1337, i]))[1]
                     != IGNORE_INDEX).mean()) for i in range(50)]
    return statistics.mean(shares)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--iters", type=int, default=60)
    p.add_argument("--batch_size", type=int, default=8)
    p.add_argument("--block_size", type=int, default=64)
    p.add_argument("--preset", default="tiny")
    p.add_argument("--examples", type=int, default=2000)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cwd = Path(tmp)
        make_examples(cwd / "examples.jsonl", args.examples)
        subprocess.run([sys.executable, "-m", "gptwiz", "prepare", "--sft", "--source",
                        f"ex:{cwd / 'examples.jsonl'}", "--out_dir", str(cwd / "sft"), "--block_size",
                        str(args.block_size)], cwd=cwd, check=True, capture_output=True)
        skip = max(1, args.iters // 10)
        rows = []
        for kind, name, data in (("pretraining (token windows)", "pre", ["--input_file", str(DATA)]),
                                 ("SFT (masked, padded examples)", "sft", ["--dataset_dir", str(cwd / "sft")])):
            rates = train(args, name, data, cwd)[skip:]
            share = 1.0 if name == "pre" else answer_share(cwd / "sft", args.batch_size, args.block_size)
            rows.append((kind, statistics.median(rates), share))
    print(cpu_capability())
    print(f"preset {args.preset}, batch {args.batch_size} x block {args.block_size}, {args.iters} iterations "
          f"(median of the last {args.iters - skip})")
    print(f"{'step':32} {'tokens/s':>10} {'trained share':>14} {'trained tokens/s':>17}")
    for kind, rate, share in rows:
        print(f"{kind:32} {rate:>10,.0f} {share:>14.1%} {rate * share:>17,.0f}")
    print(f"SFT / pretraining tokens/s: {rows[1][1] / rows[0][1]:.2f}")


if __name__ == "__main__":
    main()
