"""The comparison drawn in the terminal, by plotext as the dashboard's loss chart is (braille lines, real axes),
with the table of final and best values under it: `gptwiz report` without `--out`."""

from __future__ import annotations

from collections.abc import Sequence

from gptwiz.report.differences import Comparison
from gptwiz.report.series import RunSeries, ema
from gptwiz.report.summary import Table, table
from gptwiz.runs.snapshot import downsample

# plotext's colours, in the order the runs take them (the dashboard draws train cyan and val orange), and the
# markers that tell the runs apart where there is no colour (output to a pipe or a file).
COLORS = ("cyan", "orange", "green", "magenta", "blue", "red", "yellow", "white")
MARKERS = ("•", "+", "x", "*", "o", "#", "@", "%")


def chart(runs: Sequence[RunSeries], comparison: Comparison, width: int, height: int, smooth: float = 0.6,
          log_y: bool = False, color: bool = True) -> str:
    """The loss of each run against tokens seen (iterations when a run's config does not say its tokens per
    iteration): the train loss as a line, the evaluations' val loss as dots of the same colour."""
    import plotext as plt  # the dashboard's charting library; loaded only by the command that draws

    plt.clear_figure()
    plt.plotsize(max(40, width), max(12, height))
    by_tokens = all(r.tokens_per_iter for r in runs)
    ys_drawn: list[float] = []
    for i, (run, label) in enumerate(zip(runs, comparison.labels)):
        c = COLORS[i % len(COLORS)] if color else None
        line = "braille" if color else MARKERS[i % len(MARKERS)]
        scale = run.tokens_per_iter if by_tokens else 1.0
        train = run.train_loss
        if len(train):
            ys = ema(train.ys, smooth) if smooth > 0 and len(train) > 2 else train.ys
            xs, ys = downsample(train.scaled_x(scale), ys, max_points=2 * width if color else width)
            plt.plot(xs, ys, marker=line, color=c, label=label)
            ys_drawn += ys
        if len(run.val_loss):
            plt.scatter(run.val_loss.scaled_x(scale), run.val_loss.ys, marker="●" if color else "O", color=c,
                        label=None if len(train) else label)
            ys_drawn += run.val_loss.ys
    if not ys_drawn:
        return "no iterations recorded yet"
    if log_y:
        plt.yscale("log")
    else:  # room above the curves for the legend, which plotext draws inside the plot, top left
        low, high = min(ys_drawn), max(ys_drawn)
        rows = max(12, height) - 5
        plt.ylim(low, high + (high - low or 1.0) * (len(runs) + 0.5) / max(1, rows - len(runs)))
    plt.xlabel("tokens seen" if by_tokens else "iteration")
    smoothed = f" (EMA {smooth:g})" if smooth > 0 else ""
    plt.title(f"loss: lines train{smoothed}, dots val")
    drawing = str(plt.build())
    return drawing if color else str(plt.uncolorize(drawing))


def text_table(summary: Table) -> str:
    """Columns aligned with spaces, numbers to the right."""
    cells = [summary.columns, *(r.cells for r in summary.rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(summary.columns))]
    left = {i for i, c in enumerate(summary.columns) if c in ("run", "label", "state")}
    lines = ["  ".join(c.ljust(w) if i in left else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))).rstrip()
             for row in cells]
    return "\n".join(lines)


def render(runs: Sequence[RunSeries], comparison: Comparison, width: int, height: int, smooth: float = 0.6,
           log_y: bool = False, color: bool = True) -> str:
    return chart(runs, comparison, width, height, smooth, log_y, color) + "\n\n" + text_table(
        table(runs, comparison.labels))
