"""AdamW against Muon on the instruction-tuning test's task (tests/test_sft.py): the same base (tiny, 50
iterations on tinyshakespeare), the same 400 copy examples, tuned at learning rate 2e-3, then scored on the test's
30 held-out prompts with its own helpers.

    python benchmarks/sft_optimizers.py [NAME:ITERS:LR:OPTIMIZER ...]   # default: the table in docs/benchmarks.md
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from conftest import SHAKESPEARE, run_cli  # noqa: E402  (the tests' helpers)
from test_sft import _write_jsonl, exact_answers, repeat_task  # noqa: E402

DEFAULT = ["adamw:200:2e-3:adamw", "adamw:300:2e-3:adamw", "adamw:300:3e-3:adamw", "adamw:500:2e-3:adamw",
           "muon:200:2e-3:muon", "muon:300:2e-3:muon"]


def main() -> None:
    arms = [a.split(":") for a in (sys.argv[1:] or DEFAULT)]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        runs = root / "runs"
        run_cli(["train", "--config_file", "tiny", "--model_name", "base", "--input_file", str(SHAKESPEARE),
                 "--max_iters", "50", "--batch_size", "16", "--block_size", "64", "--eval_iters", "2", "--quiet"],
                cwd=root, check=True)
        train, tests = repeat_task(400, 30)
        src = _write_jsonl(root / "repeat.jsonl", train)
        run_cli(["prepare", "--sft", "--source", f"repeat:{src}", "--out_dir", str(root / "sft"), "--block_size",
                 "32"], cwd=root, check=True)
        print(f"{'optimizer':10} {'iterations':>10} {'lr':>6} {'right':>7} {'seconds':>8}")
        for i, (_, iters, lr, optimizer) in enumerate(arms):
            name = f"tuned{i}"
            t0 = time.perf_counter()
            run_cli(["train", "--config_file", "tiny", "--model_name", name, "--dataset_dir", str(root / "sft"),
                     "--init_from_model", "base", "--block_size", "32", "--batch_size", "32", "--dropout", "0",
                     "--learning_rate", lr, "--optimizer", optimizer, "--max_iters", iters, "--eval_interval", iters,
                     "--eval_iters", "2", "--quiet"], cwd=root, check=True)
            seconds = time.perf_counter() - t0
            right = sum(exact_answers(runs / name, runs, tests, template=False))
            print(f"{optimizer:10} {iters:>10} {lr:>6} {right:>4}/30 {seconds:8.0f}", flush=True)


if __name__ == "__main__":
    main()
