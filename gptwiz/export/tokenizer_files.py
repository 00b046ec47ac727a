"""A run's tokenizer files for a Hugging Face folder, and its vocabulary for a GGUF: GPT-2's, taken from tiktoken's
own cache (no network), or the run's own byte-level BPE (gptwiz.data.bpe), from its tokenizer.json.

tiktoken's GPT-2 encoding is built from OpenAI's original `encoder.json` and `vocab.bpe`, which tiktoken caches
under the SHA-1 of their URL; they are byte for byte Hugging Face's `vocab.json` and `merges.txt`, and a run's
own BPE gets the same two files in the same format (vocab_json, merges_txt give GPT-2's bytes from GPT-2's
vocabulary). The same vocabulary makes `tokenizer.json`, the tokenizers library's one-file form that fast
tokenizers (and llama.cpp's converter) read, and the GGUF's vocabulary (gptwiz.export.gguf_file).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gptwiz.common.errors import TokenizerUnavailable
from gptwiz.data.bpe import EOT_TEXT, BpeTokenizer, ByteVocab, tokenizer_json_bytes

_BASE = "https://openaipublic.blob.core.windows.net/gpt-2/encodings/main/"
# The file each Hugging Face name is made of, and its SHA-256 as tiktoken checks it (tiktoken_ext.openai_public).
_SOURCES = {
    "vocab.json": ("encoder.json", "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783"),
    "merges.txt": ("vocab.bpe", "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5"),
}
_MERGES_VERSION = "#version: 0.2"  # merges.txt's first line, which GPT-2's has and readers skip
# The names tokenizer_files gives, known before it runs (what an export's folder may hold).
TOKENIZER_FILES = (*_SOURCES, "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


@dataclass(frozen=True)
class ExportVocab:
    """What an export writes of a run's tokenizer: its vocabulary (`<|endoftext|>` the last id), its name for
    messages and the model card, and its vocab.json and merges.txt as GPT-2's files hold them."""
    vocab: ByteVocab
    name: str  # "GPT-2" or "bpe:N"
    vocab_json: bytes
    merges_txt: bytes

    @property
    def eot_token(self) -> int:
        return self.vocab.eot_token

    @property
    def n_vocab(self) -> int:
        return len(self.vocab.tokens)


def tiktoken_cache_dir() -> Path:
    """Where tiktoken keeps its downloads (the same rule as tiktoken.load.read_file_cached)."""
    for var in ("TIKTOKEN_CACHE_DIR", "DATA_GYM_CACHE_DIR"):
        if os.environ.get(var):
            return Path(os.environ[var])
    return Path(tempfile.gettempdir()) / "data-gym-cache"


def _cached(name: str, sha256: str) -> bytes:
    folder = tiktoken_cache_dir()
    path = folder / hashlib.sha1((_BASE + name).encode()).hexdigest()
    try:
        data = path.read_bytes()
    except OSError:
        raise TokenizerUnavailable(f"GPT-2's {name} is not in tiktoken's cache {folder}; set TIKTOKEN_CACHE_DIR to a "
                                   "folder holding tiktoken's cached gpt2 files (a run of `gptwiz prepare` online "
                                   "fills it)") from None
    if hashlib.sha256(data).hexdigest() != sha256:
        raise TokenizerUnavailable(f"tiktoken's cached {name} ({path}) is damaged: its SHA-256 is not GPT-2's")
    return data


def _parse(vocab_json: bytes, merges_txt: bytes) -> ByteVocab:
    ids = json.loads(vocab_json)
    tokens = [""] * len(ids)
    for text, i in ids.items():
        tokens[i] = text
    lines = merges_txt.decode("utf-8").split("\n")  # not splitlines(): it also breaks at U+0085, U+2028
    merges = [line for line in lines if line.strip() and not line.startswith("#version")]
    return ByteVocab(tokens=tokens, merges=merges)


def gpt2_vocab() -> ByteVocab:
    """GPT-2's vocabulary and merges from tiktoken's cache (checked against tiktoken's SHA-256)."""
    return _parse(*(_cached(name, sha) for name, sha in _SOURCES.values()))


def vocab_json(vocab: ByteVocab) -> bytes:
    """vocab.json as GPT-2's encoder.json is written: one line, ids in order, non-ASCII as \\u escapes."""
    return json.dumps({text: i for i, text in enumerate(vocab.tokens)}).encode("ascii")


def merges_txt(vocab: ByteVocab) -> bytes:
    """merges.txt as GPT-2's vocab.bpe is written: the version line, then a merge a line, each ending in a newline
    (transformers' slow GPT2Tokenizer drops the first line and the last, empty, piece)."""
    return "".join(f"{line}\n" for line in (_MERGES_VERSION, *vocab.merges)).encode("utf-8")


def export_vocab(tokenizer: Any) -> ExportVocab:
    """The export's view of a run's tokenizer (gptwiz.data.tokenizer.run_tokenizer's): its own BPE's files made
    from its vocabulary, or GPT-2's copied from tiktoken's cache, so a GPT-2 run's stay byte for byte OpenAI's."""
    if isinstance(tokenizer, BpeTokenizer):
        vocab = tokenizer.vocab
        return ExportVocab(vocab=vocab, name=tokenizer.name, vocab_json=vocab_json(vocab), merges_txt=merges_txt(vocab))
    files = [_cached(name, sha) for name, sha in _SOURCES.values()]
    return ExportVocab(vocab=_parse(*files), name="GPT-2", vocab_json=files[0], merges_txt=files[1])


def tokenizer_files(tok: ExportVocab, model_max_length: int, chat_template: str | None = None) -> dict[str, bytes]:
    """Every tokenizer file of the folder, by name: the vocabulary and merges (also as tokenizer.json), and the
    settings that make transformers' GPT-2 tokenizer split text as gptwiz does (no prefix space, <|endoftext|>
    its one special); an instruction-tuned run's Jinja `chat_template` for apply_chat_template."""
    files = {"vocab.json": tok.vocab_json, "merges.txt": tok.merges_txt,
             "tokenizer.json": tokenizer_json_bytes(tok.vocab)}
    special = {"bos_token": EOT_TEXT, "eos_token": EOT_TEXT, "unk_token": EOT_TEXT}
    config = {
        "tokenizer_class": "GPT2Tokenizer",
        "model_max_length": model_max_length,
        "add_prefix_space": False,
        "add_bos_token": False,
        "clean_up_tokenization_spaces": False,
        "added_tokens_decoder": {str(tok.eot_token): {"content": EOT_TEXT, "lstrip": False, "normalized": True,
                                                      "rstrip": False, "single_word": False, "special": True}},
        **special,
        **({"chat_template": chat_template} if chat_template is not None else {}),
    }
    files["tokenizer_config.json"] = _json(config)
    files["special_tokens_map.json"] = _json(special)
    return files


def _json(data: object) -> bytes:
    return (json.dumps(data, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
