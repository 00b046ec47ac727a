"""`gptwiz sample`: text from a trained run."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from gptwiz.cli.args import flag, number, positive_int


def add(sub: Any) -> None:
    p = sub.add_parser("sample", help="generate text from a trained run")
    flag(p, "model_name", required=True, help="a run name or run folder")
    flag(p, "prompt", default="\n")
    flag(p, "max_new_tokens", type=positive_int, default=200)
    flag(p, "temperature", type=number, default=0.8)
    flag(p, "top_k", type=positive_int, default=200)
    flag(p, "num_samples", type=positive_int, default=1)
    flag(p, "seed", type=int)
    flag(p, "device", default="auto")
    flag(p, "runs_dir", default="runs")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from gptwiz.training.sample import SampleOptions, sample

    opts = SampleOptions(**{k: v for k, v in vars(args).items() if k in SampleOptions.__dataclass_fields__})
    def say(message: str) -> None:
        print(f"gptwiz sample: {message}", file=sys.stderr)

    for i, text in enumerate(sample(opts, warn=say, note=say)):
        if i:
            print("\n" + "-" * 40)
        print(text)
    return 0
