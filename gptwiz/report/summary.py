"""The numbers beside the curves: one run's header, and the table of final and best values of several."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from statistics import median

from gptwiz.common import fmt
from gptwiz.common.inert import inert
from gptwiz.report.series import RunSeries

COLUMNS = ("run", "label", "state", "iters", "tokens", "train loss", "val loss", "best val", "tok/s", "peak mem")


@dataclass(frozen=True)
class Row:
    """One run's line of the table, as text."""
    cells: tuple[str, ...]


def _loss(x: float | None) -> str:
    return f"{x:.4f}" if fmt.known(x) else fmt.UNKNOWN


def row(run: RunSeries, label: str) -> Row:
    it = run.iter
    of = f"/{run.max_iters:,}" if run.max_iters else ""
    tokens = it * run.tokens_per_iter if run.tokens_per_iter else None
    tps = median(run.tokens_per_sec.ys) if len(run.tokens_per_sec) else None
    return Row((inert(run.name), label, inert(run.state), f"{it:,}{of}", fmt.count(tokens), _loss(run.train_loss.last),
                _loss(run.val_loss.last), _loss(run.best_val_loss), fmt.count(tps),
                fmt.bytes_(run.peak_mem_bytes.last, binary=True)))


@dataclass(frozen=True)
class Table:
    columns: tuple[str, ...]
    rows: list[Row]


def table(runs: Sequence[RunSeries], labels: Sequence[str]) -> Table:
    """One row a run; without the label column where the labels are only the runs' names."""
    rows = [row(run, label) for run, label in zip(runs, labels)]
    if [inert(r.name) for r in runs] != list(labels):
        return Table(COLUMNS, rows)
    return Table(COLUMNS[:1] + COLUMNS[2:], [Row(r.cells[:1] + r.cells[2:]) for r in rows])


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
