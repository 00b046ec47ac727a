"""Tokenizing: pieces -> uint16 tokens on a pool of threads (tiktoken releases the GIL), consumed in the
order they were submitted, so the output is the same byte for byte whatever the number of workers."""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np

from gptwiz.data.manifest import TOKEN_DTYPE
from gptwiz.data.prepare.pieces import Piece, SourceEnd

MAX_DEFAULT_WORKERS = 16        # each worker holds a ~10 MB tokenizer and ~6 MB of pieces: bounded memory


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _encode(enc: Any, text: str) -> np.ndarray:
    """encode_ordinary's tokens, as a uint32 array made without a Python list (and without the GIL)."""
    if not hasattr(enc, "encode_to_numpy"):  # tiktoken before 0.8
        return np.array(enc.encode_ordinary(text), dtype=np.uint32)
    try:
        return enc.encode_to_numpy(text, disallowed_special=())
    except UnicodeEncodeError:
        # Lone surrogates (from JSON escapes): the same repair tiktoken's encode_ordinary makes.
        text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
        return enc.encode_to_numpy(text, disallowed_special=())


def clone_encoding(enc: Any) -> Any:
    """A second tiktoken Encoding over the same tables (about 50 ms; no file is read again)."""
    if not hasattr(enc, "_mergeable_ranks"):
        return enc  # a BPE of the user's own: the tokenizers library is safe to share between threads
    # Here, as in gptwiz.data.tokenizer, tiktoken loads only once text is tokenized, not when the package is imported.
    import tiktoken  # lazy: tiktoken's import is slow; only a worker that tokenizes pays it

    try:
        return tiktoken.Encoding(enc.name, pat_str=enc._pat_str, mergeable_ranks=enc._mergeable_ranks,
                                 special_tokens=enc._special_tokens)
    except (AttributeError, TypeError):  # a tiktoken without these attributes: share the one we have
        return enc


class ThreadEncodings:
    """One Encoding per thread. Threads sharing one tiktoken Encoding contend inside it: measured here,
    two threads on one did no more work per second than one thread, while with one each they did 1.9x."""

    def __init__(self, enc: Any):
        self.enc = enc
        self.local = threading.local()

    def get(self) -> Any:
        enc = getattr(self.local, "enc", None)
        if enc is None:
            enc = self.local.enc = clone_encoding(self.enc)
        return enc


def encode_piece(enc: Any, piece: Piece) -> tuple[np.ndarray, list[int]]:
    """The piece's tokens, an end-of-text after each document's last segment, and each segment's length."""
    arrays: list[np.ndarray] = []
    lengths: list[int] = []
    for text, end in zip(piece.texts, piece.ends):
        ids = _encode(enc, text)
        arrays.append(ids)
        if end:
            arrays.append(np.array([enc.eot_token], dtype=np.uint32))
        lengths.append(len(ids) + int(end))
    if not arrays:
        return np.zeros(0, dtype=TOKEN_DTYPE), lengths
    return np.concatenate(arrays).astype(TOKEN_DTYPE), lengths


def run_ordered(items: Iterator[Piece | SourceEnd], encode: Any, consume: Any, workers: int) -> None:
    """encode() pieces on `workers` threads, consume() every item in its original order.

    At most about two pieces per worker are in flight, which bounds the memory.
    """
    if workers == 1:
        for item in items:
            consume(item, encode(item) if isinstance(item, Piece) else None)
        return
    window = 2 * workers + 2
    pending: deque[tuple[Piece | SourceEnd, Future[Any] | None]] = deque()
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="gptwiz-prepare")
    try:
        for item in items:
            pending.append((item, pool.submit(encode, item) if isinstance(item, Piece) else None))
            while len(pending) > window:
                done, future = pending.popleft()
                consume(done, future.result() if future else None)
        while pending:
            done, future = pending.popleft()
            consume(done, future.result() if future else None)
    finally:
        # On an interrupt: drop the queued pieces, let the running ones (a second or less) end.
        pool.shutdown(wait=True, cancel_futures=True)
