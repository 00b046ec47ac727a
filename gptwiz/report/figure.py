"""The report's figure, drawn by matplotlib: one run's six panels, or several runs' losses on shared axes.

matplotlib is imported by `draw` alone (the Agg backend, no display needed): the rest of gptwiz never loads it.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gptwiz.common import fmt
from gptwiz.common.atomic import atomic_write
from gptwiz.report.differences import Comparison
from gptwiz.report.series import Curve, RunSeries, ema
from gptwiz.report.summary import Table, differences, header, split, table

GIB = 1024**3
# The shared settings a comparison's title names (the table and the page have the rest).
_TITLE_SETTINGS = ("preset", "data", "batch", "block", "accum", "iters", "dtype")


@dataclass(frozen=True)
class Style:
    """How the curves are drawn: `smooth` is the train loss's EMA weight of the past (0: raw), `log_y` a
    logarithmic loss axis."""
    smooth: float = 0.6
    log_y: bool = False


def _tokens_axis(ax: Any) -> None:
    from matplotlib.ticker import FuncFormatter  # optional dependency (extra: report)

    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _pos: fmt.count(x)))
    ax.set_xlabel("tokens seen")


def _iters_axis(ax: Any) -> None:
    from matplotlib.ticker import FuncFormatter, MaxNLocator  # optional dependency (extra: report)

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _pos: f"{x:,.0f}"))
    ax.set_xlabel("iteration")


def _empty(ax: Any, what: str) -> None:
    ax.text(0.5, 0.5, f"no {what} recorded", transform=ax.transAxes, ha="center", va="center", color="grey")


def _train_loss(ax: Any, xs: list[float], curve: Curve, style: Style, color: str, label: str | None) -> None:
    """The train loss: raw and faint behind its smoothed line when smoothing, else raw alone."""
    if style.smooth > 0 and len(curve) > 2:
        ax.plot(xs, curve.ys, color=color, alpha=0.22, linewidth=0.8)
        ax.plot(xs, ema(curve.ys, style.smooth), color=color, linewidth=1.6, label=label)
    else:
        ax.plot(xs, curve.ys, color=color, linewidth=1.2, label=label)


def _loss_axes(ax: Any, style: Style) -> None:
    ax.set_ylabel("loss")
    if style.log_y:
        from matplotlib.ticker import FuncFormatter, LogFormatter  # optional dependency (extra: report)

        ax.set_yscale("log")
        # Losses as numbers (4, 6, 10), not 6 x 10^0; the in-between ticks labelled while they are few.
        ax.yaxis.set_major_formatter(FuncFormatter(lambda y, _pos: f"{y:g}"))
        ax.yaxis.set_minor_formatter(LogFormatter(labelOnlyBase=False, minor_thresholds=(1, 0.5)))
    ax.grid(True, alpha=0.3)


def _single(fig: Any, run: RunSeries, comparison: Comparison, style: Style) -> None:
    axes = fig.subplots(2, 3)
    per_token = run.tokens_per_iter
    smoothed = f" (EMA {style.smooth:g})" if style.smooth > 0 and len(run.train_loss) > 2 else ""
    for ax, by_tokens in ((axes[0][0], False), (axes[0][1], True)):
        if by_tokens and not per_token:
            _empty(ax, "tokens per iteration (config.json)")
            ax.set_title("loss against tokens seen")
            continue
        scale = per_token if by_tokens else 1.0
        if len(run.train_loss):
            _train_loss(ax, run.train_loss.scaled_x(scale), run.train_loss, style, "tab:blue",
                        ("probe loss" if run.is_probe else "train loss") + smoothed)
        if len(run.val_loss):
            ax.plot(run.val_loss.scaled_x(scale), run.val_loss.ys, "o-", color="tab:orange", markersize=4,
                    linewidth=1.2, label="val loss")
        if len(run.probe_loss) and not run.is_probe and not by_tokens:
            ax.plot(run.probe_loss.xs, run.probe_loss.ys, "--", color="tab:grey", linewidth=1.0,
                    label=f"probe ({len(run.probe_loss)} iters)")
        if not run.has_history:
            _empty(ax, "loss")
        (_tokens_axis if by_tokens else _iters_axis)(ax)
        _loss_axes(ax, style)
        ax.set_title("loss against tokens seen" if by_tokens else "loss against iterations")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="upper right", fontsize="small")
    panels = (
        (axes[0][2], run.lr, 1.0, "learning rate", "learning rate", "tab:green"),
        (axes[1][0], run.tokens_per_sec, 1.0, "tokens/s", "throughput", "tab:purple"),
        (axes[1][1], run.mfu, 100.0, "MFU (%)", "model FLOPs utilisation", "tab:red"),
        (axes[1][2], run.peak_mem_bytes, 1 / GIB, "peak memory (GiB)", "peak memory", "tab:brown"),
    )
    for ax, curve, factor, ylabel, title, color in panels:
        if len(curve):
            ax.plot(curve.xs, [y * factor for y in curve.ys], color=color, linewidth=1.2,
                    label="recorded" if curve is run.lr else None)
        else:
            _empty(ax, title)
        if curve is run.lr and run.schedule is not None:
            xs, ys = run.schedule.curve()
            # A record's iteration counts completed steps: its rate is the schedule's at the step before.
            shifted = [(x + 1, y) for x, y in zip(xs, ys) if x < run.schedule.max_iters]
            ax.plot([p[0] for p in shifted], [p[1] for p in shifted], ":", color="grey", linewidth=1.0,
                    label="schedule")
            ax.legend(loc="upper right", fontsize="small")
        if curve is run.peak_mem_bytes and len(curve):
            ax.set_ylim(0, 1.1 * max(curve.ys) / GIB)  # from zero: a step of a few MiB is not a doubling
        if curve is run.tokens_per_sec:
            from matplotlib.ticker import FuncFormatter  # optional dependency (extra: report)

            ax.yaxis.set_major_formatter(FuncFormatter(lambda y, _pos: fmt.count(y)))
        if curve is run.lr:
            ax.ticklabel_format(axis="y", style="sci", scilimits=(-2, 2))
        _iters_axis(ax)
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.grid(True, alpha=0.3)
    lines = header(run, comparison.shared)
    fig.suptitle(lines[0] + "\n" + lines[1], fontsize="medium")


# The comparison's layout, in inches: the loss panels keep their height however many runs there are; the legend
# and the tables below them grow with the runs, and the figure with them.
_WIDTH = 14.0
_PLOTS_HEIGHT = 4.6
_LEGEND_ROW = 0.3
_TABLE_ROW = 0.24
_TABLE_TITLE = 0.45
_TABLE_FONT = 9
_TABLE_ROOM = 0.94  # the part of the figure's width a table may take (the rest: the layout's margins)


def _text_width(text: str, size: float, weight: str = "normal") -> float:
    """The width `text` takes at `size` points, in inches."""
    from matplotlib.font_manager import FontProperties  # optional dependency (extra: report)
    from matplotlib.textpath import text_to_path  # optional dependency (extra: report)

    font = FontProperties(size=size, weight=weight)
    return float(text_to_path.get_text_width_height_descent(text, font, ismath=False)[0]) / 72


def _cell_width(text: str, bold: bool = False) -> float:
    """A table cell's width in inches: its text's, padded as matplotlib pads it (a tenth each side), and a little."""
    return _text_width(text, _TABLE_FONT, "bold" if bold else "normal") * 1.2 + 0.08


def _column_widths(summary: Table) -> list[float]:
    """Each column's width in inches: its widest cell (the runs' names are bold)."""
    return [max(_cell_width(summary.columns[i]), *(_cell_width(r.cells[i], i == 0) for r in summary.rows))
            for i in range(len(summary.columns))]


def _tables(runs: Sequence[RunSeries], comparison: Comparison) -> list[tuple[str, Table]]:
    """The tables under the curves, each narrow enough for the figure: the results, then the settings that
    differ (where the labels are the runs' names, these say what the legend does not)."""
    out = []
    wide = _WIDTH * _TABLE_ROOM
    differ = differences(comparison)
    for title, whole in (("results", table(runs, comparison)), ("settings that differ", differ)):
        if whole is None:
            continue
        # Split by hundredths of an inch, each cell measured as if bold (the names are).
        parts = split(whole, int(wide * 100), lambda text: round(_cell_width(text, True) * 100), gap=0)
        out += [(title if i == 0 else f"{title} (continued)", part) for i, part in enumerate(parts)]
    return out


def _draw_table(ax: Any, title: str, summary: Table, colors: Sequence[str]) -> None:
    """One table, as wide as its text (centred), filling its axes' height; the run names in their colours."""
    ax.axis("off")
    widths = _column_widths(summary)
    width = min(1.0, sum(widths) / (_WIDTH * _TABLE_ROOM))
    t = ax.table(cellText=[list(r.cells) for r in summary.rows], colLabels=list(summary.columns),
                 cellLoc="center", bbox=[(1 - width) / 2, 0, width, 1])
    t.auto_set_font_size(False)
    t.set_fontsize(_TABLE_FONT)
    t.auto_set_column_width(list(range(len(summary.columns))))
    for i, color in enumerate(colors, start=1):
        t[i, 0].get_text().set_color(color)
        t[i, 0].get_text().set_fontweight("bold")
    ax.set_title(title, fontsize="medium", loc="center")


def _legend(ax: Any, comparison: Comparison, colors: Sequence[str], columns: int) -> None:
    """Which curve is which run, in an axes of its own under the curves: it never covers them."""
    from matplotlib.lines import Line2D  # optional dependency (extra: report)

    ax.axis("off")
    handles = [Line2D([], [], color=c, marker="o", markersize=4, linewidth=1.6) for c in colors]
    ax.legend(handles, comparison.labels, loc="center", ncols=columns, frameon=False, fontsize="medium",
              columnspacing=2.5)


def legend_columns(labels: Sequence[str]) -> int:
    """As many legend entries to a row as fit the figure's width (an entry: its line, its label, a space)."""
    widest = max(_text_width(label, 10) for label in labels) + 1.2
    return max(1, min(len(labels), int(_WIDTH * _TABLE_ROOM // widest)))


def _several(fig: Any, runs: Sequence[RunSeries], comparison: Comparison, style: Style) -> None:
    colors = [f"C{i % 10}" for i in range(len(runs))]
    columns = legend_columns(comparison.labels)
    tables = _tables(runs, comparison)
    heights = [_PLOTS_HEIGHT, _LEGEND_ROW * (-(-len(runs) // columns)) + 0.2,
               *(_TABLE_TITLE + _TABLE_ROW * (len(t.rows) + 1) for _, t in tables)]
    fig.set_size_inches(_WIDTH, sum(heights) + 0.6)
    grid = fig.add_gridspec(len(heights), 2, height_ratios=heights)
    train_ax, val_ax = fig.add_subplot(grid[0, 0]), fig.add_subplot(grid[0, 1])
    by_tokens = all(r.tokens_per_iter for r in runs)  # runs of different batches compare fairly by tokens
    for run, label, color in zip(runs, comparison.labels, colors):
        scale = run.tokens_per_iter if by_tokens else 1.0
        if len(run.train_loss):
            _train_loss(train_ax, run.train_loss.scaled_x(scale), run.train_loss, style, color, label)
        if len(run.val_loss):
            val_ax.plot(run.val_loss.scaled_x(scale), run.val_loss.ys, "o-", color=color, markersize=4,
                        linewidth=1.4, label=label)
    smoothed = f" (EMA {style.smooth:g})" if style.smooth > 0 else ""
    for ax, title, what in ((train_ax, "train loss" + smoothed, "train loss"), (val_ax, "val loss", "val loss")):
        (_tokens_axis if by_tokens else _iters_axis)(ax)
        _loss_axes(ax, style)
        ax.set_title(title)
        if not ax.get_lines():
            _empty(ax, what)
    _legend(fig.add_subplot(grid[1, :]), comparison, colors, columns)
    for row, (title, summary) in enumerate(tables, start=2):
        _draw_table(fig.add_subplot(grid[row, :]), title, summary, colors)
    title = f"{len(runs)} runs compared"
    alike = [s for s in comparison.shared if s.split(" ")[0] in _TITLE_SETTINGS]
    if alike:
        title += "; all with " + ", ".join(alike)
    fig.suptitle(title, fontsize="medium")


def draw(runs: Sequence[RunSeries], comparison: Comparison, style: Style) -> Any:
    """The matplotlib Figure of one run or of several."""
    import matplotlib  # optional dependency (extra: report)

    matplotlib.use("Agg")  # files only: no display, whatever the environment says
    from matplotlib.figure import Figure  # optional dependency (extra: report)

    several = len(runs) > 1
    fig = Figure(figsize=(_WIDTH, 8), layout="constrained", dpi=100)  # several runs: sized by _several
    # The labels hold outside text (names, made inert by the report's table and comparison): a '$' in a folder's
    # name is a character, not the start of mathtext that could fail to parse.
    with matplotlib.rc_context({"text.parse_math": False}):
        (_several if several else _single)(fig, runs if several else runs[0], comparison, style)  # type: ignore[arg-type]
    return fig


def save(fig: Any, out: Path) -> None:
    """PNG or SVG by the file's suffix (written whole or not at all), without matplotlib's web address in the
    metadata."""
    kind = out.suffix.lower().lstrip(".")
    metadata = {"Software": None} if kind == "png" else {"Creator": None}
    atomic_write(out, lambda f: fig.savefig(f, format=kind, metadata=metadata))


def png_bytes(fig: Any) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()
