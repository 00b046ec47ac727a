"""Progress of a preparation: the interface prepare() reports to, and the rich bar that both `gptwiz prepare`
and the plain wizard show."""

from __future__ import annotations

import time
from typing import Any


class PrepareProgress:
    """Told how far preparation has got; this one shows nothing."""

    def start(self, files: int, nbytes: int) -> None: ...
    def advance(self, files: int, nbytes: int, tokens: int) -> None: ...
    def stop(self) -> None: ...


class RichPrepareProgress(PrepareProgress):
    """A bar over the corpus bytes, with files, MB and tokens per second."""

    def __init__(self) -> None:
        self.progress: Any = None
        self.tokens = 0
        self.started = 0.0

    def start(self, files: int, nbytes: int) -> None:
        # rich loads only once a bar is shown: the package is imported by paths that must start fast (the wizard).
        from rich.progress import (  # lazy: rich only when progress is shown
            BarColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.progress = Progress(
            TextColumn("[bold]preparing"), BarColumn(),
            TextColumn("{task.fields[files]}/{task.fields[total_files]} files"),
            TextColumn("{task.fields[mb]}/{task.fields[total_mb]} MB"),
            TextColumn("[cyan]{task.fields[tps]}[/] tok/s"),
            TimeElapsedColumn(), TimeRemainingColumn(),
        )
        self.task = self.progress.add_task("prepare", total=max(nbytes, 1), files=0, total_files=files,
                                           mb="0.0", total_mb=f"{nbytes / 1e6:.1f}", tps="-")
        self.files = 0
        self.started = time.perf_counter()
        self.progress.start()

    def advance(self, files: int, nbytes: int, tokens: int) -> None:
        if self.progress is None:
            return
        self.files += files
        self.tokens += tokens
        self.progress.advance(self.task, nbytes)
        done = self.progress.tasks[0].completed
        rate = self.tokens / max(time.perf_counter() - self.started, 1e-9)
        self.progress.update(self.task, files=self.files, mb=f"{done / 1e6:.1f}", tps=f"{rate:,.0f}")

    def stop(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None
