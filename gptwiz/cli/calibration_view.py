"""`gptwiz runs --calibration`: the predicted final validation loss of each finished run against what it reached."""

from __future__ import annotations

import json
from pathlib import Path

from gptwiz.common.inert import inert
from gptwiz.runs.calibration import MAX_SHIFT, PRIOR_RUNS, Calibration


def show_calibration(cal: Calibration, runs_dir: str | Path, as_json: bool) -> int:
    if as_json:
        print(json.dumps(cal.to_json(), indent=2))
        return 0
    if not cal.runs:
        print(inert(f"No finished run in {runs_dir} has a quality record yet (quality.json: a run from random "
                    "weights on plain text writes one)"))
        return 0
    from rich.console import Console  # lazy: rich only when a table is printed
    from rich.table import Table  # lazy: rich only when a table is printed

    from gptwiz.common.rich_text import outside  # lazy: imports rich, only when a table is printed

    table = Table(title=outside(f"predicted and reached final val loss, runs in {runs_dir}"))
    for col in ("run", "iters", "predicted (80%)", "after probe", "reached", "error"):
        table.add_column(col, justify="left" if col == "run" else "right")
    for r in cal.runs:
        after = f"{r.after_probe:.2f} ({r.after_low:.2f}-{r.after_high:.2f})" if r.after_probe is not None else "-"
        mark = "" if r.inside else " *"
        table.add_row(outside(r.name), f"{r.iters:,}", f"{r.predicted:.2f} ({r.low:.2f}-{r.high:.2f})", after,
                      f"{r.reached:.2f}", f"{r.error:+.2f}{mark}")
    console = Console()
    console.print(table)
    inside = sum(r.inside for r in cal.runs)
    after = cal.median_abs_error_after
    console.print(f"median |error| {cal.median_abs_error:.3f} nats before the run"
                  + (f", {after:.3f} after its probe" if after is not None else "")
                  + f"; {inside} of {len(cal.runs)} inside the 80% band (* outside)", highlight=False)
    console.print(f"local correction: {cal.shift:+.3f} nats added to predictions from this folder (the mean miss "
                  f"shrunk by n/(n+{PRIOR_RUNS}), at most {MAX_SHIFT} either way)", style="dim", highlight=False)
    return 0
