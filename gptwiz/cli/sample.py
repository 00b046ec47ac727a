"""`gptwiz sample`: text from a trained run."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from gptwiz.cli.args import flag, number, positive_int
from gptwiz.cli.model_output import json_line, write_raw
from gptwiz.common.inert import generated
from gptwiz.runs.checkpoints import CHECKPOINT_CHOICES


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
    flag(p, "json", action="store_true",
         help="one JSON object a line for each sample: text, new_tokens, tokens_per_sec, checkpoint, iter")
    flag(p, "raw", action="store_true",
         help="the text exactly as generated, control characters included, even on a terminal (where they are "
              "dropped otherwise)")
    flag(p, "checkpoint", choices=CHECKPOINT_CHOICES, default="auto",
         help="best or last; auto (the default): the best, unless an evaluation came after it or it holds the "
              "run's iteration 0 while the last is further on")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from gptwiz.training.sample import SampleOptions, sample_results  # lazy: torch only once the verb runs

    opts = SampleOptions(**{k: v for k, v in vars(args).items() if k in SampleOptions.__dataclass_fields__})
    def say(message: str) -> None:
        print(f"gptwiz sample: {message}", file=sys.stderr)

    on_terminal = sys.stdout.isatty()
    for i, result in enumerate(sample_results(opts, warn=say, note=say)):
        if args.json:
            print(json_line(result.to_json()), flush=True)
            continue
        if i:
            print("\n" + "-" * 40)
        if args.raw:
            write_raw(result.data + b"\n")
        else:
            # A model's output may hold escape sequences: a terminal gets it without its control characters; a
            # pipe gets it as generated, as it always has.
            print(generated(result.text) if on_terminal else result.text)
    return 0

