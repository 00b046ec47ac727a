"""What a metrics.jsonl record logs to a tracker: tag and value, the same for TensorBoard and W&B."""

from __future__ import annotations

import math
from typing import Any

GIB = 1024**3

# (record key, tag, factor) for each kind of record; the tags group as TensorBoard shows them (loss/, speed/, ...).
TRAIN_TAGS = (("loss", "loss/train", 1.0), ("lr", "optim/lr", 1.0), ("tokens_per_sec", "speed/tokens_per_sec", 1.0),
              ("mfu", "speed/mfu", 1.0), ("peak_mem_bytes", "memory/peak_gib", 1 / GIB))
EVAL_TAGS = (("val_loss", "loss/val", 1.0), ("train_loss", "loss/train_at_eval", 1.0),
             ("best_val_loss", "loss/best_val", 1.0))
PROBE_TAGS = (("loss", "probe/loss", 1.0), ("lr", "probe/lr", 1.0), ("tokens_per_sec", "probe/tokens_per_sec", 1.0),
              ("peak_mem_bytes", "probe/peak_mem_gib", 1 / GIB))
_TAGS = {"train": TRAIN_TAGS, "eval": EVAL_TAGS, "probe": PROBE_TAGS}


def step_of(record: dict[str, Any]) -> int | None:
    """The record's iteration, the tracker's step; None for a record without a usable one."""
    it = record.get("iter")
    return it if isinstance(it, int) and not isinstance(it, bool) and 0 <= it < 10**12 else None


def scalars(record: dict[str, Any]) -> dict[str, float]:
    """The tags and values one record logs; nothing for a kind of record no tracker shows, or a damaged one."""
    if step_of(record) is None:
        return {}
    out = {}
    for key, tag, factor in _TAGS.get(str(record.get("type")), ()):
        v = record.get(key)
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
            out[tag] = float(v) * factor
    return out


def wall_time(record: dict[str, Any]) -> float | None:
    t = record.get("time")
    return float(t) if isinstance(t, (int, float)) and not isinstance(t, bool) and math.isfinite(t) else None
