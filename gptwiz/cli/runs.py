"""`gptwiz runs`, `watch` and `stop`: the runs in a folder, the live dashboard of one, and its graceful stop."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from gptwiz.cli.args import flag, number
from gptwiz.cli.calibration_view import show_calibration
from gptwiz.common import fmt
from gptwiz.common.errors import UsageError
from gptwiz.common.files import check_folder
from gptwiz.common.inert import inert
from gptwiz.report.build import command
from gptwiz.runs.calibration import calibration
from gptwiz.runs.jsonfile import read_json
from gptwiz.runs.launch import request_stop, wait_for_state_change
from gptwiz.runs.listing import folder_text, latest_run, list_runs
from gptwiz.runs.metrics import held_out_text
from gptwiz.runs.paths import resolve_run
from gptwiz.runs.status import activity


def add_watch(sub: Any) -> None:
    p = sub.add_parser("watch", help="the live dashboard of a run (the latest if no name); q leaves, training goes on")
    p.add_argument("name", nargs="?", help="a run name or run folder (default: the latest run)")
    flag(p, "runs_dir", default="runs")
    p.set_defaults(func=run_watch)


def add_runs(sub: Any) -> None:
    p = sub.add_parser("runs", help="list the runs: state, progress, last loss")
    flag(p, "runs_dir", default="runs")
    flag(p, "calibration", action="store_true",
         help="the quality predicted for each finished run (before it, after its probe) against what it reached")
    flag(p, "json", action="store_true")
    p.set_defaults(func=run_runs)


def add_stop(sub: Any) -> None:
    p = sub.add_parser("stop", help="stop a running run gracefully (it checkpoints; continue with --resume)")
    p.add_argument("name", help="a run name or run folder")
    flag(p, "runs_dir", default="runs")
    flag(p, "wait", type=number, default=60.0, help="seconds to wait for the 'stopped' state (0: do not wait)")
    p.set_defaults(func=run_stop)


def run_watch(args: argparse.Namespace) -> int:
    if args.name:
        paths = resolve_run(args.name, args.runs_dir)
    else:
        check_folder(args.runs_dir, "--runs_dir", write=False)
        found = latest_run(args.runs_dir)
        if found is None:
            raise UsageError(f"no runs in {args.runs_dir} to watch; start one with `gptwiz` or `gptwiz train --detach`")
        paths = found
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise UsageError(f"gptwiz watch draws a live dashboard and needs a terminal; "
                         f"`gptwiz runs --runs_dir {args.runs_dir}` lists the runs without one")
    from gptwiz.tui.app import run_watch_app  # lazy: Textual only when the dashboard opens

    return run_watch_app(paths)


def run_runs(args: argparse.Namespace) -> int:
    check_folder(args.runs_dir, "--runs_dir", write=False)
    if args.calibration:
        return show_calibration(calibration(args.runs_dir), args.runs_dir, args.json)
    rows = list_runs(args.runs_dir)
    if args.json:
        print(json.dumps([r.to_json() for r in rows], indent=2))
        return 0
    if not rows:
        print(inert(f"No runs yet in {folder_text(args.runs_dir)}"))
        return 0
    from rich.console import Console  # lazy: rich only when a table is printed
    from rich.table import Table  # lazy: rich only when a table is printed

    from gptwiz.common.rich_text import outside  # lazy: imports rich, only when a table is printed

    # Names and status.json's fields come from outside: inert, and as Text so that rich reads no markup in them.
    table = Table(title=outside(f"runs in {args.runs_dir}"))
    for col in ("name", "state", "progress", "last loss", "ckpt", "updated"):
        table.add_column(col, justify="right" if col in ("progress", "last loss", "ckpt") else "left")
    for r in rows:
        cells = (r.name, r.state_text, r.progress_text, r.loss_text, r.checkpoint_text, r.updated_text)
        table.add_row(*(outside(c) for c in cells))
    console = Console()
    console.print(table)
    for r in rows:  # below the table, where a long line need not fit a column
        if r.unreadable:
            say(console, f"{r.name}: unreadable: {r.unreadable}")
        elif r.redo and r.state != "running":
            say(console, f"{r.name}: a resume continues {r.resume_text}", soft_wrap=False)
        if r.held_out and not r.unreadable:
            say(console, f"{r.name}: {held_out_text(r.held_out)}")
    readable = [r.name for r in rows if not r.unreadable]
    if len(readable) >= 2:

        # The comparison offered: the newest runs as listed (the user keeps those to compare).
        say(console, f"compare runs: {command(readable[:4], args.runs_dir)}")
    return 0


def say(console: Any, line: str, *, soft_wrap: bool = True) -> None:
    """A line of outside text (names, files' fields) through rich: inert, with no markup read in it; a sentence
    (soft_wrap False) is wrapped to the terminal's width, a line holding a command or a path is not broken."""
    console.print(inert(line), markup=False, highlight=False, soft_wrap=soft_wrap)


def run_stop(args: argparse.Namespace) -> int:
    paths = resolve_run(args.name, args.runs_dir)
    pid = request_stop(paths)
    print(f"asked run {inert(paths.name)} (pid {pid}) to stop: it finishes its step (or drops its evaluation) "
          "and writes a checkpoint")
    if args.wait <= 0:
        return 0
    state = wait_for_state_change(paths, timeout=args.wait)
    status = read_json(paths.status) or {}
    if state == "running":
        doing = activity(status) or "finishing its step"
        print(inert(f"run {paths.name} is still {doing} after {args.wait:g}s; `gptwiz runs` shows when it has stopped"))
    else:
        print(inert(f"run {paths.name} is {state} at iteration {status.get('iter', fmt.UNKNOWN)}"
                    + (f"; continue it with `gptwiz train --model_name {paths.name} --resume`"
                       if state == "stopped" else "")))
    return 0
