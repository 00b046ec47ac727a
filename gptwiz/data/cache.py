"""The token cache that turns a single `--input_file` into a one-source dataset, reused while the file is unchanged."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from gptwiz.common.errors import UsageError
from gptwiz.common.files import check_folder
from gptwiz.common.inert import quote
from gptwiz.data.prepare import tokenize_text_file
from gptwiz.data.prepare.out_dir import Destination, complete_manifest, recover_interrupted
from gptwiz.data.prepare.tokenizer_choice import check_tokenizer_choice, request_key
from gptwiz.data.text_check import refuse_binary


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def cache_text_file(input_file: Path | str, data_dir: Path | str, val_fraction: float = 0.1,
                    tokenizer: str = "gpt2") -> Path:
    """Tokenize one UTF-8 text file into data/cache/<stem>-<hash>[-<tokenizer>]/ (reused while the content is
    unchanged), with `tokenizer` as `gptwiz prepare --tokenizer` takes it.

    The last `val_fraction` of its tokens is the validation split, as one contiguous piece, so no
    validation text is also trained on (nor is a BPE trained on it).
    """
    check_tokenizer_choice(tokenizer)
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
    request = request_key(tokenizer)
    suffix = "" if request is None else "-" + request.replace(":", "")[:22]
    cache = Path(data_dir) / "cache" / f"{_slug(path.stem)}-{digest[:16]}{suffix}"
    recover_interrupted(cache)  # a cache a killed gptwiz was putting in place
    if cache_ready(cache, digest, request):
        return cache
    refuse_binary(path, "--input_file")
    check_folder(data_dir, "--data_dir", write=True)
    if os.path.islink(cache):
        # The cache's folders are named by gptwiz: a link there was put by someone else, and is replaced (the
        # link alone is removed), never written through.
        try:
            cache.unlink()
        except OSError as exc:
            raise UsageError(f"--data_dir {data_dir}: the token cache {cache} is a symlink that cannot be "
                             f"removed ({exc.strerror}); remove it") from None
    # The streaming, parallel tokenizer of `gptwiz prepare`: bounded memory whatever the file's size.
    dest = Destination(path=cache, label=f"--data_dir {data_dir}", elsewhere="pass another --data_dir")
    tokenize_text_file(path, dest, _slug(path.stem), val_fraction, extra={"sha256": digest}, tokenizer=tokenizer)
    return cache


def cache_ready(cache: Path, digest: str, request: str | None = None) -> bool:
    """Whether `cache` is a whole token cache of the file with this sha256, made with the tokenizer asked for
    (`request`: tokenizer_choice.request_key's): a real folder (not a link), its manifest written, every shard
    there at its full size. Anything less is built again, never reused."""
    manifest = complete_manifest(cache)
    return (manifest is not None and all(s.get("sha256") == digest for s in manifest["sources"])
            and manifest.get("tokenizer_request") == request)


def _slug(text: str) -> str:
    slug = "".join(c if c.isalnum() or c in "-_." else "_" for c in text)[:40].strip("._")
    return slug or "data"


def input_file_change(data: dict[str, Any], manifest: dict[str, Any]) -> str | None:
    """What changed in a run's --input_file since its token cache was made (its size, or its content at the same
    size), as a warning for a resume; None when it is unchanged, or the run was not trained on one. The cache's
    manifest holds the file's size and sha256 as they were (the run's config pins the manifest by its checksum)."""
    sources = manifest.get("sources") or [{}]
    path, was_size, was_hash = data.get("input_file"), sources[0].get("bytes"), sources[0].get("sha256")
    if data.get("kind") != "input_file" or not isinstance(path, str) or not isinstance(was_hash, str):
        return None
    try:
        size = os.stat(path).st_size
        if size == was_size and file_sha256(Path(path)) == was_hash:
            return None
    except OSError as exc:
        return f"warning: --input_file {quote(path)} cannot be read now ({exc.strerror}) to compare with the text " \
               "this run started on"
    what = f"same size, {size:,} bytes, other content" if size == was_size else \
        f"its size went from {_count(was_size)} to {size:,} bytes"
    return (f"warning: --input_file {quote(path)} changed since this run started ({what}); the run goes on with "
            f"the tokens cached from it then, in {quote(data.get('dataset_dir'))}; to train on the new text, start "
            "a new run (--init_from_model keeps these weights)")


def _count(size: Any) -> str:
    return f"{size:,}" if isinstance(size, int) and not isinstance(size, bool) else "an unknown number of"
