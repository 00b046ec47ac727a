"""Sizes in bytes: parsing '5MB' or '2GB', and measuring a dataset on disk (gptwiz.common.fmt writes them).

Dataset sizes follow the guide's By Dataset Size table, whose MB and GB are decimal (1 MB = 10^6
bytes, as file managers and `ls -h --si` show them); KiB/MiB/GiB are binary. GPU memory ("a 24 GB
card") is binary: NVML reports a 24 GB card as 24576 MiB, so VRAM figures use GiB throughout.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from gptwiz.common.errors import TokenizerUnavailable, UsageError
from gptwiz.common.inert import quote
from gptwiz.common.safe_read import MANIFEST_LIMIT, read_json_file
from gptwiz.data.globbing import safe_glob
from gptwiz.data.token_count import count_tokens

_UNITS = {
    "": 1, "b": 1,
    "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6, "g": 10**9, "gb": 10**9, "t": 10**12, "tb": 10**12,
    "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40,
}
_SIZE = re.compile(r"^\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*([a-zA-Z]*)\s*$")

# GPT-2's BPE turns English prose into about one token per 4 bytes (tinyshakespeare, archaic verse
# with many short words: 3.3; source code: about 3). Used only where no text is at hand to tokenize a sample of
# (a size typed as --dataset-size, the demo corpus before it is built) or the tokenizer cannot be loaded.
BYTES_PER_TOKEN = 4.0

# The suffixes `gptwiz prepare` reads as documents.
TEXT_SUFFIXES = (".txt", ".md", ".jsonl")


def parse_size(text: str, what: str = "--dataset-size") -> int:
    """'5MB' -> 5_000_000; '1.5GiB' -> 1610612736; '800' -> 800 bytes."""
    m = _SIZE.match(str(text))
    unit = m.group(2).lower() if m else ""
    if not m or unit not in _UNITS:
        raise UsageError(f"invalid {what} {quote(text)}: expected a size such as 5MB, 500MB or 2GB "
                         "(units B, KB, MB, GB, TB, or KiB, MiB, GiB, TiB)")
    return int(float(m.group(1)) * _UNITS[unit])


@dataclass(frozen=True)
class DatasetSize:
    """What `--dataset PATH` points at, measured."""
    path: str
    kind: str               # "file", "folder", "glob" or "prepared"
    files: int
    bytes: int
    tokens: int             # exact for a prepared dataset, else estimated from a sample (estimated_tokens)
    tokens_exact: bool
    tokenizer_tokens: int | None = None  # a prepared dataset's own BPE: its size (None: GPT-2's tokenizer)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _size(f: Path) -> int:
    try:
        return f.stat().st_size
    except OSError:  # vanished or unreadable since listed: prepare would skip it too
        return 0


def estimated_tokens(files: list[Path], sizes: list[int] | None = None) -> int:
    """The GPT-2 tokens of text files (`sizes`: their sizes, when known already), a sample of them tokenized
    (gptwiz.data.token_count); bytes / BYTES_PER_TOKEN where no text could be sampled or the tokenizer cannot be
    loaded (training says why when it needs it)."""
    sizes = [_size(f) for f in files] if sizes is None else sizes
    try:
        counted = count_tokens(files, sizes)
    except TokenizerUnavailable:  # offline without tiktoken's cache: the rough figure is still an estimate
        counted = None
    return counted if counted is not None else int(sum(sizes) / BYTES_PER_TOKEN)


def _estimated(path: str, kind: str, files: list[Path]) -> DatasetSize:
    sizes = [_size(f) for f in files]
    return DatasetSize(path=path, kind=kind, files=len(files), bytes=sum(sizes),
                       tokens=estimated_tokens(files, sizes), tokens_exact=False)


def _prepared(path: str, manifest_path: Path) -> DatasetSize:
    try:
        manifest = read_json_file(manifest_path, MANIFEST_LIMIT)  # never a FIFO; nested within the limit
        totals = manifest["totals"]
        tokens = int(totals.get("train_tokens", 0)) + int(totals.get("val_tokens", 0))
        own = manifest.get("tokenizer_sha256") is not None
        return DatasetSize(path=path, kind="prepared", files=int(totals.get("files", 0)),
                           bytes=int(totals.get("bytes", 0)), tokens=tokens, tokens_exact=True,
                           tokenizer_tokens=int(manifest["vocab_size"]) if own else None)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise UsageError(f"--dataset {path}: {manifest_path} is not a readable dataset manifest "
                         f"({exc.__class__.__name__}); prepare the dataset again") from None


def measure_dataset(path: str) -> DatasetSize:
    """Size of a text file, a folder of documents, a glob, or a prepared dataset (its manifest)."""
    kind, found = _located(path)
    if kind == "prepared":
        return _prepared(path, found[0])
    return _estimated(path, kind, found)


def text_files(path: str) -> list[Path]:
    """The text files `--dataset PATH` names (a file, a folder's documents, a glob's matches); [] for a prepared
    dataset."""
    kind, found = _located(path)
    return [] if kind == "prepared" else found


def _located(path: str) -> tuple[str, list[Path]]:
    """("prepared", [its manifest]) or (kind, the text files), refusing what names neither."""
    p = Path(path).expanduser()
    if any(ch in path for ch in "*?["):
        files = sorted(Path(f) for f in safe_glob(str(p)) if Path(f).is_file())
        if not files:
            raise UsageError(f"--dataset {path}: the glob matches no files")
        return "glob", files
    if not p.exists():
        raise UsageError(f"--dataset {path} does not exist (give a text file, a folder, a glob such as "
                         "'docs/*.txt', or a dataset prepared by `gptwiz prepare`)")
    if p.is_file():
        return ("prepared", [p]) if p.name == "manifest.json" else ("file", [p])
    if (p / "manifest.json").is_file():
        return "prepared", [p / "manifest.json"]
    files = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in TEXT_SUFFIXES)
    if not files:
        raise UsageError(f"--dataset {path}: the folder holds no {', '.join(TEXT_SUFFIXES)} files "
                         "and is not a prepared dataset")
    return "folder", files


__all__ = ["parse_size", "measure_dataset", "text_files", "estimated_tokens", "DatasetSize", "BYTES_PER_TOKEN", "TEXT_SUFFIXES", "bits_per_byte"]


def bits_per_byte(loss: float | None, tokens: int | None, nbytes: int | None) -> float | None:
    """A mean loss in nats per token as bits per byte of text (the text's total bits over its bytes): a figure
    that compares models across tokenizers. None where a count is missing or the loss is not finite."""
    if loss is None or not tokens or not nbytes or not math.isfinite(loss):
        return None
    return loss / math.log(2) * tokens / nbytes
