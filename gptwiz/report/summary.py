"""The numbers beside the curves: one run's header; of several, the table of their final and best values and the
table of the settings that differ between them, split into narrower tables where a page or a terminal is narrow."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from statistics import median

from gptwiz.common import fmt
from gptwiz.common.inert import inert
from gptwiz.report.differences import Comparison
from gptwiz.report.series import RunSeries

COLUMNS = ("run", "state", "iters", "tokens", "train loss", "val loss", "best val", "tok/s", "peak mem")


@dataclass(frozen=True)
class Row:
    """One run's line of a table, as text."""
    cells: tuple[str, ...]


def _loss(x: float | None) -> str:
    return f"{x:.4f}" if fmt.known(x) else fmt.UNKNOWN


def row(run: RunSeries, name: str) -> Row:
    it = run.iter
    of = f"/{run.max_iters:,}" if run.max_iters else ""
    tokens = it * run.tokens_per_iter if run.tokens_per_iter else None
    tps = median(run.tokens_per_sec.ys) if len(run.tokens_per_sec) else None
    return Row((name, inert(run.state), f"{it:,}{of}", fmt.count(tokens), _loss(run.train_loss.last),
                _loss(run.val_loss.last), _loss(run.best_val_loss), fmt.count(tps),
                fmt.bytes_(run.peak_mem_bytes.last, binary=True)))


@dataclass(frozen=True)
class Table:
    """Columns and rows of text; the columns in `left` read as words (aligned left), the others as numbers."""
    columns: tuple[str, ...]
    rows: list[Row]
    left: frozenset[int] = frozenset({0})


def table(runs: Sequence[RunSeries], comparison: Comparison) -> Table:
    """The runs' results, one row a run, named as the comparison shows them."""
    return Table(COLUMNS, [row(run, name) for run, name in zip(runs, comparison.names)], frozenset({0, 1}))


def differences(comparison: Comparison) -> Table | None:
    """The settings that differ, one column a setting, one row a run; None where nothing differs."""
    if not comparison.differing:
        return None
    columns = ("run", *(label for label, _ in comparison.differing))
    rows = [Row((name, *(texts[i] for _, texts in comparison.differing))) for i, name in enumerate(comparison.names)]
    return Table(columns, rows, frozenset(range(len(columns))))


def split(summary: Table, width: int, measure: Callable[[str], int] = len, gap: int = 2) -> list[Table]:
    """The table as several, each at most `width` wide (as `measure` counts a cell, plus `gap` between columns):
    the columns that do not fit beside the others go to the next table, each led by the first column (the run's
    name), so that no line runs over and nothing is cut inside a word or a number."""
    cells = [summary.columns, *(r.cells for r in summary.rows)]
    widths = [max(measure(line[i]) for line in cells) for i in range(len(summary.columns))]
    groups: list[list[int]] = []
    for i in range(1, len(widths)):
        if groups and sum(widths[j] + gap for j in groups[-1]) + widths[0] + widths[i] + gap <= width:
            groups[-1].append(i)
        else:
            groups.append([i])
    return [Table(tuple(summary.columns[j] for j in [0, *group]),
                  [Row(tuple(r.cells[j] for j in [0, *group])) for r in summary.rows],
                  frozenset(k for k, j in enumerate([0, *group]) if j in summary.left))
            for group in groups or [[]]]


def header(run: RunSeries, shared: Sequence[str] = ()) -> list[str]:
    """One run's header lines: what it is (preset, data, settings), where it stands (state, best val loss)."""
    c = run.config
    model, train = c.get("model") or {}, c.get("train") or {}
    params = c.get("params")
    what = [f"preset {inert(c.get('preset') or fmt.UNKNOWN)}"]
    if isinstance(params, int) and params > 0:
        what.append(f"{params / 1e6:.1f}M parameters")
    if isinstance(model, dict) and isinstance(train, dict):
        what.append(f"batch {train.get('batch_size', fmt.UNKNOWN)} x block {model.get('block_size', fmt.UNKNOWN)}"
                    + (f" x accum {train['grad_accum']}" if train.get("grad_accum", 1) != 1 else ""))
        lr = train.get("learning_rate")
        if isinstance(lr, (int, float)):
            what.append(f"lr {fmt.learning_rate(lr)}")
    device = " ".join(inert(c[k]) for k in ("device", "dtype") if isinstance(c.get(k), str))
    if device:
        what.append(device)
    data = next((s for s in shared if s.startswith("data ")), None)
    of = f" of {run.max_iters:,}" if run.max_iters else ""
    where = [f"{'probe' if run.is_probe else 'state'} {run.state}", f"iteration {run.iter:,}{of}",
             f"best val loss {_loss(run.best_val_loss)}"]
    if data:
        where.insert(0, data)
    return [f"{inert(run.name)}: " + ", ".join(what), ", ".join(where)]
