"""The `gptwiz` command: one module per verb, each a thin call into the package that does the work.

Nothing heavy is imported at module level, so `gptwiz --help` answers at once; torch is imported
only by the verbs that train or sample.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import Any

from gptwiz.cli import dataset_info, plan, prepare, probe, runs, sample, train, wizard
from gptwiz.cli.args import Parser, one_line
from gptwiz.common.errors import UsageError

# The verbs in the order `gptwiz --help` lists them; each adds its own parser and sets its handler.
VERBS: list[Callable[[Any], None]] = [
    train.add, sample.add, plan.add_presets, prepare.add, dataset_info.add, wizard.add, runs.add_watch,
    runs.add_runs, runs.add_stop, probe.add, plan.add_hardware, plan.add_estimate, plan.add_recommend,
]


def build_parser() -> Parser:
    from gptwiz import __version__

    parser = Parser(prog="gptwiz", description="Choose, test and train small GPT models (11M to 750M parameters).")
    parser.add_argument("--version", action="version", version=f"gptwiz {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for add in VERBS:
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
