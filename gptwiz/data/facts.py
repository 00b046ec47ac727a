"""What the quality model (gptwiz.planning.quality) needs to know of the data, and measuring it from a path.

Light on purpose (no numpy until something is measured): planning imports the type."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # only the type: the measuring module imports numpy and the tokenizer
    from gptwiz.data.difficulty import Difficulty
    from gptwiz.data.sizes import DatasetSize


@dataclass(frozen=True)
class DataFacts:
    """The data's held-out unigram and bigram cross-entropies (nats a token: how hard it is to predict), its
    training tokens (how often a run repeats them) and its UTF-8 bytes a token (for bits per byte)."""
    unigram: float
    bigram: float
    train_tokens: int | None     # None: unknown, counted as never repeated
    bytes_per_token: float | None
    measured: bool               # False: the typical English prose assumed with no data at hand

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


# With no data at hand: English prose under GPT-2's tokenizer (tinyshakespeare's archaic verse measures 6.47 and
# 5.04; modern prose has a larger vocabulary and reads a little easier a token), about 4 bytes a token.
ASSUMED_DATA = DataFacts(unigram=6.8, bigram=5.0, train_tokens=None, bytes_per_token=4.0, measured=False)


def assumed_data(train_tokens: int | None) -> DataFacts:
    """Typical English prose, of the given size where it is known."""
    return replace(ASSUMED_DATA, train_tokens=train_tokens)


def data_facts(difficulty: Difficulty, train_tokens: int | None) -> DataFacts:
    """Measured data as the quality model sees it."""
    return DataFacts(unigram=difficulty.unigram, bigram=difficulty.bigram, train_tokens=train_tokens,
                     bytes_per_token=difficulty.bytes / difficulty.tokens if difficulty.tokens else None,
                     measured=True)


def measured_data(path: str | None, size: DatasetSize | None = None) -> DataFacts:
    """PATH (a text file, folder, glob or prepared dataset) measured: a second or two, a sample of raw text being
    tokenized. With no path, or an instruction dataset (whose answers the model does not cover), typical
    English prose of `size`."""
    if path is None:
        return assumed_data(size.tokens * 9 // 10 if size else None)
    from gptwiz.data.difficulty import path_difficulty  # lazy: numpy and the tokenizer, only once data is given

    measured = path_difficulty(path)
    if measured is None:
        return assumed_data(size.tokens if size else None)
    return data_facts(*measured)


__all__ = ["DataFacts", "ASSUMED_DATA", "assumed_data", "data_facts", "measured_data"]
