"""The tokenizer of a dataset or a run: GPT-2's (tiktoken), with a one-line explanation when its files cannot be
had offline, or a byte-level BPE of the user's own (gptwiz.data.bpe) kept as tokenizer.json in the folder."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from gptwiz.common.atomic import atomic_write
from gptwiz.common.errors import TokenizerUnavailable, UsageError
from gptwiz.common.inert import quote
from gptwiz.data.bpe import TOKENIZER_FILE, load_bpe

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


def folder_tokenizer(folder: Path | str, checksum: str | None = None) -> Any:
    """The tokenizer a dataset or run folder was made with: its tokenizer.json, or GPT-2's when it has none.
    `checksum` (a manifest's or a run config's record of it): refuse a tokenizer.json that is not that one."""
    path = Path(folder) / TOKENIZER_FILE
    if not os.path.lexists(path):
        if checksum is not None:
            raise UsageError(f"{path} is missing: the tokenizer {Path(folder)} was made with; prepare it again")
        return get_encoding()
    tok = load_bpe(path)
    if checksum is not None and tok.checksum != checksum:
        raise UsageError(f"{path} is not the tokenizer {Path(folder)} was made with (its SHA-256 differs from "
                         "the one recorded); prepare it again")
    return tok


def data_tokenizer(data: dict[str, Any]) -> tuple[str, str | None]:
    """The tokenizer a run's data record (config.json's "data") or a manifest names, as (name, a BPE's SHA-256):
    GPT-2's when it names none (runs and datasets made before gptwiz trained tokenizers)."""
    name, sha = data.get("tokenizer") or ENCODING_NAME, data.get("tokenizer_sha256")
    return str(name), sha if isinstance(sha, str) else None


def run_tokenizer(root: Path | str, config: dict[str, Any] | None) -> Any:
    """The tokenizer a run's weights know: the run folder's tokenizer.json, checked against what its config.json
    recorded of the data's; GPT-2's for a run without one."""
    data = (config or {}).get("data")
    return folder_tokenizer(root, data_tokenizer(data)[1] if isinstance(data, dict) else None)


def keep_run_tokenizer(root: Path, data: dict[str, Any]) -> None:
    """Copy the data's BPE (checked against the run's record of it) into the run folder, so that sampling, chat
    and export work without the dataset; nothing for GPT-2's."""
    sha = data_tokenizer(data)[1]
    target = root / TOKENIZER_FILE
    if sha is None or (os.path.isfile(target) and not os.path.islink(target) and _sha_of(target) == sha):
        return
    tok = folder_tokenizer(Path(str(data.get("dataset_dir"))), sha)
    atomic_write(target, lambda f: f.write(tok.data))


def _sha_of(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def same_tokenizer_or_refuse(a: tuple[str, str | None], b: tuple[str, str | None], what: str) -> None:
    """Refuse, in one line, data and weights made with different tokenizers ((name, id) pairs): their token ids
    mean different things. `what` names the two, e.g. "--init_from_model base (gpt2) and --dataset_dir d"."""
    if a != b:
        raise UsageError(f"{what} use different tokenizers ({quote(a[0])} and {quote(b[0])}"
                         f"{', two BPEs trained on different text' if a[0] == b[0] else ''}): token ids of one mean "
                         "nothing to the other; prepare the data with the model's tokenizer (`gptwiz prepare "
                         "--tokenizer RUN_OR_DATASET_FOLDER`)")


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
