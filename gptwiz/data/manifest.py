"""The dataset manifest: the one file that makes a folder of token shards a dataset.

A dataset is a folder with uint16 token shards and a `manifest.json`, written last and atomically:
a folder without a manifest is not a dataset.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from gptwiz.common.atomic import atomic_write_json
from gptwiz.common.errors import UsageError
from gptwiz.common.safe_read import MANIFEST_LIMIT, UnreadableFile, parse_json, read_regular
from gptwiz.data.chat_template import TEMPLATE_NAME
from gptwiz.data.tokenizer import ENCODING_NAME, EOT_TOKEN, GPT2_VOCAB_SIZE

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
TOKEN_DTYPE = np.uint16  # GPT-2's 50257 tokens fit, at half the size of int32


def new_manifest() -> dict[str, Any]:
    return {"format_version": FORMAT_VERSION, "tokenizer": ENCODING_NAME, "vocab_size": GPT2_VOCAB_SIZE,
            "dtype": "uint16", "eot_token": EOT_TOKEN, "sources": [], "totals": {}}


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
        raise UsageError(f"{path} has format_version {manifest.get('format_version') if isinstance(manifest, dict) else None!r}; "
                         f"this gptwiz reads version {FORMAT_VERSION}: prepare the dataset again")
    if not manifest.get("sources"):
        raise UsageError(f"{path} lists no sources; prepare the dataset again")
    problem = _manifest_problem(manifest)
    if problem:
        raise UsageError(f"{path} is damaged ({problem}); prepare the dataset again")
    return manifest


# The counts a manifest records, per source and in its totals: whole numbers, zero or more.
COUNT_KEYS = ("files", "bytes", "documents", "train_tokens", "val_tokens", "skipped_files", "replaced_chars")
_COUNT_MAX = 2**63 - 1


def _count_problem(where: str, record: dict[str, Any], keys: tuple[str, ...]) -> str | None:
    for key in keys:
        value = record.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _COUNT_MAX):
            return f"{where} has {key} {repr(value)[:40]}, not a whole number of zero or more"
    return None


def _manifest_problem(manifest: dict[str, Any]) -> str | None:
    """What in a manifest (hand-edited, or damaged) would make the sampler or dataset-info fail later, if anything."""
    if not isinstance(manifest["sources"], list) or not isinstance(manifest.get("totals", {}), dict):
        return "'sources' must be a list and 'totals' an object"
    for key, kinds in (("tokenizer", str), ("vocab_size", int), ("val_fraction", (int, float))):
        value = manifest.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, kinds)):
            return f"its {key} is {repr(value)[:40]}, of the wrong type"
    problem = _count_problem("'totals'", manifest.get("totals", {}), COUNT_KEYS)
    if problem:
        return problem
    for i, src in enumerate(manifest["sources"]):
        if not isinstance(src, dict) or not isinstance(src.get("name"), str):
            return f"source {i} has no name"
        weight = src.get("weight")
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0 < weight < float("inf"):
            return f"source {src['name']!r} has weight {weight!r}, not a positive number"
        for key in ("train_shards", "val_shards"):
            shards = src.get(key, [])
            if not isinstance(shards, list) or not all(isinstance(f, str) for f in shards):
                return f"source {src['name']!r}: {key} must be a list of file names"
        problem = _count_problem(f"source {src['name']!r}", src, (*COUNT_KEYS, "val_documents"))
        if problem:
            return problem
        if src.get("glob") is not None and not isinstance(src["glob"], str):
            return f"source {src['name']!r} has glob {repr(src['glob'])[:40]}, not text"
    kind = manifest.get("kind", "text")
    if kind not in KINDS:
        return f"its kind is {repr(kind)[:40]}; this gptwiz knows {', '.join(KINDS)}"
    return _sft_problem(manifest) if kind == "sft" else None


# What a dataset is: token streams to pretrain on ("text", also a manifest without a kind), or instruction
# examples with a trained mask ("sft", prepared with `gptwiz prepare --sft`).
KINDS = ("text", "sft")
SFT_COUNT_KEYS = ("train_examples", "val_examples", "train_trained_tokens", "val_trained_tokens", "truncated")
SFT_SHARD_KEYS = ("train_mask_shards", "val_mask_shards", "train_offset_shards", "val_offset_shards")


def is_sft(manifest: dict[str, Any]) -> bool:
    return manifest.get("kind") == "sft"


def _sft_problem(manifest: dict[str, Any]) -> str | None:
    section = manifest.get("sft")
    if not isinstance(section, dict):
        return "it is an instruction dataset without its 'sft' section"
    if section.get("template") != TEMPLATE_NAME:
        return f"its chat template is {repr(section.get('template'))[:40]}; this gptwiz knows {TEMPLATE_NAME}"
    block = section.get("block_size")
    if isinstance(block, bool) or not isinstance(block, int) or block < 1:
        return f"its 'sft' block_size is {repr(block)[:40]}, not a positive whole number"
    problem = _count_problem("'sft'", section, SFT_COUNT_KEYS)
    if problem:
        return problem
    for src in manifest["sources"]:
        own = src.get("sft")
        if not isinstance(own, dict):
            return f"source {src['name']!r} has no 'sft' section"
        for key in SFT_SHARD_KEYS:
            shards = own.get(key)
            if not isinstance(shards, list) or not all(isinstance(f, str) for f in shards):
                return f"source {src['name']!r}: sft {key} must be a list of file names"
        problem = _count_problem(f"source {src['name']!r}'s 'sft'", own, SFT_COUNT_KEYS)
        if problem:
            return problem
    return None
