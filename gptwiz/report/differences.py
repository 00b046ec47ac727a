"""What tells runs apart: the settings in their config.json that differ, and each run's label in a legend.

One rule labels a run everywhere (the legend of the PNG, the SVG and the page, and the terminal chart's):
`compare`. A label is short: the values that differ ("lr 3e-4, batch 8"), or the run's name where that
is shorter; the full list of differences is a table of its own (`Comparison.differing`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any

from gptwiz.common import fmt
from gptwiz.common.inert import inert
from gptwiz.planning.presets import OPTIMIZERS

# The most characters a label, a run's name in a table or a setting's value may take: a legend entry or a
# table's cell longer than this crowds out the curves and the other columns, so its middle is cut out.
LABEL_LIMIT = 40
ELLIPSIS = "…"
_SUMMARY_SETTINGS = 8  # the most settings a summary line names (the table names them all)


def shorten(text: str, limit: int = LABEL_LIMIT) -> str:
    """`text` in at most `limit` characters: its start and its end kept (names tend to differ at either end)."""
    if len(text) <= limit:
        return text
    keep = limit - len(ELLIPSIS)
    head = (keep + 1) // 2
    return text[:head] + ELLIPSIS + text[len(text) - (keep - head):]


def _get(config: dict[str, Any], *keys: str) -> Any:
    node: Any = config
    for key in keys:
        if not isinstance(node, dict):
            return None
        node = node.get(key)
    return node


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _plain(x: Any) -> str:
    if x is None:
        return fmt.UNKNOWN
    if isinstance(x, bool):
        return "on" if x else "off"
    if _is_number(x):
        return fmt.number(x)
    return shorten(inert(x))  # a preset's or an optimizer's name, from config.json


def _texts(values: list[Any]) -> list[str]:
    return [_plain(v) for v in values]


def _lr_texts(values: list[Any]) -> list[str]:
    """Learning rates as the guide writes them (3e-4), unless that makes different rates read alike."""
    texts = [fmt.learning_rate(v) if _is_number(v) else _plain(v) for v in values]
    if len(set(texts)) < len(set(map(repr, values))):
        return _texts(values)  # 1e-3 and 1.2e-3 read alike at one significant digit
    return texts


def _path_texts(values: list[Any]) -> list[str]:
    """Paths (a data file, a dataset's or a source run's folder) by their last part, with as many parts before it
    as tell different paths apart; never from the root: where a run's files lie says nothing of the run."""
    paths = [PurePath(v) if isinstance(v, str) and v else None for v in values]
    parts = [(p.parts[1:] if p.anchor else p.parts) if p else None for p in paths]  # without the root
    tails: list[str] = []
    for depth in range(1, max([len(x) for x in parts if x is not None] + [1]) + 1):
        tails = [("/".join(x[-depth:]) or fmt.UNKNOWN) if x is not None else fmt.UNKNOWN for x in parts]
        if len(set(tails)) == len(set(parts)):
            break
    return [shorten(inert(t)) for t in tails]


def _min_lr_texts(values: list[Any]) -> list[str]:
    """min_lr, which often follows the learning rate (a tenth of it): no difference where either the rates or
    their fractions of the learning rate are alike; else the rates."""
    rates = [v[0] for v in values]
    fractions = [round(m / lr, 6) if _is_number(m) and _is_number(lr) and lr else None for m, lr in values]
    if len(set(map(repr, rates))) == 1:
        return _lr_texts(rates)
    if None not in fractions and len(set(fractions)) == 1:
        return [f"{fmt.number(fractions[0])} x lr"] * len(values)
    return _lr_texts(rates)


def _data(config: dict[str, Any]) -> Any:
    """The data a run trained on, as a user names it: the input file, or the prepared dataset's folder."""
    data = config.get("data")
    if not isinstance(data, dict):
        return None
    return data.get("input_file") if data.get("kind") == "input_file" else data.get("dataset_dir")


def _optimizer(config: dict[str, Any]) -> Any:
    train = config.get("train")
    if not isinstance(train, dict):
        return None
    return train.get("optimizer", OPTIMIZERS[0])  # a config.json older than --optimizer trained with the default


@dataclass(frozen=True)
class Setting:
    """One setting a label may name: its short name, where config.json holds it, and how the runs' values read
    side by side."""
    label: str
    read: Callable[[dict[str, Any]], Any]
    texts: Callable[[list[Any]], list[str]] = _texts


# In the order a label names them: what users vary most first.
SETTINGS: tuple[Setting, ...] = (
    Setting("preset", lambda c: c.get("preset")),
    Setting("lr", lambda c: _get(c, "train", "learning_rate"), _lr_texts),
    Setting("batch", lambda c: _get(c, "train", "batch_size")),
    Setting("block", lambda c: _get(c, "model", "block_size")),
    Setting("accum", lambda c: _get(c, "train", "grad_accum")),
    Setting("optim", _optimizer),
    Setting("layers", lambda c: _get(c, "model", "n_layer")),
    Setting("heads", lambda c: _get(c, "model", "n_head")),
    Setting("embd", lambda c: _get(c, "model", "n_embd")),
    Setting("dropout", lambda c: _get(c, "model", "dropout")),
    Setting("wd", lambda c: _get(c, "train", "weight_decay")),
    Setting("min lr", lambda c: (_get(c, "train", "min_lr"), _get(c, "train", "learning_rate")), _min_lr_texts),
    # The configured warm-up: the effective one (capped at a tenth of the run) follows from iters.
    Setting("warmup", lambda c: _get(c, "train", "warmup_iters")),
    Setting("iters", lambda c: _get(c, "train", "max_iters")),
    Setting("data", _data, _path_texts),
    Setting("init", lambda c: c.get("init_from"), _path_texts),
    Setting("dtype", lambda c: c.get("dtype")),
    Setting("compile", lambda c: c.get("compile")),
    Setting("procs", lambda c: c.get("world_size")),
    Setting("seed", lambda c: c.get("seed")),
)


@dataclass(frozen=True)
class Comparison:
    """The runs' names as shown, each run's label, the settings that differ (each with every run's value, in the
    runs' order) and those all the runs share ("preset tiny", "batch 8")."""
    names: list[str]
    labels: list[str]
    differing: list[tuple[str, list[str]]] = field(default_factory=list)
    shared: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """What was compared, in one short line: '3 runs, differing in 2 settings: lr, batch'."""
        runs = f"{len(self.names)} run{'s' if len(self.names) != 1 else ''}"
        if len(self.names) < 2:
            return runs
        if not self.differing:
            return f"{runs}, alike in every setting"
        settings = [label for label, _ in self.differing]
        named = ", ".join(settings if len(settings) <= _SUMMARY_SETTINGS else
                          [*settings[:_SUMMARY_SETTINGS - 2], f"and {len(settings) - _SUMMARY_SETTINGS + 2} more"])
        return f"{runs}, differing in {len(settings)} setting{'s' if len(settings) > 1 else ''}: {named}"


def compare(names: Sequence[str], configs: Sequence[dict[str, Any]]) -> Comparison:
    """The runs' labels: the settings that differ between them (`lr 3e-4` against `lr 9e-4`), or their names
    where the names are shorter (together), where nothing differs, or where the differences label two runs alike."""
    differing: list[tuple[str, list[str]]] = []
    shared: list[str] = []
    for setting in SETTINGS:
        values = [setting.read(c) for c in configs]
        texts = setting.texts(values)
        if len(set(texts)) > 1:
            differing.append((setting.label, texts))
        elif texts and texts[0] != fmt.UNKNOWN:
            shared.append(f"{setting.label} {texts[0]}")
    shown = [shorten(inert(name)) for name in names]  # folder names: a label is drawn, printed and written into a page
    if len(names) < 2 or not differing:
        return Comparison(shown, shown, differing, shared)
    labels = [", ".join(f"{label} {texts[i]}" for label, texts in differing) for i in range(len(names))]
    if len(set(labels)) < len(labels) or sum(map(len, shown)) < sum(map(len, labels)):
        labels = shown
    return Comparison(shown, labels, differing, shared)
