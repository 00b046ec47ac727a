"""The dataset manifest: the one file that makes a folder of token shards a dataset.

A dataset is a folder with uint16 token shards and a `manifest.json`, written last and atomically:
a folder without a manifest is not a dataset.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from gptwiz.common.atomic import atomic_write_json
from gptwiz.common.errors import UsageError
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
    return hashlib.sha256((dataset_dir / MANIFEST).read_bytes()).hexdigest()


def read_manifest(dataset_dir: Path | str) -> dict[str, Any]:
    d = Path(dataset_dir)
    if not d.is_dir():
        raise UsageError(f"--dataset_dir {d} does not exist or is not a folder (prepare one with `gptwiz prepare`)")
    path = d / MANIFEST
    if not path.exists():
        raise UsageError(f"{d} is not a prepared dataset: it has no {MANIFEST} (prepare it with `gptwiz prepare`, "
                         "or rerun a prepare that was interrupted)")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UsageError(f"{path} cannot be read as JSON ({exc}); prepare the dataset again") from None
    if not isinstance(manifest, dict) or manifest.get("format_version") != FORMAT_VERSION:
        raise UsageError(f"{path} has format_version {manifest.get('format_version') if isinstance(manifest, dict) else None!r}; "
                         f"this gptwiz reads version {FORMAT_VERSION}: prepare the dataset again")
    if not manifest.get("sources"):
        raise UsageError(f"{path} lists no sources; prepare the dataset again")
    problem = _manifest_problem(manifest)
    if problem:
        raise UsageError(f"{path} is damaged ({problem}); prepare the dataset again")
    return manifest


def _manifest_problem(manifest: dict[str, Any]) -> str | None:
    """What in a manifest (hand-edited, or damaged) would make the sampler fail later, if anything."""
    if not isinstance(manifest["sources"], list) or not isinstance(manifest.get("totals", {}), dict):
        return "'sources' must be a list and 'totals' an object"
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
    return None
