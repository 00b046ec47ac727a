"""The weighted sampler the trainer draws batches from: memory-mapped shards of a prepared dataset."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gptwiz.common.errors import UsageError
from gptwiz.data.manifest import MANIFEST, TOKEN_DTYPE, manifest_checksum, read_manifest


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
