"""The dataset manifest: the one file that makes a folder of token shards a dataset.

A dataset is a folder with uint16 token shards and a `manifest.json`, written last and atomically:
a folder without a manifest is not a dataset.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from gptwiz.common.atomic import atomic_write_json
from gptwiz.common.errors import UsageError
from gptwiz.common.inert import quote
from gptwiz.common.records import ANY_NUMBER, Bound, Check, RecordError, check_record, rule, shown
from gptwiz.common.safe_read import MANIFEST_LIMIT, UnreadableFile, parse_json, read_regular
from gptwiz.data.chat_template import TEMPLATE_NAME

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
TOKEN_DTYPE = np.uint16  # GPT-2's 50257 tokens (and a BPE's at most 65536) fit, at half the size of int32


def new_manifest(enc: Any, tokenizer_request: str | None = None) -> dict[str, Any]:
    """A manifest of a dataset tokenized by `enc` (tiktoken's GPT-2, or a BPE with its SHA-256); `tokenizer_request`:
    what --tokenizer asked for, when not GPT-2's (gptwiz.data.prepare.tokenizer_choice.request_key)."""
    manifest = {"format_version": FORMAT_VERSION, "tokenizer": enc.name, "vocab_size": enc.n_vocab,
                "dtype": "uint16", "eot_token": enc.eot_token, "sources": [], "totals": {}}
    if hasattr(enc, "checksum"):
        manifest.update(tokenizer_sha256=enc.checksum, tokenizer_request=tokenizer_request)
    return manifest


def finish_manifest(manifest: dict[str, Any]) -> dict[str, Any]:
    """Fill in the totals from the sources."""
    keys = ("files", "bytes", "documents", "train_tokens", "val_tokens", "skipped_files", "replaced_chars")
    manifest["totals"] = {k: sum(int(s.get(k, 0)) for s in manifest["sources"]) for k in keys}
    return manifest


def write_manifest(out_dir: Path, manifest: dict[str, Any]) -> None:
    atomic_write_json(out_dir / MANIFEST, finish_manifest(manifest))


def manifest_checksum(dataset_dir: Path) -> str:
    path = dataset_dir / MANIFEST
    try:
        return hashlib.sha256(read_regular(path, MANIFEST_LIMIT)).hexdigest()
    except OSError as exc:  # UnreadableFile: a FIFO put there since it was read, ...
        raise UsageError(f"{path} cannot be read ({getattr(exc, 'reason', None) or exc.strerror}); "
                         "prepare the dataset again") from None


def read_manifest(dataset_dir: Path | str) -> dict[str, Any]:
    d = Path(dataset_dir)
    if not d.is_dir():
        raise UsageError(f"--dataset_dir {d} does not exist or is not a folder (prepare one with `gptwiz prepare`)")
    path = d / MANIFEST
    try:
        # Only a regular file, and of a bounded size: a FIFO there would block the read for good.
        manifest = parse_json(read_regular(path, MANIFEST_LIMIT), path)
    except FileNotFoundError:
        raise UsageError(f"{d} is not a prepared dataset: it has no {MANIFEST} (prepare it with `gptwiz prepare`, "
                         "or rerun a prepare that was interrupted)") from None
    except UnreadableFile as exc:
        raise UsageError(f"{exc}; prepare the dataset again") from None
    except OSError as exc:
        raise UsageError(f"{path} cannot be read ({exc.strerror}); prepare the dataset again") from None
    if not isinstance(manifest, dict) or manifest.get("format_version") != FORMAT_VERSION:
        raise UsageError(f"{path} has format_version {quote(manifest.get('format_version') if isinstance(manifest, dict) else None)}; "
                         f"this gptwiz reads version {FORMAT_VERSION}: prepare the dataset again")
    if not manifest.get("sources"):
        raise UsageError(f"{path} lists no sources; prepare the dataset again")
    check_manifest(manifest, str(path))
    return manifest


# What a dataset is: token streams to pretrain on ("text", also a manifest without a kind), or instruction
# examples with a trained mask ("sft", prepared with `gptwiz prepare --sft`).
KINDS = ("text", "sft")
# The counts a manifest records, per source and in its totals: whole numbers, zero or more (or null).
COUNT_KEYS = ("files", "bytes", "documents", "train_tokens", "val_tokens", "skipped_files", "replaced_chars")
SFT_COUNT_KEYS = ("train_examples", "val_examples", "train_trained_tokens", "val_trained_tokens", "truncated")
SFT_SHARD_KEYS = ("train_mask_shards", "val_mask_shards", "train_offset_shards", "val_offset_shards")
_COUNT_MAX = 2**63 - 1


def _count() -> Any:
    return field(default=None, metadata=rule(Bound(0, _COUNT_MAX)))


# The manifest's shape, as the sampler and dataset-info read it (keys besides these are kept, unchecked); a
# manifest stays the dict it is read as, these only check it.
@dataclass(frozen=True, kw_only=True)
class Counts:
    files: int | None = _count()
    bytes: int | None = _count()
    documents: int | None = _count()
    train_tokens: int | None = _count()
    val_tokens: int | None = _count()
    skipped_files: int | None = _count()
    replaced_chars: int | None = _count()


@dataclass(frozen=True, kw_only=True)
class SftCounts:
    train_examples: int | None = _count()
    val_examples: int | None = _count()
    train_trained_tokens: int | None = _count()
    val_trained_tokens: int | None = _count()
    truncated: int | None = _count()


@dataclass(frozen=True, kw_only=True)
class SourceSft(SftCounts):
    train_mask_shards: list[str]
    val_mask_shards: list[str]
    train_offset_shards: list[str]
    val_offset_shards: list[str]


@dataclass(frozen=True, kw_only=True)
class DatasetSft(SftCounts):
    template: str
    block_size: int = field(metadata=rule(Bound(1, _COUNT_MAX)))


@dataclass(frozen=True, kw_only=True)
class Source(Counts):
    name: str
    weight: float = field(metadata=rule(Check(lambda v: 0 < v < float("inf"), "a positive number")))
    train_shards: list[str] = field(default_factory=list)
    val_shards: list[str] = field(default_factory=list)
    val_documents: int | None = _count()
    glob: str | None = None
    sft: SourceSft | None = None


@dataclass(frozen=True, kw_only=True)
class Manifest:
    sources: list[Source]
    totals: Counts = field(default_factory=Counts)
    tokenizer: str | None = None
    vocab_size: int | None = field(default=None, metadata=rule(Bound(2, 1 << 16)))
    tokenizer_sha256: str | None = None
    eot_token: int | None = field(default=None, metadata=rule(Bound(0, (1 << 16) - 1)))
    val_fraction: float | None = field(default=None, metadata=rule(ANY_NUMBER))
    kind: Literal["text", "sft"] = "text"
    sft: DatasetSft | None = None


_SHAPES = (Counts, SftCounts, SourceSft, DatasetSft, Source, Manifest)


def check_manifest(manifest: dict[str, Any], source: str) -> None:
    """Refuse, in one line naming `source` and the key, a manifest (hand-edited, or damaged) that would make the
    sampler or dataset-info fail later."""
    advice = "; prepare the dataset again"
    check_record(Manifest, manifest, source, suffix=advice, open_keys=_SHAPES)
    if not is_sft(manifest):
        return
    section = manifest.get("sft")
    if section is None:
        raise RecordError(source, "sft", "is missing (an instruction dataset has one)", advice)
    if section["template"] != TEMPLATE_NAME:
        raise RecordError(source, "sft.template", f"must be {TEMPLATE_NAME}: this dataset's chat template is "
                          f"{shown(section['template'])}", advice)
    for i, src in enumerate(manifest["sources"]):
        if src.get("sft") is None:
            raise RecordError(source, f"sources[{i}].sft", "is missing (an instruction dataset has one)", advice)


def is_sft(manifest: dict[str, Any]) -> bool:
    return manifest.get("kind") == "sft"
