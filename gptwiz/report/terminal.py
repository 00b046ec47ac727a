"""The comparison drawn in the terminal, by plotext as the dashboard's loss chart is (braille lines, real axes),
with its legend, the settings that differ and the results under it: `gptwiz report` without `--out`.

Everything fits the terminal's width: a table too wide for it goes on as a second table (each led by the runs'
names), and a cell wider than the terminal is shortened in its middle, so that the terminal never wraps a line
inside a word or a number.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.cells import cell_len

from gptwiz.report.differences import ELLIPSIS, Comparison
from gptwiz.report.series import RunSeries, ema
from gptwiz.report.summary import Row, Table, differences, split, table
from gptwiz.runs.snapshot import downsample

# plotext's colours, in the order the runs take them (the dashboard draws train cyan and val orange), and the
# marks that tell the runs apart where there is no colour (output to a pipe or a file): each run's line and its
# evaluations' points.
COLORS = ("cyan", "orange", "green", "magenta", "blue", "red", "yellow", "white")
MARKERS = ("•", "+", "x", "*", "o", "#", "@", "%")
VAL_MARKERS = ("1", "2", "3", "4", "5", "6", "7", "8")
GAP = 2  # spaces between a table's columns


def chart(runs: Sequence[RunSeries], comparison: Comparison, width: int, height: int, smooth: float = 0.6,
          log_y: bool = False, color: bool = True) -> str:
    """The loss of each run against tokens seen (iterations when a run's config does not say its tokens per
    iteration): the train loss as a line, the evaluations' val loss as points of the same colour (or marks of the
    run's own, without colour). `legend` names the lines."""
    import plotext as plt  # the dashboard's charting library; loaded only by the command that draws

    plt.clear_figure()
    plt.plotsize(max(40, width), max(12, height))
    by_tokens = all(r.tokens_per_iter for r in runs)
    drawn = False
    for i, run in enumerate(runs):
        scale = run.tokens_per_iter if by_tokens else 1.0
        train = run.train_loss
        if len(train):
            ys = ema(train.ys, smooth) if smooth > 0 and len(train) > 2 else train.ys
            xs, ys = downsample(train.scaled_x(scale), ys, max_points=2 * width if color else width)
            plt.plot(xs, ys, marker="braille" if color else MARKERS[i % len(MARKERS)],
                     color=COLORS[i % len(COLORS)] if color else None)
            drawn = True
    for i, run in enumerate(runs):  # the evaluations over every line: a few points, each of them telling
        if len(run.val_loss):
            plt.scatter(run.val_loss.scaled_x(run.tokens_per_iter if by_tokens else 1.0), run.val_loss.ys,
                        marker="●" if color else VAL_MARKERS[i % len(VAL_MARKERS)],
                        color=COLORS[i % len(COLORS)] if color else None)
            drawn = True
    if not drawn:
        return "no iterations recorded yet"
    if log_y:
        plt.yscale("log")
    plt.xlabel("tokens seen" if by_tokens else "iteration")
    smoothed = f" (EMA {smooth:g})" if smooth > 0 else ""
    plt.title(f"loss: lines train{smoothed}, {'dots' if color else 'digits'} val")
    drawing = str(plt.build())
    return drawing if color else str(plt.uncolorize(drawing))


def clip(text: str, cells: int) -> str:
    """`text` in at most `cells` terminal cells: its middle cut out and marked where it is longer."""
    if cell_len(text) <= cells:
        return text
    head, tail = text[: len(text) // 2], text[len(text) // 2:]
    while head and tail and cell_len(head) + cell_len(tail) + cell_len(ELLIPSIS) > cells:
        if len(head) >= len(tail):
            head = head[:-1]
        else:
            tail = tail[1:]
    return head + ELLIPSIS + tail


def legend(comparison: Comparison, width: int, color: bool = True) -> list[str]:
    """Which line is which run: each run's marks (or colour), its name and, where the chart's labels are what
    differs, its label; as many to a line as fit."""
    import plotext as plt  # the dashboard's charting library; loaded only by the command that draws

    lines: list[str] = []
    used = 0
    for i, (name, label) in enumerate(zip(comparison.names, comparison.labels)):
        marks = "━ ●  " if color else f"{MARKERS[i % len(MARKERS)]} {VAL_MARKERS[i % len(VAL_MARKERS)]}  "
        text = clip(name if label == name else f"{name}: {label}", max(8, width - 8))
        size = cell_len(marks + text)
        if not lines or used + 3 + size > width:
            lines.append("")
            used = -3
        lines[-1] += ("   " if used > 0 else "") + (str(plt.colorize(marks, COLORS[i % len(COLORS)])) if color
                                                      else marks) + text
        used += 3 + size
    return lines


def _fit(summary: Table, width: int) -> Table:
    """The table with each cell short enough for its column to fit beside the runs' names."""
    key = max(8, width // 3)
    rest = max(8, width - min(key, max(cell_len(r.cells[0]) for r in summary.rows)) - GAP)
    return Table(summary.columns, [Row((clip(r.cells[0], key), *(clip(c, rest) for c in r.cells[1:])))
                                   for r in summary.rows], summary.left)


def text_table(summary: Table) -> str:
    """Columns aligned with spaces, words to the left, numbers to the right."""
    cells = [summary.columns, *(r.cells for r in summary.rows)]
    widths = [max(cell_len(row[i]) for row in cells) for i in range(len(summary.columns))]

    def pad(text: str, i: int) -> str:
        room = " " * (widths[i] - cell_len(text))
        return text + room if i in summary.left else room + text

    return "\n".join((" " * GAP).join(pad(c, i) for i, c in enumerate(row)).rstrip() for row in cells)


def tables(summary: Table, width: int) -> list[str]:
    """The table as it fits `width`: split into as many as it takes."""
    return [text_table(part) for part in split(_fit(summary, width), width, cell_len, GAP)]


def _wrapped(items: Sequence[str], width: int, lead: str) -> list[str]:
    """`lead` and the items, comma-separated, on as many lines as fit `width`, never breaking an item."""
    lines = [lead.rstrip()]
    for i, item in enumerate(items):
        piece = clip(item, width - 2) + ("," if i < len(items) - 1 else "")
        if cell_len(lines[-1]) + 1 + cell_len(piece) > width:
            lines.append(" ")
        lines[-1] += " " + piece
    return lines


def render(runs: Sequence[RunSeries], comparison: Comparison, width: int, height: int, smooth: float = 0.6,
           log_y: bool = False, color: bool = True) -> str:
    """The chart and its legend, what differs between the runs, their results, and what they share."""
    parts = [chart(runs, comparison, width, height, smooth, log_y, color), "\n".join(legend(comparison, width, color))]
    differ = differences(comparison)
    if differ is not None:
        parts += ["settings that differ:\n" + "\n\n".join(tables(differ, width))]
    parts += ["results:\n" + "\n\n".join(tables(table(runs, comparison), width))]
    if comparison.shared and len(runs) > 1:
        parts += ["\n".join(_wrapped(comparison.shared, width, "alike in all:"))]
    return "\n\n".join(parts)
