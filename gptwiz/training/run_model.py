"""The model of a run's checkpoint, loaded for use: the one gptwiz.runs.checkpoints' rule picks (or the one asked
for), checked against the model its config describes, built, and put on the device in eval mode."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from gptwiz.common.errors import UsageError
from gptwiz.model.config import ModelConfig
from gptwiz.model.gpt import GPT
from gptwiz.runs.checkpoints import CheckpointInfo, choose_checkpoint
from gptwiz.runs.paths import RunPaths
from gptwiz.training.checkpoint import check_model_state, checkpoint_val_loss, load_run_checkpoint
from gptwiz.training.device import Runtime, resolve_device, resolve_dtype


@dataclass(frozen=True)
class RunModel:
    model: GPT
    config: ModelConfig
    path: Path       # the checkpoint file loaded
    iteration: int   # the training iteration its weights are from

    @property
    def checkpoint(self) -> str:
        return self.path.name


def inference_runtime(device: str) -> Runtime:
    """Where and in what precision a loaded model runs: on a GPU, the precision training picks there; on a CPU,
    float32, even where bfloat16 trains faster: one sequence's matrix-vector products run slower under CPU
    autocast, and a measurement wants the full precision."""
    dev = resolve_device(device)
    return Runtime(dev, resolve_dtype("auto", dev) if dev.startswith("cuda") else "float32", False)


def load_run_model(paths: RunPaths, which: str, device: str, warn: Callable[[str], None] | None = None,
                   note: Callable[[str], None] | None = None) -> RunModel:
    """`warn` hears of a damaged checkpoint passed over, `note` which checkpoint was used (its iteration and
    validation loss, and why the other was not)."""
    passed_over: list[str] = []

    def damaged(message: str) -> None:
        passed_over.append(message)
        if warn is not None:
            warn(message)

    choice = choose_checkpoint(paths, which)
    # An unreadable other checkpoint is tried first, so that the warning says what is wrong with it.
    prefer = ("best" if choice.which == "last" else "last") if choice.unreadable else choice.which
    path, state = load_run_checkpoint(paths, prefer=prefer, map_location=device, warn=damaged)
    config = check_model_state(path, state)  # before building it: the config may claim far more than the file holds
    try:
        model = GPT(config)
        model.load_state_dict(state["model"])
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:  # whole, but not weights of the model it describes
        raise UsageError(f"checkpoint {path} does not hold the model its config describes "
                         f"({exc.__class__.__name__}); it was not loaded") from None
    iteration = int(state["iter"])
    if note is not None and not passed_over:  # (the warning names the checkpoint loaded instead, and its iteration)
        # What was loaded, read from it: a running trainer may have rewritten the file since the choice.
        used = replace(choice, info=CheckpointInfo(path, iteration, checkpoint_val_loss(path, state)),
                       passed_over=choice.passed_over if path == choice.info.path else None)
        note(f"using {used.describe()}")
    del state  # the optimizer's moments: twice the weights, not needed
    model.to(torch.device(device)).eval()
    return RunModel(model, config, path, iteration)
