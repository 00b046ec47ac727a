"""The `gptwiz` command: one module per verb, each a thin call into the package that does the work.

Nothing heavy is imported at module level, so `gptwiz --help` answers at once; torch is imported
only by the verbs that train or sample.

Exit status: 0 done, 1 a run or probe that failed or a write the disk refused, 2 bad input (one line on
stderr), 3 a diverged run, 130 interrupted: Ctrl-C, or SIGTERM at any moment a verb has no handler of its own
for it (the trainer's is a graceful stop that exits 0), imports included.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable, Sequence
from typing import Any

from gptwiz import __version__
from gptwiz.cli import chat, dataset_info, eval, export, plan, prepare, probe, report, runs, sample, train, wizard
from gptwiz.cli.args import Parser
from gptwiz.common.errors import UsageError
from gptwiz.common.inert import inert

# The verbs in the order `gptwiz --help` lists them; each adds its own parser and sets its handler.
VERBS: list[Callable[[Any], None]] = [
    train.add, sample.add, export.add, eval.add, chat.add, plan.add_presets, prepare.add, dataset_info.add,
    wizard.add, runs.add_watch, runs.add_runs, runs.add_stop, report.add, probe.add, plan.add_hardware,
    plan.add_estimate, plan.add_recommend,
]


def build_parser() -> Parser:
    parser = Parser(prog="gptwiz", description="Choose, test and train small GPT models (11M to 750M parameters).")
    parser.add_argument("--version", action="version", version=f"gptwiz {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for add in VERBS:
        add(sub)
    return parser


def interrupt_on_sigterm() -> Any:
    """SIGTERM interrupts as Ctrl-C does, from the first moment: the same clean-up runs (a verb that must do more,
    such as the trainer's graceful stop, installs its own handler for its time), and the process ends with one
    line and exit status 130, never killed mid-import with no word. The handler it replaced is returned."""

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    try:
        return signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread (main() called by a test or another program): leave signals alone
        return None


def the_wizard_by_default(argv: list[str]) -> list[str]:
    """`gptwiz` alone, or with only the wizard's own flags (`gptwiz --plain`), is `gptwiz wizard ...`."""
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help", "--version")):
        return ["wizard", *argv]
    return argv


def main(argv: Sequence[str] | None = None) -> int:
    previous = interrupt_on_sigterm()
    command = "gptwiz"
    try:
        parser = build_parser()
        argv = the_wizard_by_default(list(sys.argv[1:] if argv is None else argv))
        args = parser.parse_args(argv)
        args.argv = argv  # `train --detach` relaunches this same command line
        command = f"gptwiz {args.command}"
        return int(args.func(args) or 0)
    except UsageError as exc:
        print(inert(f"{command}: error: {exc}"), file=sys.stderr)
        return getattr(exc, "exit_status", 2)  # 1 for WriteFailed
    except KeyboardInterrupt:  # Ctrl-C, or SIGTERM (interrupt_on_sigterm)
        print(f"{command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    raise SystemExit(main())
