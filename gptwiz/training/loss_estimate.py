"""The loss a trainer's evaluation measures: a mean over fixed batches of each split, the ranks sharing them out."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from gptwiz.training.batches import Batches
from gptwiz.training.distributed import agree, mean_across_ranks
from gptwiz.training.ranks import DistContext
from gptwiz.training.status_writer import StatusWriter

# Seeds for the fixed evaluation batches, apart from any training iteration's.
_VAL_STREAM, _TRAIN_EVAL_STREAM = 1_000_000_007, 1_000_000_009


def estimate_loss(model: Any, batches: Batches, dist: DistContext, status: StatusWriter, per_split: int,
                  announce_now: bool, stop_requested: Callable[[], bool]) -> dict[str, float] | None:
    """Mean loss over `per_split` fixed batches of each split; None when a stop was agreed between two batches
    (the partial evaluation is dropped). status.json keeps its heartbeat, with the batches done; `announce_now`
    writes the evaluation's start at once."""
    world, rank = dist.world_size, dist.rank
    # Every rank goes through the same rounds (one batch each, or none at the end) and so asks the same
    # number of times whether to stop: a rank that left the evaluation alone would hang the others.
    rounds = -(-per_split // world)
    total_batches = 2 * per_split
    status.phase("evaluating", now=announce_now, eval_done=0, eval_total=total_batches)
    out = {}
    model.eval()
    try:
        with torch.no_grad():
            for index, (split, stream) in enumerate((("train", _TRAIN_EVAL_STREAM), ("val", _VAL_STREAM))):
                total = torch.zeros(2, device=batches.runtime.device)
                for r in range(rounds):
                    if agree([stop_requested()], dist)[0]:
                        return None
                    k = r * world + rank
                    if k < per_split:
                        x, y, _ = batches.get(split, (stream, k))
                        with batches.runtime.autocast():
                            loss = model(x, y)
                        total += torch.stack([loss.float(), torch.ones((), device=loss.device)])
                    if status.heartbeat_due():
                        done = index * per_split + min(per_split, (r + 1) * world)
                        status.phase("evaluating", eval_done=done, eval_total=total_batches)
                total = mean_across_ranks(total, dist)
                out[split] = float(total[0] / total[1])
    finally:
        model.train()
    return out
