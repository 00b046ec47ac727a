"""`gptwiz report`: one run's pictures, or several runs compared, as PNG, SVG, HTML or in the terminal; and
`--tensorboard`, a run's TensorBoard event files written from its metrics.jsonl."""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path
from typing import Any

from gptwiz.cli.args import flag, number
from gptwiz.common.commands import paste_lines
from gptwiz.common.errors import UsageError, WriteFailed
from gptwiz.common.files import check_folder, check_own_folder, write_failure
from gptwiz.common.inert import inert, quote
from gptwiz.report.build import check_output, command, load, write
from gptwiz.report.terminal import render
from gptwiz.runs.jsonfile import read_json
from gptwiz.runs.metrics import read_metrics
from gptwiz.runs.paths import resolve_run
from gptwiz.runs.status import effective_state
from gptwiz.trackers.reporter import TB_FOLDER
from gptwiz.trackers.tensorboard import check_available, replay


def add(sub: Any) -> None:
    p = sub.add_parser("report", help="plots of a run, or several runs compared (PNG, SVG, HTML, or in the terminal)")
    p.add_argument("names", nargs="+", metavar="NAME", help="run names or run folders")
    flag(p, "out", metavar="FILE", help="FILE.png, FILE.svg or FILE.html (one file, the figure inside); none: draw in the terminal")
    flag(p, "runs_dir", default="runs")
    flag(p, "smooth", type=number, default=0.6,
         help="the train loss's smoothing, as TensorBoard's slider: 0 raw to 0.99 (default 0.6)")
    flag(p, "log_y", action="store_true", help="a logarithmic loss axis")
    flag(p, "tensorboard", action="store_true",
         help="instead of a picture, write each run's TensorBoard event files (runs/NAME/tb/) from its metrics.jsonl")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if not 0 <= args.smooth < 1:
        raise UsageError(f"invalid --smooth {args.smooth:g}: expected a number from 0 (raw) up to, not including, 1")
    check_folder(args.runs_dir, "--runs_dir", write=False)
    out = Path(args.out) if args.out else None
    if args.tensorboard:
        if out is not None:
            raise UsageError("--tensorboard writes event files into each run's folder; give it without --out")
        return write_tensorboard(args)
    if out is not None:
        check_output(out)
    report = load(args.names, args.runs_dir)
    if out is None:
        size = shutil.get_terminal_size((100, 30))
        height = max(12, min(size.lines - len(report.runs) - 6, 30))
        print(render(report.runs, report.comparison, size.columns, height, args.smooth, args.log_y,
                     color=sys.stdout.isatty()))
        print("\nas a file (or .svg, .html):\n" + _shell_lines(command(args.names, args.runs_dir, "report.png"),
                                                               size.columns))
        return 0

    try:
        write(report, out, args.smooth, args.log_y)
    except OSError as exc:
        raise _write_error(exc, out) from None
    print(f"wrote {inert(out)}: {report.comparison.summary() if len(report.runs) > 1 else report.comparison.names[0]}")
    return 0


def _shell_lines(command_line: str, width: int) -> str:
    """The command as a shell takes it pasted (gptwiz.common.commands.paste_lines), set in by two columns under
    its heading; a row that goes on inside a word is not set in: the spaces would become part of the word."""
    rows = paste_lines(command_line, width - 2)
    return "\n".join(("  " if i == 0 or rows[i - 1].endswith(" \\") else "") + inert(row) for i, row in enumerate(rows))


def write_tensorboard(args: argparse.Namespace) -> int:
    check_available("gptwiz report --tensorboard")
    runs = [resolve_run(spec, args.runs_dir) for spec in args.names]
    for paths in runs:
        if effective_state(read_json(paths.status), paths) == "running":
            raise UsageError(f"run {quote(paths.name)} is still running: write its event files once it has ended "
                             "(`gptwiz train --tensorboard` logs them while it trains)")
        # Event files are deleted and written there: a link planted as either folder is refused, never followed.
        check_own_folder(paths.root, "the run folder")
        check_own_folder(paths.root / TB_FOLDER, f"run {quote(paths.name)}: the event folder")
    for paths in runs:
        log_dir = paths.root / TB_FOLDER
        try:
            written = replay(read_metrics(paths.metrics), read_json(paths.config), log_dir)
        except OSError as exc:
            raise _write_error(exc, log_dir) from None
        print(f"{inert(paths.name)}: {written:,} records as TensorBoard events in {inert(log_dir)} "
              f"(view them: tensorboard --logdir {inert(log_dir)})")
    return 0


def _write_error(exc: OSError, path: Path) -> UsageError:
    """A full disk as WriteFailed (exit 1); any other refusal (permissions, a read-only folder) as bad input."""
    failure = write_failure(exc)
    return WriteFailed(failure) if failure else UsageError(f"cannot write {quote(path)}: {inert(exc.strerror or exc)}")
