"""A run's schedule: its learning rate at each iteration, when it evaluates and checkpoints, and what an
evaluation batch and a checkpoint cost next to its steps.

The trainer follows it, `gptwiz estimate` predicts a run's time from it (gptwiz.planning.timing), and the
dashboard's ETA counts what is left of it (gptwiz.runs.eta): one rule, so that both quote the same time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# Batches of each split in the evaluation at iteration 0 of a run from random weights: their loss is about
# ln(vocab_size) however many are measured, and a full evaluation there only delays the first step.
FIRST_EVAL_ITERS = 2

# Seconds between the checkpoints a run writes by time, between its evaluations (`--ckpt_interval_s`'s default).
CKPT_INTERVAL_S = 300.0

# A forward pass costs about a third of a training micro-step (forward and backward: 2 of its 6 FLOPs a weight):
# what an evaluation batch (a micro-batch's forward, no gradient) costs against a training micro-batch, measured
# so in float32 on CPU (0.27-0.38). Under bf16 autocast on a CPU less (0.12 to 0.28 measured without AMX: the
# backward's casts and elementwise passes are what bf16 does not speed up).
FORWARD_SHARE = 1 / 3
EVAL_BATCH_SHARE = {"cpu:bfloat16": 0.2}

# A checkpoint serialises the fp32 weights and AdamW's moments (12 bytes a parameter; the best one 4 more)
# and writes them: a few hundred MB/s on a laptop disk.
CHECKPOINT_BYTES_PER_S = 300e6


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


# --- evaluations ---------------------------------------------------------------------------------------

def run_eval_iters(eval_iters: int, eval_interval: int, max_iters: int, grad_accum: int) -> int:
    """The preset's eval_iters, cut down for short runs so evaluating costs about a third of the training
    between two evaluations at most (an evaluation batch is a forward pass, a third of a training step, on
    two splits). A 100-iteration check of a big preset should not spend most of its time evaluating."""
    steps_between = min(eval_interval, max_iters)
    return max(1, min(eval_iters, steps_between * grad_accum // 2))


def evaluation_due(iter_num: int, eval_interval: int) -> bool:
    """Whether the schedule evaluates at `iter_num`: every eval_interval iterations from 0 (the trainer also
    evaluates the final weights, wherever the run ends)."""
    return iter_num % eval_interval == 0


def eval_batches_at(iter_num: int, eval_iters: int, *, from_scratch: bool) -> int:
    """Batches of each split the evaluation at `iter_num` measures: eval_iters, but only a few at iteration 0 of a
    run from random weights. From --init_from_model weights the loss at iteration 0 is the one to beat: whole."""
    return min(eval_iters, FIRST_EVAL_ITERS) if iter_num == 0 and from_scratch else eval_iters


def evaluations_between(first: int, last: int, eval_interval: int) -> int:
    """Evaluations at iterations first..last of a run that ends at `last`: at each multiple of eval_interval,
    and at `last` itself."""
    if first > last:
        return 0
    on_schedule = last // eval_interval - (first - 1) // eval_interval
    return on_schedule + (0 if evaluation_due(last, eval_interval) else 1)


def eval_batch_share(device_type: str, dtype: str) -> float:
    """What an evaluation batch costs, as a share of a training micro-batch, on this device kind and dtype."""
    return EVAL_BATCH_SHARE.get(f"{device_type}:{dtype}", FORWARD_SHARE)


def checkpoint_seconds(params: int, *, best: bool = False) -> float:
    """A checkpoint's predicted seconds: the last state (weights and AdamW's moments), and the best weights too."""
    return (16 if best else 12) * params / CHECKPOINT_BYTES_PER_S


@dataclass(frozen=True)
class EvalSchedule:
    """When a run evaluates and checkpoints: an evaluation every eval_interval iterations from 0 and at its end
    (eval_iters batches of each split; fewer at iteration 0 `from_scratch`), each followed by a checkpoint, and
    a checkpoint every ckpt_interval_s of training and evaluating in between."""
    eval_interval: int
    eval_iters: int
    from_scratch: bool = True
    ckpt_interval_s: float = CKPT_INTERVAL_S


@dataclass(frozen=True)
class TimeLeft:
    """Seconds of what is left of a run, by kind (no process start: only what a running trainer still does)."""
    train_s: float
    eval_s: float
    checkpoint_s: float
    evaluations: int

    @property
    def seconds(self) -> float:
        return self.train_s + self.eval_s + self.checkpoint_s


def time_left(schedule: EvalSchedule | None, *, iter: int, max_iters: int, step_s: float, eval_batch_s: float,
              ckpt_s: float, best_ckpt_s: float | None = None, evaluated_to: int = -1,
              eval_batches_left: int | None = None) -> TimeLeft:
    """The rest of a run from `iter`: its steps at `step_s` each, its evaluations (batches of `eval_batch_s`) and
    checkpoints (`ckpt_s` each; `best_ckpt_s` after an evaluation, where it differs). Evaluations up to
    `evaluated_to` (the last recorded, or the one under way) are done; `eval_batches_left`: the batches still to
    run of the one under way, whose checkpoint is still to come. No schedule: steps only (a probe)."""
    steps = max(0, max_iters - iter)
    train_s = step_s * steps
    if schedule is None:
        return TimeLeft(train_s, 0.0, 0.0, 0)
    first = max(iter, evaluated_to + 1)
    evaluations = evaluations_between(first, max_iters, schedule.eval_interval)
    batches = evaluations * schedule.eval_iters
    if first == 0 and evaluations:  # the evaluation at iteration 0 is still to come
        batches += eval_batches_at(0, schedule.eval_iters, from_scratch=schedule.from_scratch) - schedule.eval_iters
    under_way = eval_batches_left is not None
    eval_s = (2 * batches + (eval_batches_left or 0)) * eval_batch_s
    # Between two evaluations, a checkpoint every ckpt_interval_s of training and evaluating (any checkpoint
    # restarts that clock).
    between_s = schedule.eval_interval * step_s + 2 * schedule.eval_iters * eval_batch_s
    by_time = math.floor(between_s / schedule.ckpt_interval_s) if math.isfinite(schedule.ckpt_interval_s) else 0
    timed = by_time * steps / schedule.eval_interval
    after_eval_s = ckpt_s if best_ckpt_s is None else best_ckpt_s
    checkpoint_s = (evaluations + under_way) * after_eval_s + timed * ckpt_s
    return TimeLeft(train_s, eval_s, checkpoint_s, evaluations)
