"""The guide's presets: loading, validation and listing.

A preset is one flat JSON file in `presets/` holding the architecture, the training
settings of the guide's "Recommended Combinations" table, and a few descriptive keys.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from gptwiz.common.errors import UsageError
from gptwiz.common.inert import quote
from gptwiz.common.records import Bound, RecordError, field_rules, read_flat, rule, shown
from gptwiz.common.safe_read import TOO_DEEP, nested_too_deep
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


# What --optimizer takes (gptwiz.training.optimizers builds them): the bigger presets' AdamW, and tiny's and small's
# Muon (measured faster to a quality: docs/benchmarks.md).
Optimizer = Literal["adamw", "muon"]
OPTIMIZERS: tuple[str, ...] = get_args(Optimizer)

# A beta of Adam's: 1 or more would let the moment estimates grow without end.
Beta = Annotated[float, Bound(0, 1, whole=False, high_open=True)]


@dataclass(frozen=True)
class TrainConfig:
    """The training half of a preset. Its bounds and ModelConfig's are every number a preset or a flag sets
    (BOUNDS): far past any run gptwiz makes, small enough that a slip (a value typed with extra digits) is
    refused in one line instead of failing deep inside."""
    batch_size: int = field(metadata=rule(Bound(1, 65536)))
    learning_rate: float = field(metadata=rule(Bound(0, 1, whole=False, low_open=True, high_open=True)))
    max_iters: int = field(metadata=rule(Bound(1, 1_000_000_000)))
    warmup_iters: int = field(default=100, metadata=rule(Bound(0, 1_000_000_000)))
    min_lr: float = field(default=0.0, metadata=rule(Bound(0, 1, whole=False, high_open=True)))
    weight_decay: float = field(default=0.1, metadata=rule(Bound(0, 1000, whole=False)))
    betas: tuple[Beta, Beta] = (0.9, 0.95)
    grad_clip: float = field(default=1.0, metadata=rule(Bound(0, 1e6, whole=False)))
    grad_accum: int = field(default=1, metadata=rule(Bound(1, 65536)))
    eval_interval: int = field(default=250, metadata=rule(Bound(1, 1_000_000_000)))
    eval_iters: int = field(default=20, metadata=rule(Bound(1, 1_000_000)))
    # Muon for the blocks' matrices (AdamW for the rest), or AdamW for all: gptwiz.training.optimizers.
    optimizer: Optimizer = "adamw"


@dataclass(frozen=True)
class PresetText:
    """A preset's descriptive keys."""
    description: str = ""
    use_cases: tuple[str, ...] = ()
    nominal_params: int = field(default=0, metadata=rule(Bound(0, 10**15)))
    guide_vram_gb: float = field(default=0.0, metadata=rule(Bound(0, 1e6, whole=False)))


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


# Every number a preset or a flag sets, with its range: the one declaration is the dataclasses' fields.
BOUNDS: dict[str, Bound] = {name: bound for cls in (ModelConfig, TrainConfig, PresetText)
                            for name, bound in field_rules(cls).items() if isinstance(bound, Bound)}


def one_clause(exc: BaseException) -> str:
    """An exception's message up to its first full stop or semicolon: Python's advice after it is not the user's."""
    text = str(exc).split(";")[0].split(". ")[0].strip() or exc.__class__.__name__
    return text


def check_bound(name: str, value: Any, flag: bool = True) -> None:
    """Refuse `value` for the preset key or flag `name` outside BOUNDS[name] (None: not given)."""
    bound = BOUNDS[name]
    if value is not None and not bound.holds(value):
        where = f"--{name}" if flag else quote(name)
        raise UsageError(f"invalid {where} {shown(value)}: must be {bound.describe()}")


def check_together(model: ModelConfig, train: TrainConfig, source: str, prefix: tuple[str, str] = ("", ""),
                   suffix: str = "") -> None:
    """What no single key says: the heads split the width evenly, and the schedule decays downwards.
    `prefix` puts the keys where the file has them ("model.", "train.")."""
    m, t = prefix
    if model.n_embd % model.n_head:
        raise RecordError(source, f"{m}n_embd", f"must be divisible by {m}n_head ({model.n_head}), "
                          f"got {model.n_embd}", suffix)
    if train.min_lr > train.learning_rate:
        raise RecordError(source, f"{t}min_lr", f"must be at most {t}learning_rate ({train.learning_rate:g}), "
                          f"got {shown(train.min_lr)}", suffix)


def parse_preset(data: Any, path: str, name: str) -> Preset:
    """Validate a preset's JSON object; every problem is a one-line UsageError naming file and key."""
    source = f"preset {path}"
    model, train, text = read_flat((ModelConfig, TrainConfig, PresetText), data, source)
    if "min_lr" not in data:
        train = replace(train, min_lr=train.learning_rate / 10)
    check_together(model, train, source)
    return Preset(name=name, path=path, description=text.description, use_cases=text.use_cases,
                  nominal_params=text.nominal_params, guide_vram_gb=float(text.guide_vram_gb), model=model,
                  train=train)


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
    raise UsageError(f"unknown preset or config file {quote(config_file)} (valid presets: {valid}, or a path to a JSON file)")


def load_preset(config_file: str, presets_dir: Path = PRESETS_DIR) -> Preset:
    path = resolve_preset_path(config_file, presets_dir)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"preset {path}: cannot be read ({exc.__class__.__name__}: {exc})") from None
    if nested_too_deep(text):  # the depth limit of every JSON gptwiz reads (gptwiz.common.safe_read)
        raise UsageError(f"preset {quote(path)}: {TOO_DEEP}")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"preset {path}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    except (ValueError, RecursionError) as exc:  # an integer of thousands of digits; nesting deeper than Python's stack
        raise UsageError(f"preset {path}: cannot be read ({one_clause(exc)})") from None
    return parse_preset(data, str(path), path.stem)


def load_all(presets_dir: Path = PRESETS_DIR) -> list[Preset]:
    return [load_preset(str(presets_dir / f"{n}.json"), presets_dir) for n in preset_names(presets_dir)]


__all__ = ["TrainConfig", "PresetText", "Preset", "load_preset", "load_all", "parse_preset", "check_together",
           "check_bound", "BOUNDS", "Bound", "shown", "preset_names", "PRESETS_DIR", "PRESET_ORDER",
           "DOMAIN_ADAPT_PRESET"]
