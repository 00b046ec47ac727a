"""`gptwiz prepare --sft`: JSONL files of instruction examples -> a dataset of conversations, each token marked
trained on (the answers) or not (the prompt), for instruction tuning.

Each source's files are planned as the text path plans them (gptwiz.data.prepare.sources: a glob, regular files
only, links followed), read line by line (a file with NUL bytes is skipped as not text; invalid UTF-8 becomes
U+FFFD, counted), each line parsed (sft_records) and laid out by the chat template (gptwiz.data.chat_template).
Per split and source the dataset holds three files, one shard each: the uint16 tokens, a uint8 mask (1: a
token the model is trained to produce) and the uint64 offsets where each example starts. An example's split is a
hash of where it comes from, as a document's is; each source keeps at least one example in each split. Written
into a partial folder, manifest last, and renamed into place (pipeline.write_dataset), as the text path is.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gptwiz.common.errors import UsageError
from gptwiz.common.inert import quote
from gptwiz.data.chat_template import TEMPLATE_NAME, encode_conversation
from gptwiz.data.manifest import TOKEN_DTYPE, new_manifest
from gptwiz.data.prepare.options import PrepareOptions, PrepareResult, validate_options
from gptwiz.data.prepare.out_dir import check_out_dir, recover_interrupted, resolve_out_dir
from gptwiz.data.prepare.pieces import is_val_document
from gptwiz.data.prepare.pipeline import request_variant, write_dataset
from gptwiz.data.prepare.reading import BINARY_PROBE, SourceStats, replaced_count, skipped_as_binary
from gptwiz.data.prepare.sft_records import BadRecord, parse_record
from gptwiz.data.prepare.shards import ShardWriter
from gptwiz.data.prepare.sources import PlannedFile, SourcePlan, parse_sources, plan_source
from gptwiz.data.prepare.tokenizer_choice import make_tokenizer, request_key

BAD_LINES_LISTED = 10          # malformed lines named one by one, per source; the rest are counted
MASK_DTYPE = np.uint8
OFFSET_DTYPE = np.uint64
_ONE_SHARD = 1 << 62           # every split in one shard: batches read an example as one slice of it
_FLUSH_TOKENS = 1 << 20        # tokens buffered before a write
SFT_VAL_FRACTION = 0.05        # of the examples: a few hundred examples still give a validation split of some


@dataclass
class Example:
    ids: np.ndarray
    mask: np.ndarray


class SplitWriter:
    """One source's split: its tokens, mask and offsets files, and the counts the manifest records. The latest
    example is held back, so that finish() can still move it to the other split when that one got none."""

    def __init__(self, folder: Path, name: str, split: str):
        prefix = f"{name}-{split}"
        self.tokens = ShardWriter(folder, prefix, _ONE_SHARD)
        self.masks = ShardWriter(folder, f"{prefix}-mask", _ONE_SHARD)
        self.offsets = ShardWriter(folder, f"{prefix}-offsets", _ONE_SHARD)
        self.examples = 0
        self.trained = 0
        self.written = 0        # tokens written and buffered
        self.buffer: list[Example] = []
        self.buffered = 0
        self.held: Example | None = None

    def add(self, example: Example) -> None:
        if self.held is not None:
            self._queue(self.held)
        self.held = example

    def take_held(self) -> Example | None:
        held, self.held = self.held, None
        return held

    @property
    def count(self) -> int:
        return self.examples + len(self.buffer) + (self.held is not None)

    def _queue(self, example: Example) -> None:
        self.buffer.append(example)
        self.buffered += len(example.ids)
        if self.buffered >= _FLUSH_TOKENS:
            self._flush()

    def _flush(self) -> None:
        if not self.buffer:
            return
        lengths = np.array([len(e.ids) for e in self.buffer], dtype=np.int64)
        starts = self.written + np.concatenate([[0], np.cumsum(lengths)[:-1]])
        self.tokens.write(np.concatenate([e.ids for e in self.buffer]).astype(TOKEN_DTYPE))
        mask = np.concatenate([e.mask for e in self.buffer]).astype(MASK_DTYPE)
        self.masks.write(mask)
        self.offsets.write(starts.astype(OFFSET_DTYPE))
        self.examples += len(self.buffer)
        self.trained += int(mask.sum())
        self.written += int(lengths.sum())
        self.buffer, self.buffered = [], 0

    def close(self) -> None:
        held = self.take_held()
        if held is not None:
            self._queue(held)
        self._flush()
        for writer in (self.tokens, self.masks, self.offsets):
            writer.close()


@dataclass
class SftStats(SourceStats):
    """What reading an instruction source found: the text path's counts, and the examples'."""
    lines: int = 0
    truncated: int = 0
    no_answer_in_block: int = 0
    bad_listed: list[str] = field(default_factory=list)

    def bad(self, where: str, why: str) -> None:
        self.bad_lines += 1
        if len(self.bad_listed) < BAD_LINES_LISTED:
            self.bad_listed.append(f"{where}: {why}")


def _lines(pf: PlannedFile, source: str, stats: SftStats) -> Iterator[tuple[int, str]]:
    """(line number, text) of one file's non-blank lines; a file with NUL bytes is skipped as not text."""
    try:
        with open(pf.path, "rb") as f:
            if skipped_as_binary(f.read(BINARY_PROBE), pf, stats):
                return
            f.seek(0)
            for number, raw in enumerate(f, 1):
                stats.bytes += len(raw)
                line = raw.decode("utf-8", errors="replace")
                stats.replaced_chars += replaced_count(line, raw)
                if line.strip():
                    stats.lines += 1
                    yield number, line
    except OSError as exc:
        raise UsageError(f"source {source}: cannot read {pf.path} ({exc.strerror or exc})") from None


def _example(enc: Any, line: str, block_size: int, stats: SftStats) -> Example | None:
    """The line's tokens and mask, cut to block_size + 1 tokens (counted); BadRecord when it is no example."""
    encoded = encode_conversation(enc, parse_record(line))
    ids = np.array(encoded.ids, dtype=np.int64)
    mask = np.array(encoded.mask, dtype=MASK_DTYPE)
    if len(ids) > block_size + 1:
        stats.truncated += 1
        ids, mask = ids[:block_size + 1], mask[:block_size + 1]
        if not mask[1:].any():  # the prompt alone fills the block: nothing of the answer would be learned
            stats.no_answer_in_block += 1
            return None
    return Example(ids, mask)


def _tokenize_source(plan: SourcePlan, folder: Path, enc: Any, opts: PrepareOptions) -> dict[str, Any]:
    name = plan.spec.name
    stats = SftStats()
    splits = {s: SplitWriter(folder, name, s) for s in ("train", "val")}
    assert opts.block_size is not None
    for pf in plan.files:
        for number, line in _lines(pf, name, stats):
            where = f"{pf.path}:{number}"
            try:
                example = _example(enc, line, opts.block_size, stats)
            except BadRecord as exc:
                stats.bad(where, str(exc))
                continue
            if example is not None:
                val = is_val_document(name, pf.rel, number, opts.val_fraction)
                splits["val" if val else "train"].add(example)
    total = splits["train"].count + splits["val"].count
    if total < 2:
        raise UsageError(_too_few(plan, stats, total))
    for empty, full in (("val", "train"), ("train", "val")):
        moved = splits[full].take_held() if splits[empty].count == 0 else None
        if moved is not None:  # the hash chose no example for one split: the other's latest goes there
            splits[empty].add(moved)
    for writer in splits.values():
        writer.close()
    return _source_entry(plan, stats, splits)


def _too_few(plan: SourcePlan, stats: SftStats, usable: int) -> str:
    name, files = plan.spec.name, plan.files[0].path if len(plan.files) == 1 else f"the {len(plan.files)} files of {quote(plan.spec.glob)}"
    if stats.lines == 0 and not stats.skipped_files:
        return f"source {name}: {files} holds no lines: give a JSONL file with one example a line"
    if stats.skipped_files and not stats.files:
        return f"source {name}: {files} is not text (NUL bytes): give a JSONL file with one example a line"
    why = f"; line {stats.bad_listed[0]}" if stats.bad_listed else ""
    dropped = f", {stats.no_answer_in_block} whose prompt fills --block_size" if stats.no_answer_in_block else ""
    return (f"source {name}: {files} holds {usable} usable example{'' if usable == 1 else 's'} ({stats.bad_lines} "
            f"malformed line{'' if stats.bad_lines == 1 else 's'}{dropped}{why}); at least 2 are needed (one to "
            'train on, one to validate with), each a line like {"prompt": "...", "response": "..."}')


def _source_entry(plan: SourcePlan, stats: SftStats, splits: dict[str, SplitWriter]) -> dict[str, Any]:
    train, val = splits["train"], splits["val"]
    return {
        "name": plan.spec.name, "weight": plan.spec.weight, "glob": plan.spec.glob, "root": plan.root,
        "files": stats.files, "bytes": stats.bytes, "documents": train.examples + val.examples,
        "val_documents": val.examples, "split_by": "examples",
        "skipped_files": stats.skipped_files, "skipped_bytes": stats.skipped_bytes, "skipped": stats.skipped,
        "bad_lines": stats.bad_lines, "replaced_chars": stats.replaced_chars,
        "train_tokens": train.tokens.total, "val_tokens": val.tokens.total,
        "train_shards": train.tokens.names, "val_shards": val.tokens.names,
        "longest_train_shard": train.tokens.longest, "longest_val_shard": val.tokens.longest,
        "fingerprint": plan.fingerprint(),
        "sft": {
            "train_examples": train.examples, "val_examples": val.examples,
            "train_trained_tokens": train.trained, "val_trained_tokens": val.trained,
            "truncated": stats.truncated, "no_answer_in_block": stats.no_answer_in_block,
            "bad_line_examples": stats.bad_listed,
            "train_mask_shards": train.masks.names, "val_mask_shards": val.masks.names,
            "train_offset_shards": train.offsets.names, "val_offset_shards": val.offsets.names,
        },
    }


def sft_manifest(enc: Any, sources: list[dict[str, Any]], opts: PrepareOptions) -> dict[str, Any]:
    manifest = new_manifest(enc, request_key(opts.tokenizer))
    manifest.update(kind="sft", val_fraction=opts.val_fraction, block_size=opts.block_size, sources=sources)
    section: dict[str, Any] = {"template": TEMPLATE_NAME, "block_size": opts.block_size}
    for key in ("train_examples", "val_examples", "train_trained_tokens", "val_trained_tokens", "truncated",
                "no_answer_in_block"):
        section[key] = sum(int(s["sft"][key]) for s in sources)
    section["bad_lines"] = sum(int(s["bad_lines"]) for s in sources)
    manifest["sft"] = section
    return manifest


def prepare_sft(opts: PrepareOptions) -> PrepareResult:
    """Prepare the instruction dataset `opts` asks for; UsageError (with nothing left behind) on bad input."""
    validate_options(opts)
    if opts.block_size is None:
        raise UsageError("--sft needs a --block_size: examples are cut to it")
    specs = parse_sources(opts.sources)
    dest = resolve_out_dir(opts.out_dir)
    plans = [plan_source(s, dest.path) for s in specs]
    recover_interrupted(dest.path)
    if opts.tokenizer.startswith("bpe:"):
        raise UsageError(f"--sft with --tokenizer {opts.tokenizer}: an instruction dataset tunes a model that has a "
                         "tokenizer already; give that run's (or its dataset's) folder as --tokenizer, or leave it out "
                         "for GPT-2's")
    existing = check_out_dir(dest, plans, opts, variant=request_variant(opts.tokenizer, opts.block_size))
    out_dir = Path(os.path.expanduser(opts.out_dir))
    if existing is not None:
        return PrepareResult(out_dir=out_dir, manifest=existing, up_to_date=True)
    started = time.perf_counter()

    def fill(work: Path) -> dict[str, Any]:
        enc = make_tokenizer(opts.tokenizer, plans, opts.val_fraction, work, opts.piece_chars, opts.read_bytes)
        return sft_manifest(enc, [_tokenize_source(p, work, enc, opts) for p in plans], opts)

    manifest = write_dataset(dest, fill)
    return PrepareResult(out_dir=out_dir, manifest=manifest, seconds=time.perf_counter() - started)
