"""What instruction tuning's learning rate buys, and what it costs, with the tuning run sized from its dataset
(`gptwiz train --dataset_dir SFT --init_from_model BASE`, nothing else given: three passes at the base's batch).

A base (tiny, 300 iterations of batch 16, block 128 on tinyshakespeare's first 90%), then an instruction dataset
made from the same text (each speech of up to 200 characters answered by the next one: 600 pairs), tuned at each
rate. Printed per rate: the answers' validation loss before and after (what tuning teaches), and the tuned
model's loss on the text's last 10% (`gptwiz eval`: how far it drifted from the base's language), with the
base's for comparison, and the tuning run's wall time.

    python benchmarks/tuning_rates.py [RATE ...]      # default: 2e-5 (the default) 1e-4 3e-4 1e-3
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from conftest import SHAKESPEARE, run_cli  # noqa: E402  (the tests' helpers)

RATES = ["2e-5", "1e-4", "3e-4", "1e-3"]


def examples(path: Path, count: int = 600) -> None:
    speeches = [b.split("\n", 1)[1].replace("\n", " ") for b in SHAKESPEARE.read_text().split("\n\n") if "\n" in b]
    pairs = [(a, b) for a, b in zip(speeches, speeches[1:]) if len(a) < 200 and len(b) < 200][:count]
    path.write_text("".join(json.dumps({"prompt": a, "response": b}) + "\n" for a, b in pairs))


def evals(run: Path) -> list[float]:
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [r["val_loss"] for r in records if r["type"] == "eval"]


def text_loss(root: Path, name: str, held_out: Path) -> float:
    out = run_cli(["eval", name, "--input_file", str(held_out), "--json"], cwd=root, check=True).stdout
    return float(json.loads(out.splitlines()[-1])["loss"])


def main() -> None:
    rates = sys.argv[1:] or RATES
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        text = SHAKESPEARE.read_text()
        (root / "train.txt").write_text(text[: int(len(text) * 0.9)])
        (root / "held_out.txt").write_text(text[int(len(text) * 0.9):])
        run_cli(["train", "--config_file", "tiny", "--model_name", "base", "--input_file", str(root / "train.txt"),
                 "--max_iters", "300", "--batch_size", "16", "--block_size", "128", "--quiet"], cwd=root, check=True)
        examples(root / "ex.jsonl")
        run_cli(["prepare", "--sft", "--source", f"chat:{root / 'ex.jsonl'}", "--out_dir", str(root / "sft"),
                 "--block_size", "128"], cwd=root, check=True)
        print(f"base: loss on the held-out text {text_loss(root, 'base', root / 'held_out.txt'):.3f}")
        print(f"{'rate':>6} {'answers before':>15} {'after':>6} {'held-out text':>14} {'seconds':>8}")
        for i, rate in enumerate(rates):
            name = f"tuned{i}"
            t0 = time.perf_counter()
            run_cli(["train", "--model_name", name, "--dataset_dir", str(root / "sft"), "--init_from_model", "base",
                     "--learning_rate", rate, "--quiet"], cwd=root, check=True)
            seconds = time.perf_counter() - t0
            losses = evals(root / "runs" / name)
            print(f"{rate:>6} {losses[0]:15.3f} {losses[-1]:6.3f} {text_loss(root, name, root / 'held_out.txt'):14.3f} "
                  f"{seconds:8.0f}", flush=True)


if __name__ == "__main__":
    main()
