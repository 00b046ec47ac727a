"""The weighted samplers the trainer draws batches from: memory-mapped shards of a prepared dataset. A text
dataset gives windows of its token streams (TokenDataset); an instruction dataset gives whole examples, padded,
their targets IGNORE_INDEX wherever the example is not trained on (SftDataset). `open_dataset` picks by the
manifest's kind."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gptwiz.common.errors import UsageError
from gptwiz.common.inert import quote
from gptwiz.data.manifest import MANIFEST, TOKEN_DTYPE, is_sft, manifest_checksum, read_manifest
from gptwiz.data.tokenizer import EOT_TOKEN

# The target of a position no loss is taken at: gptwiz.model.loss's IGNORE_INDEX, which both loss functions skip
# (repeated here, as that module imports torch; tests/test_sft.py checks that the two agree).
IGNORE_INDEX = -1


def open_shard(folder: Path, filename: str, dtype: Any) -> np.ndarray:
    """One shard the manifest lists, memory-mapped read-only."""
    path = folder / filename
    # Also a shard that is a symlink out of the folder: a dataset reads only its own files.
    if (Path(filename).is_absolute() or ".." in Path(filename).parts
            or folder.resolve() not in path.resolve().parents):
        raise UsageError(f"{folder / MANIFEST} names a shard outside the dataset: {quote(filename)}")
    if not path.is_file():
        raise UsageError(f"{folder} is incomplete: shard {filename} listed in the manifest is missing; prepare it again")
    size = path.stat().st_size
    if size % np.dtype(dtype).itemsize:
        raise UsageError(f"{folder} is damaged: shard {filename} holds {size} bytes, not whole "
                         f"{np.dtype(dtype).itemsize}-byte values; prepare it again")
    if size == 0:
        return np.zeros(0, dtype=dtype)
    return np.memmap(path, dtype=dtype, mode="r")


@dataclass
class SourceTokens:
    name: str
    weight: float
    train: list[np.ndarray]
    val: list[np.ndarray]


class TokenDataset:
    """Memory-mapped shards of every source; batches are drawn by source weight, not source size."""

    def __init__(self, dataset_dir: Path | str, manifest: dict[str, Any] | None = None):
        self.dir = Path(dataset_dir)
        self.manifest = manifest if manifest is not None else read_manifest(self.dir)
        self.checksum = manifest_checksum(self.dir)
        self.sources: list[SourceTokens] = []
        for src in self.manifest["sources"]:
            self.sources.append(SourceTokens(
                name=src["name"], weight=float(src["weight"]),
                train=[self._open(f) for f in src.get("train_shards", [])],
                val=[self._open(f) for f in src.get("val_shards", [])],
            ))

    def _open(self, filename: str) -> np.ndarray:
        return open_shard(self.dir, filename, TOKEN_DTYPE)

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


# --- instruction datasets ----------------------------------------------------------------------------

@dataclass
class SftSplit:
    """One source's split of an instruction dataset: its examples are tokens[starts[i]:ends[i]]."""
    tokens: np.ndarray
    mask: np.ndarray
    starts: np.ndarray
    ends: np.ndarray
    first_trained: np.ndarray  # per example, the index (from its start) of its first trained token
    _usable: dict[int, np.ndarray] = field(default_factory=dict)

    @classmethod
    def open(cls, folder: Path, tokens: list[str], masks: list[str], offsets: list[str]) -> SftSplit:
        def one(names: list[str], dtype: Any) -> np.ndarray:
            if len(names) != 1:
                raise UsageError(f"{folder / MANIFEST} is damaged (an instruction split has {len(names)} shards "
                                 "of a kind, not one); prepare it again")
            return open_shard(folder, names[0], dtype)

        ids, mask = one(tokens, TOKEN_DTYPE), one(masks, np.uint8)
        starts = one(offsets, np.uint64).astype(np.int64)
        if len(mask) != len(ids) or (len(starts) and (starts[0] != 0 or np.any(np.diff(starts) <= 0)
                                                       or starts[-1] >= len(ids))):
            raise UsageError(f"{folder} is damaged: an instruction split's tokens, mask and offsets disagree; "
                             "prepare it again")
        ends = np.append(starts[1:], len(ids))
        trained = np.flatnonzero(mask)
        # The first trained position at or after each start (len(ids) when none: the example trains nothing).
        first_at = np.full(len(starts), len(ids), dtype=np.int64)
        if len(trained):
            index = np.searchsorted(trained, starts)
            first_at = np.where(index < len(trained), trained[np.minimum(index, len(trained) - 1)], len(ids))
        return cls(ids, mask, starts, ends, first_at - starts)

    def usable(self, block_size: int) -> np.ndarray:
        """The examples with a trained token among the first block_size + 1: what a batch of this block learns
        from (a row with no trained target would add nothing, and a batch of them a 0/0 loss)."""
        if block_size not in self._usable:
            lengths = np.minimum(self.ends - self.starts, block_size + 1)
            self._usable[block_size] = np.flatnonzero((self.first_trained >= 1) & (self.first_trained < lengths))
        return self._usable[block_size]


@dataclass
class SftSource:
    name: str
    weight: float
    train: SftSplit
    val: SftSplit


class SftDataset:
    """Memory-mapped examples of every source. Each row of a batch is one example from its start, cut to
    block_size + 1 tokens and padded: x pads with end-of-text tokens, y with IGNORE_INDEX, and y is IGNORE_INDEX
    too wherever the token it names is not trained on (the prompt, the headers). Sources are drawn by weight,
    examples uniformly within one."""

    def __init__(self, dataset_dir: Path | str, manifest: dict[str, Any] | None = None):
        self.dir = Path(dataset_dir)
        self.manifest = manifest if manifest is not None else read_manifest(self.dir)
        self.checksum = manifest_checksum(self.dir)
        self.template = self.manifest["sft"]["template"]
        self.eot_token = int(self.manifest.get("eot_token", EOT_TOKEN))  # the padding: the tokenizer's end-of-text
        self.sources: list[SftSource] = []
        for src in self.manifest["sources"]:
            sft = src["sft"]
            splits = {split: SftSplit.open(self.dir, src[f"{split}_shards"], sft[f"{split}_mask_shards"],
                                           sft[f"{split}_offset_shards"]) for split in ("train", "val")}
            self.sources.append(SftSource(src["name"], float(src["weight"]), splits["train"], splits["val"]))

    @property
    def source_names(self) -> list[str]:
        return [s.name for s in self.sources]

    def tokens(self, split: str) -> int:
        return sum(len(getattr(s, split).tokens) for s in self.sources)

    def examples(self, split: str) -> int:
        return sum(len(getattr(s, split).starts) for s in self.sources)

    def check_block(self, block_size: int) -> None:
        """Refuse, with the numbers, a split with no example that trains on anything within the block."""
        for split in ("train", "val"):
            if not any(len(getattr(s, split).usable(block_size)) for s in self.sources):
                raise UsageError(f"dataset {self.dir}: none of the {self.examples(split)} examples of its {split} "
                                 f"split has an answer token within a block of {block_size + 1} tokens (block_size "
                                 "+ 1): their prompts fill it; use a larger --block_size or shorter prompts")

    def batch(self, split: str, batch_size: int, block_size: int,
              rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(x, y, source index) for `batch_size` examples; y is x shifted by one token, masked."""
        usable = [i for i, s in enumerate(self.sources) if len(getattr(s, split).usable(block_size))]
        weights = np.array([self.sources[i].weight for i in usable], dtype=np.float64)
        picks = rng.choice(len(usable), size=batch_size, p=weights / weights.sum())
        x = np.full((batch_size, block_size), self.eot_token, dtype=np.int64)
        y = np.full((batch_size, block_size), IGNORE_INDEX, dtype=np.int64)
        src_idx = np.empty(batch_size, dtype=np.int64)
        for row, pick in enumerate(picks):
            part: SftSplit = getattr(self.sources[usable[pick]], split)
            candidates = part.usable(block_size)
            example = int(candidates[rng.integers(0, len(candidates))])
            start = int(part.starts[example])
            stop = min(int(part.ends[example]), start + block_size + 1)
            ids = np.asarray(part.tokens[start:stop], dtype=np.int64)
            trained = np.asarray(part.mask[start + 1:stop], dtype=bool)
            n = len(ids) - 1
            x[row, :n] = ids[:-1]
            y[row, :n] = np.where(trained, ids[1:], IGNORE_INDEX)
            src_idx[row] = usable[pick]
        return x, y, src_idx


def open_dataset(dataset_dir: Path | str) -> TokenDataset | SftDataset:
    """The sampler for the dataset in `dataset_dir`, by its manifest's kind."""
    manifest = read_manifest(dataset_dir)
    return SftDataset(dataset_dir, manifest) if is_sft(manifest) else TokenDataset(dataset_dir, manifest)
