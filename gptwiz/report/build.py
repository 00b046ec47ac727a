"""From run names to a report: the runs read, their labels settled, the figure, page or terminal chart made."""

from __future__ import annotations

import importlib.util
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from gptwiz.common.atomic import atomic_write
from gptwiz.common.errors import UsageError
from gptwiz.common.inert import quote
from gptwiz.report.differences import Comparison, compare
from gptwiz.report.series import RunSeries, load_run
from gptwiz.runs.paths import resolve_run

FORMATS = (".png", ".svg", ".html")
MATPLOTLIB_MISSING = "needs matplotlib, which is not installed: pip install 'gptwiz[report]' (or matplotlib)"


@dataclass
class Report:
    runs: list[RunSeries]
    comparison: Comparison


def load(specs: Sequence[str], runs_dir: Path | str) -> Report:
    """The runs named (by name or folder; each once, in the order given) and what tells them apart."""
    runs: list[RunSeries] = []
    seen: set[Path] = set()
    for spec in specs:
        paths = resolve_run(spec, runs_dir)
        key = paths.root.resolve()
        if key not in seen:
            seen.add(key)
            runs.append(load_run(paths))
    return Report(runs, compare([r.name for r in runs], [r.config for r in runs]))


def check_output(out: Path) -> None:
    """Refuse, before any work, a file gptwiz cannot write as asked (one line, exit 2)."""
    if out.suffix.lower() not in FORMATS:
        raise UsageError(f"invalid --out {quote(str(out))}: the file's name must end in {', '.join(FORMATS)}")
    if out.is_dir():
        raise UsageError(f"invalid --out {quote(str(out))}: it is a folder; name a file in it, such as {out / 'report.png'}")
    if not out.parent.is_dir():
        raise UsageError(f"invalid --out {quote(str(out))}: the folder {out.parent} does not exist")
    if importlib.util.find_spec("matplotlib") is None:
        raise UsageError(f"--out {MATPLOTLIB_MISSING}")


def write(report: Report, out: Path, smooth: float, log_y: bool) -> None:
    """The figure as PNG or SVG, or the page holding it as HTML, by the file's suffix."""
    from gptwiz.report.figure import Style, draw, png_bytes, save  # matplotlib: only when a file is asked for

    fig = draw(report.runs, report.comparison, Style(smooth, log_y))
    if out.suffix.lower() == ".html":
        from gptwiz.report.html import page  # lazy: only for an HTML report

        text = page(report.runs, report.comparison, png_bytes(fig)).encode("utf-8")

        def write_page(f: IO[bytes]) -> None:
            f.write(text)

        atomic_write(out, write_page)
    else:
        save(fig, out)


def command(names: Sequence[str], runs_dir: Path | str = "runs", out: str | None = "compare.png") -> str:
    """The command line that reports these runs (what `gptwiz runs` and the welcome screen offer)."""
    parts = ["gptwiz", "report", *names]
    if str(runs_dir) != "runs":
        parts += ["--runs_dir", str(runs_dir)]
    if out:
        parts += ["--out", out]
    return " ".join(shlex.quote(p) for p in parts)
