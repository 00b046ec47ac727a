"""A probe's settings, checked and settled before anything starts: a UsageError names the bad value."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from gptwiz.common.errors import UsageError
from gptwiz.common.inert import quote
from gptwiz.data.dataset import TokenDataset
from gptwiz.planning.policy import probe_iters
from gptwiz.planning.presets import BOUNDS, PRESET_ORDER, Preset, check_bound, load_preset, shown
from gptwiz.runs.lock import lock_owner
from gptwiz.runs.paths import RunPaths, run_paths
from gptwiz.training.options import RunConfig, check_options
from gptwiz.training.probe.options import ProbeOptions
from gptwiz.training.probe.trainer_options import probe_train_options
from gptwiz.training.resolve import holds_only_a_probe, resolve_data, resolve_options

MIN_ITERS = 10
MAX_MEMORY_LIMIT_GB = 1e6  # more than any machine has: a bigger figure is a slip


@dataclass
class ProbePlan:
    """The settled settings of a probe, before its first attempt."""
    preset: Preset              # with the overrides applied
    dataset_dir: str
    full_iters: int
    paths: RunPaths | None      # the named run's folder, if any
    device: str                 # resolved without creating a CUDA context here
    preset_learning_rate: float # the preset's own rate, before --learning_rate: the advice may go back to it
    iters: int                  # the probe's iterations: those asked for, at most the full run's (probe_iters)


def make_plan(opts: ProbeOptions, scratch: Path) -> ProbePlan:
    """Validate everything before starting anything. `scratch`: the probe's private temporary folder."""
    from gptwiz.training.device import resolve_device  # lazy: imports torch, kept off the wizard's import path
    from gptwiz.training.optimizers import preset_optimizer  # lazy: imports torch, as above

    _check_iters_and_limit(opts)
    paths = _named_run(opts)
    if opts.max_iters is not None and not (isinstance(opts.max_iters, int) and opts.max_iters > 0):
        raise UsageError(f"invalid --max_iters {shown(opts.max_iters)}: must be a positive whole number")
    check_bound("max_iters", opts.max_iters)
    dataset_dir, checked = _checked_dataset_dir(opts, scratch)
    own = load_preset(opts.config_file)
    # The probe trains with what the trainer decided for the full run, not for the probe's few iterations: its
    # optimizer (an instruction dataset's is AdamW) and its dropout (none for a single pass over the data).
    optimizer = (checked.train.optimizer if checked
                 else preset_optimizer(own.train.optimizer, opts.optimizer, False, resolve_device(opts.device)))
    preset = own.with_overrides(
        learning_rate=opts.learning_rate, batch_size=opts.batch_size, block_size=opts.block_size,
        grad_accum=opts.grad_accum, max_iters=opts.max_iters, optimizer=optimizer,
        dropout=checked.model.dropout if checked else opts.dropout)
    full = preset.train.max_iters
    if full < MIN_ITERS:
        raise UsageError(f"the run's {full} iterations are fewer than a probe needs ({MIN_ITERS}): it is its own "
                         "probe; train it directly, or give a longer --max_iters")
    return ProbePlan(preset=preset, dataset_dir=dataset_dir, full_iters=full,
                     paths=paths, device=resolve_device(opts.device), preset_learning_rate=own.train.learning_rate,
                     iters=probe_iters(full, opts.iters))


def _check_iters_and_limit(opts: ProbeOptions) -> None:
    if not isinstance(opts.iters, int) or opts.iters < MIN_ITERS:
        raise UsageError(f"invalid --iters {shown(opts.iters)}: a probe needs at least {MIN_ITERS} iterations to "
                         "judge a loss curve")
    most = BOUNDS["max_iters"].high  # the probe's iterations are its trainer's max_iters
    if opts.iters > most:
        raise UsageError(f"invalid --iters {shown(opts.iters)}: must be a whole number from {MIN_ITERS} to {most}")
    if opts.budget_s is not None and not (isinstance(opts.budget_s, (int, float)) and 0 < opts.budget_s < math.inf):
        raise UsageError(f"invalid time budget {shown(opts.budget_s)} s: must be a number of seconds above 0")
    if opts.memory_limit_gb is not None and not 0 < opts.memory_limit_gb <= MAX_MEMORY_LIMIT_GB:
        raise UsageError(f"invalid --memory_limit_gb {shown(opts.memory_limit_gb)}: must be a number of GB above 0 "
                         f"and at most {MAX_MEMORY_LIMIT_GB:g}")


def _named_run(opts: ProbeOptions) -> RunPaths | None:
    """The folder of the run named by --model_name: free, or holding only an earlier probe, and not in use."""
    if opts.model_name is None:
        return None
    paths = run_paths(opts.runs_dir, opts.model_name)
    if paths.root.exists() and any(paths.root.iterdir()) and not holds_only_a_probe(paths):
        raise UsageError(f"run {quote(opts.model_name)} already exists in {paths.root} and is not a probe; "
                         "choose another --model_name for the probe")
    owner = lock_owner(paths)
    if owner:
        raise UsageError(f"run {quote(opts.model_name)} is being probed or trained by process {owner} right now; "
                         "wait for it or choose another --model_name")
    return paths


def _checked_dataset_dir(opts: ProbeOptions, scratch: Path) -> tuple[str, RunConfig | None]:
    """The trainer's own validation of the full run, for a folder that does not exist (it writes nothing but the
    token cache); the dataset's folder, and the config the trainer settled (None: data too small for a block)."""
    # dtype "auto" would ask CUDA for bf16 support, which creates a CUDA context in this process, holding
    # memory the child may need; the child resolves it instead.
    check = probe_train_options(
        config_file=opts.config_file, model_name="probe-check", input_file=opts.input_file,
        dataset_dir=opts.dataset_dir, max_iters=opts.max_iters, learning_rate=opts.learning_rate,
        optimizer=opts.optimizer, batch_size=opts.batch_size, block_size=opts.block_size,
        grad_accum=opts.grad_accum, dropout=opts.dropout,
        device=opts.device, dtype="float32" if opts.dtype == "auto" else opts.dtype, compile=False,
        seed=opts.seed, runs_dir=str(scratch / "check"),  # (never made: nothing is written there)
        data_dir=opts.data_dir)
    check_options(check)  # every number in its range, before the refusal let through below can hide one
    try:
        cfg = resolve_options(check).cfg
        return cfg.data["dataset_dir"], cfg
    except UsageError:
        # The trainer refuses data shorter than one block as bad input; to the probe it is a verdict
        # (fail, with a block size that fits), so only that refusal is let through, to data_too_small.
        block = opts.block_size or load_preset(opts.config_file).model.block_size
        dataset_dir: str = resolve_data(check)["dataset_dir"]
        if data_too_small(dataset_dir, block) is None:
            raise
        return dataset_dir, None


def data_too_small(dataset_dir: str, block_size: int) -> int | None:
    """The smallest split's longest shard, in tokens, if it cannot hold one block; None if it can."""
    dataset = TokenDataset(dataset_dir)
    longest = min(max((len(a) for s in dataset.sources for a in getattr(s, split)), default=0)
                  for split in ("train", "val"))
    return longest if longest < block_size + 1 else None


def smaller_preset(name: str) -> str | None:
    """The preset one size down, if there is one."""
    if name in PRESET_ORDER and PRESET_ORDER.index(name) > 0:
        return PRESET_ORDER[PRESET_ORDER.index(name) - 1]
    return None
