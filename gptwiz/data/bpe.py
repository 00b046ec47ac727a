"""A byte-level BPE of the user's own, trained on a dataset's training split with Hugging Face `tokenizers`.

It is GPT-2's kind of tokenizer (GPT-2's pre-tokenizer regex, 256 byte symbols, merges, `<|endoftext|>` the last
id), so everything that reads GPT-2's files reads it: transformers' fast tokenizer, llama.cpp's converter. A
dataset keeps it as `tokenizer.json` beside its shards, and a run copies it into its folder.

Text in, bytes out: tokens decode to exactly the UTF-8 bytes of the text that was encoded (there is no
normaliser), and `<|endoftext|>` written in a document is text, encoded as its pieces, as tiktoken's
`encode_ordinary` treats it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gptwiz.common.errors import UsageError
from gptwiz.common.inert import quote
from gptwiz.common.safe_read import MANIFEST_LIMIT, UnreadableFile, read_regular

if TYPE_CHECKING:
    import numpy as np

EOT_TEXT = "<|endoftext|>"
TOKENIZER_FILE = "tokenizer.json"
# Fewer than 512 ids leave little beyond the 256 bytes; token shards are uint16, so at most 65536.
BPE_MIN, BPE_MAX = 512, 65536


def byte_symbols() -> list[str]:
    """GPT-2's printable stand-in for each byte value (byte-level BPE writes byte b as this character)."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    symbols, extra = {}, 0
    for b in range(256):
        if b in keep:
            symbols[b] = chr(b)
        else:
            symbols[b] = chr(256 + extra)
            extra += 1
    return [symbols[b] for b in range(256)]


@dataclass(frozen=True)
class ByteVocab:
    """A byte-level BPE as GPT-2's files hold it: each token's byte-level text by id (`<|endoftext|>` last), and
    the merges in rank order as "left right" (byte-level pieces never hold a space: it is written 'Ġ')."""
    tokens: list[str]
    merges: list[str]

    @property
    def eot_token(self) -> int:
        return len(self.tokens) - 1


def tokenizer_json(vocab: ByteVocab) -> dict[str, object]:
    """The tokenizers library's JSON of a byte-level BPE: no prefix space (as tiktoken splits), `<|endoftext|>`
    its one special token. Merges as "left right" strings, which every tokenizers release reads."""
    eot = {"id": vocab.eot_token, "content": EOT_TEXT, "single_word": False, "lstrip": False, "rstrip": False,
           "normalized": True, "special": True}
    byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [eot],
        "normalizer": None,
        "pre_tokenizer": byte_level,
        "post_processor": {**byte_level, "trim_offsets": False},
        "decoder": byte_level,
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": "",
                  "end_of_word_suffix": "", "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                  "vocab": {text: i for i, text in enumerate(vocab.tokens)}, "merges": vocab.merges},
    }


def tokenizer_json_bytes(vocab: ByteVocab) -> bytes:
    # Compact, as the tokenizers library writes it: indented, the entries would double its size.
    return json.dumps(tokenizer_json(vocab), ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def parse_bpe_size(text: str, flag: str = "--tokenizer") -> int:
    """N of "bpe:N", in range, or a one-line UsageError."""
    size = text.split(":", 1)[1] if ":" in text else ""
    if not size.isdigit() or not BPE_MIN <= int(size) <= BPE_MAX:
        raise UsageError(f"invalid {flag} {quote(text)}: give bpe:N with a vocabulary of N from {BPE_MIN} to "
                         f"{BPE_MAX} tokens (e.g. bpe:8192), gpt2, or a dataset or run folder whose tokenizer to use")
    return int(size)


def train_bpe(texts: Iterable[str], vocab_size: int, corpus_bytes: int) -> ByteVocab:
    """A byte-level BPE of `vocab_size` ids (the last `<|endoftext|>`) trained on `texts`, streamed (the trainer
    keeps a count per distinct word, not the text). UsageError when the text holds too few repeated pairs to
    make that many merges."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers  # lazy: only a BPE prepare trains

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size - 1, min_frequency=2, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), special_tokens=[])
    tok.train_from_iterator(_repaired(texts), trainer)
    model = json.loads(tok.to_str())["model"]
    vocab: dict[str, int] = model["vocab"]
    if len(vocab) < vocab_size - 1:
        made = len(vocab) + 1
        fits = max((n for n in (512, 1024, 2048, 4096, 8192, 16384, 32768) if n <= made), default=None)
        hint = f"give a smaller vocabulary (bpe:{fits} fits this text)" if fits else "give more text"
        raise UsageError(f"invalid --tokenizer bpe:{vocab_size}: the training split ({corpus_bytes:,} bytes) repeats "
                         f"only enough pairs for {made} tokens; {hint}, or add text")
    tokens = [""] * len(vocab)
    for text, i in vocab.items():
        tokens[i] = text
    merges = [m if isinstance(m, str) else " ".join(m) for m in model["merges"]]
    return ByteVocab(tokens=[*tokens, EOT_TEXT], merges=merges)


def _repaired(texts: Iterable[str]) -> Iterator[str]:
    for text in texts:
        yield _without_surrogates(text)


def _without_surrogates(text: str) -> str:
    """Lone surrogates (from JSON escapes) as U+FFFD, the repair tiktoken's encode_ordinary makes: they have no
    UTF-8 bytes to encode."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text


class BpeTokenizer:
    """A trained byte-level BPE, with tiktoken's Encoding's face (`encode_ordinary`, `decode_bytes`, `decode`,
    `eot_token`, `n_vocab`, `name`), so that the code that tokenizes takes either."""

    def __init__(self, data: bytes, source: str):
        from tokenizers import Tokenizer  # lazy: only a run or dataset with its own tokenizer loads it

        self.data = data  # the tokenizer.json, to copy into a run or another dataset
        self.vocab = _parse_tokenizer_json(data, source)
        self.checksum = hashlib.sha256(data).hexdigest()
        self.eot_token = self.vocab.eot_token
        self.n_vocab = len(self.vocab.tokens)
        self.name = f"bpe:{self.n_vocab}"
        plain = json.loads(data)
        plain["added_tokens"] = []  # `<|endoftext|>` in a document is text, as tiktoken's encode_ordinary has it
        self._tok = Tokenizer.from_str(json.dumps(plain))
        unbyte = {s: b for b, s in enumerate(byte_symbols())}
        self._bytes = [bytes(unbyte[c] for c in t) for t in self.vocab.tokens[:-1]] + [EOT_TEXT.encode()]

    def encode_ordinary(self, text: str) -> list[int]:
        return list(self._tok.encode(_without_surrogates(text), add_special_tokens=False).ids)

    def encode_to_numpy(self, text: str, disallowed_special: Any = ()) -> np.ndarray:
        import numpy as np  # lazy: as in __init__

        return np.array(self.encode_ordinary(text), dtype=np.uint32)

    def decode_bytes(self, ids: Iterable[int]) -> bytes:
        return b"".join(self._bytes[i] for i in ids)

    def decode_single_token_bytes(self, token: int) -> bytes:
        return self._bytes[token]

    def decode(self, ids: Iterable[int], errors: str = "replace") -> str:
        return self.decode_bytes(ids).decode("utf-8", errors)



def _parse_tokenizer_json(data: bytes, source: str) -> ByteVocab:
    """The vocabulary of a tokenizer.json gptwiz wrote, or a one-line UsageError naming what is wrong with it."""
    def bad(what: str) -> UsageError:
        return UsageError(f"{source} is not a byte-level BPE gptwiz can use ({what}); prepare the dataset again")

    try:
        spec = json.loads(data)
        model, added = spec["model"], spec["added_tokens"]
        vocab, merges = model["vocab"], model["merges"]
    except (ValueError, KeyError, TypeError):
        raise bad("not a tokenizers JSON with a model's vocab and merges") from None
    if not isinstance(vocab, dict) or not isinstance(merges, list) or model.get("type") != "BPE":
        raise bad("its model is not a BPE with a vocab and merges")
    n = len(vocab)
    if not BPE_MIN <= n <= BPE_MAX or sorted(v for v in vocab.values() if isinstance(v, int)) != list(range(n)):
        raise bad(f"its {n} ids are not 0 to N-1 with N from {BPE_MIN} to {BPE_MAX}")
    tokens = [""] * n
    for text, i in vocab.items():
        tokens[i] = text
    symbols = set(byte_symbols())
    if tokens[-1] != EOT_TEXT or not all(isinstance(t, str) and t and set(t) <= symbols for t in tokens[:-1]):
        raise bad(f"its last id is not {EOT_TEXT}, or a token is not byte-level text")
    if not any(a.get("content") == EOT_TEXT and a.get("id") == n - 1 for a in added if isinstance(a, dict)):
        raise bad(f"{EOT_TEXT} is not its special token")
    return ByteVocab(tokens=tokens, merges=[m if isinstance(m, str) else " ".join(m) for m in merges])


def load_bpe(path: Path, source: str | None = None) -> BpeTokenizer:
    """The BPE in `path` (a tokenizer.json), read as a bounded regular file; UsageError in one line otherwise."""
    label = source or str(path)
    try:
        data = read_regular(path, MANIFEST_LIMIT)
    except FileNotFoundError:
        raise UsageError(f"{label} is missing: the tokenizer this data was prepared with; prepare it again") from None
    except UnreadableFile as exc:
        raise UsageError(f"{exc}; prepare the dataset again") from None
    except OSError as exc:
        raise UsageError(f"{label} cannot be read ({exc.strerror}); prepare the dataset again") from None
    return BpeTokenizer(data, label)
