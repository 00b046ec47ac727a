"""Several processes, one run: torch.distributed set-up, model wrapping and whole-model checkpoints.

`gptwiz train --nproc N` hands the same command line to torch's own launcher (torchrun); each process
then finds RANK, LOCAL_RANK and WORLD_SIZE in its environment, as it does under a multi-node torchrun.
A single process, with no such variables, gets a context of world size 1 (gptwiz.training.ranks) and none of
this runs.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from gptwiz.common.faults import rank_failure
from gptwiz.runs.launch import ERROR_DIR_ENV
from gptwiz.training.device import resolve_device
from gptwiz.training.optimizers import optimizer_parts
from gptwiz.training.ranks import DistContext, env_world_size


def init_distributed(device_type: str, fsdp: bool, timeout_s: float = 300.0) -> DistContext:
    """Join the process group torchrun set up; a collective that waits longer than timeout_s fails the run
    instead of hanging it when another rank has died."""
    world_size = env_world_size()
    if world_size <= 1:
        return DistContext(fsdp=False)
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    backend = "nccl" if device_type == "cuda" else "gloo"
    if device_type == "cuda":
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, timeout=timedelta(seconds=timeout_s))
    return DistContext(rank=rank, local_rank=local_rank, world_size=world_size, backend=backend, fsdp=fsdp)


def shutdown(ctx: DistContext) -> None:
    if ctx.enabled and dist.is_initialized():
        dist.destroy_process_group()


@contextlib.contextmanager
def process_group(device: str, fsdp: bool) -> Iterator[DistContext]:
    """This process's place in the run: under torchrun, a member of the process group until the block ends;
    otherwise rank 0 of a world of one."""
    if env_world_size() <= 1:
        yield DistContext()
        return
    ctx = init_distributed("cuda" if resolve_device(device).startswith("cuda") else "cpu", fsdp)
    try:
        yield ctx
    finally:
        shutdown(ctx)


@contextlib.contextmanager
def main_first(ctx: DistContext) -> Iterator[None]:
    """Rank 0 runs the block before the other ranks do, and all leave it together: rank 0 settles the
    configuration (and builds the token cache) before the others read it, so they never race on the cache or
    see the run folder half made."""
    if ctx.enabled and not ctx.is_main:
        dist.barrier()
    yield
    if ctx.enabled:
        if ctx.is_main:
            dist.barrier()
        dist.barrier()


def wrap_model(model: Any, ctx: DistContext, device: str) -> Any:
    """DDP by default; FSDP (fully_shard) shards parameters, gradients and optimizer state across ranks."""
    if not ctx.enabled:
        return model
    if ctx.fsdp:
        from torch.distributed.fsdp import fully_shard  # lazy: some 45 MiB of RSS and 0.5 s, under --fsdp only

        # Shard block by block so that only one block's full weights exist at a time in the forward pass.
        for block in model.transformer.h:
            fully_shard(block)
        fully_shard(model)
        return model
    return DistributedDataParallel(model, device_ids=[ctx.local_rank] if device.startswith("cuda") else None)


def grad_sync(model: Any, ctx: DistContext, sync: bool) -> contextlib.AbstractContextManager[Any]:
    """Skip the gradient all-reduce on the micro-steps that do not step the optimizer."""
    if not ctx.enabled or sync:
        if ctx.enabled and ctx.fsdp:
            model.set_requires_gradient_sync(True)
        return contextlib.nullcontext()
    if ctx.fsdp:
        model.set_requires_gradient_sync(False)
        return contextlib.nullcontext()
    return model.no_sync()


def mean_across_ranks(value: Any, ctx: DistContext) -> Any:
    if not ctx.enabled:
        return value
    value = value.detach().clone()
    dist.all_reduce(value, op=dist.ReduceOp.AVG if ctx.backend == "nccl" else dist.ReduceOp.SUM)
    return value if ctx.backend == "nccl" else value / ctx.world_size


def full_state(model: Any, optimizer: Any | None, fsdp: bool) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Whole (unsharded) model and optimizer state, the optimizer's keyed by parameter name rather than
    position, so that a checkpoint written by N ranks loads in one process and the other way round.
    Under FSDP this is a collective: every rank must call it (rank 0 gets the state, the others nothing)."""
    from torch.distributed.checkpoint import state_dict as dcp  # lazy: 45 MiB, 0.5 s; a probe never checkpoints

    if fsdp:
        options = dcp.StateDictOptions(full_state_dict=True, cpu_offload=True)
        model_sd = dcp.get_model_state_dict(model, options=options)
    else:
        options = dcp.StateDictOptions()
        model_sd = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    optim_sd = (dcp.get_optimizer_state_dict(model, optimizer_parts(optimizer), options=options)
                if optimizer is not None else None)
    return model_sd, optim_sd


def load_full_state(model: Any, optimizer: Any | None, model_sd: dict[str, Any], optim_sd: dict[str, Any] | None,
                    fsdp: bool) -> None:
    from torch.distributed.checkpoint import state_dict as dcp  # lazy: as in full_state, for a resumed run only

    options = dcp.StateDictOptions(full_state_dict=fsdp)
    if fsdp:
        dcp.set_model_state_dict(model, model_sd, options=options)
    else:
        model.load_state_dict(model_sd)
    if optimizer is not None and optim_sd is not None:
        dcp.set_optimizer_state_dict(model, optimizer_parts(optimizer), optim_sd, options=options)


def agree(flags: list[bool], ctx: DistContext) -> list[bool]:
    """Each flag true on any rank becomes true on all: decisions that change control flow must be shared."""
    if not ctx.enabled:
        return flags
    device = f"cuda:{ctx.local_rank}" if ctx.backend == "nccl" else "cpu"
    t = torch.tensor([float(f) for f in flags], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return [bool(v) for v in t.tolist()]


def report_rank_error(ctx: DistContext, message: str) -> None:
    """A failing rank other than 0 cannot write the run folder; it leaves its error where the launcher looks."""
    folder = os.environ.get(ERROR_DIR_ENV)
    if not ctx.enabled or ctx.is_main or not folder:
        return
    try:
        with open(os.path.join(folder, f"rank{ctx.rank}.err"), "w", encoding="utf-8") as f:
            f.write(message)
    except OSError:
        pass


def injected_failure(ctx: DistContext) -> int | None:
    """The iteration at which this rank is to fail, under the test-only GPTWIZ_FAULT_FAIL_RANK hook
    (gptwiz.common.faults); None for every rank without it."""
    fault = rank_failure()
    return fault.iteration if fault is not None and fault.rank == ctx.rank else None
