"""The dashboard's ETA: what is left of a run, counted by gptwiz.common.schedule's rules and priced as
`gptwiz estimate` prices them (gptwiz.planning.timing), with what the run has measured of itself in their place."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gptwiz.common.schedule import CKPT_INTERVAL_S, EvalSchedule, checkpoint_seconds, eval_batch_share, time_left
from gptwiz.runs.status import ITER_MAX


@dataclass(frozen=True)
class EvalPlan:
    """When a run evaluates and checkpoints, and what those cost (its config.json): what its ETA counts beside
    the steps."""
    eval_interval: int
    eval_iters: int             # batches of each split in an evaluation
    grad_accum: int
    ckpt_interval_s: float      # also a checkpoint every this many seconds (inf: only at evaluations)
    evaluates: bool = True      # a probe neither evaluates nor checkpoints
    from_scratch: bool = True   # from random weights: a short evaluation at iteration 0
    device_type: str = "cpu"    # with dtype, what an evaluation batch costs against a step
    dtype: str = "float32"
    params: int = 0             # what a checkpoint writes

    @property
    def schedule(self) -> EvalSchedule:
        return EvalSchedule(self.eval_interval, self.eval_iters, self.from_scratch,
                            self.ckpt_interval_s)


def _text(value: Any, default: str) -> str:
    return value if isinstance(value, str) else default


def eval_plan_from_config(config: dict[str, Any] | None) -> EvalPlan | None:
    """The run's evaluation plan; None when its config (damaged, or from an older gptwiz) holds none."""
    try:
        train = config["train"]  # type: ignore[index]
        params = config.get("params")  # type: ignore[union-attr]
        plan = EvalPlan(int(train["eval_interval"]), int(train["eval_iters"]), int(train.get("grad_accum", 1)),
                        float(config.get("ckpt_interval_s", CKPT_INTERVAL_S)),  # type: ignore[union-attr]
                        evaluates=not config.get("probe", False),  # type: ignore[union-attr]
                        from_scratch=not config.get("init_from"),  # type: ignore[union-attr]
                        device_type=_text(config.get("device"), "cpu").split(":")[0],  # type: ignore[union-attr]
                        dtype=_text(config.get("dtype"), "float32"),  # type: ignore[union-attr]
                        params=params if isinstance(params, int) and 0 <= params < 10**15 else 0)
    except (TypeError, KeyError, ValueError, OverflowError, AttributeError):
        return None
    ok = (0 < plan.eval_interval <= ITER_MAX and 0 < plan.eval_iters <= ITER_MAX and 0 < plan.grad_accum <= ITER_MAX
          and plan.ckpt_interval_s > 0)
    return plan if ok else None


def eta_seconds(plan: EvalPlan | None, *, iter: int, max_iters: int, step_s: float, evaluated_to: int = -1,
                eval_batch_s: float | None = None, eval_batches_left: int | None = None,
                ckpt_s: float | None = None) -> float:
    """Seconds until the run ends: its steps left at `step_s` each, plus the evaluations and checkpoints still to
    come. An evaluation batch takes `eval_batch_s` (measured by this run), else its share of a micro-step on the
    run's device and dtype; a checkpoint `ckpt_s` (the latest one's), else what its bytes take to write.
    `eval_batches_left`: those of the evaluation under way, if one is (it then counts as `evaluated_to`, its
    checkpoint still to come)."""
    if plan is None or not plan.evaluates:
        return time_left(None, iter=iter, max_iters=max_iters, step_s=step_s, eval_batch_s=0.0, ckpt_s=0.0).seconds
    batch_s = eval_batch_s if eval_batch_s is not None else \
        step_s * eval_batch_share(plan.device_type, plan.dtype) / plan.grad_accum
    best_s = None if ckpt_s is not None else checkpoint_seconds(plan.params, best=True)
    return time_left(plan.schedule, iter=iter, max_iters=max_iters, step_s=step_s, eval_batch_s=batch_s,
                     ckpt_s=ckpt_s if ckpt_s is not None else checkpoint_seconds(plan.params), best_ckpt_s=best_s,
                     evaluated_to=evaluated_to, eval_batches_left=eval_batches_left).seconds
