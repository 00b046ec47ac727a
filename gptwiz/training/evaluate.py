"""Held-out evaluation of a run: its mean loss on a text file (or a dataset's validation split), as perplexity and as
bits per byte, the one figure that compares models with different tokenizers.

Each stream of tokens (the file, or one validation shard) is read after an end-of-text token, so that every one of
its tokens is predicted, and is cut into non-overlapping windows of the block size; the last, shorter window counts
too. Each token is thus scored once, with the context its window gives it. The probabilities are over GPT-2's
50,257 tokens: the rows the vocabulary is padded with are no tokens, and no text holds them.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gptwiz.common.errors import UsageError, WriteFailed
from gptwiz.common.files import open_append, write_failure
from gptwiz.common.inert import quote
from gptwiz.common.safe_read import UnreadableFile, open_regular
from gptwiz.data.dataset import TokenDataset
from gptwiz.data.manifest import is_sft, read_manifest
from gptwiz.data.sizes import bits_per_byte
from gptwiz.data.tokenizer import EOT_TOKEN, data_tokenizer, run_tokenizer, same_tokenizer_or_refuse
from gptwiz.model.gpt import GPT
from gptwiz.model.loss import sliced_linear_cross_entropy
from gptwiz.runs.checkpoints import CHECKPOINT_CHOICES
from gptwiz.runs.jsonfile import read_json
from gptwiz.runs.paths import RunPaths, resolve_run
from gptwiz.runs.status import now_iso
from gptwiz.training.device import Runtime
from gptwiz.training.run_model import inference_runtime, load_run_model

# Tokens per forward pass: a few batches' worth of activations whatever the block size (the logits are computed
# in slices by the loss, never all at once).
TOKENS_PER_BATCH = 8192
_DECODE_CHUNK = 1 << 20  # tokens decoded at a time when counting a shard's bytes

# (tokens scored so far, tokens to score)
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class EvalOptions:
    model_name: str
    input_file: str | None = None
    dataset_dir: str | None = None
    checkpoint: str = "auto"  # best, last, or auto (gptwiz.runs.checkpoints.choose)
    runs_dir: str = "runs"
    device: str = "auto"


@dataclass(frozen=True)
class TokenStream:
    """Text to score, as tokens, with the UTF-8 bytes it is made of."""
    name: str
    tokens: np.ndarray
    bytes: int


@dataclass(frozen=True)
class Score:
    """Summed loss (nats) over `tokens` predicted tokens of text of `bytes` UTF-8 bytes."""
    loss_sum: float
    tokens: int
    bytes: int

    @property
    def loss(self) -> float:
        return self.loss_sum / self.tokens if self.tokens else math.nan

    @property
    def perplexity(self) -> float:
        return perplexity(self.loss)

    @property
    def bits_per_byte(self) -> float | None:
        return bits_per_byte(self.loss, self.tokens, self.bytes)

    def summary(self) -> dict[str, Any]:
        return {"loss": self.loss, "perplexity": self.perplexity, "bits_per_byte": self.bits_per_byte,
                "tokens": self.tokens, "bytes": self.bytes}


@dataclass(frozen=True)
class EvalResult:
    loss: float
    perplexity: float
    bits_per_byte: float | None
    tokens: int
    bytes: int
    checkpoint: str
    iter: int
    seconds: float
    tokens_per_sec: float
    block_size: int
    data: dict[str, str]  # {"input_file": path} or {"dataset_dir": path}
    device: str
    dtype: str
    sources: list[dict[str, Any]] = field(default_factory=list)  # a dataset's: each source's own figures
    time: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def perplexity(loss: float) -> float:
    try:
        return math.exp(loss)
    except OverflowError:
        return math.inf


@torch.no_grad()
def score_tokens(model: GPT, tokens: np.ndarray, runtime: Runtime, progress: Callable[[int], None] | None = None,
                 tokens_per_batch: int = TOKENS_PER_BATCH, enc: Any = None) -> tuple[float, int]:
    """(summed loss in nats, tokens predicted) of `tokens` under `model`: the stream read after one end-of-text
    token, cut every block_size positions, the last window holding what is left; only the tokenizer's ids are
    scored (`enc`: the run's, GPT-2's when None). `progress` hears of the tokens scored by each batch."""
    block = model.config.block_size
    eot, n_vocab = (EOT_TOKEN, EOT_TOKEN + 1) if enc is None else (enc.eot_token, enc.n_vocab)
    stream = torch.from_numpy(np.concatenate([[eot], np.asarray(tokens, dtype=np.int64)]))
    head = model.lm_head.weight[:min(n_vocab, model.config.vocab_size)]
    rows = max(1, tokens_per_batch // block)
    full = len(tokens) // block
    total = 0.0
    for first in range(0, full, rows):
        starts = range(first * block, min(first + rows, full) * block, block)
        total += _windows_loss(model, stream, starts, block, head, runtime)
        if progress is not None:
            progress(len(starts) * block)
    rest = len(tokens) - full * block
    if rest:
        total += _windows_loss(model, stream, [full * block], rest, head, runtime)
        if progress is not None:
            progress(rest)
    return total, len(tokens)


def _windows_loss(model: GPT, stream: torch.Tensor, starts: Sequence[int], length: int, head: torch.Tensor,
                  runtime: Runtime) -> float:
    """Summed loss of the windows of `length` positions at `starts`: each predicts stream[start + 1:...]."""
    x = torch.stack([stream[s:s + length] for s in starts]).to(runtime.device)
    y = torch.stack([stream[s + 1:s + 1 + length] for s in starts]).to(runtime.device)
    with runtime.autocast():
        hidden = model.hidden_states(x)
        mean = sliced_linear_cross_entropy(hidden.reshape(-1, hidden.size(-1)), head, y.reshape(-1))
    return float(mean) * y.numel()


# --- what is evaluated ----------------------------------------------------------------------------------

def check_eval_options(opts: EvalOptions) -> None:
    if (opts.input_file is None) == (opts.dataset_dir is None):
        given = "both" if opts.input_file is not None else "neither"
        raise UsageError(f"give one of --input_file (a UTF-8 text file) or --dataset_dir (a prepared dataset, whose "
                         f"validation split is evaluated), not {given}")
    if opts.checkpoint not in CHECKPOINT_CHOICES:
        raise UsageError(f"invalid --checkpoint {quote(opts.checkpoint)}: must be best or last (or auto, the default)")


def read_text_file(path: Path) -> str:
    """The whole UTF-8 text of `path`; a UsageError for a file that is missing, not a regular file, not UTF-8 or
    empty."""
    try:
        fd = open_regular(path)  # never a FIFO or a device, which would block or never end
    except FileNotFoundError:
        raise UsageError(f"--input_file {path} does not exist (give a UTF-8 text file)") from None
    except UnreadableFile as exc:
        raise UsageError(f"--input_file {exc} (give a UTF-8 text file)") from None
    except IsADirectoryError:
        raise UsageError(f"--input_file {path} is a folder (give a UTF-8 text file)") from None
    except OSError as exc:
        raise UsageError(f"--input_file {path} cannot be read ({exc.strerror})") from None
    with open(fd, "rb") as f:
        data = f.read()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UsageError(f"--input_file {path} is not UTF-8 text (byte {exc.start} cannot be read as UTF-8); "
                         "give a UTF-8 text file") from None
    if not text:
        raise UsageError(f"--input_file {path} is empty (give a UTF-8 text file with some text in it)")
    return text


def file_stream(path: Path, enc: Any) -> TokenStream:
    text = read_text_file(path)
    tokens = np.asarray(enc.encode_ordinary(text), dtype=np.int64)
    return TokenStream(path.name, tokens, len(text.encode("utf-8")))


def text_bytes(tokens: np.ndarray, enc: Any) -> int:
    """The UTF-8 bytes of the text `tokens` stand for (end-of-text tokens stand for none)."""
    total = 0
    for start in range(0, len(tokens), _DECODE_CHUNK):
        chunk = np.asarray(tokens[start:start + _DECODE_CHUNK])
        total += len(enc.decode_bytes(chunk[chunk != enc.eot_token].tolist()))
    return total


def dataset_streams(dataset_dir: Path, enc: Any) -> list[TokenStream]:
    """Every validation shard of a prepared dataset, named by its source."""
    if is_sft(read_manifest(dataset_dir)):
        # Its token streams are prompts and answers together: their loss is not the model's on either.
        raise UsageError(f"--dataset_dir {dataset_dir} is an instruction dataset (gptwiz prepare --sft), which "
                         "`gptwiz eval` does not score: the val loss a run trained on it reports is the loss on its "
                         "validation answers; evaluate a text file with --input_file")
    dataset = TokenDataset(dataset_dir)
    same_tokenizer_or_refuse(data_tokenizer(dataset.manifest), (enc.name, getattr(enc, "checksum", None)),
                             f"--dataset_dir {dataset_dir} and the run")
    streams = [TokenStream(src.name, np.asarray(shard), text_bytes(shard, enc))
               for src in dataset.sources for shard in src.val if len(shard)]
    if not streams:
        raise UsageError(f"--dataset_dir {dataset_dir}: its validation split holds no tokens; prepare it with a "
                         "validation fraction above 0, or evaluate a text file with --input_file")
    return streams


# --- the run's evaluation ----------------------------------------------------------------------------------

def evaluate(opts: EvalOptions, progress: Progress | None = None, warn: Callable[[str], None] | None = None,
             note: Callable[[str], None] | None = None) -> EvalResult:
    """Evaluate the run's checkpoint on the text of `opts`; `progress` hears of the tokens scored, `warn` of a
    damaged checkpoint passed over, `note` which checkpoint is used. Nothing is written (see `record_eval`)."""
    check_eval_options(opts)
    paths = resolve_run(opts.model_name, opts.runs_dir)
    enc = run_tokenizer(paths.root, read_json(paths.config))
    if opts.input_file is not None:
        streams = [file_stream(Path(opts.input_file), enc)]
        data = {"input_file": os.path.abspath(opts.input_file)}
    else:
        streams = dataset_streams(Path(opts.dataset_dir or ""), enc)
        data = {"dataset_dir": os.path.abspath(opts.dataset_dir or "")}
    total = sum(len(s.tokens) for s in streams)
    if total == 0:
        raise UsageError(f"--input_file {opts.input_file} holds no tokens (give a UTF-8 text file with some text)")
    runtime = inference_runtime(opts.device)
    loaded = load_run_model(paths, opts.checkpoint, runtime.device, warn=warn, note=note)
    done = 0

    def advance(n: int) -> None:
        nonlocal done
        done += n
        if progress is not None:
            progress(done, total)

    if progress is not None:
        progress(0, total)
    started = time.perf_counter()
    scores: dict[str, Score] = {}
    for stream in streams:
        loss_sum, count = score_tokens(loaded.model, stream.tokens, runtime, advance, enc=enc)
        before = scores.get(stream.name, Score(0.0, 0, 0))
        scores[stream.name] = Score(before.loss_sum + loss_sum, before.tokens + count, before.bytes + stream.bytes)
    seconds = time.perf_counter() - started
    whole = Score(sum(s.loss_sum for s in scores.values()), sum(s.tokens for s in scores.values()),
                  sum(s.bytes for s in scores.values()))
    sources = [{"name": name, **score.summary()} for name, score in scores.items()] \
        if opts.dataset_dir is not None else []
    return EvalResult(
        loss=whole.loss, perplexity=whole.perplexity, bits_per_byte=whole.bits_per_byte, tokens=whole.tokens,
        bytes=whole.bytes, checkpoint=loaded.checkpoint, iter=loaded.iteration, seconds=seconds,
        tokens_per_sec=whole.tokens / max(seconds, 1e-9), block_size=loaded.config.block_size,
        data=data, device=runtime.device, dtype=runtime.dtype, sources=sources, time=now_iso())


def record_eval(paths: RunPaths, result: EvalResult) -> None:
    """Append the result to the run's eval.jsonl, one whole line."""
    try:
        with open_append(paths.evals) as f:
            f.write(json.dumps(result.to_json()) + "\n")
    except OSError as exc:
        line = write_failure(exc)
        raise WriteFailed(f"{line or f'cannot write {paths.evals} ({exc.strerror})'}; the result was not recorded") \
            from None


__all__ = ["EvalOptions", "EvalResult", "Score", "TokenStream", "bits_per_byte", "check_eval_options",
           "evaluate", "perplexity", "read_text_file", "record_eval", "score_tokens"]
