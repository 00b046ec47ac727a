"""The settings of an instruction-tuning run that the user did not give, sized from its dataset: a few passes
over its examples at a batch the base already trained with, at the context the examples were cut to, so that
`gptwiz train --dataset_dir SFT --init_from_model BASE` runs as long as the data needs and no longer.

A preset's max_iters and batch are a pretraining run's (2,000 iterations of 64 sequences for tiny): on a few
hundred examples that is hundreds of passes over the same answers (hours on a CPU, and a model that recites
them). Padded rows hold one example each (gptwiz.data.sft_batches), so an epoch is examples / batch steps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from gptwiz.common import fmt

TUNING_EPOCHS = 3           # passes over the examples: the usual instruction-tuning recipe's
MIN_STEPS_PER_EPOCH = 8     # the batch shrinks on a small dataset so that each pass still takes several steps
EVALUATIONS = 4             # evaluated (and checkpointed) this many times over the run, the last at its end


@dataclass(frozen=True)
class TuningShape:
    """What sizes a tuning run: its data, and the upper bounds the preset and the base set."""
    train_examples: int
    answer_tokens: int          # the training split's trained (answer) tokens
    data_block: int             # the block the dataset's examples were cut to (`prepare --sft --block_size`)
    base_block: int             # the positions the model has
    batch_cap: int              # the base's micro-batch (it fitted this machine), else the preset's


@dataclass(frozen=True)
class TuningPlan:
    batch_size: int
    block_size: int
    max_iters: int
    eval_interval: int
    epochs: float

    def describe(self, shape: TuningShape) -> str:
        """One line for the log and the console: what was sized, and from what."""
        return (f"tuning sized from the dataset: {fmt.count(shape.train_examples)} examples "
                f"({fmt.count(shape.answer_tokens)} answer tokens), {self.epochs:g} passes at batch {self.batch_size} "
                f"= {self.max_iters} iterations, block {self.block_size}")


def power_of_two_at_most(n: int) -> int:
    return 1 << (max(1, n).bit_length() - 1)


def tuning_plan(shape: TuningShape, batch_size: int | None = None, block_size: int | None = None,
                max_iters: int | None = None, eval_interval: int | None = None,
                epochs: float = TUNING_EPOCHS) -> TuningPlan:
    """The plan, each value given (not None) kept as it is."""
    block = block_size or min(shape.data_block, shape.base_block)
    batch = batch_size or max(1, min(shape.batch_cap, power_of_two_at_most(shape.train_examples // MIN_STEPS_PER_EPOCH)))
    iters = max_iters or max(1, math.ceil(epochs * shape.train_examples / batch))
    interval = eval_interval or max(1, math.ceil(iters / EVALUATIONS))
    return TuningPlan(batch, block, iters, interval, round(iters * batch / max(1, shape.train_examples), 2))
