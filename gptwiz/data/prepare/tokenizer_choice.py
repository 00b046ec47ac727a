"""`--tokenizer`: which tokenizer a preparation writes its tokens with, and the tokenizer.json it leaves beside them.

    gpt2                    GPT-2's (tiktoken), the default; no tokenizer.json
    bpe:N                   a byte-level BPE of N ids trained here on the sources' training split (gptwiz.data.bpe)
    FOLDER or FILE          the tokenizer of a dataset or run folder (or a tokenizer.json), to prepare more data,
                            an instruction dataset for instance, for a model that already has one
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from gptwiz.common.atomic import atomic_write
from gptwiz.common.errors import UsageError
from gptwiz.common.inert import quote
from gptwiz.data.bpe import TOKENIZER_FILE, load_bpe, parse_bpe_size, tokenizer_json_bytes, train_bpe
from gptwiz.data.prepare.pieces import SourceEnd, work_items
from gptwiz.data.prepare.reading import SourceStats
from gptwiz.data.prepare.sources import SourcePlan
from gptwiz.data.tokenizer import ENCODING_NAME, folder_tokenizer

GPT2 = ENCODING_NAME
# The most of a document held back while it may yet turn out to be validation text (more only when the share a
# single-document source holds out is larger).
_HOLD_CHARS = 64 << 20


def check_tokenizer_choice(choice: str) -> None:
    """Refuse a --tokenizer that names nothing usable before any work is done."""
    if choice == GPT2:
        return
    if choice.startswith("bpe:"):
        parse_bpe_size(choice)
        return
    existing_tokenizer(choice)


def existing_tokenizer(choice: str) -> Any:
    """The tokenizer of the folder (dataset or run) or tokenizer.json file `choice` names."""
    path = Path(os.path.expanduser(choice))
    if path.is_dir():
        return folder_tokenizer(path)
    if path.is_file():
        return load_bpe(path)
    raise UsageError(f"invalid --tokenizer {quote(choice)}: give gpt2, bpe:N (N from 512 to 65536: a BPE "
                     "trained on this data), or a dataset or run folder whose tokenizer to use")


def request_key(choice: str) -> str | None:
    """What the dataset's manifest records of the tokenizer asked for, so that asking again for the same dataset
    finds it up to date: None for GPT-2's, "bpe:N" for one trained on the data, a copied one's SHA-256."""
    if choice == GPT2:
        return None
    if choice.startswith("bpe:"):
        return f"bpe:{parse_bpe_size(choice)}"
    existing = existing_tokenizer(choice)
    return f"sha256:{existing.checksum}" if hasattr(existing, "checksum") else None


def make_tokenizer(choice: str, plans: list[SourcePlan], val_fraction: float, work: Path,
                   piece_chars: int, read_bytes: int) -> Any:
    """The tokenizer to write the dataset with; a BPE's tokenizer.json is written into the dataset's folder."""
    if choice == GPT2:
        return folder_tokenizer(work)  # no tokenizer.json there: GPT-2's
    if choice.startswith("bpe:"):
        stats = [SourceStats() for _ in plans]
        texts = _train_texts(work_items(plans, stats, val_fraction, piece_chars, read_bytes), plans, val_fraction)
        vocab = train_bpe(texts, parse_bpe_size(choice), sum(p.bytes for p in plans))
        data = tokenizer_json_bytes(vocab)
    else:
        existing = existing_tokenizer(choice)
        if not hasattr(existing, "checksum"):
            return existing  # a folder made with GPT-2's
        data = existing.data
    atomic_write(work / TOKENIZER_FILE, lambda f: f.write(data))
    return folder_tokenizer(work)


def _train_texts(items: Iterator[Any], plans: list[SourcePlan], val_fraction: float) -> Iterator[str]:
    """The texts that will be the training split, streamed: the tokenizer never sees a validation document.

    Which text is held out is settled only at a source's end (gptwiz.data.prepare.shards): a source of one
    document gives the last `val_fraction` of it, one whose documents the hash all put in train gives its last
    document. So the latest document is held back (its last part only, when long) until the next one starts."""
    pending: deque[str] = deque()
    held = docs = doc_chars = 0
    saw_val = False
    for item in items:
        if isinstance(item, SourceEnd):
            if saw_val:
                yield from pending
            elif docs == 1:  # split by tokens: all but about the last val_fraction of the text
                yield from _head(pending, held - round(val_fraction * doc_chars))
            pending.clear()
            held = docs = 0
            saw_val = False
            continue
        if item.split == "val":
            saw_val = True
            continue
        cap = max(_HOLD_CHARS, round(val_fraction * plans[item.source].bytes) + 1)
        for text, start in zip(item.texts, item.starts):
            if start:
                docs += 1
                doc_chars = 0
                yield from pending
                pending.clear()
                held = 0
            pending.append(text)
            held += len(text)
            doc_chars += len(text)
            while held - len(pending[0]) >= cap:
                held -= len(pending[0])
                yield pending.popleft()


def _head(texts: deque[str], chars: int) -> Iterator[str]:
    for text in texts:
        if chars <= 0:
            return
        yield text[:chars]
        chars -= len(text)
