"""Fitting a batch into memory: the largest micro-batch whose estimated peak fits the card (or RAM), with
gradient accumulation making up the rest of the guide's batch."""

from __future__ import annotations

from dataclasses import dataclass

from gptwiz.common import fmt
from gptwiz.planning.memory import MemoryEstimate, fits
from gptwiz.planning.policy import run_memory
from gptwiz.planning.presets import Preset

HEADROOM = 0.9            # the estimate must fit in 90% of the card (other processes, estimate error)


@dataclass(frozen=True)
class Fit:
    """A micro-batch and its accumulation steps, the run's estimate at them, and whether it fits."""
    batch_size: int
    grad_accum: int
    estimate: MemoryEstimate
    fits: bool


def divisors_desc(n: int) -> list[int]:
    return [d for d in range(n, 0, -1) if n % d == 0]


def fit_batch(preset: Preset, block_size: int, batch: int, device_type: str, dtype: str,
              memory_bytes: int | None, max_iters: int | None = None) -> Fit:
    """The largest micro-batch dividing `batch` whose estimate fits, with gradient accumulation
    making up the rest (same sequences per step); batch 1 when none fits. The estimate is the run's
    (gptwiz.planning.policy.run_memory: compiled or not as the trainer will decide)."""
    est = None
    iters = max_iters or preset.train.max_iters
    for micro in divisors_desc(batch):
        accum = batch // micro
        est = run_memory(preset.model, batch_size=micro, block_size=block_size, dtype=dtype, device_type=device_type,
                         grad_accum=accum, max_iters=iters, optimizer=preset.train.optimizer)
        if memory_bytes is None or fits(est, memory_bytes, HEADROOM):
            return Fit(micro, accum, est, True)
    assert est is not None
    return Fit(1, batch, est, False)


def memory_label(gpu: bool, memory_bytes: int | None) -> str:
    """'the 24 GiB card', 'the 8 GiB of RAM available' (gptwiz.planning.hardware.training_ram_bytes), or 'RAM'
    where its size is not known."""
    if memory_bytes is None:
        return "RAM"
    return f"the {fmt.bytes_(memory_bytes, binary=True)} {'card' if gpu else 'of RAM available'}"


__all__ = ["HEADROOM", "Fit", "fit_batch", "memory_label"]
