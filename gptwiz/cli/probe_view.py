"""`gptwiz probe` on the terminal: a progress bar while the probe trains, then the verdict panel (or one JSON
object), and the exit code."""

from __future__ import annotations

import json
import signal
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeRemainingColumn

from gptwiz.common import fmt
from gptwiz.common.inert import inert
from gptwiz.common.rich_text import outside_markup
from gptwiz.training.probe import ProbeOptions, ProbeProgress, ProbeResult, run_probe
from gptwiz.wizard.probe_panel import render


def run_cli(opts: ProbeOptions, as_json: bool) -> int:
    """`gptwiz probe`: a progress bar, then the verdict panel (or one JSON object). Exit 1 on a fail verdict or
    when the probe was stopped from outside (no verdict)."""
    # Ctrl-C, SIGTERM and SIGHUP (a closed terminal) leave through run_probe's clean-up: the child is stopped,
    # not orphaned, and the temporary folder removed.
    interrupt = _Interrupt()
    signals = [signal.SIGINT, signal.SIGTERM] + ([signal.SIGHUP] if hasattr(signal, "SIGHUP") else [])
    previous = {sig: signal.signal(sig, interrupt) for sig in signals}
    try:
        return _run_cli(opts, as_json, interrupt)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


class _Interrupt:
    """A signal handler that raises KeyboardInterrupt and remembers it: an interrupt raised while Python runs a
    finalizer or a weakref callback is printed as "Exception ignored" and lost, so each progress report and the
    end of the probe raise it again."""

    def __init__(self) -> None:
        self.seen = False

    def __call__(self, signum: int, frame: Any) -> None:
        self.seen = True
        raise KeyboardInterrupt

    def again(self) -> None:
        if self.seen:
            raise KeyboardInterrupt


def _exit_code(result: ProbeResult) -> int:
    """1 for a fail, and for a probe stopped from outside (`gptwiz stop`: no verdict to go on); else 0."""
    return 1 if result.verdict in ("fail", "cancelled") else 0


def _run_cli(opts: ProbeOptions, as_json: bool, interrupt: _Interrupt) -> int:
    if as_json:
        result = run_probe(opts, lambda p: interrupt.again())
        interrupt.again()
        print(json.dumps(result.to_json(), indent=2))
        return _exit_code(result)
    console = Console()
    progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("loss [cyan]{task.fields[loss]}[/] {task.fields[tps]} tok/s mem {task.fields[mem]}"),
                        TimeRemainingColumn(), console=console, transient=True)
    # The description is read as markup by its column: the preset's path is escaped, and inert.
    task = progress.add_task(outside_markup(f"probe {opts.config_file}"), total=opts.iters, loss=fmt.UNKNOWN, tps=fmt.UNKNOWN,
                             mem=fmt.UNKNOWN)
    with progress:
        result = run_probe(opts, lambda p: (interrupt.again(), _show(progress, task, p)))
    interrupt.again()
    console.print(render(result))
    return _exit_code(result)


def _show(progress: Progress, task: TaskID, p: ProbeProgress) -> None:
    """One update of the bar: an iteration's figures, or a retry's message (and the bar starts over)."""
    if p.message:
        progress.console.print(inert(p.message), markup=False, highlight=False)  # the probe process's words
        progress.reset(task, total=p.iters, loss=fmt.UNKNOWN, tps=fmt.UNKNOWN, mem=fmt.UNKNOWN)
        return
    progress.update(task, completed=p.iter, loss=f"{p.loss:.4f}" if p.loss is not None else fmt.UNKNOWN,
                    tps=fmt.count(p.tokens_per_sec or None), mem=fmt.gib(p.peak_mem_bytes or None))
