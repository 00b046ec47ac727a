"""A run's config.json as read back (for --resume, and from an --init_from_model source): checked key by key
before any of it is used, so that a damaged or hand-edited file is refused in one line naming the file and the
key, instead of failing inside the trainer after the run folder was written to."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

from gptwiz.common.errors import UsageError
from gptwiz.common.inert import quote
from gptwiz.common.records import Bound, Check, Rule, Shape, check_record, read_record
from gptwiz.common.safe_read import UnreadableFile, read_json_object
from gptwiz.model.config import ModelConfig
from gptwiz.planning.presets import BOUNDS, TrainConfig, check_together
from gptwiz.runs.paths import validate_run_name

DTYPES = ("float32", "bfloat16", "float16")
_DEVICE_RE = re.compile(r"^(cpu|cuda(:\d{1,4})?)$")
_TOKENS_MAX = 2**62


RESUME_ADVICE = "fix or restore it, or start a new run under another --model_name"


def read_saved_config(path: Path, advice: str = RESUME_ADVICE, prefix: str = "") -> dict[str, Any] | None:
    """config.json's object, None when there is none; a UsageError naming the file (after `prefix`) when it
    cannot be read."""
    try:
        return read_json_object(path)
    except FileNotFoundError:
        return None
    except UnreadableFile as exc:
        raise UsageError(f"{prefix}{exc}; {advice}") from None


def _is_run_name(name: str) -> bool:
    try:
        validate_run_name(name)
    except UsageError:
        return False
    return True


@dataclass(frozen=True)
class SavedData:
    """What a config.json's "data" object must hold (the rest of it is kept as it is, unchecked)."""
    dataset_dir: str
    manifest_checksum: str


# The run's own keys, beside what the annotations of the run's config dataclass already say; its "model" and
# "train" objects are checked by the rules of ModelConfig's and TrainConfig's fields, as a preset's keys are.
RUN_RULES: dict[str, Rule] = {
    "name": Check(_is_run_name, "a run name (letters, digits, '.', '_' and '-')"),
    "device": Check(lambda v: bool(_DEVICE_RE.match(v)), "cpu, cuda or cuda:N"),
    "dtype": Check(lambda v: v in DTYPES, f"one of {', '.join(DTYPES)}"),
    "warmup_iters": BOUNDS["warmup_iters"],
    "seed": Bound(0, 2**32 - 1),
    "params": BOUNDS["nominal_params"],
    "tokens_per_iter": Bound(1, _TOKENS_MAX),
    "world_size": Bound(1, 1024),
    # Infinity is valid: no checkpoints by time, only at evaluations.
    "ckpt_interval_s": Check(lambda v: v > 0, "a positive number of seconds"),
    "data": Shape(SavedData),
}

class _RunSettings(Protocol):
    model: ModelConfig
    train: TrainConfig


Config = TypeVar("Config", bound=_RunSettings)


def load_saved_config(cls: type[Config], data: Any, source: str, advice: str = RESUME_ADVICE) -> Config:
    """The run config dataclass `cls` from a config.json object, refused with a UsageError naming `source` and
    the key (then `advice`) when any key is missing, unknown inside "model" or "train", or of the wrong type or
    range; keys `cls` does not have are left out (a config written by another version)."""
    suffix = f"; {advice}"
    run = read_record(cls, data, source, suffix=suffix, open_keys=(cls,), rules=RUN_RULES)
    check_together(run.model, run.train, source, ("model.", "train."), suffix)
    return run


# --- config.json as an export reads it: every key optional (a config of any version), each of its type --------

@dataclass(frozen=True)
class _SourceFacts:
    name: Any = None
    weight: float | None = None


@dataclass(frozen=True)
class _DataFacts:
    kind: str | None = None
    input_file: str | None = None
    dataset_dir: str | None = None
    manifest: str | None = None
    sources: list[_SourceFacts] | None = None
    sft: dict[str, Any] | None = None
    train_tokens: int | None = None
    val_tokens: int | None = None


@dataclass(frozen=True)
class _ModelFacts:
    n_layer: int | None = None
    n_head: int | None = None
    n_embd: int | None = None
    block_size: int | None = None
    dropout: float | None = None


@dataclass(frozen=True)
class _TrainFacts:
    batch_size: int | None = None
    grad_accum: int | None = None
    learning_rate: float | None = None
    max_iters: int | None = None
    eval_interval: int | None = None
    eval_iters: int | None = None


@dataclass(frozen=True)
class _RunFacts:
    name: str | None = None
    preset: str | None = None
    preset_path: str | None = None
    model: _ModelFacts | None = None
    train: _TrainFacts | None = None
    data: _DataFacts | None = None
    device: str | None = None
    dtype: str | None = None
    seed: int | None = None
    init_from: str | None = None
    world_size: int | None = None
    fsdp: bool | None = None
    gptwiz_version: str | None = None


_FACTS = (_SourceFacts, _DataFacts, _ModelFacts, _TrainFacts, _RunFacts)


def read_run_facts(path: Path, advice: str = "fix or restore it, or remove it to export without it") -> dict[str, Any]:
    """config.json's object as an export's model card reads it ({} when there is none), each key it reads checked
    to be of its type first (other keys are kept unchecked): a UsageError naming the file and the key, then
    `advice`, when one is not, or when the file cannot be read or is nested too deep."""
    data = read_saved_config(path, advice, prefix="run config ")
    if data is None:
        return {}
    check_record(_RunFacts, data, f"run config {quote(path)}", suffix=f"; {advice}", open_keys=_FACTS)
    return data
