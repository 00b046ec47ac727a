"""GPT-2's tokenizer files for a Hugging Face folder, taken from tiktoken's own cache (no network).

tiktoken's GPT-2 encoding is built from OpenAI's original `encoder.json` and `vocab.bpe`, which tiktoken caches
under the SHA-1 of their URL; they are byte for byte Hugging Face's `vocab.json` and `merges.txt`. The same two
files make `tokenizer.json`, the tokenizers library's one-file form that fast tokenizers (and llama.cpp's
converter) read, and the GGUF's vocabulary (gptwiz.export.gguf_file).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from gptwiz.common.errors import TokenizerUnavailable
from gptwiz.data.tokenizer import EOT_TOKEN

_BASE = "https://openaipublic.blob.core.windows.net/gpt-2/encodings/main/"
# The file each Hugging Face name is made of, and its SHA-256 as tiktoken checks it (tiktoken_ext.openai_public).
_SOURCES = {
    "vocab.json": ("encoder.json", "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783"),
    "merges.txt": ("vocab.bpe", "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5"),
}
EOT_TEXT = "<|endoftext|>"
# The names tokenizer_files gives, known before it runs (what an export's folder may hold).
TOKENIZER_FILES = (*_SOURCES, "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


@dataclass(frozen=True)
class Gpt2Vocab:
    """GPT-2's BPE as its files hold it: each token's byte-level text by id, and the merges in rank order."""
    tokens: list[str]
    merges: list[str]  # "left right", the two pieces a merge joins


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


def _parse(vocab_json: bytes, merges_txt: bytes) -> Gpt2Vocab:
    ids = json.loads(vocab_json)
    tokens = [""] * len(ids)
    for text, i in ids.items():
        tokens[i] = text
    lines = merges_txt.decode("utf-8").split("\n")  # not splitlines(): it also breaks at U+0085, U+2028
    merges = [line for line in lines if line.strip() and not line.startswith("#version")]
    return Gpt2Vocab(tokens=tokens, merges=merges)


def gpt2_vocab() -> Gpt2Vocab:
    """GPT-2's vocabulary and merges from tiktoken's cache (checked against tiktoken's SHA-256)."""
    return _parse(*(_cached(name, sha) for name, sha in _SOURCES.values()))


def tokenizer_json(vocab: Gpt2Vocab) -> dict[str, object]:
    """The tokenizers library's JSON of GPT-2's tokenizer: byte-level BPE, no prefix space (as tiktoken splits),
    <|endoftext|> its one special token. Written here rather than by the tokenizers package, which gptwiz does
    not need otherwise; merges as "left right" strings, which every tokenizers release reads (GPT-2's pieces
    never hold a space: byte-level text writes it as 'Ġ')."""
    eot = {"id": EOT_TOKEN, "content": EOT_TEXT, "single_word": False, "lstrip": False, "rstrip": False,
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


def tokenizer_files(model_max_length: int, chat_template: str | None = None) -> dict[str, bytes]:
    """Every tokenizer file of the folder, by name: GPT-2's vocabulary and merges (also as tokenizer.json), and
    the settings that make transformers' GPT-2 tokenizer split text as tiktoken does (no prefix space,
    <|endoftext|> its one special); an instruction-tuned run's Jinja `chat_template` for apply_chat_template."""
    files = {hf_name: _cached(name, sha) for hf_name, (name, sha) in _SOURCES.items()}
    # Compact, as the tokenizers library writes it: indented, the 100,000 entries would double its size.
    files["tokenizer.json"] = json.dumps(tokenizer_json(_parse(files["vocab.json"], files["merges.txt"])),
                                         ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    special = {"bos_token": EOT_TEXT, "eos_token": EOT_TEXT, "unk_token": EOT_TEXT}
    config = {
        "tokenizer_class": "GPT2Tokenizer",
        "model_max_length": model_max_length,
        "add_prefix_space": False,
        "add_bos_token": False,
        "clean_up_tokenization_spaces": False,
        "added_tokens_decoder": {str(EOT_TOKEN): {"content": EOT_TEXT, "lstrip": False, "normalized": True,
                                                  "rstrip": False, "single_word": False, "special": True}},
        **special,
        **({"chat_template": chat_template} if chat_template is not None else {}),
    }
    files["tokenizer_config.json"] = _json(config)
    files["special_tokens_map.json"] = _json(special)
    return files


def _json(data: object) -> bytes:
    return (json.dumps(data, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
