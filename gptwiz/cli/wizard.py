"""`gptwiz wizard` (and plain `gptwiz`): the full-screen app, or plain questions where there is no full screen."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from gptwiz.cli.args import flag
from gptwiz.common.files import check_folder
from gptwiz.wizard.mode import NO_TTY_HINT, choose_mode


def add(sub: Any) -> None:
    p = sub.add_parser("wizard", help="the interactive wizard: use case to running training (what `gptwiz` alone starts)")
    flag(p, "plain", action="store_true", help="plain questions and answers instead of the full-screen app")
    flag(p, "runs_dir", default="runs")
    flag(p, "data_dir", default="data", help="where prepared datasets and the demo corpus go")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # Before any screen: the wizard starts runs in --runs_dir, and lists and prepares datasets in --data_dir
    # (a read-only one can still offer the datasets prepared there).
    check_folder(args.runs_dir, "--runs_dir", write=True)
    check_folder(args.data_dir, "--data_dir", write=False)
    mode = choose_mode(os.environ, sys.stdin.isatty(), sys.stdout.isatty(), plain_flag=args.plain)
    if mode == "hint":
        print(NO_TTY_HINT, file=sys.stderr)
        return 2
    if mode == "plain":
        from gptwiz.plain import run_plain_wizard  # lazy: only the front-end chosen loads

        return run_plain_wizard(runs_dir=args.runs_dir, data_dir=args.data_dir)
    from gptwiz.tui.app import run_wizard_app  # lazy: Textual loads only when the app starts

    return run_wizard_app(runs_dir=args.runs_dir, data_dir=args.data_dir)
