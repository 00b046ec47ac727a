"""The whole preparation: plan the sources, check out_dir, then read, tokenize and write into a partial
folder, check the result can be trained on, write the manifest last and rename the folder into place."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from gptwiz.common.errors import UsageError, WriteFailed
from gptwiz.common.files import write_failure
from gptwiz.common.inert import quote
from gptwiz.data.manifest import new_manifest, write_manifest
from gptwiz.data.prepare.interrupts import signals_deferred, sigterm_interrupts
from gptwiz.data.prepare.options import PrepareOptions, PrepareResult, validate_options
from gptwiz.data.prepare.out_dir import (
    NO_ROOM,
    Destination,
    check_out_dir,
    install,
    partial_dir,
    recover_interrupted,
    remove_dataset,
    resolve_out_dir,
)
from gptwiz.data.prepare.pieces import Piece, SourceEnd, work_items
from gptwiz.data.prepare.progress import PrepareProgress
from gptwiz.data.prepare.reading import SourceStats
from gptwiz.data.prepare.shards import SourceWriter
from gptwiz.data.prepare.sources import PlannedFile, SourcePlan, SourceSpec, parse_sources, plan_source
from gptwiz.data.prepare.tokenizer_choice import make_tokenizer, request_key
from gptwiz.data.prepare.tokenizing import (
    MAX_DEFAULT_WORKERS,
    ThreadEncodings,
    available_cores,
    encode_piece,
    run_ordered,
)
from gptwiz.data.prepare.wording import plural, size_text


def prepare(opts: PrepareOptions, progress: PrepareProgress | None = None) -> PrepareResult:
    """Prepare the dataset `opts` asks for; UsageError (with nothing left behind) on bad input."""
    validate_options(opts)
    specs = parse_sources(opts.sources)
    dest = resolve_out_dir(opts.out_dir)
    plans = [plan_source(s, dest.path) for s in specs]
    recover_interrupted(dest.path)  # a dataset a killed prepare was swapping in is put in place first
    existing = check_out_dir(dest, plans, opts, variant=request_variant(opts.tokenizer))
    out_dir = Path(os.path.expanduser(opts.out_dir))  # as given: a link stays the name the user knows
    if existing is not None:
        return PrepareResult(out_dir=out_dir, manifest=existing, up_to_date=True)
    result = build_dataset(plans, dest, opts, progress)
    result.out_dir = out_dir
    return result


def build_dataset(plans: list[SourcePlan], dest: Destination, opts: PrepareOptions,
                  progress: PrepareProgress | None = None,
                  extra: dict[str, Any] | None = None) -> PrepareResult:
    """Tokenize the planned sources into dest.path (replacing what is there); `extra` keys go into each source.
    A write that fails (a full disk) is a WriteFailed in one line, with nothing of the new dataset kept."""
    workers = opts.workers or min(available_cores(), MAX_DEFAULT_WORKERS)
    progress = progress or PrepareProgress()
    started = time.perf_counter()

    def fill(work: Path) -> dict[str, Any]:
        enc = make_tokenizer(opts.tokenizer, plans, opts.val_fraction, work, opts.piece_chars, opts.read_bytes)
        progress.start(sum(len(p.files) for p in plans), sum(p.bytes for p in plans))
        try:
            manifest = _tokenize_all(plans, work, enc, workers, opts, progress)
        finally:
            progress.stop()
        for source in manifest["sources"]:
            source.update(extra or {})
        if opts.block_size is not None:
            check_trainable(manifest, opts.block_size, opts.val_fraction)
        return manifest

    manifest = write_dataset(dest, fill)
    return PrepareResult(out_dir=dest.path, manifest=manifest, seconds=time.perf_counter() - started,
                         workers=workers)


def request_variant(choice: str, sft_block: int | None = None) -> Any:
    """check_out_dir's variant of the dataset asked for, as dataset_variant has it: an instruction dataset's block,
    the tokenizer when not GPT-2's; None for a text dataset with GPT-2's."""
    key = request_key(choice)
    variant = (["sft", sft_block] if sft_block is not None else []) + ([] if key is None else ["tokenizer", key])
    return variant or None


def write_dataset(dest: Destination, fill: Callable[[Path], dict[str, Any]]) -> dict[str, Any]:
    """fill(work) writes a dataset's shards into a fresh partial folder and returns its manifest; the manifest is
    then written last and the folder renamed to dest.path. On any failure (bad input, Ctrl-C, a full disk: a
    WriteFailed in one line) nothing of the new dataset is kept, nor the folders made for it."""
    out_dir = dest.path
    created = [d for d in (out_dir.absolute().parent, *out_dir.absolute().parent.parents) if not d.exists()]
    work: Path | None = None
    try:
        work = partial_dir(dest)
        with sigterm_interrupts():
            manifest = fill(work)
            write_manifest(work, manifest)
            with signals_deferred():
                install(work, out_dir)
    except BaseException as exc:
        # Told before the partial folder goes: the free space then is what the write met.
        failed = _write_failed(exc, dest, work) if isinstance(exc, OSError) else None
        if work is not None:
            remove_dataset(work)
        for folder in created:  # deepest first: the folders made for out_dir, now empty again
            with contextlib.suppress(OSError):
                folder.rmdir()
        if failed is not None:
            raise failed from None
        raise
    return manifest


def _write_failed(exc: OSError, dest: Destination, work: Path | None) -> WriteFailed:
    """The one line for a write into the dataset that failed: what, the free space there, nothing kept."""
    if exc.filename and work is not None:
        # Named as where the file was to land: the partial folder is about to go.
        with contextlib.suppress(ValueError):
            exc.filename = str(dest.path / Path(exc.filename).relative_to(work))
    what = write_failure(exc) or f"cannot write {exc.filename or dest.path} ({exc.strerror or exc})"
    advice = f"free some space or {dest.elsewhere}" if exc.errno in NO_ROOM else dest.elsewhere
    return WriteFailed(f"{dest.label}: {what}; nothing was kept: {advice}, and try again")


def _tokenize_all(plans: list[SourcePlan], folder: Path, enc: Any, workers: int, opts: PrepareOptions,
                  progress: PrepareProgress) -> dict[str, Any]:
    stats = [SourceStats() for _ in plans]
    writers = [SourceWriter(folder, p.spec.name, opts.shard_tokens) for p in plans]
    manifest = new_manifest(enc, request_key(opts.tokenizer))
    manifest.update(val_fraction=opts.val_fraction, block_size=opts.block_size)

    def consume(item: Piece | SourceEnd, result: tuple[np.ndarray, list[int]] | None) -> None:
        tokens = 0
        if isinstance(item, Piece):
            assert result is not None
            writers[item.source].add(item, *result)
            tokens = len(result[0])
        else:
            writers[item.source].finish(opts.val_fraction)
            manifest["sources"].append(_source_entry(plans[item.source], stats[item.source], writers[item.source]))
        progress.advance(item.files, item.nbytes, tokens)

    items = work_items(plans, stats, opts.val_fraction, opts.piece_chars, opts.read_bytes)
    if workers == 1:
        run_ordered(items, lambda piece: encode_piece(enc, piece), consume, workers)
    else:
        encodings = ThreadEncodings(enc)
        run_ordered(items, lambda piece: encode_piece(encodings.get(), piece), consume, workers)
    return manifest


def _source_entry(plan: SourcePlan, st: SourceStats, writer: SourceWriter) -> dict[str, Any]:
    train, val = writer.splits["train"], writer.splits["val"]
    if writer.docs["train"] + writer.docs["val"] == 0:
        why = []
        if st.skipped_files:
            why.append(f"{st.skipped_files} skipped as not text, e.g. {st.skipped[0]}")
        if st.bad_lines:
            why.append(f"{st.bad_lines} .jsonl lines without a string 'text' field, e.g. {st.first_bad_line}")
        detail = f" ({'; '.join(why)})" if why else " (they are empty)"
        raise UsageError(f"source {plan.spec.name}: the {len(plan.files)} files matched by {quote(plan.spec.glob)} "
                         f"hold no text to train on{detail}")
    return {
        "name": plan.spec.name, "weight": plan.spec.weight, "glob": plan.spec.glob, "root": plan.root,
        "files": st.files, "bytes": st.bytes, "documents": writer.docs["train"] + writer.docs["val"],
        "val_documents": writer.docs["val"], "split_by": writer.split_by,
        "skipped_files": st.skipped_files, "skipped_bytes": st.skipped_bytes, "skipped": st.skipped,
        "bad_lines": st.bad_lines, "replaced_chars": st.replaced_chars, "forced_cuts": st.forced_cuts,
        "train_tokens": train.total, "val_tokens": val.total,
        "train_shards": train.names, "val_shards": val.names,
        "longest_train_shard": train.longest, "longest_val_shard": val.longest,
        "fingerprint": plan.fingerprint(),
    }


def check_trainable(manifest: dict[str, Any], block_size: int, val_fraction: float) -> None:
    """Refuse, with the numbers, a dataset that cannot fill one training or one validation block."""
    need = block_size + 1
    sources = manifest["sources"]
    train = sum(s["train_tokens"] for s in sources)
    val = sum(s["val_tokens"] for s in sources)
    short = [s for s in sources if s["longest_train_shard"] < need]
    if short and len(short) < len(sources):
        s = short[0]
        raise UsageError(f"source {s['name']}: its train split holds {s['train_tokens']} tokens, fewer than one block "
                         f"of {need} tokens (--block_size {block_size} + 1), so training could never draw its "
                         f"weight {s['weight']:g} of sequences from it; add text to it, or lower --block_size")
    if short:
        docs = sum(s["documents"] for s in sources)
        raise UsageError(f"the corpus is too small: its {plural(docs, 'document')} ({size_text(sum(s['bytes'] for s in sources))}) "
                         f"hold {train + val} tokens, {train} of them for training, fewer than one block of {need} "
                         f"tokens (--block_size {block_size} + 1); add text, or lower --block_size to the smallest "
                         "block you will train with")
    if max(s["longest_val_shard"] for s in sources) < need:
        docs = sum(s["val_documents"] for s in sources)
        raise UsageError(f"the validation split holds {val} tokens ({plural(docs, 'document')} at --val_fraction "
                         f"{val_fraction:g}), fewer than one block of {need} tokens (--block_size {block_size} + 1); "
                         "raise --val_fraction, or lower --block_size to the smallest block you will train with")


def tokenize_text_file(path: Path, out_dir: Destination, name: str, val_fraction: float,
                       extra: dict[str, Any] | None = None, tokenizer: str = "gpt2") -> dict[str, Any]:
    """One UTF-8 text file as a one-source dataset (the token cache of --input_file), through the same
    streaming, parallel tokenizer: one document, so its last `val_fraction` of tokens is the val split."""
    st = path.stat()
    plan = SourcePlan(spec=SourceSpec(name=name, glob=str(path.resolve())), root=str(path.resolve().parent),
                      files=[PlannedFile(path=str(path), rel=path.name, size=st.st_size, mtime_ns=st.st_mtime_ns)])
    opts = PrepareOptions(sources=[], out_dir=str(out_dir.path), val_fraction=val_fraction, block_size=None,
                          tokenizer=tokenizer)
    return build_dataset([plan], out_dir, opts, extra=extra).manifest
