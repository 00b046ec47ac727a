"""`gptwiz dataset-info`: a prepared dataset's sources, files, tokens and weights."""

from __future__ import annotations

import argparse
import json
from typing import Any

from gptwiz.cli.args import flag


def add(sub: Any) -> None:
    p = sub.add_parser("dataset-info", help="show a prepared dataset: sources, files, tokens, weights")
    p.add_argument("dir", help="a dataset folder made by `gptwiz prepare`")
    flag(p, "json", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from gptwiz.data.info import dataset_info  # lazy: numpy off the --help path

    info = dataset_info(args.dir)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    from rich.console import Console  # lazy: rich only when the verb prints

    render(info, Console())
    return 0


def render(info: dict[str, Any], console: Any) -> None:
    from rich.table import Table  # lazy: rich only when the verb prints

    from gptwiz.common.rich_text import outside  # lazy: imports rich, as above

    # The folder, the manifest's tokenizer and the sources' names come from outside: inert, and as Text, which
    # rich reads no markup in.
    caption = (f"tokenizer {info['tokenizer']} · manifest sha256 {info['checksum'][:12]} · share = weight / sum of "
               "weights: the fraction of training sequences drawn from the source")
    table = Table(title=outside(f"dataset {info['dir']}"), caption=outside(caption))
    for col in ("source", "files", "MB", "documents", "train tokens", "val tokens", "weight", "share"):
        table.add_column(col, justify="left" if col == "source" else "right")

    def row(name: str, r: dict[str, Any], weight: str, share: str) -> list[Any]:
        files = f"{r['files']:,}" + (f" (+{r['skipped_files']} skipped)" if r["skipped_files"] else "")
        cells = [name, files, f"{r['bytes'] / 1e6:,.2f}", f"{r['documents']:,}", f"{r['train_tokens']:,}",
                 f"{r['val_tokens']:,}", weight, share]
        return [outside(c) for c in cells]

    for r in info["sources"]:
        table.add_row(*row(r["name"], r, f"{r['weight']:g}", f"{100 * r['share']:.1f}%"))
    if len(info["sources"]) > 1:
        table.add_section()
        table.add_row(*row("total", info["totals"], "", "100.0%"))
    console.print(table)
    if info.get("sft"):
        render_sft(info["sft"], console)


def render_sft(sft: dict[str, Any], console: Any) -> None:
    """An instruction dataset's examples and its trained (answer) and prompt tokens, per split."""
    from rich.table import Table  # lazy: rich only when the verb prints

    from gptwiz.common.rich_text import outside  # lazy: imports rich, as above

    table = Table(title=outside(f"instruction tuning: template {sft['template']}"),
                  caption=f"examples cut to --block_size {sft['block_size']} + 1 tokens: {sft['truncated']:,}; "
                          f"malformed lines ignored: {sft['bad_lines']:,}; trained on: the answers' tokens only")
    for col in ("split", "examples", "answer tokens (trained)", "prompt tokens"):
        table.add_column(col, justify="left" if col == "split" else "right")
    for split in ("train", "val"):
        r = sft[split]
        table.add_row(split, f"{r['examples']:,}", f"{r['trained_tokens']:,}", f"{r['prompt_tokens']:,}")
    console.print(table)
