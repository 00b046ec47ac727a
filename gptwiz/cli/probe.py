"""`gptwiz probe`: the guide's 100-iteration test run, measured, judged, with advice."""

from __future__ import annotations

import argparse
from typing import Any

from gptwiz.cli.args import flag, number, positive_int
from gptwiz.cli.plan import parse_hours
from gptwiz.common.files import check_folder
from gptwiz.planning.policy import PROBE_ITERS
from gptwiz.planning.presets import OPTIMIZERS
from gptwiz.planning.time_budget import run_budget


def add(sub: Any) -> None:
    p = sub.add_parser("probe", help="the guide's 100-iteration test run: memory, speed and loss, judged, with advice")
    flag(p, "config_file", required=True, help="a preset name (tiny, small, 150M, ...) or a preset JSON path")
    flag(p, "input_file", help="a UTF-8 text file to train on")
    flag(p, "dataset_dir", help="a dataset prepared by `gptwiz prepare`")
    flag(p, "iters", type=positive_int, default=PROBE_ITERS,
         help=f"iterations to run (default {PROBE_ITERS}, at least 10; at most the full run's --max_iters)")
    flag(p, "batch_size", type=positive_int)
    flag(p, "block_size", type=positive_int)
    flag(p, "grad_accum", type=positive_int, help="gradient accumulation steps")
    flag(p, "learning_rate", type=number)
    flag(p, "optimizer", choices=OPTIMIZERS, help="adamw or muon (default: the preset's), as `gptwiz train`")
    flag(p, "dropout", type=number, help="default: the full run's, as `gptwiz train` decides it (none for a run "
                                         "that sees its data at most once, else the preset's)")
    flag(p, "max_iters", type=positive_int, help="the full run's length, for the projected time (default: the preset's)")
    flag(p, "device", default="auto", help="auto, cpu, cuda or cuda:N")
    flag(p, "dtype", default="auto", help="auto, float32, bfloat16 or float16")
    flag(p, "compile", action=argparse.BooleanOptionalAction, default=None,
         help="torch.compile the model (default: as the full run would)")
    flag(p, "model_name", help="keep the probe as runs/<model_name>/ (probe.json and live metrics); "
                               "a later `gptwiz train --model_name` of the same name starts there")
    flag(p, "memory_limit_gb", type=number, help="treat a peak above this many GB as out of memory")
    flag(p, "hours", help="a time budget for the full run: over it, the verdict warns and lists runs that keep it "
                          "(fewer iterations, a smaller batch, the next smaller preset)")
    flag(p, "seed", type=int, default=1337)
    flag(p, "runs_dir", default="runs")
    flag(p, "data_dir", default="data", help="where the token cache of --input_file lives")
    flag(p, "json", action="store_true", help="print one JSON object instead of the progress bar and panel")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from gptwiz.cli.probe_view import run_cli  # lazy: rich and the probe only when `gptwiz probe` runs
    from gptwiz.training.probe import ProbeOptions  # lazy: numpy and the planning modules, off the --help path

    if args.model_name:  # (without a name the probe runs in a temporary folder: --runs_dir is not used)
        check_folder(args.runs_dir, "--runs_dir", write=True)
    budget = run_budget(parse_hours(args.hours), None)
    opts = ProbeOptions(**{k: v for k, v in vars(args).items() if k in ProbeOptions.__dataclass_fields__})
    if budget is not None:
        opts.budget_s, opts.budget_label = budget.seconds, budget.label
    return run_cli(opts, as_json=args.json)
