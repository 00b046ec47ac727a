"""How `gptwiz train` shows a run in the terminal that started it: a rich live display, or plain lines with
--quiet (the trainer only calls a Reporter; the terminal is the front-end's)."""

from __future__ import annotations

import sys
from typing import Any

from gptwiz.common import fmt
from gptwiz.common.inert import inert
from gptwiz.training.options import RunConfig, TrainResult
from gptwiz.training.reporting import Reporter


class PlainReporter(Reporter):
    """One line every `every` iterations and at each evaluation; for logs, pipes and --quiet."""

    def __init__(self, every: int = 10, stream: Any = None):
        self.every = every
        self.stream = stream or sys.stdout

    def _print(self, text: str) -> None:
        print(inert(text), file=self.stream, flush=True)  # a message may name a preset, a file, an error

    def start(self, cfg: RunConfig, start_iter: int) -> None:
        self.max_iters = cfg.train.max_iters

    def step(self, record: dict[str, Any]) -> None:
        it = record["iter"]
        if it % self.every == 0 or it == self.max_iters or it == 1:
            self._print(f"iter {it}/{self.max_iters} loss {record['loss']:.4f} lr {record['lr']:.2e} "
                        f"{fmt.count(record['tokens_per_sec'])} tok/s mfu {100 * record['mfu']:.1f}%")

    def eval(self, record: dict[str, Any]) -> None:
        self._print(f"eval iter {record['iter']}: train {record['train_loss']:.4f} val {record['val_loss']:.4f}")

    def log(self, message: str) -> None:
        if not message.startswith("eval iter"):
            self._print(message)

    def end(self, result: TrainResult) -> None:
        pass


class RichReporter(Reporter):
    """A progress bar with loss, learning rate, tokens/s and ETA, redrawn in place."""

    def __init__(self) -> None:
        from rich.console import Console  # lazy: rich only for the live display, never for --quiet

        self.console = Console()
        self.progress: Any = None
        self.val = fmt.UNKNOWN

    def start(self, cfg: RunConfig, start_iter: int) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn  # as above

        self.progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("loss [cyan]{task.fields[loss]}[/] val {task.fields[val]} lr {task.fields[lr]} "
                       "{task.fields[tps]} tok/s"),
            TimeRemainingColumn(), console=self.console, transient=False,
        )
        from gptwiz.common.rich_text import outside_markup  # lazy: imports rich, as above

        # The description is read as markup by the column above: the name is escaped, and inert.
        self.task = self.progress.add_task(outside_markup(cfg.name), total=cfg.train.max_iters, completed=start_iter,
                                           loss=fmt.UNKNOWN, val=fmt.UNKNOWN, lr=fmt.UNKNOWN, tps=fmt.UNKNOWN)
        self.progress.start()

    def step(self, record: dict[str, Any]) -> None:
        if self.progress is not None:
            self.progress.update(self.task, completed=record["iter"], loss=f"{record['loss']:.4f}",
                                 lr=f"{record['lr']:.2e}", tps=fmt.count(record["tokens_per_sec"]))

    def eval(self, record: dict[str, Any]) -> None:
        if self.progress is not None:
            self.progress.update(self.task, val=f"{record['val_loss']:.4f}")

    def log(self, message: str) -> None:
        console = self.progress.console if self.progress is not None else self.console
        console.print(inert(message), markup=False, highlight=False)  # outside text in it: no markup, inert

    def end(self, result: TrainResult) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None
