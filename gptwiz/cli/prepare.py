"""`gptwiz prepare`: folders of documents from weighted sources into a token dataset."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from gptwiz.cli.args import bounded_int, flag, number
from gptwiz.common.inert import inert
from gptwiz.planning.presets import BOUNDS

if TYPE_CHECKING:
    from gptwiz.data.prepare import PrepareOptions, PrepareResult


def add(sub: Any) -> None:
    p = sub.add_parser("prepare", help="tokenize folders of documents from weighted sources into a dataset")
    flag(p, "source", action="append", required=True, metavar="NAME:GLOB[:WEIGHT]",
         help="a source of documents (.txt/.md as text, .jsonl by its 'text' field; with --sft, .jsonl files of "
              "examples); repeat for more sources; WEIGHT (default 1) sets its share of the training sequences")
    flag(p, "sft", action="store_true", help="instruction tuning: each line of the sources is an example "
         "({prompt, response}, {instruction, input, output} or {messages}), trained on its answers only")
    flag(p, "out_dir", required=True, help="the dataset folder to write (train with --dataset_dir)")
    flag(p, "val_fraction", type=number, help="fraction of each source's documents held out for validation "
         "(at least one document; default 0.005, with --sft 0.05 of the examples)")
    flag(p, "workers", type=bounded_int(1, 1024), help="tokenizer threads (default: every core, at most 16)")
    flag(p, "overwrite", action="store_true", help="replace the dataset already in --out_dir")
    flag(p, "block_size", type=bounded_int(1, int(BOUNDS["block_size"].high)), default=1024,
         help="refuse a corpus that cannot fill one block of this many tokens (default 1024, the largest preset's); "
              "with --sft, examples longer than this + 1 tokens are cut at the end (counted)")
    flag(p, "tokenizer", default="gpt2", metavar="gpt2|bpe:N|FOLDER",
         help="gpt2 (default); bpe:N, a byte-level BPE of N tokens (512 to 65536) trained on the sources' training "
              "split, kept with the dataset; or a dataset or run folder whose tokenizer to use (with --sft: the "
              "base model's run folder)")
    flag(p, "quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # numpy and the tokenizer load only when the verb runs, so `gptwiz --help` answers at once.
    from gptwiz.data.prepare import DEFAULT_VAL_FRACTION, PrepareOptions  # lazy: numpy off the --help path

    if args.sft:
        from gptwiz.data.prepare.sft import SFT_VAL_FRACTION, prepare_sft  # lazy: numpy off the --help path

        opts = PrepareOptions(sources=args.source, out_dir=args.out_dir, overwrite=args.overwrite,
                              val_fraction=SFT_VAL_FRACTION if args.val_fraction is None else args.val_fraction,
                              block_size=args.block_size, tokenizer=args.tokenizer)
        for line in sft_summary_lines(prepare_sft(opts)):
            print(inert(line))  # it names sources, files and folders
        return 0
    val_fraction = DEFAULT_VAL_FRACTION if args.val_fraction is None else args.val_fraction
    opts = PrepareOptions(sources=args.source, out_dir=args.out_dir, val_fraction=val_fraction,
                          workers=args.workers, overwrite=args.overwrite, block_size=args.block_size,
                          tokenizer=args.tokenizer)
    return run_cli(opts, quiet=args.quiet)


def run_cli(opts: PrepareOptions, quiet: bool = False) -> int:
    """A progress bar on a terminal, then a short summary. UsageError and Ctrl-C reach `gptwiz`'s main, which
    prints them and exits 2 or 130; prepare() has already removed what it had written."""
    from gptwiz.data.prepare import RichPrepareProgress, prepare  # as in run: off the `gptwiz --help` path

    progress = RichPrepareProgress() if sys.stdout.isatty() and not quiet else None
    result = prepare(opts, progress)
    for line in summary_lines(result):
        print(inert(line))  # it names sources, files and folders
    return 0


def summary_lines(result: PrepareResult) -> list[str]:
    from gptwiz.data.prepare import FORCED_CUT_CHARS  # as in run: off the `gptwiz --help` path
    from gptwiz.data.prepare.wording import plural, size_text  # lazy: numpy off the --help path

    m = result.manifest
    totals = m.get("totals", {})
    if result.up_to_date:
        return [f"{result.out_dir} already holds this dataset, prepared from the same files (unchanged): "
                "nothing to do; pass --overwrite to prepare it again"]
    mb = result.input_bytes / 1e6
    rate = mb / result.seconds if result.seconds > 0 else 0.0
    lines = [f"prepared {result.out_dir}: {plural(len(m['sources']), 'source')}, "
             f"{plural(totals.get('files', 0), 'file')}, {size_text(totals.get('bytes', 0))}, "
             f"{plural(totals.get('documents', 0), 'document')} -> "
             f"{totals.get('train_tokens', 0):,} train + {totals.get('val_tokens', 0):,} val tokens "
             f"in {result.seconds:.1f} s ({rate:.1f} MB/s, {result.workers} workers)"]
    for s in m["sources"]:
        notes = []
        if s.get("skipped_files"):
            shown = ", ".join(s.get("skipped", [])[:3])
            notes.append(f"skipped {plural(s['skipped_files'], 'file')} as not text (NUL bytes): {shown}"
                         + (", ..." if s["skipped_files"] > 3 else ""))
        if s.get("replaced_chars"):
            notes.append(f"replaced {s['replaced_chars']} invalid UTF-8 sequences with U+FFFD")
        if s.get("bad_lines"):
            notes.append(f"ignored {s['bad_lines']} .jsonl lines without a string 'text' field")
        if s.get("forced_cuts"):
            notes.append(f"cut {s['forced_cuts']} times inside runs of over {FORCED_CUT_CHARS >> 20} M characters "
                         "without whitespace (token count there may differ slightly)")
        if s.get("split_by") == "tokens":
            notes.append("one document: its last tokens are the validation split")
        for note in notes:
            lines.append(f"  {s['name']}: {note}")
    lines.append(f"train with: gptwiz train --dataset_dir {result.out_dir} ...; inspect with: "
                 f"gptwiz dataset-info {result.out_dir}")
    return lines


def sft_summary_lines(result: PrepareResult) -> list[str]:
    """What `prepare --sft` made: examples and tokens per split, and every line it could not use."""
    from gptwiz.data.prepare.wording import plural  # lazy: numpy off the --help path

    m = result.manifest
    if result.up_to_date:
        return summary_lines(result)
    sft, totals = m["sft"], m.get("totals", {})
    train_tokens, val_tokens = int(totals.get("train_tokens", 0)), int(totals.get("val_tokens", 0))
    lines = [f"prepared {result.out_dir} for instruction tuning (template {sft['template']}): "
             f"{plural(sft['train_examples'], 'example')} to train on + {sft['val_examples']:,} to validate with; "
             f"{train_tokens:,} train tokens ({sft['train_trained_tokens']:,} of them answers) + {val_tokens:,} val "
             f"({sft['val_trained_tokens']:,} answers) in {result.seconds:.1f} s"]
    if sft.get("truncated"):
        dropped = sft.get("no_answer_in_block", 0)
        lines.append(f"  cut {plural(sft['truncated'], 'example')} longer than --block_size {sft['block_size']} + 1 "
                     "tokens at the end" + (f"; dropped {dropped} whose prompt alone fills it" if dropped else ""))
    for s in m["sources"]:
        if s.get("skipped_files"):
            lines.append(f"  {s['name']}: skipped {plural(s['skipped_files'], 'file')} as not text (NUL bytes): "
                         + ", ".join(s.get("skipped", [])[:3]))
        if s.get("replaced_chars"):
            lines.append(f"  {s['name']}: replaced {s['replaced_chars']} invalid UTF-8 sequences with U+FFFD")
        listed = s["sft"].get("bad_line_examples", [])
        if s.get("bad_lines"):
            lines.append(f"  {s['name']}: ignored {plural(s['bad_lines'], 'malformed line')}:")
            lines += [f"    {bad}" for bad in listed]
            if s["bad_lines"] > len(listed):
                lines.append(f"    ... and {s['bad_lines'] - len(listed)} more")
    lines.append(f"tune with: gptwiz train --model_name NAME --dataset_dir {result.out_dir} --init_from_model BASE "
                 f"(it follows BASE's preset); inspect with: gptwiz dataset-info {result.out_dir}")
    return lines
