"""A run's config.json as read back (for --resume, and from an --init_from_model source): checked key by key
before any of it is used, so that a damaged or hand-edited file is refused in one line naming the file and the
key, instead of failing inside the trainer after the run folder was written to."""

from __future__ import annotations

import math
import re
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Any

from gptwiz.common.errors import UsageError
from gptwiz.common.safe_read import UnreadableFile, json_type, read_json_object
from gptwiz.model.config import ModelConfig
from gptwiz.planning.presets import BOUNDS, TrainConfig, shown
from gptwiz.runs.folder import validate_run_name

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


class _Checker:
    def __init__(self, source: str, advice: str):
        self.source = source
        self.advice = advice

    def bad(self, key: str, why: str, value: Any) -> UsageError:
        return UsageError(f"{self.source}: key '{key}' must be {why}, got {shown(value)}; {self.advice}")

    def section(self, data: dict[str, Any], key: str, known: set[str], required: set[str]) -> dict[str, Any]:
        value = data.get(key)
        if not isinstance(value, dict):
            raise self.bad(key, "an object", value) if key in data else self.missing(key)
        unknown, missing = sorted(set(value) - known), sorted(required - set(value))
        if unknown:
            raise UsageError(f"{self.source}: key '{key}.{unknown[0]}' is unknown (valid: {', '.join(sorted(known))}); "
                             f"{self.advice}")
        if missing:
            raise self.missing(f"{key}.{missing[0]}")
        return value

    def missing(self, key: str) -> UsageError:
        return UsageError(f"{self.source}: key '{key}' is missing; {self.advice}")

    def bounded(self, section: dict[str, Any], prefix: str) -> None:
        for name, value in section.items():
            if name in BOUNDS and not BOUNDS[name].holds(value):
                raise self.bad(f"{prefix}{name}", BOUNDS[name].describe(), value)

    def typed(self, data: dict[str, Any], key: str, kinds: tuple[type, ...], why: str, optional: bool = False,
              prefix: str = "") -> None:
        if key not in data:
            if not optional:
                raise self.missing(prefix + key)
            return
        value = data[key]
        if isinstance(value, bool) and bool not in kinds or not isinstance(value, kinds):
            raise self.bad(prefix + key, why, value)

    def whole(self, data: dict[str, Any], key: str, low: int, high: int, optional: bool = False) -> None:
        self.typed(data, key, (int,), f"a whole number from {low} to {high:,}", optional)
        if key in data and not low <= data[key] <= high:
            raise self.bad(key, f"a whole number from {low} to {high:,}", data[key])


def required_fields(cls: Any) -> set[str]:
    """The fields of a dataclass that have no default."""
    return {f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING}


def check_saved_config(data: Any, source: str, required: set[str], advice: str = RESUME_ADVICE) -> None:
    """Refuse, with a UsageError naming `source` and the key, a config.json object that RunConfig.from_json
    could not turn into the settings the trainer runs with (every key it reads, of the type and range it needs);
    `required` are RunConfig's fields without a default, `advice` ends the message."""
    c = _Checker(source, advice)
    if not isinstance(data, dict):
        raise UsageError(f"{source}: holds a JSON {json_type(data)}, not an object; {advice}")
    missing = sorted(required - set(data))
    if missing:
        raise c.missing(missing[0])
    model = c.section(data, "model", {f.name for f in fields(ModelConfig)}, required_fields(ModelConfig))
    for key in ("n_layer", "n_head", "n_embd", "block_size", "vocab_size"):
        c.typed(model, key, (int,), BOUNDS[key].describe(), optional=key == "vocab_size", prefix="model.")
    c.bounded(model, "model.")
    if "bias" in model and not isinstance(model["bias"], bool):
        raise c.bad("model.bias", "true or false", model["bias"])
    if model["n_embd"] % model["n_head"]:
        raise c.bad("model.n_embd", f"divisible by model.n_head ({model['n_head']})", model["n_embd"])
    train = c.section(data, "train", {f.name for f in fields(TrainConfig)}, required_fields(TrainConfig))
    c.bounded(train, "train.")
    if "min_lr" in train and isinstance(train["min_lr"], (int, float)) and train["min_lr"] > train["learning_rate"]:
        raise c.bad("train.min_lr", f"at most train.learning_rate ({train['learning_rate']:g})", train["min_lr"])
    betas = train.get("betas", [0.9, 0.95])
    if (not isinstance(betas, list) or len(betas) != 2
            or not all(isinstance(b, (int, float)) and not isinstance(b, bool) and 0 <= b < 1 for b in betas)):
        raise c.bad("train.betas", "two numbers in [0, 1)", betas)
    c.whole(data, "warmup_iters", 0, int(BOUNDS["warmup_iters"].high))
    data_section = data.get("data")
    if not isinstance(data_section, dict):
        raise c.bad("data", "an object", data_section)
    for key in ("dataset_dir", "manifest_checksum"):
        c.typed(data_section, key, (str,), "text", prefix="data.")
    for key in ("name", "preset", "preset_path", "device", "dtype"):
        c.typed(data, key, (str,), "text")
    try:
        validate_run_name(data["name"])
    except UsageError:
        raise c.bad("name", "a run name (letters, digits, '.', '_' and '-')", data["name"]) from None
    if not _DEVICE_RE.match(data["device"]):
        raise c.bad("device", "cpu, cuda or cuda:N", data["device"])
    if data["dtype"] not in DTYPES:
        raise c.bad("dtype", f"one of {', '.join(DTYPES)}", data["dtype"])
    for key in ("compile", "probe", "fsdp"):
        c.typed(data, key, (bool,), "true or false", optional=key != "compile")
    c.whole(data, "seed", 0, 2**32 - 1)
    c.whole(data, "params", 0, int(BOUNDS["nominal_params"].high))
    c.whole(data, "tokens_per_iter", 1, _TOKENS_MAX)
    c.whole(data, "world_size", 1, 1024, optional=True)
    if data.get("init_from") is not None and not isinstance(data["init_from"], str):
        raise c.bad("init_from", "a run folder or null", data["init_from"])
    interval = data.get("ckpt_interval_s", 300.0)
    if isinstance(interval, bool) or not isinstance(interval, (int, float)) or math.isnan(interval) or interval <= 0:
        raise c.bad("ckpt_interval_s", "a positive number of seconds", interval)
    for key in ("created_at", "gptwiz_version"):
        c.typed(data, key, (str,), "text", optional=True)
