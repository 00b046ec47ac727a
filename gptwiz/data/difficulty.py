"""How hard a corpus is to predict, measured in a second from its tokens: what gptwiz's quality model
(gptwiz.planning.quality) scales its predicted loss by.

Two held-out cross-entropies, in nats per token like the trainer's loss, each of a model that a training run
passes on its way down: the unigram model (token frequencies alone, which a run learns in its first hundred
steps) and the bigram model (the next token from the previous one, interpolated with the unigram). Both are
fitted on the training tokens and scored on the validation tokens, so a corpus whose validation text differs
from its training text (another author, another language) scores harder, as it will for the model.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gptwiz.data.dataset import TokenDataset, open_dataset
from gptwiz.data.sizes import text_files
from gptwiz.data.tokenizer import GPT2_VOCAB_SIZE, get_encoding

# Enough tokens for both estimates to settle (the bigram's within a few hundredths of a nat) in about a second.
MAX_TRAIN_TOKENS = 2_000_000
MAX_VAL_TOKENS = 200_000
# Additive smoothing of the unigram (a token never seen in training still has some probability), and the
# bigram's weight against the unigram in the interpolation, chosen per context by Witten-Bell.
UNIGRAM_ALPHA = 0.5
# Text read from raw files to measure them before they are prepared: a second or two of tokenizing.
SAMPLE_BYTES = 4_000_000


@dataclass(frozen=True)
class Difficulty:
    unigram: float        # nats per validation token under the training tokens' frequencies
    bigram: float         # nats per validation token under an interpolated bigram of the training tokens
    tokens: int           # the corpus's tokens and UTF-8 bytes: what turns nats per token into bits per byte
    bytes: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Difficulty:
        return cls(float(data["unigram"]), float(data["bigram"]), int(data["tokens"]), int(data["bytes"]))


def measure_difficulty(train: np.ndarray, val: np.ndarray, vocab_size: int, *, tokens: int, nbytes: int) -> Difficulty:
    """The corpus's unigram and bigram held-out cross-entropies, from evenly spread pieces of each split."""
    train = _spread_sample(np.asarray(train, dtype=np.int64), MAX_TRAIN_TOKENS)
    val = _spread_sample(np.asarray(val, dtype=np.int64), MAX_VAL_TOKENS)
    if len(train) < 2 or len(val) < 2:
        raise ValueError("at least two tokens of each split are needed to measure a corpus")
    counts = np.bincount(train, minlength=vocab_size).astype(np.float64)
    p_uni = (counts + UNIGRAM_ALPHA) / (counts.sum() + UNIGRAM_ALPHA * vocab_size)
    unigram = float(-np.log(p_uni[val]).mean())
    return Difficulty(unigram=unigram, bigram=_bigram_nats(train, val, counts, p_uni, vocab_size),
                      tokens=tokens, bytes=nbytes)


def dataset_difficulty(dataset: TokenDataset) -> Difficulty:
    """A prepared dataset's difficulty: each source's, weighted as its batches are drawn (by source weight), over
    its tokenizer's vocabulary."""
    vocab_size = int(dataset.manifest.get("vocab_size") or GPT2_VOCAB_SIZE)
    totals = dataset.manifest.get("totals", {})
    tokens = int(totals.get("train_tokens", 0)) + int(totals.get("val_tokens", 0))
    measured: list[tuple[float, Difficulty]] = []
    for source in dataset.sources:
        train, val = _joined(source.train), _joined(source.val)
        if len(train) >= 2 and len(val) >= 2:
            measured.append((source.weight, measure_difficulty(train, val, vocab_size, tokens=tokens,
                                                                nbytes=int(totals.get("bytes", 0)))))
    if not measured:
        raise ValueError(f"dataset {dataset.dir} has no source with both training and validation tokens")
    weight = sum(w for w, _ in measured)
    return Difficulty(unigram=sum(w * d.unigram for w, d in measured) / weight,
                      bigram=sum(w * d.bigram for w, d in measured) / weight, tokens=tokens,
                      bytes=int(totals.get("bytes", 0)))


def path_difficulty(path: str) -> tuple[Difficulty, int] | None:
    """What `--dataset PATH` names, measured: (its difficulty, its training tokens), or None for an instruction
    dataset (whose answers the quality model does not cover). The training tokens of raw text are its
    estimated tokens less the tenth a text file's token cache holds out."""
    files = text_files(path)
    if files:
        total = sum(_size(f) for f in files)
        d = text_difficulty(files, total)
        return d, d.tokens * 9 // 10
    folder = Path(path).expanduser()
    dataset = open_dataset(folder.parent if folder.name == "manifest.json" else folder)
    if not isinstance(dataset, TokenDataset):
        return None
    return dataset_difficulty(dataset), dataset.tokens("train")


def _size(f: Path) -> int:
    try:
        return f.stat().st_size
    except OSError:  # vanished since listed: prepare would skip it too
        return 0


def text_difficulty(files: list[Path], total_bytes: int, most_bytes: int = SAMPLE_BYTES) -> Difficulty:
    """Text files' difficulty from a sample of at most `most_bytes` (each file's share from its start), tokenized
    as `gptwiz prepare` would; the last tenth of the sample is the held-out part. `total_bytes`: the whole
    text's size, whose token count is estimated from the sample's bytes a token."""
    share = max(1, most_bytes // max(1, len(files)))
    pieces: list[np.ndarray] = []
    sampled = 0
    enc = get_encoding()
    for f in files:
        try:
            with open(f, "rb") as fh:
                raw = fh.read(share)
        except OSError:  # vanished or unreadable since listed: prepare would skip it too
            continue
        sampled += len(raw)
        pieces.append(np.asarray(enc.encode_ordinary(raw.decode("utf-8", errors="replace")), dtype=np.int64))
    tokens = np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.int64)
    cut = len(tokens) * 9 // 10
    per_byte = len(tokens) / sampled if sampled else 0.25
    return measure_difficulty(tokens[:cut], tokens[cut:], GPT2_VOCAB_SIZE, tokens=max(1, round(total_bytes * per_byte)),
                              nbytes=max(1, total_bytes))


def _joined(shards: list[np.ndarray]) -> np.ndarray:
    return np.concatenate([np.asarray(a) for a in shards]) if shards else np.zeros(0, dtype=np.int64)


def _bigram_nats(train: np.ndarray, val: np.ndarray, counts: np.ndarray, p_uni: np.ndarray, vocab: int) -> float:
    """Witten-Bell interpolation: after a context seen c times followed by t distinct tokens, the bigram's
    estimate gets weight c / (c + t), the unigram the rest."""
    pairs = train[:-1] * vocab + train[1:]
    uniq, pair_counts = np.unique(pairs, return_counts=True)
    distinct = np.bincount(uniq // vocab, minlength=vocab).astype(np.float64)
    context_counts = np.bincount(train[:-1], minlength=vocab).astype(np.float64)
    prev, nxt = val[:-1], val[1:]
    want = prev * vocab + nxt
    at = np.searchsorted(uniq, want)
    at_ok = np.minimum(at, len(uniq) - 1)
    seen = uniq[at_ok] == want
    c_pair = np.where(seen, pair_counts[at_ok], 0).astype(np.float64)
    c_ctx, t_ctx = context_counts[prev], distinct[prev]
    with np.errstate(divide="ignore", invalid="ignore"):
        lam = np.where(c_ctx > 0, c_ctx / (c_ctx + t_ctx), 0.0)
        p_bi = np.where(c_ctx > 0, c_pair / np.maximum(c_ctx, 1), 0.0)
    p = lam * p_bi + (1 - lam) * p_uni[nxt]
    return float(-np.log(p).mean())


def _spread_sample(tokens: np.ndarray, most: int) -> np.ndarray:
    """At most `most` tokens in 64 contiguous pieces spread over the whole split (a corpus's start is often
    not like its middle)."""
    if len(tokens) <= most:
        return tokens
    pieces, size = 64, most // 64
    starts = np.linspace(0, len(tokens) - size, pieces).astype(np.int64)
    return np.concatenate([tokens[s:s + size] for s in starts])


__all__ = ["Difficulty", "measure_difficulty", "dataset_difficulty", "text_difficulty", "path_difficulty", "MAX_TRAIN_TOKENS", "MAX_VAL_TOKENS"]
