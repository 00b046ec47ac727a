"""`gptwiz prepare`: folders of documents from weighted sources into a token dataset."""

from __future__ import annotations

import argparse
from typing import Any

from gptwiz.cli.args import flag, number, positive_int


def add(sub: Any) -> None:
    p = sub.add_parser("prepare", help="tokenize folders of documents from weighted sources into a dataset")
    flag(p, "source", action="append", required=True, metavar="NAME:GLOB[:WEIGHT]",
         help="a source of documents (.txt/.md as text, .jsonl by its 'text' field); repeat for more sources; "
              "WEIGHT (default 1) sets its share of the training sequences")
    flag(p, "out_dir", required=True, help="the dataset folder to write (train with --dataset_dir)")
    flag(p, "val_fraction", type=number, default=0.005, help="fraction of each source's documents held out "
         "for validation (at least one document)")
    flag(p, "workers", type=positive_int, help="tokenizer threads (default: every core, at most 16)")
    flag(p, "overwrite", action="store_true", help="replace the dataset already in --out_dir")
    flag(p, "block_size", type=positive_int, default=1024,
         help="refuse a corpus that cannot fill one block of this many tokens (default 1024, the largest preset's)")
    flag(p, "quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from gptwiz.data.prepare import PrepareOptions, run_cli

    opts = PrepareOptions(sources=args.source, out_dir=args.out_dir, val_fraction=args.val_fraction,
                          workers=args.workers, overwrite=args.overwrite, block_size=args.block_size)
    return run_cli(opts, quiet=args.quiet)
