"""What a preparation is asked for (PrepareOptions, checked before any work) and what it produced."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gptwiz.common.errors import UsageError
from gptwiz.data.prepare.tokenizer_choice import check_tokenizer_choice

DEFAULT_VAL_FRACTION = 0.005
DEFAULT_BLOCK_SIZE = 1024       # the largest block_size of the guide's presets
SHARD_TOKENS = 1 << 26          # 64 Mi tokens = 128 MiB per shard file
READ_BYTES = 1 << 20            # files are read in blocks of this size
PIECE_CHARS = 1 << 20           # text handed to one tokenizer call, about


@dataclass
class PrepareOptions:
    sources: list[str]
    out_dir: str
    val_fraction: float = DEFAULT_VAL_FRACTION
    workers: int | None = None  # None: every core this process may use, at most MAX_DEFAULT_WORKERS
    overwrite: bool = False
    block_size: int | None = DEFAULT_BLOCK_SIZE  # None: no check (the trainer checks its own block)
    shard_tokens: int = SHARD_TOKENS
    piece_chars: int = PIECE_CHARS
    read_bytes: int = READ_BYTES
    tokenizer: str = "gpt2"     # gpt2, bpe:N or a folder whose tokenizer to use (gptwiz.data.prepare.tokenizer_choice)


@dataclass
class PrepareResult:
    out_dir: Path
    manifest: dict[str, Any]
    seconds: float = 0.0
    workers: int = 1
    up_to_date: bool = False

    @property
    def input_bytes(self) -> int:
        return sum(int(s.get("bytes", 0)) + int(s.get("skipped_bytes", 0)) for s in self.manifest["sources"])


def validate_options(opts: PrepareOptions) -> None:
    if not 0 < opts.val_fraction <= 0.5:
        raise UsageError(f"invalid --val_fraction {opts.val_fraction!r}: give a fraction of the documents "
                         "above 0 and at most 0.5, e.g. 0.005")
    if opts.workers is not None and opts.workers < 1:
        raise UsageError(f"invalid --workers {opts.workers!r}: give a positive number of threads")
    if opts.block_size is not None and opts.block_size < 1:
        raise UsageError(f"invalid --block_size {opts.block_size!r}: give a positive number of tokens")
    check_tokenizer_choice(opts.tokenizer)
    if not str(opts.out_dir).strip():
        raise UsageError("--out_dir is empty: give the folder to write the dataset into")
