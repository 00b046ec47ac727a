"""The `gptwiz` command: each subcommand is a thin call into the module that does the work.

Nothing heavy is imported at module level, so `gptwiz --help` answers at once; torch is imported
only by the subcommands that train or sample.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Callable, Sequence

from gptwiz.errors import UsageError


# What str.splitlines() breaks a line at: a value typed with one of them must not split an error message.
_LINE_BREAKS = str.maketrans({c: repr(c)[1:-1] for c in "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029"})


def one_line(text: object) -> str:
    """`text` on one line: line breaks inside values (a pasted path, a quoted argument) shown as escapes."""
    return str(text).translate(_LINE_BREAKS)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        # One line, not argparse's usage block: the valid choices are in the message or in --help.
        print(one_line(f"{self.prog}: error: {message} (see {self.prog} --help)"), file=sys.stderr)
        raise SystemExit(2)


def flag(parser: argparse.ArgumentParser, name: str, *extra: str, **kwargs: Any) -> None:
    """An option spelled both ways the guide's users type it: --max_iters and --max-iters."""
    names = [f"--{name}"]
    if "_" in name:
        names.append(f"--{name.replace('_', '-')}")
    parser.add_argument(*names, *extra, dest=name, **kwargs)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid value {text!r}: expected a positive whole number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"invalid value {text!r}: expected a positive whole number")
    return value


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid value {text!r}: expected a number such as 3e-4") from None


# --- subcommands -----------------------------------------------------------------------------------

def cmd_train(args: argparse.Namespace) -> int:
    from gptwiz.train import TrainOptions, train

    opts = TrainOptions(**{k: v for k, v in vars(args).items() if k in TrainOptions.__dataclass_fields__})
    if getattr(args, "detach", False):
        from gptwiz.detach import detach_train

        return detach_train(opts, args.argv)
    from gptwiz.distributed import env_world_size, launch

    if opts.nproc != 1 and env_world_size() <= 1:
        return launch(opts, args.argv)
    if args.quiet or not sys.stdout.isatty():
        from gptwiz.console import PlainReporter as reporter_cls
    else:
        from gptwiz.console import RichReporter as reporter_cls
    result = train(opts, reporter_cls())
    if result.state in ("failed", "diverged"):
        print(one_line(f"gptwiz train: {result.state}: {result.error}"), file=sys.stderr)
    return result.exit_code


def cmd_sample(args: argparse.Namespace) -> int:
    from gptwiz.sample import SampleOptions, sample

    opts = SampleOptions(**{k: v for k, v in vars(args).items() if k in SampleOptions.__dataclass_fields__})
    for i, text in enumerate(sample(opts, warn=lambda message: print(f"gptwiz sample: {message}", file=sys.stderr))):
        if i:
            print("\n" + "-" * 40)
        print(text)
    return 0


def cmd_presets(args: argparse.Namespace) -> int:
    from gptwiz.advice import preset_estimate
    from gptwiz.presets import count_params, load_all

    presets = load_all()
    rows = [{"name": p.name, "params": count_params(p.model), "n_layer": p.model.n_layer, "n_head": p.model.n_head,
             "n_embd": p.model.n_embd, "block_size": p.model.block_size, "batch_size": p.train.batch_size,
             "learning_rate": p.train.learning_rate, "max_iters": p.train.max_iters,
             "guide_vram_gb": p.guide_vram_gb, "estimate_cuda_bf16_bytes": preset_estimate(p),
             "description": p.description, "use_cases": list(p.use_cases)}
            for p in presets]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    from rich import box
    from rich.console import Console
    from rich.table import Table

    # No vertical rules: with them the numbers alone overflow 80 columns and rich cuts the names short.
    table = Table(title="gptwiz presets", box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, collapse_padding=True)
    numeric = ("params", "block", "batch", "lr", "guide VRAM", "estimate")
    console = Console()
    describe = console.width >= 110  # on a narrow terminal the numbers matter more than the prose
    for col in ("name", *numeric, *(["description"] if describe else [])):
        table.add_column(col, justify="right" if col in numeric else "left", no_wrap=col != "description")
    for r in rows:
        table.add_row(r["name"], f"{r['params'] / 1e6:.1f}M", str(r["block_size"]), str(r["batch_size"]),
                      f"{r['learning_rate']:g}", f"{r['guide_vram_gb']:g} GB",
                      f"{r['estimate_cuda_bf16_bytes'] / 2**30:.1f} GB", *([r["description"]] if describe else []))
    console.print(table)
    if not describe:  # the prose under the table, where the terminal has no room for a column of it
        for r in rows:
            console.print(f"[bold]{r['name']}[/]: {r['description']}", highlight=False)
    print("estimate: peak memory to train the preset as it stands (its batch and block) on one CUDA card in bf16, "
          "from `gptwiz estimate`; the guide's VRAM column is a rough figure")
    return 0


def cmd_prepare(args: argparse.Namespace) -> int:
    from gptwiz.prepare import PrepareOptions, run_cli

    opts = PrepareOptions(sources=args.source, out_dir=args.out_dir, val_fraction=args.val_fraction,
                          workers=args.workers, overwrite=args.overwrite, block_size=args.block_size)
    return run_cli(opts, quiet=args.quiet)


def cmd_dataset_info(args: argparse.Namespace) -> int:
    from gptwiz.dataset_info import dataset_info, render

    info = dataset_info(args.dir)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    from rich.console import Console

    render(info, Console())
    return 0


def cmd_wizard(args: argparse.Namespace) -> int:
    import os

    from gptwiz.tui.mode import NO_TTY_HINT, choose_mode

    mode = choose_mode(os.environ, sys.stdin.isatty(), sys.stdout.isatty(), plain_flag=args.plain)
    if mode == "hint":
        print(NO_TTY_HINT, file=sys.stderr)
        return 2
    if mode == "plain":
        from gptwiz.plain import run_plain_wizard

        return run_plain_wizard(runs_dir=args.runs_dir, data_dir=args.data_dir)
    from gptwiz.tui.app import run_wizard_app

    return run_wizard_app(runs_dir=args.runs_dir, data_dir=args.data_dir)


def cmd_watch(args: argparse.Namespace) -> int:
    from gptwiz.runfolder import latest_run, resolve_run

    if args.name:
        paths = resolve_run(args.name, args.runs_dir)
    else:
        found = latest_run(args.runs_dir)
        if found is None:
            raise UsageError(f"no runs in {args.runs_dir} to watch; start one with `gptwiz` or `gptwiz train --detach`")
        paths = found
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise UsageError(f"gptwiz watch draws a live dashboard and needs a terminal; "
                         f"`gptwiz runs --runs_dir {args.runs_dir}` lists the runs without one")
    from gptwiz.tui.app import run_watch_app

    return run_watch_app(paths)


def cmd_runs(args: argparse.Namespace) -> int:
    from gptwiz.tui.runlist import run_rows

    rows = run_rows(args.runs_dir)
    if args.json:
        print(json.dumps([r.to_json() for r in rows], indent=2))
        return 0
    if not rows:
        print(f"no runs in {args.runs_dir}")
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"runs in {args.runs_dir}")
    for col in ("name", "state", "progress", "last loss", "updated"):
        table.add_column(col, justify="right" if col in ("progress", "last loss") else "left")
    for r in rows:
        table.add_row(r.name, r.state, r.progress_text, r.loss_text, r.updated_at)
    Console().print(table)
    return 0


def cmd_stop(args: argparse.Namespace) -> int:
    from gptwiz.detach import request_stop, wait_for_state_change
    from gptwiz.runfolder import read_json, resolve_run

    paths = resolve_run(args.name, args.runs_dir)
    pid = request_stop(paths)
    print(f"asked run {paths.name} (pid {pid}) to stop: it finishes its step and writes a checkpoint")
    if args.wait <= 0:
        return 0
    state = wait_for_state_change(paths, timeout=args.wait)
    status = read_json(paths.status) or {}
    if state == "running":
        print(f"run {paths.name} is still checkpointing after {args.wait:g}s; `gptwiz runs` shows when it has stopped")
    else:
        print(f"run {paths.name} is {state} at iteration {status.get('iter', '?')}"
              + (f"; continue it with `gptwiz train --model_name {paths.name} --resume`" if state == "stopped" else ""))
    return 0


# --- the parser ------------------------------------------------------------------------------------

def _add_train(sub: Any) -> None:
    p = sub.add_parser("train", help="train a model from a preset (the guide's train.py command lines)")
    flag(p, "config_file", help="a preset name (tiny, small, 150M, ...) or a preset JSON path")
    flag(p, "model_name", default="run", help="the run's name: its folder is runs/<model_name>/")
    flag(p, "input_file", help="a UTF-8 text file to train on")
    flag(p, "dataset_dir", help="a dataset prepared by `gptwiz prepare`")
    flag(p, "max_iters", type=_positive_int)
    flag(p, "learning_rate", type=_number)
    flag(p, "batch_size", type=_positive_int)
    flag(p, "block_size", type=_positive_int)
    flag(p, "grad_accum", type=_positive_int, help="gradient accumulation steps")
    flag(p, "eval_interval", type=_positive_int)
    flag(p, "eval_iters", type=_positive_int)
    flag(p, "dropout", type=_number)
    flag(p, "init_from_model", help="start from another run's weights (a run name or folder)")
    flag(p, "device", default="auto", help="auto, cpu, cuda or cuda:N")
    flag(p, "dtype", default="auto", help="auto, float32, bfloat16 or float16")
    flag(p, "compile", action=argparse.BooleanOptionalAction, default=None,
         help="torch.compile the model (default: only for runs long enough to pay the compile time back)")
    flag(p, "resume", action="store_true", help="continue the run from its last checkpoint")
    flag(p, "seed", type=int, default=1337)
    flag(p, "ckpt_interval_s", type=_number, default=300.0, help="also checkpoint every this many seconds")
    flag(p, "runs_dir", default="runs")
    flag(p, "data_dir", default="data", help="where the token cache of --input_file lives")
    flag(p, "quiet", action="store_true", help="plain log lines instead of the live display")
    flag(p, "detach", action="store_true",
         help="train in the background, in its own session (survives logging out); prints how to watch it")
    flag(p, "nproc", type=_positive_int, default=1,
         help="train in N processes on this machine through torchrun (DDP: NCCL on GPUs, gloo on CPU)")
    flag(p, "fsdp", action="store_true", help="shard parameters, gradients and optimizer state (FSDP) across processes")
    p.set_defaults(func=cmd_train)


def _add_sample(sub: Any) -> None:
    p = sub.add_parser("sample", help="generate text from a trained run")
    flag(p, "model_name", required=True, help="a run name or run folder")
    flag(p, "prompt", default="\n")
    flag(p, "max_new_tokens", type=_positive_int, default=200)
    flag(p, "temperature", type=_number, default=0.8)
    flag(p, "top_k", type=_positive_int, default=200)
    flag(p, "num_samples", type=_positive_int, default=1)
    flag(p, "seed", type=int)
    flag(p, "device", default="auto")
    flag(p, "runs_dir", default="runs")
    p.set_defaults(func=cmd_sample)


def _add_presets(sub: Any) -> None:
    p = sub.add_parser("presets", help="list the guide's presets")
    flag(p, "json", action="store_true")
    p.set_defaults(func=cmd_presets)


def _add_prepare(sub: Any) -> None:
    p = sub.add_parser("prepare", help="tokenize folders of documents from weighted sources into a dataset")
    flag(p, "source", action="append", required=True, metavar="NAME:GLOB[:WEIGHT]",
         help="a source of documents (.txt/.md as text, .jsonl by its 'text' field); repeat for more sources; "
              "WEIGHT (default 1) sets its share of the training sequences")
    flag(p, "out_dir", required=True, help="the dataset folder to write (train with --dataset_dir)")
    flag(p, "val_fraction", type=_number, default=0.005, help="fraction of each source's documents held out "
         "for validation (at least one document)")
    flag(p, "workers", type=_positive_int, help="tokenizer threads (default: every core, at most 16)")
    flag(p, "overwrite", action="store_true", help="replace the dataset already in --out_dir")
    flag(p, "block_size", type=_positive_int, default=1024,
         help="refuse a corpus that cannot fill one block of this many tokens (default 1024, the largest preset's)")
    flag(p, "quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_prepare)


def _add_dataset_info(sub: Any) -> None:
    p = sub.add_parser("dataset-info", help="show a prepared dataset: sources, files, tokens, weights")
    p.add_argument("dir", help="a dataset folder made by `gptwiz prepare`")
    flag(p, "json", action="store_true")
    p.set_defaults(func=cmd_dataset_info)



def _add_wizard(sub: Any) -> None:
    p = sub.add_parser("wizard", help="the interactive wizard: use case to running training (what `gptwiz` alone starts)")
    flag(p, "plain", action="store_true", help="plain questions and answers instead of the full-screen app")
    flag(p, "runs_dir", default="runs")
    flag(p, "data_dir", default="data", help="where prepared datasets and the demo corpus go")
    p.set_defaults(func=cmd_wizard)


def _add_watch(sub: Any) -> None:
    p = sub.add_parser("watch", help="the live dashboard of a run (the latest if no name); q leaves, training goes on")
    p.add_argument("name", nargs="?", help="a run name or run folder (default: the latest run)")
    flag(p, "runs_dir", default="runs")
    p.set_defaults(func=cmd_watch)


def _add_runs(sub: Any) -> None:
    p = sub.add_parser("runs", help="list the runs: state, progress, last loss")
    flag(p, "runs_dir", default="runs")
    flag(p, "json", action="store_true")
    p.set_defaults(func=cmd_runs)


def _add_stop(sub: Any) -> None:
    p = sub.add_parser("stop", help="stop a running run gracefully (it checkpoints; continue with --resume)")
    p.add_argument("name", help="a run name or run folder")
    flag(p, "runs_dir", default="runs")
    flag(p, "wait", type=_number, default=60.0, help="seconds to wait for the 'stopped' state (0: do not wait)")
    p.set_defaults(func=cmd_stop)


def cmd_probe(args: argparse.Namespace) -> int:
    from gptwiz.probe import ProbeOptions, run_cli

    opts = ProbeOptions(**{k: v for k, v in vars(args).items() if k in ProbeOptions.__dataclass_fields__})
    return run_cli(opts, as_json=args.json)


def _add_probe(sub: Any) -> None:
    p = sub.add_parser("probe", help="the guide's 100-iteration test run: memory, speed and loss, judged, with advice")
    flag(p, "config_file", required=True, help="a preset name (tiny, small, 150M, ...) or a preset JSON path")
    flag(p, "input_file", help="a UTF-8 text file to train on")
    flag(p, "dataset_dir", help="a dataset prepared by `gptwiz prepare`")
    flag(p, "iters", type=_positive_int, default=100, help="iterations to run (default 100, at least 10)")
    flag(p, "batch_size", type=_positive_int)
    flag(p, "block_size", type=_positive_int)
    flag(p, "grad_accum", type=_positive_int, help="gradient accumulation steps")
    flag(p, "learning_rate", type=_number)
    flag(p, "max_iters", type=_positive_int, help="the full run's length, for the projected time (default: the preset's)")
    flag(p, "device", default="auto", help="auto, cpu, cuda or cuda:N")
    flag(p, "dtype", default="auto", help="auto, float32, bfloat16 or float16")
    flag(p, "compile", action=argparse.BooleanOptionalAction, default=None,
         help="torch.compile the model (default: as the full run would)")
    flag(p, "model_name", help="keep the probe as runs/<model_name>/ (probe.json and live metrics); "
                               "a later `gptwiz train --model_name` of the same name starts there")
    flag(p, "memory_limit_gb", type=_number, help="treat a peak above this many GB as out of memory")
    flag(p, "seed", type=int, default=1337)
    flag(p, "runs_dir", default="runs")
    flag(p, "data_dir", default="data", help="where the token cache of --input_file lives")
    flag(p, "json", action="store_true", help="print one JSON object instead of the progress bar and panel")
    p.set_defaults(func=cmd_probe)


def cmd_hardware(args: argparse.Namespace) -> int:
    from gptwiz.advice import run_hardware

    return run_hardware(args.json)


def cmd_estimate(args: argparse.Namespace) -> int:
    from gptwiz.advice import run_estimate

    return run_estimate(args.config_file, args.batch_size, args.block_size, args.grad_accum, args.dtype, args.device,
                        args.compile, args.json)


def cmd_recommend(args: argparse.Namespace) -> int:
    from gptwiz.advice import run_recommend

    return run_recommend(args.use_case, args.vram_gb, args.dataset_size, args.dataset, args.gpus, args.model_name,
                         args.json)


def _add_hardware(sub: Any) -> None:
    p = sub.add_parser("hardware", help="what this machine has to train on: GPUs, CPU cores, RAM")
    flag(p, "json", action="store_true")
    p.set_defaults(func=cmd_hardware)


def _add_estimate(sub: Any) -> None:
    p = sub.add_parser("estimate", help="peak training memory of a preset, term by term")
    flag(p, "config_file", required=True, help="a preset name (tiny, small, 150M, ...) or a preset JSON path")
    flag(p, "batch_size", type=_positive_int, help="default: the preset's")
    flag(p, "block_size", type=_positive_int, help="default: the preset's")
    flag(p, "grad_accum", type=_positive_int, help="default: the preset's")
    flag(p, "dtype", default="auto", help="auto, float32, bfloat16 or float16 (auto: what `gptwiz train` would use)")
    flag(p, "device", default="auto", help="auto, cpu or cuda (cuda plans for a GPU this machine lacks)")
    flag(p, "compile", action="store_true", help="the run uses torch.compile")
    flag(p, "json", action="store_true")
    p.set_defaults(func=cmd_estimate)


def _add_recommend(sub: Any) -> None:
    p = sub.add_parser("recommend", help="which preset and settings, for a use case, a GPU and a dataset")
    flag(p, "use_case", required=True, help="testing, prototype, chat, rag, code or domain")
    flag(p, "vram_gb", help="GB of memory on the GPU (default: the detected card; 0: no GPU)")
    data = p.add_mutually_exclusive_group()
    flag(data, "dataset_size", help="the training text's size, such as 5MB, 500MB or 2GB")
    flag(data, "dataset", help="a text file, folder, glob or prepared dataset to measure")
    flag(p, "gpus", type=_positive_int, help="how many GPUs train together (default: the detected count)")
    flag(p, "model_name", default="my_model", help="the run name used in the suggested command")
    flag(p, "json", action="store_true")
    p.set_defaults(func=cmd_recommend)


SUBCOMMANDS: list[Callable[[Any], None]] = [_add_train, _add_sample, _add_presets, _add_prepare, _add_dataset_info, _add_wizard, _add_watch, _add_runs, _add_stop, _add_probe, _add_hardware, _add_estimate, _add_recommend]


def build_parser() -> argparse.ArgumentParser:
    from gptwiz import __version__

    parser = _Parser(prog="gptwiz", description="Choose, test and train small GPT models (11M to 750M parameters).")
    parser.add_argument("--version", action="version", version=f"gptwiz {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for add in SUBCOMMANDS:
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        args = parser.parse_args(["wizard"])  # plain `gptwiz` starts the wizard
    args.argv = argv  # `train --detach` relaunches this same command line
    try:
        return int(args.func(args) or 0)
    except UsageError as exc:
        print(one_line(f"gptwiz {args.command}: error: {exc}"), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"gptwiz {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
