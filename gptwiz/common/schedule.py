"""The learning-rate schedule: linear warmup, then cosine decay to min_lr at the end of the run."""

from __future__ import annotations

import math


def effective_warmup(preset_warmup: int, max_iters: int) -> int:
    """Warmup capped at a tenth of the run, so a short run of a long preset still reaches its peak rate."""
    return min(preset_warmup, max_iters // 10)


def lr_at(it: int, *, learning_rate: float, min_lr: float, warmup_iters: int, decay_iters: int) -> float:
    if it < warmup_iters:
        return learning_rate * (it + 1) / (warmup_iters + 1)
    if it >= decay_iters:
        return min_lr
    ratio = (it - warmup_iters) / max(1, decay_iters - warmup_iters)
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (learning_rate - min_lr)
