"""The guide's presets: loading, validation and listing.

A preset is one flat JSON file in `presets/` holding the architecture, the training
settings of the guide's "Recommended Combinations" table, and a few descriptive keys.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from gptwiz.common.errors import UsageError
from gptwiz.data.tokenizer import GPT2_VOCAB_SIZE
from gptwiz.model.config import ModelConfig


def _shipped_presets_dir() -> Path:
    """The preset JSON files: inside the installed package (a wheel maps the checkout's presets/ there at build
    time), else the checkout's own presets/ folder, the one copy kept in git."""
    installed = Path(__file__).resolve().parent / "preset_files"
    return installed if installed.is_dir() else Path(__file__).resolve().parents[2] / "presets"


PRESETS_DIR = Path(os.environ.get("GPTWIZ_PRESETS_DIR") or _shipped_presets_dir())

# The guide's Phase 2 preset: 750M_1024 adapted to a domain, not a model size of its own.
DOMAIN_ADAPT_PRESET = "750M_1024_domain_adapt"
# The order of the guide's VRAM column, smallest first, then the domain adaptation preset; recommend.py's
# ORDER is this without the latter.
PRESET_ORDER = ["tiny", "small", "150M", "150M_1024", "200M", "350M_1024", "750M_1024", DOMAIN_ADAPT_PRESET]


@dataclass(frozen=True)
class TrainConfig:
    batch_size: int
    learning_rate: float
    max_iters: int
    warmup_iters: int = 100
    min_lr: float = 0.0
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.95)
    grad_clip: float = 1.0
    grad_accum: int = 1
    eval_interval: int = 250
    eval_iters: int = 20


@dataclass(frozen=True)
class Preset:
    name: str
    path: str
    description: str
    use_cases: tuple[str, ...]
    nominal_params: int
    guide_vram_gb: float
    model: ModelConfig
    train: TrainConfig

    def to_json(self) -> dict[str, Any]:
        """The flat JSON form, as stored in presets/*.json."""
        out: dict[str, Any] = {
            "description": self.description,
            "use_cases": list(self.use_cases),
            "nominal_params": self.nominal_params,
            "guide_vram_gb": self.guide_vram_gb,
        }
        out.update(asdict(self.model))
        out.update(asdict(self.train))
        out["betas"] = list(self.train.betas)
        return out

    def with_overrides(self, **overrides: Any) -> Preset:
        """A copy with model or training keys replaced (None values are ignored)."""
        model_keys = {f.name for f in fields(ModelConfig)}
        train_keys = {f.name for f in fields(TrainConfig)}
        m = {k: v for k, v in overrides.items() if v is not None and k in model_keys}
        t = {k: v for k, v in overrides.items() if v is not None and k in train_keys}
        unknown = set(overrides) - model_keys - train_keys
        if unknown:
            raise ValueError(f"unknown preset keys {sorted(unknown)}")
        return replace(self, model=replace(self.model, **m), train=replace(self.train, **t))


_META_KEYS: dict[str, type | tuple[type, ...]] = {"description": str, "use_cases": list, "nominal_params": int, "guide_vram_gb": (int, float)}
_INT_KEYS = {"n_layer", "n_head", "n_embd", "block_size", "vocab_size", "batch_size", "max_iters",
             "warmup_iters", "grad_accum", "eval_interval", "eval_iters"}
_POSITIVE_KEYS = {"n_layer", "n_head", "n_embd", "block_size", "vocab_size", "batch_size", "max_iters",
                  "grad_accum", "eval_interval", "eval_iters"}
_REQUIRED = {"n_layer", "n_head", "n_embd", "block_size", "batch_size", "learning_rate", "max_iters"}


@dataclass(frozen=True)
class Bound:
    """The valid range of a number that a preset key or a flag sets."""
    low: float
    high: float
    whole: bool = True        # whole numbers only
    low_open: bool = False    # `low` itself is not valid
    high_open: bool = False   # `high` itself is not valid

    def holds(self, value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, int if self.whole else (int, float)):
            return False
        above = value > self.low if self.low_open else value >= self.low
        below = value < self.high if self.high_open else value <= self.high
        return above and below  # False for NaN

    def describe(self) -> str:
        if self.whole:
            return f"a whole number from {self.low} to {self.high}"
        return (f"a number in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}"
                f"{')' if self.high_open else ']'}")


# Every number a preset or a flag sets, bounded: far past any model gptwiz trains, yet small enough that no
# product of them (tokens a step, elements of a tensor, bytes of an estimate) leaves a 64-bit integer or a
# float, so a slip (a value typed with extra digits) is refused in one line instead of failing deep inside.
BOUNDS: dict[str, Bound] = {
    "n_layer": Bound(1, 1024),
    "n_head": Bound(1, 1024),
    "n_embd": Bound(1, 65536),
    "block_size": Bound(1, 1_048_576),
    "vocab_size": Bound(GPT2_VOCAB_SIZE, 1_048_576),
    "dropout": Bound(0, 1, whole=False, high_open=True),
    "batch_size": Bound(1, 65536),
    "learning_rate": Bound(0, 1, whole=False, low_open=True, high_open=True),
    "max_iters": Bound(1, 1_000_000_000),
    "warmup_iters": Bound(0, 1_000_000_000),
    "min_lr": Bound(0, 1, whole=False, high_open=True),
    "weight_decay": Bound(0, 1000, whole=False),
    "grad_clip": Bound(0, 1e6, whole=False),
    "grad_accum": Bound(1, 65536),
    "eval_interval": Bound(1, 1_000_000_000),
    "eval_iters": Bound(1, 1_000_000),
    "nominal_params": Bound(0, 10**15),
    "guide_vram_gb": Bound(0, 1e6, whole=False),
}


def shown(value: Any) -> str:
    """A value for an error message: a number typed with hundreds of digits is shortened, not printed whole."""
    text = str(value) if isinstance(value, int) and not isinstance(value, bool) else repr(value)
    return text if len(text) <= 40 else f"{text[:12]}...{text[-4:]} ({len(text)} characters)"


def one_clause(exc: BaseException) -> str:
    """An exception's message up to its first full stop or semicolon: Python's advice after it is not the user's."""
    text = str(exc).split(";")[0].split(". ")[0].strip() or exc.__class__.__name__
    return text


def check_bound(name: str, value: Any, flag: bool = True) -> None:
    """Refuse `value` for the preset key or flag `name` outside BOUNDS[name] (None: not given)."""
    bound = BOUNDS[name]
    if value is not None and not bound.holds(value):
        where = f"--{name}" if flag else f"'{name}'"
        raise UsageError(f"invalid {where} {shown(value)}: must be {bound.describe()}")


def _bad(path: str, key: str, why: str) -> UsageError:
    return UsageError(f"preset {path}: key '{key}' {why}")


def parse_preset(data: Any, path: str, name: str) -> Preset:
    """Validate a preset's JSON object; every problem is a one-line UsageError naming file and key."""
    if not isinstance(data, dict):
        raise UsageError(f"preset {path}: expected a JSON object of settings, got {type(data).__name__}")
    model_keys = {f.name for f in fields(ModelConfig)}
    train_keys = {f.name for f in fields(TrainConfig)}
    known = model_keys | train_keys | set(_META_KEYS)
    for key in data:
        if key not in known:
            raise _bad(path, key, f"is unknown (valid keys: {', '.join(sorted(known))})")
    for key in sorted(_REQUIRED):
        if key not in data:
            raise _bad(path, key, "is missing")
    for key, value in data.items():
        if key in _INT_KEYS and (isinstance(value, bool) or not isinstance(value, int)):
            raise _bad(path, key, f"must be a whole number, got {shown(value)}")
        if key in _POSITIVE_KEYS and value <= 0:
            raise _bad(path, key, f"must be positive, got {shown(value)}")
    for key in ("learning_rate", "min_lr", "weight_decay", "grad_clip", "dropout"):
        if key in data and (isinstance(data[key], bool) or not isinstance(data[key], (int, float))):
            raise _bad(path, key, f"must be a number, got {shown(data[key])}")
    if not 0 < data["learning_rate"] < 1:
        raise _bad(path, "learning_rate", f"must lie in (0, 1), got {shown(data['learning_rate'])}")
    if "min_lr" in data and not 0 <= data["min_lr"] <= data["learning_rate"]:
        raise _bad(path, "min_lr", f"must lie in [0, learning_rate], got {shown(data['min_lr'])}")
    if "dropout" in data and not 0 <= data["dropout"] < 1:
        raise _bad(path, "dropout", f"must lie in [0, 1), got {shown(data['dropout'])}")
    if "warmup_iters" in data and data["warmup_iters"] < 0:
        raise _bad(path, "warmup_iters", f"must be zero or more, got {shown(data['warmup_iters'])}")
    for key in ("weight_decay", "grad_clip"):
        if key in data and not 0 <= data[key] < float("inf"):  # NaN too: it would turn every weight into NaN
            raise _bad(path, key, f"must be zero or a finite number above it, got {shown(data[key])}")
    if "vocab_size" in data and data["vocab_size"] < GPT2_VOCAB_SIZE:
        # Token ids run to 50256: a smaller table fails at the first batch that holds a high id.
        raise _bad(path, "vocab_size", f"must be at least {GPT2_VOCAB_SIZE} (the GPT-2 tokenizer's tokens), "
                   f"got {shown(data['vocab_size'])}")
    if "bias" in data and not isinstance(data["bias"], bool):
        raise _bad(path, "bias", f"must be true or false, got {shown(data['bias'])}")
    betas = data.get("betas", [0.9, 0.95])
    if (not isinstance(betas, (list, tuple)) or len(betas) != 2
            or not all(isinstance(b, (int, float)) and not isinstance(b, bool) and 0 <= b < 1 for b in betas)):
        raise _bad(path, "betas", f"must be two numbers in [0, 1), got {shown(betas)}")
    for key, value in data.items():  # the ranges (the checks above give the common slips their own words)
        if key in BOUNDS and not BOUNDS[key].holds(value):
            raise _bad(path, key, f"must be {BOUNDS[key].describe()}, got {shown(value)}")
    if data["n_embd"] % data["n_head"] != 0:
        raise _bad(path, "n_embd", f"({data['n_embd']}) must be divisible by n_head ({data['n_head']})")
    for key, kind in _META_KEYS.items():
        if key in data and not isinstance(data[key], kind):
            raise _bad(path, key, f"has the wrong type {type(data[key]).__name__}")
    model = ModelConfig(**{k: data[k] for k in model_keys if k in data})
    train_args = {k: data[k] for k in train_keys if k in data}
    train_args["betas"] = tuple(float(b) for b in betas)
    train_args.setdefault("min_lr", data["learning_rate"] / 10)
    train = TrainConfig(**train_args)
    return Preset(
        name=name,
        path=path,
        description=data.get("description", ""),
        use_cases=tuple(data.get("use_cases", [])),
        nominal_params=int(data.get("nominal_params", 0)),
        guide_vram_gb=float(data.get("guide_vram_gb", 0)),
        model=model,
        train=train,
    )


def preset_names(presets_dir: Path = PRESETS_DIR) -> list[str]:
    """All preset names, in the guide's order first, then any extra ones alphabetically."""
    found = {p.stem for p in presets_dir.glob("*.json")}
    return [n for n in PRESET_ORDER if n in found] + sorted(found - set(PRESET_ORDER))


def resolve_preset_path(config_file: str, presets_dir: Path = PRESETS_DIR) -> Path:
    """A path, or a bare preset name such as 'small'; the guide's configs/pretrain/X.json maps to presets/X.json."""
    path = Path(config_file)
    if path.is_file():
        return path
    stem = path.name[:-5] if path.name.endswith(".json") else path.name
    candidate = presets_dir / f"{stem}.json"
    if candidate.is_file():
        return candidate
    valid = ", ".join(preset_names(presets_dir))
    raise UsageError(f"unknown preset or config file '{config_file}' (valid presets: {valid}, or a path to a JSON file)")


def load_preset(config_file: str, presets_dir: Path = PRESETS_DIR) -> Preset:
    path = resolve_preset_path(config_file, presets_dir)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"preset {path}: cannot be read ({exc.__class__.__name__}: {exc})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"preset {path}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    except (ValueError, RecursionError) as exc:  # an integer of thousands of digits; nesting deeper than Python's stack
        raise UsageError(f"preset {path}: cannot be read ({one_clause(exc)})") from None
    return parse_preset(data, str(path), path.stem)


def load_all(presets_dir: Path = PRESETS_DIR) -> list[Preset]:
    return [load_preset(str(presets_dir / f"{n}.json"), presets_dir) for n in preset_names(presets_dir)]


__all__ = ["TrainConfig", "Preset", "load_preset", "load_all", "parse_preset",
           "preset_names", "PRESETS_DIR", "PRESET_ORDER", "DOMAIN_ADAPT_PRESET"]
