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


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        # One line, not argparse's usage block: the valid choices are in the message or in --help.
        print(f"{self.prog}: error: {message} (see {self.prog} --help)", file=sys.stderr)
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
    if args.quiet or not sys.stdout.isatty():
        from gptwiz.console import PlainReporter as reporter_cls
    else:
        from gptwiz.console import RichReporter as reporter_cls
    result = train(opts, reporter_cls())
    if result.state in ("failed", "diverged"):
        print(f"gptwiz train: {result.state}: {result.error}", file=sys.stderr)
    return result.exit_code


def cmd_sample(args: argparse.Namespace) -> int:
    from gptwiz.sample import SampleOptions, sample

    opts = SampleOptions(**{k: v for k, v in vars(args).items() if k in SampleOptions.__dataclass_fields__})
    for i, text in enumerate(sample(opts)):
        if i:
            print("\n" + "-" * 40)
        print(text)
    return 0


def cmd_presets(args: argparse.Namespace) -> int:
    from gptwiz.presets import count_params, load_all

    presets = load_all()
    rows = [{"name": p.name, "params": count_params(p.model), "n_layer": p.model.n_layer, "n_head": p.model.n_head,
             "n_embd": p.model.n_embd, "block_size": p.model.block_size, "batch_size": p.train.batch_size,
             "learning_rate": p.train.learning_rate, "max_iters": p.train.max_iters,
             "guide_vram_gb": p.guide_vram_gb, "description": p.description, "use_cases": list(p.use_cases)}
            for p in presets]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title="gptwiz presets")
    for col in ("name", "params", "block", "batch", "lr", "guide VRAM", "description"):
        table.add_column(col, justify="right" if col in ("params", "block", "batch", "lr", "guide VRAM") else "left")
    for r in rows:
        table.add_row(r["name"], f"{r['params'] / 1e6:.1f}M", str(r["block_size"]), str(r["batch_size"]),
                      f"{r['learning_rate']:g}", f"{r['guide_vram_gb']:g} GB", r["description"])
    Console().print(table)
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


SUBCOMMANDS: list[Callable[[Any], None]] = [_add_train, _add_sample, _add_presets]


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
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except UsageError as exc:
        print(f"gptwiz {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"gptwiz {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
