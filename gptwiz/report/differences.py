"""What tells runs apart: the settings in their config.json that differ, as a legend's labels ("lr 3e-4")."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gptwiz.common import fmt
from gptwiz.common.inert import inert


def _get(config: dict[str, Any], *keys: str) -> Any:
    node: Any = config
    for key in keys:
        if not isinstance(node, dict):
            return None
        node = node.get(key)
    return node


def _data(config: dict[str, Any]) -> Any:
    """The data a run trained on, as a user names it: the input file's or the dataset folder's name."""
    data = config.get("data")
    if not isinstance(data, dict):
        return None
    source = data.get("input_file") if data.get("kind") == "input_file" else data.get("dataset_dir")
    return Path(source).name if isinstance(source, str) and source else None


def _min_lr_apart(config: dict[str, Any]) -> Any:
    """min_lr as a setting of its own: as a fraction of the learning rate, which it often follows (a tenth)."""
    lr, min_lr = _get(config, "train", "learning_rate"), _get(config, "train", "min_lr")
    ok = all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in (lr, min_lr))
    return round(min_lr / lr, 6) if ok and lr else min_lr


def _lr(x: Any) -> str:
    return fmt.learning_rate(x) if isinstance(x, (int, float)) and not isinstance(x, bool) else _plain(x)


def _plain(x: Any) -> str:
    if x is None:
        return fmt.UNKNOWN
    if isinstance(x, bool):
        return "on" if x else "off"
    if isinstance(x, (int, float)):
        return fmt.number(x)
    return inert(x)  # a preset's or a file's name, from config.json


@dataclass(frozen=True)
class Setting:
    """One setting a legend may name: its short label, where config.json holds it, and how it reads."""
    label: str
    read: Callable[[dict[str, Any]], Any]
    show: Callable[[Any], str] = _plain


# In the order a label names them: what users vary most first.
SETTINGS: tuple[Setting, ...] = (
    Setting("preset", lambda c: c.get("preset")),
    Setting("lr", lambda c: _get(c, "train", "learning_rate"), _lr),
    Setting("batch", lambda c: _get(c, "train", "batch_size")),
    Setting("block", lambda c: _get(c, "model", "block_size")),
    Setting("accum", lambda c: _get(c, "train", "grad_accum")),
    Setting("layers", lambda c: _get(c, "model", "n_layer")),
    Setting("heads", lambda c: _get(c, "model", "n_head")),
    Setting("embd", lambda c: _get(c, "model", "n_embd")),
    Setting("dropout", lambda c: _get(c, "model", "dropout")),
    Setting("wd", lambda c: _get(c, "train", "weight_decay")),
    Setting("min lr/lr", _min_lr_apart),
    # The configured warm-up: the effective one (capped at a tenth of the run) follows from iters.
    Setting("warmup", lambda c: _get(c, "train", "warmup_iters")),
    Setting("iters", lambda c: _get(c, "train", "max_iters")),
    Setting("data", _data),
    Setting("init", lambda c: c.get("init_from")),
    Setting("dtype", lambda c: c.get("dtype")),
    Setting("compile", lambda c: c.get("compile")),
    Setting("procs", lambda c: c.get("world_size")),
    Setting("seed", lambda c: c.get("seed")),
)


@dataclass(frozen=True)
class Comparison:
    """Each run's label (what differs, or its name where nothing does) and what all the runs share."""
    labels: list[str]
    shared: list[str]   # "preset tiny", "batch 8", ...: the settings every run has alike


def compare(names: Sequence[str], configs: Sequence[dict[str, Any]]) -> Comparison:
    """Labels naming the settings that differ between the runs (all of them, in SETTINGS' order), e.g.
    `lr 3e-4` against `lr 9e-4`; a single run, or runs alike in every setting, are labelled by name."""
    differing, shared = [], []
    for setting in SETTINGS:
        values = [setting.read(c) for c in configs]
        texts = [setting.show(v) for v in values]
        if setting.show is _lr and len(set(texts)) < len(set(map(repr, values))):
            texts = [_plain(v) for v in values]  # 1e-3 and 1.2e-3 read alike at one significant digit
        if len(set(texts)) > 1:
            differing.append((setting.label, texts))
        elif values and values[0] is not None:
            shared.append(f"{setting.label} {texts[0]}")
    shown = [inert(name) for name in names]  # folder names: a label is drawn, printed and written into a page
    if len(names) < 2 or not differing:
        return Comparison(shown, shared)
    labels = [", ".join(f"{label} {texts[i]}" for label, texts in differing) for i in range(len(names))]
    if len(set(labels)) < len(labels):  # alike in the settings shown: the names tell them apart
        labels = [f"{name}: {label}" for name, label in zip(shown, labels)]
    return Comparison(labels, shared)
