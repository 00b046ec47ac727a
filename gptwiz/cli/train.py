"""`gptwiz train`: the guide's train.py command lines, in this process, detached, or in N processes."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gptwiz.cli.args import flag, number, positive_int
from gptwiz.cli.train_console import PlainReporter, RichReporter
from gptwiz.common.errors import UsageError
from gptwiz.common.inert import inert, quote
from gptwiz.planning.presets import OPTIMIZERS
from gptwiz.runs.checkpoints import CHECKPOINT_CHOICES
from gptwiz.runs.jsonfile import read_json
from gptwiz.runs.launch import check_nproc, launch_detached, launch_torchrun, strip_detach
from gptwiz.runs.status import effective_state
from gptwiz.trackers.reporter import Trackers, TrackingReporter
from gptwiz.training.options import TrainOptions, TrainResult
from gptwiz.training.ranks import env_world_size
from gptwiz.training.reporting import Reporter
from gptwiz.training.resolve import resolve_options


def add(sub: Any) -> None:
    p = sub.add_parser("train", help="train a model from a preset (the guide's train.py command lines)")
    flag(p, "config_file", help="a preset name (tiny, small, 150M, ...) or a preset JSON path (default with "
         "--init_from_model: that run's)")
    flag(p, "model_name", default="run", help="the run's name: its folder is runs/<model_name>/")
    flag(p, "input_file", help="a UTF-8 text file to train on")
    flag(p, "dataset_dir", help="a dataset prepared by `gptwiz prepare`")
    flag(p, "tokenizer", metavar="gpt2|bpe:N|FOLDER", help="with --input_file: the tokenizer its token cache is made "
         "with, as `gptwiz prepare --tokenizer` takes it (default gpt2)")
    flag(p, "max_iters", type=positive_int)
    flag(p, "learning_rate", type=number, help="the peak learning rate (default: the preset's; 2e-5 on an instruction "
         "dataset from `gptwiz prepare --sft`)")
    flag(p, "batch_size", type=positive_int)
    flag(p, "block_size", type=positive_int)
    flag(p, "grad_accum", type=positive_int, help="gradient accumulation steps")
    flag(p, "eval_interval", type=positive_int)
    flag(p, "eval_iters", type=positive_int)
    flag(p, "dropout", type=number, help="default: none for a run that sees its data at most once (it cannot "
                                         "overfit), else the preset's")
    flag(p, "optimizer", choices=OPTIMIZERS,
         help="default: the preset's (muon for tiny and small, adamw for the rest); muon: Muon for the blocks' "
              "matrices, AdamW for the rest")
    flag(p, "init_from_model", help="start from another run's weights (a run name or folder); without "
         "--config_file the run follows that run's preset")
    flag(p, "init_checkpoint", choices=CHECKPOINT_CHOICES, default="auto",
         help="which of its checkpoints: best, last, or auto (the default): the rule `gptwiz sample` uses")
    flag(p, "device", default="auto", help="auto, cpu, cuda or cuda:N")
    flag(p, "dtype", default="auto", help="auto, float32, bfloat16 or float16")
    flag(p, "compile", action=argparse.BooleanOptionalAction, default=None,
         help="torch.compile the model (default: only for runs long enough to pay the compile time back)")
    flag(p, "resume", action="store_true", help="continue the run from its last checkpoint")
    flag(p, "seed", type=int, default=1337)
    flag(p, "ckpt_interval_s", type=number, default=300.0, help="also checkpoint every this many seconds")
    flag(p, "runs_dir", default="runs")
    flag(p, "data_dir", default="data", help="where the token cache of --input_file lives")
    flag(p, "quiet", action="store_true", help="plain log lines instead of the live display")
    flag(p, "detach", action="store_true",
         help="train in the background, in its own session (survives logging out); prints how to watch it")
    flag(p, "nproc", type=positive_int, default=1,
         help="train in N processes on this machine through torchrun (DDP: NCCL on GPUs, gloo on CPU)")
    flag(p, "fsdp", action="store_true", help="shard parameters, gradients and optimizer state (FSDP) across processes")
    flag(p, "tensorboard", nargs="?", const=True, default=None, metavar="DIR",
         help="also write TensorBoard event files, in DIR (default runs/NAME/tb/); pip install 'gptwiz[tensorboard]'")
    flag(p, "wandb", metavar="PROJECT",
         help="also log to Weights & Biases project PROJECT (needs wandb; WANDB_MODE=offline works without network)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    opts = TrainOptions(**{k: v for k, v in vars(args).items() if k in TrainOptions.__dataclass_fields__})
    trackers = trackers_of(args)
    trackers.check()  # a missing tensorboard or wandb package: one line now, before anything starts
    if getattr(args, "detach", False):
        return detach_train(opts, args.argv)
    if opts.nproc != 1 and env_world_size() <= 1:
        return launch_processes(opts, args.argv)
    result = train_here(opts, console_reporter(args.quiet or not sys.stdout.isatty(), trackers, opts.runs_dir))
    if result.state in ("failed", "diverged"):
        print(inert(f"gptwiz train: {result.state}: {result.error}"), file=sys.stderr)
    return result.exit_code


def trackers_of(args: argparse.Namespace) -> Trackers:
    """Where --tensorboard and --wandb ask the run's records to be logged too."""
    tensorboard = getattr(args, "tensorboard", None)
    return Trackers(Path(tensorboard) if isinstance(tensorboard, str) else tensorboard, getattr(args, "wandb", None))


def console_reporter(plain: bool, trackers: Trackers, runs_dir: str) -> Reporter:
    """What the terminal shows of the run: plain lines (--quiet, or not a terminal) or a live display, with
    the trackers' logging around it."""
    reporter: Reporter = PlainReporter() if plain else RichReporter()
    return TrackingReporter(reporter, trackers, runs_dir) if trackers.any else reporter


def train_here(opts: TrainOptions, reporter: Reporter) -> TrainResult:
    """Resolve the options once and train the run in this process; under torchrun, as this process's rank of
    it, rank 0 resolving before the others (it builds the token cache and starts the run folder)."""
    # numpy before torch: torch imports numpy from C and clears any exception raised meanwhile, so a SIGTERM (or
    # Ctrl-C) landing there would be lost and leave numpy half-imported.
    import numpy  # noqa: F401  lazy: off the --help path, like torch

    from gptwiz.training.distributed import main_first, process_group  # lazy: torch, once a run trains here
    from gptwiz.training.trainer import train  # lazy: torch, once a run trains here

    with process_group(opts.device, opts.fsdp) as dist:
        with main_first(dist):
            resolved = resolve_options(opts, check_exists=dist.is_main)
        return train(resolved, reporter, dist=dist)


def detach_train(opts: TrainOptions, argv: Sequence[str]) -> int:
    """`gptwiz train ... --detach`: validate here (a bad flag is a one-line error now, not in a log later),
    then start the same command line without --detach in the background and say how to follow it."""
    resolved = resolve_options(opts)
    paths = resolved.paths
    if opts.resume and effective_state(read_json(paths.status), paths) == "running":
        raise UsageError(f"run {quote(paths.name)} is already running; watch it with `gptwiz watch {paths.name}`")
    launched = launch_detached(strip_detach(argv), runs_dir=opts.runs_dir, name=resolved.cfg.name)
    runs_flag = "" if opts.runs_dir == "runs" else f" --runs_dir {opts.runs_dir}"
    print(inert(f"started run {launched.name} in the background (pid {launched.pid}); "
                f"console output: {launched.console_log}"))
    print(inert(f"  watch it: gptwiz watch {launched.name}{runs_flag}"))
    print(inert(f"  stop it:  gptwiz stop {launched.name}{runs_flag}"))
    return 0


def launch_processes(opts: TrainOptions, argv: Sequence[str]) -> int:
    """`gptwiz train --nproc N`: validate once here, then the same command line in N processes (torchrun)."""
    check_nproc(opts.nproc, opts.device)
    resolve_options(opts)  # bad input fails here, once, before any process starts; builds the token cache
    return launch_torchrun(opts.nproc, argv, opts.runs_dir, opts.model_name)
