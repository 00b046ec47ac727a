"""Token datasets: the manifest format, the weighted sampler the trainer draws batches from,
and the token cache that turns a single `--input_file` into a one-source dataset.

A dataset is a folder with uint16 token shards and a `manifest.json`, written last and atomically:
a folder without a manifest is not a dataset.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gptwiz.atomic import atomic_write_json
from gptwiz.errors import UsageError
from gptwiz.tokenizer import ENCODING_NAME, EOT_TOKEN, GPT2_VOCAB_SIZE

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


@dataclass
class SourceTokens:
    name: str
    weight: float
    train: list[np.ndarray]
    val: list[np.ndarray]


class TokenDataset:
    """Memory-mapped shards of every source; batches are drawn by source weight, not source size."""

    def __init__(self, dataset_dir: Path | str):
        self.dir = Path(dataset_dir)
        self.manifest = read_manifest(self.dir)
        self.checksum = manifest_checksum(self.dir)
        self.sources: list[SourceTokens] = []
        for src in self.manifest["sources"]:
            self.sources.append(SourceTokens(
                name=src["name"], weight=float(src["weight"]),
                train=[self._open(f) for f in src.get("train_shards", [])],
                val=[self._open(f) for f in src.get("val_shards", [])],
            ))

    def _open(self, filename: str) -> np.ndarray:
        path = self.dir / filename
        # Also a shard that is a symlink out of the folder: a dataset reads only its own files.
        if (Path(filename).is_absolute() or ".." in Path(filename).parts
                or self.dir.resolve() not in path.resolve().parents):
            raise UsageError(f"{self.dir / MANIFEST} names a shard outside the dataset: {filename!r}")
        if not path.is_file():
            raise UsageError(f"{self.dir} is incomplete: shard {filename} listed in the manifest is missing; prepare it again")
        size = path.stat().st_size
        if size % np.dtype(TOKEN_DTYPE).itemsize:
            raise UsageError(f"{self.dir} is damaged: shard {filename} holds {size} bytes, not whole "
                             f"{np.dtype(TOKEN_DTYPE).itemsize}-byte tokens; prepare it again")
        if size == 0:
            return np.zeros(0, dtype=TOKEN_DTYPE)
        return np.memmap(path, dtype=TOKEN_DTYPE, mode="r")

    @property
    def source_names(self) -> list[str]:
        return [s.name for s in self.sources]

    def tokens(self, split: str) -> int:
        return sum(len(a) for s in self.sources for a in getattr(s, split))

    def check_block(self, block_size: int) -> None:
        """Refuse, with the numbers, data too small to hold one training and one validation block."""
        for split in ("train", "val"):
            longest = max((len(a) for s in self.sources for a in getattr(s, split)), default=0)
            if longest < block_size + 1:
                raise UsageError(
                    f"dataset {self.dir}: its {split} split holds {self.tokens(split)} tokens (longest shard {longest}), "
                    f"fewer than one block of {block_size + 1} (block_size + 1); use more text or a smaller --block_size"
                )

    def batch(self, split: str, batch_size: int, block_size: int,
              rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(x, y, source index) for `batch_size` sequences; y is x shifted by one token."""
        usable = [i for i, s in enumerate(self.sources)
                  if any(len(a) > block_size for a in getattr(s, split))]
        weights = np.array([self.sources[i].weight for i in usable], dtype=np.float64)
        picks = rng.choice(len(usable), size=batch_size, p=weights / weights.sum())
        x = np.empty((batch_size, block_size), dtype=np.int64)
        y = np.empty((batch_size, block_size), dtype=np.int64)
        src_idx = np.empty(batch_size, dtype=np.int64)
        for row, pick in enumerate(picks):
            source = self.sources[usable[pick]]
            shards = [a for a in getattr(source, split) if len(a) > block_size]
            # Every start position of the source equally likely: pick a shard by how many it has.
            starts = np.array([len(a) - block_size for a in shards], dtype=np.float64)
            shard = shards[rng.choice(len(shards), p=starts / starts.sum())] if len(shards) > 1 else shards[0]
            i = int(rng.integers(0, len(shard) - block_size))
            window = np.asarray(shard[i:i + block_size + 1], dtype=np.int64)
            x[row], y[row], src_idx[row] = window[:-1], window[1:], usable[pick]
        return x, y, src_idx


# --- the token cache for --input_file --------------------------------------------------------------

def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def cache_text_file(input_file: Path | str, data_dir: Path | str, val_fraction: float = 0.1) -> Path:
    """Tokenize one UTF-8 text file into data/cache/<stem>-<hash>/ (reused while the content is unchanged).

    The last `val_fraction` of its tokens is the validation split, as one contiguous piece, so no
    validation text is also trained on.
    """
    path = Path(input_file)
    if not path.exists():
        raise UsageError(f"--input_file {path} does not exist (give a UTF-8 text file)")
    if not path.is_file():
        raise UsageError(f"--input_file {path} is not a file (for a folder of documents use `gptwiz prepare`)")
    try:
        size = path.stat().st_size
        digest = file_sha256(path)
    except OSError as exc:
        raise UsageError(f"--input_file {path} cannot be read ({exc.strerror})") from None
    if size == 0:
        raise UsageError(f"--input_file {path} is empty (give a UTF-8 text file with some text in it)")
    cache = Path(data_dir) / "cache" / f"{_slug(path.stem)}-{digest[:16]}"
    if (cache / MANIFEST).exists():
        return cache
    with open(path, "rb") as f:
        if b"\x00" in f.read(8192):
            raise UsageError(f"--input_file {path} is not a text file (it holds NUL bytes)")
    # The streaming, parallel tokenizer of `gptwiz prepare`: bounded memory whatever the file's size.
    from gptwiz.prepare import tokenize_text_file

    tokenize_text_file(path, cache, _slug(path.stem), val_fraction, extra={"sha256": digest})
    return cache


def _slug(text: str) -> str:
    slug = "".join(c if c.isalnum() or c in "-_." else "_" for c in text)[:40].strip("._")
    return slug or "data"
