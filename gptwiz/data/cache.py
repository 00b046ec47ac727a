"""The token cache that turns a single `--input_file` into a one-source dataset, reused while the file is unchanged."""

from __future__ import annotations

import hashlib
from pathlib import Path

from gptwiz.common.errors import UsageError
from gptwiz.data.manifest import MANIFEST
from gptwiz.data.prepare import tokenize_text_file


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def cache_text_file(input_file: Path | str, data_dir: Path | str, val_fraction: float = 0.1) -> Path:
    """Tokenize one UTF-8 text file into data/cache/<stem>-<hash>/ (reused while the content is unchanged).

    The last `val_fraction` of its tokens is the validation split, as one contiguous piece, so no
    validation text is also trained on.
    """
    path = Path(input_file)
    if not path.exists():
        raise UsageError(f"--input_file {path} does not exist (give a UTF-8 text file)")
    if not path.is_file():
        raise UsageError(f"--input_file {path} is not a file (for a folder of documents use `gptwiz prepare`)")
    try:
        size = path.stat().st_size
        digest = file_sha256(path)
    except OSError as exc:
        raise UsageError(f"--input_file {path} cannot be read ({exc.strerror})") from None
    if size == 0:
        raise UsageError(f"--input_file {path} is empty (give a UTF-8 text file with some text in it)")
    cache = Path(data_dir) / "cache" / f"{_slug(path.stem)}-{digest[:16]}"
    if (cache / MANIFEST).exists():
        return cache
    with open(path, "rb") as f:
        if b"\x00" in f.read(8192):
            raise UsageError(f"--input_file {path} is not a text file (it holds NUL bytes)")
    # The streaming, parallel tokenizer of `gptwiz prepare`: bounded memory whatever the file's size.
    tokenize_text_file(path, cache, _slug(path.stem), val_fraction, extra={"sha256": digest})
    return cache


def _slug(text: str) -> str:
    slug = "".join(c if c.isalnum() or c in "-_." else "_" for c in text)[:40].strip("._")
    return slug or "data"
