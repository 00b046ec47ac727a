"""Shards: each source's train and val tokens appended to bounded shard files, in submission order."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from gptwiz.common.files import AppendFile, open_append
from gptwiz.data.manifest import TOKEN_DTYPE
from gptwiz.data.prepare.pieces import Piece


class ShardWriter:
    """Appends tokens to <prefix>-00000.bin, <prefix>-00001.bin, ... of at most `shard_tokens` each."""

    def __init__(self, folder: Path, prefix: str, shard_tokens: int):
        self.folder, self.prefix, self.shard_tokens = folder, prefix, shard_tokens
        self.shards: list[list[Any]] = []  # [file name, tokens]
        self._file: AppendFile | None = None

    @property
    def total(self) -> int:
        return sum(n for _, n in self.shards)

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.shards]

    @property
    def longest(self) -> int:
        return max((n for _, n in self.shards), default=0)

    def write(self, tokens: np.ndarray) -> None:
        while len(tokens):
            if not self.shards or self.shards[-1][1] >= self.shard_tokens:
                self._close_file()
                self.shards.append([f"{self.prefix}-{len(self.shards):05d}.bin", 0])
            if self._file is None:
                # Never through a link, and never into anything but a regular file.
                self._file = open_append(self.folder / self.shards[-1][0])
            room = self.shard_tokens - self.shards[-1][1]
            part, tokens = tokens[:room], tokens[room:]
            self._file.write(part.tobytes())
            self.shards[-1][1] += len(part)

    def read(self, start: int, stop: int, chunk: int = 1 << 20) -> Iterator[np.ndarray]:
        """Tokens [start, stop) of the whole stream, in chunks."""
        self._close_file(sync=False)
        itemsize = np.dtype(TOKEN_DTYPE).itemsize
        offset = 0
        for name, n in self.shards:
            lo, hi = max(start, offset), min(stop, offset + n)
            if lo < hi:
                fd = _open_shard(self.folder / name, os.O_RDONLY)
                try:
                    for a in range(lo, hi, chunk):
                        count = min(chunk, hi - a)
                        data = os.pread(fd, count * itemsize, (a - offset) * itemsize)
                        yield np.frombuffer(data, dtype=TOKEN_DTYPE)
                finally:
                    os.close(fd)
            offset += n

    def truncate(self, total: int) -> None:
        """Keep only the first `total` tokens (removing shard files that end up empty)."""
        self._close_file(sync=False)
        offset = 0
        kept: list[list[Any]] = []
        for name, n in self.shards:
            keep = min(n, max(0, total - offset))
            if keep:
                if keep < n:
                    fd = _open_shard(self.folder / name, os.O_WRONLY)
                    try:
                        os.ftruncate(fd, keep * np.dtype(TOKEN_DTYPE).itemsize)
                    finally:
                        os.close(fd)
                kept.append([name, keep])
            else:
                (self.folder / name).unlink()
            offset += n
        self.shards = kept

    def close(self) -> None:
        self._close_file()

    def _close_file(self, sync: bool = True) -> None:
        if self._file is not None:
            file, self._file = self._file, None
            try:
                if sync:
                    # The manifest will vouch for these bytes: they must be on disk before it is.
                    try:
                        os.fsync(file.fileno())
                    except OSError as exc:
                        exc.filename = exc.filename or str(file.path)
                        raise
            finally:
                file.close()


def _open_shard(path: Path, flags: int) -> int:
    """A descriptor of a shard this writer made, never through a link put in its place."""
    try:
        return os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        exc.filename = exc.filename or str(path)
        raise


def move_tail(src: ShardWriter, dst: ShardWriter, n: int) -> None:
    """Move the last `n` tokens of `src` to the end of `dst`, in order, a chunk at a time."""
    start = src.total - n
    for chunk in src.read(start, src.total):
        dst.write(chunk)
    src.truncate(start)


class SourceWriter:
    """One source's train and val shards, and the document counts that go into the manifest."""

    def __init__(self, folder: Path, name: str, shard_tokens: int):
        self.splits = {"train": ShardWriter(folder, f"{name}-train", shard_tokens),
                       "val": ShardWriter(folder, f"{name}-val", shard_tokens)}
        self.docs = {"train": 0, "val": 0}
        self.last_doc = {"train": 0, "val": 0}  # where each split's latest document starts in its stream
        self.split_by = "documents"

    def add(self, piece: Piece, tokens: np.ndarray, lengths: list[int]) -> None:
        writer = self.splits[piece.split]
        pos = writer.total
        for length, start, end in zip(lengths, piece.starts, piece.ends):
            if start:
                self.last_doc[piece.split] = pos
            pos += length
            self.docs[piece.split] += int(end)
        writer.write(tokens)

    def finish(self, val_fraction: float) -> None:
        """Make sure both splits hold something: at least one validation document, and some training text."""
        train, val = self.splits["train"], self.splits["val"]
        if self.docs["train"] + self.docs["val"] == 1:
            # One document cannot be split by documents: split its tokens, the last fraction to val,
            # as the token cache of --input_file does.
            if self.docs["val"]:
                move_tail(val, train, val.total)
            move_tail(train, val, max(1, int(train.total * val_fraction)))
            self.split_by = "tokens"
        else:
            for empty, full in (("val", "train"), ("train", "val")):
                if self.docs[empty] == 0 and self.docs[full] >= 2:
                    # The hash chose no document for one split: the other split's last document moves there.
                    move_tail(self.splits[full], self.splits[empty], self.splits[full].total - self.last_doc[full])
                    self.docs[full] -= 1
                    self.docs[empty] += 1
        train.close()
        val.close()
