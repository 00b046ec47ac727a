"""What a run on an instruction dataset says when it starts: how it is trained, how long (sized from its examples
where the flags did not say), its predicted time as `gptwiz estimate` would give it, and its learning rate."""

from __future__ import annotations

from typing import Any

from gptwiz.common import fmt
from gptwiz.planning.timing import RunPlan, RunTime, predict_run_time
from gptwiz.training.device import Runtime, device_throughput
from gptwiz.training.options import RunConfig


def sft_notice(sft: dict[str, Any], cfg: RunConfig, predicted: RunTime | None) -> str:
    """What the log says of a run on an instruction dataset: how it is trained, how long (sized from its examples
    where the flags did not say) and its predicted time, its learning rate and whence."""
    lr = f"learning rate {cfg.train.learning_rate:g}" + (
        " (instruction tuning's default; --learning_rate sets another)" if sft.get("learning_rate") == "default" else "")
    text = (f"instruction tuning (template {sft.get('template')}): one example a row, padded; the loss is over the "
            f"answers' tokens only; {lr}")
    sized = sft.get("sized")
    if isinstance(sized, dict):
        text += (f"; {cfg.train.max_iters} iterations at batch {cfg.train.batch_size}, {sized.get('epochs'):g} "
                 f"passes over its {fmt.count(sft.get('train_examples'))} training examples (sized from the dataset "
                 "where --max_iters and --batch_size were not given)")
    if predicted is not None:
        text += f"; predicted time {fmt.duration(predicted.seconds)}"
    if not cfg.init_from:
        text += ("; warning: no --init_from_model, so the model starts from random weights and learns the answers "
                 "alone, with no language to draw on; tune a base model with --init_from_model BASE")
    return text


def predicted_time(cfg: RunConfig, runtime: Runtime) -> RunTime | None:
    """The run's time as `gptwiz estimate` would predict it on this device (None where it cannot be measured)."""
    t = cfg.train
    plan = RunPlan(model=cfg.model, batch_size=t.batch_size, grad_accum=t.grad_accum, max_iters=t.max_iters,
                   eval_interval=t.eval_interval, eval_iters=t.eval_iters, device_type=runtime.device_type,
                   dtype=runtime.dtype, gpu_count=cfg.world_size, compiled=cfg.compile, from_scratch=not cfg.init_from,
                   ckpt_interval_s=cfg.ckpt_interval_s)
    try:
        return predict_run_time(plan, device_throughput(runtime))
    except (OSError, RuntimeError, ValueError):  # no measurement to be had: the run trains all the same
        return None
