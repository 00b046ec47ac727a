"""What a run trains with, built: the runtime, the dataset, the (wrapped) model and its optimizer, with the state
of the checkpoint a resume continues from, or the weights of the run it starts from."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from gptwiz.data.cache import input_file_change
from gptwiz.data.dataset import open_dataset
from gptwiz.model.gpt import GPT
from gptwiz.model.loss import training_loss
from gptwiz.runs.paths import RunPaths, checkpoint_name
from gptwiz.training.checkpoint import load_run_checkpoint
from gptwiz.training.device import Runtime, configure_backends
from gptwiz.training.distributed import load_full_state, wrap_model
from gptwiz.training.optimizers import build_optimizer
from gptwiz.training.options import RunConfig
from gptwiz.training.ranks import DistContext


@dataclass
class Resumed:
    """The checkpoint a resumed run continues from."""
    path: Path
    state: dict[str, Any]


@dataclass
class Built:
    runtime: Runtime
    dataset: Any
    raw_model: Any   # the model as built
    model: Any       # wrapped for DDP/FSDP: what the steps run (finish_model may compile it)
    optimizer: Any
    resumed: Resumed | None

    def state_owner(self, fsdp: bool) -> Any:
        """The module whose state checkpoints save and load: under FSDP the sharded model, else the raw one."""
        return self.model if fsdp else self.raw_model


def build(cfg: RunConfig, paths: RunPaths, dist: DistContext, resume: bool, say: Callable[[str], None]) -> Built:
    """The run's runtime, data, model and optimizer; resumed, their state is the last checkpoint's."""
    device = cfg.device
    if dist.enabled and device.startswith("cuda"):
        device = f"cuda:{dist.local_rank}"
    runtime = Runtime(device, cfg.dtype, cfg.compile)
    configure_backends(runtime)
    dataset = open_dataset(cfg.data["dataset_dir"])
    if dataset.checksum != cfg.data["manifest_checksum"]:
        say(f"warning: the dataset {dataset.dir} changed since this run started (manifest checksum differs)")
    changed = input_file_change(cfg.data, dataset.manifest) if resume and dist.is_main else None
    if changed:  # the --input_file's text, as the dataset's manifest for a --dataset_dir: warned of, not refused
        say(changed)
    dataset.check_block(cfg.model.block_size)

    torch.manual_seed(cfg.seed)  # the same initial weights on every rank
    # The loss, chosen once for the run's training and evaluation alike, by the rule the memory
    # estimate follows (gptwiz.model.loss_plan): sliced for eager training on a CPU, else the textbook one.
    raw_model = GPT(cfg.model, loss_fn=training_loss(runtime.device_type, runtime.compile)).to(runtime.device)
    resumed = None
    if resume:
        ckpt_path, state = load_run_checkpoint(paths, prefer="last", map_location="cpu", warn=say)
        if state.get("optimizer") is None:
            say(f"{ckpt_path.name} holds no optimizer state: the optimizer starts afresh")
        resumed = Resumed(ckpt_path, state)
    elif cfg.init_from:
        _load_source_weights(raw_model, cfg, say)
    model = wrap_model(raw_model, dist, runtime.device)
    state_owner = model if dist.fsdp else raw_model
    # Fused AdamW where torch has the kernel (CUDA and CPU), but not under FSDP: the fused kernel does not
    # take its sharded tensors everywhere.
    fused = runtime.device_type in ("cuda", "cpu") and not dist.fsdp
    optimizer = build_optimizer(state_owner, cfg.train.optimizer, cfg.train.weight_decay, cfg.train.learning_rate,
                                cfg.train.betas, fused=fused)
    if resumed is not None:
        load_full_state(state_owner, optimizer, resumed.state["model"], resumed.state.get("optimizer"), dist.fsdp)
        torch.set_rng_state(resumed.state["torch_rng"].cpu())
    return Built(runtime, dataset, raw_model, model, optimizer, resumed)


def _load_source_weights(model: Any, cfg: RunConfig, say: Callable[[str], None]) -> None:
    """--init_from_model: the source run's checkpoint chosen when the run was resolved (--init_checkpoint: auto,
    the rule `gptwiz sample` follows, never an iteration-0 best behind a later last), falling back to the other
    one only where that file is damaged now."""
    prefer = "best" if cfg.init_checkpoint == checkpoint_name("best") else "last"
    src_path, src = load_run_checkpoint(RunPaths(Path(cfg.init_from or "")), prefer=prefer, map_location="cpu",
                                        warn=say)
    weights = src["model"]
    # A source trained with a longer context has more positions than this run needs.
    weights["transformer.wpe.weight"] = weights["transformer.wpe.weight"][: cfg.model.block_size]
    model.load_state_dict(weights)
    say(f"initialised weights from {src_path} (iteration {src['iter']}); fresh optimizer and schedule")


def finish_model(built: Built, cfg: RunConfig, dist: DistContext, iter_num: int, say: Callable[[str], None]) -> None:
    """Seed this rank's randomness for the loop, and compile the model if the run does."""
    torch.manual_seed(cfg.seed + 1000 * dist.rank + iter_num)  # different dropout masks per rank
    if built.runtime.compile:
        say("compiling the model with torch.compile (the first iterations are slow)")
        built.model = torch.compile(built.model)
