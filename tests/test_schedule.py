import pytest

from gptwiz.common.schedule import (
    FIRST_EVAL_ITERS,
    EvalSchedule,
    effective_warmup,
    eval_batches_at,
    evaluation_due,
    evaluations_between,
    lr_at,
    time_left,
)


def test_warmup_is_capped_at_a_tenth_of_the_run():
    assert effective_warmup(2000, 100_000) == 2000
    assert effective_warmup(2000, 5000) == 500
    assert effective_warmup(100, 50) == 5


def test_warmup_then_cosine_to_min_lr_at_max_iters():
    kw = dict(learning_rate=1e-3, min_lr=1e-4, warmup_iters=10, decay_iters=100)
    assert lr_at(0, **kw) < lr_at(5, **kw) < lr_at(9, **kw) <= 1e-3
    assert abs(lr_at(10, **kw) - 1e-3) < 1e-12
    assert abs(lr_at(55, **kw) - 5.5e-4) < 1e-9
    assert abs(lr_at(99, **kw) - 1e-4) < 1e-6
    assert lr_at(150, **kw) == 1e-4


def test_evaluations_every_interval_from_0_and_at_the_end():
    assert [i for i in range(61) if evaluation_due(i, 20)] == [0, 20, 40, 60]
    assert evaluations_between(0, 60, 20) == 4                      # 0, 20, 40, 60
    assert evaluations_between(1, 50, 20) == 3                      # 20, 40, and the final weights at 50
    assert evaluations_between(21, 60, 20) == 2 and evaluations_between(61, 60, 20) == 0
    assert eval_batches_at(0, 20, from_scratch=True) == FIRST_EVAL_ITERS
    assert eval_batches_at(0, 20, from_scratch=False) == eval_batches_at(20, 20, from_scratch=True) == 20


def test_time_left_counts_the_steps_evaluations_and_checkpoints_to_come():
    schedule = EvalSchedule(eval_interval=20, eval_iters=2, ckpt_interval_s=float("inf"))
    # From the start: 60 steps, evaluations at 0 (FIRST_EVAL_ITERS batches a split), 20, 40, 60, each checkpointed.
    left = time_left(schedule, iter=0, max_iters=60, step_s=1.0, eval_batch_s=0.25, ckpt_s=0.5)
    assert left.evaluations == 4 and left.train_s == 60
    assert left.eval_s == pytest.approx(2 * (min(2, FIRST_EVAL_ITERS) + 3 * 2) * 0.25)
    assert left.checkpoint_s == 4 * 0.5 and left.seconds == left.train_s + left.eval_s + left.checkpoint_s
    # No schedule (a probe): the steps only.
    assert time_left(None, iter=10, max_iters=60, step_s=1.0, eval_batch_s=0.25, ckpt_s=0.5).seconds == 50
