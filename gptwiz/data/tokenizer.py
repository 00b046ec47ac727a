"""The GPT-2 tokenizer, with a one-line explanation when its files cannot be had offline."""

from __future__ import annotations

from typing import Any

from gptwiz.common.errors import TokenizerUnavailable

ENCODING_NAME = "gpt2"
GPT2_VOCAB_SIZE = 50257
EOT_TOKEN = 50256


def get_encoding(name: str = ENCODING_NAME) -> Any:
    import tiktoken  # lazy: tiktoken's import is slow and not needed to start the app

    try:
        return tiktoken.get_encoding(name)
    except Exception as exc:  # tiktoken raises requests/OS errors of many kinds when offline
        raise TokenizerUnavailable(
            f"cannot load tiktoken's '{name}' encoding ({exc.__class__.__name__}); with no network, "
            "set TIKTOKEN_CACHE_DIR to a folder holding tiktoken's cached gpt2 files"
        ) from None


def safe_split(text: str) -> int:
    """Index after the last newline at which tokenizing the two halves apart gives the same tokens as
    tokenizing them together, or 0 if there is none.

    GPT-2's pre-tokenizer never joins a lone "\\n" that follows a visible character with the visible
    character after it, so "...x\\n" + "foo..." splits cleanly; a run of whitespace does not.
    """
    i = len(text) - 1
    while True:
        i = text.rfind("\n", 0, i)
        if i <= 0:
            return 0
        if i + 1 < len(text) and not text[i - 1].isspace() and not text[i + 1].isspace():
            return i + 1
        i -= 1
