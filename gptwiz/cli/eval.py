"""`gptwiz eval`: a run's loss on held-out text, as perplexity and bits per byte, recorded in its eval.jsonl."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from gptwiz.cli.args import flag
from gptwiz.common import fmt
from gptwiz.common.inert import inert
from gptwiz.data.text_check import refuse_binary
from gptwiz.runs.checkpoints import CHECKPOINT_CHOICES
from gptwiz.runs.paths import resolve_run


def add(sub: Any) -> None:
    p = sub.add_parser("eval", help="measure a run's loss and bits per byte on held-out text")
    p.add_argument("model_name", metavar="NAME", help="a run name or run folder")
    data = p.add_mutually_exclusive_group(required=True)
    flag(data, "input_file", help="a UTF-8 text file, evaluated whole")
    flag(data, "dataset_dir", help="a prepared dataset, whose validation split is evaluated")
    flag(p, "checkpoint", choices=CHECKPOINT_CHOICES, default="auto",
         help="best or last; auto (the default): the rule `gptwiz sample` follows")
    flag(p, "runs_dir", default="runs")
    flag(p, "device", default="auto")
    flag(p, "json", action="store_true", help="print the result as one JSON object")
    p.set_defaults(func=run)


@contextmanager
def _progress_bar() -> Iterator[Callable[[int, int], None] | None]:
    """A bar on stderr where it is a terminal; nothing otherwise (a log or a pipe)."""
    if not sys.stderr.isatty():
        yield None
        return
    # rich only here: `gptwiz --help` must not import it.
    from rich.console import Console  # lazy: rich only when progress is shown
    from rich.progress import (  # lazy: rich only when progress is shown
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    with Progress(TextColumn("evaluating"), BarColumn(), MofNCompleteColumn(), TextColumn("tokens"),
                  TimeRemainingColumn(), console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("eval", total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update


def run(args: argparse.Namespace) -> int:
    from gptwiz.training.evaluate import EvalOptions, evaluate, record_eval  # lazy: torch only once the verb runs

    opts = EvalOptions(**{k: v for k, v in vars(args).items() if k in EvalOptions.__dataclass_fields__})
    if opts.input_file is not None:
        refuse_binary(opts.input_file, "--input_file")  # the text check train and prepare apply, before the model loads

    def say(message: str) -> None:
        print(inert(f"gptwiz eval: {message}"), file=sys.stderr)  # it may name the run's files

    with _progress_bar() as progress:
        result = evaluate(opts, progress=progress, warn=say, note=say)
    paths = resolve_run(opts.model_name, opts.runs_dir)
    if args.json:
        print(json.dumps(result.to_json()), flush=True)
    else:
        _show(result)
    record_eval(paths, result)  # after the figures: a full disk loses the record, not the result
    return 0


def _show(result: Any) -> None:
    what = inert(next(iter(result.data.values())))  # a file's or a dataset's path
    bpb = "n/a" if result.bits_per_byte is None else f"{result.bits_per_byte:.4f}"
    print(f"{result.checkpoint} (iteration {result.iter}) on {what}")
    print(f"  loss           {result.loss:.4f}")
    print(f"  perplexity     {result.perplexity:.2f}")
    print(f"  bits per byte  {bpb}")
    print(f"  tokens         {result.tokens:,} ({fmt.bytes_(result.bytes)} of text, windows of {result.block_size})")
    print(f"  speed          {result.tokens_per_sec:,.0f} tokens/s ({fmt.duration(result.seconds)}, {result.device})")
    for source in result.sources if len(result.sources) > 1 else []:
        source_bpb = "n/a" if source["bits_per_byte"] is None else f"{source['bits_per_byte']:.4f}"
        print(f"  {inert(source['name'])}: loss {source['loss']:.4f}, bits per byte {source_bpb}, "
              f"{source['tokens']:,} tokens")
