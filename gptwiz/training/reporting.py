"""What the console (or any other listener) hears of a run: the trainer's `Reporter` interface.

Light on purpose: the console's and the trackers' reporters subclass it without importing the trainer (torch).
"""

from __future__ import annotations

from typing import Any

from gptwiz.training.options import RunConfig, TrainResult


class Reporter:
    """What the console sees of a run; the run folder gets everything regardless. Called on rank 0 only."""

    def start(self, cfg: RunConfig, start_iter: int) -> None: ...
    def step(self, record: dict[str, Any]) -> None: ...
    def eval(self, record: dict[str, Any]) -> None: ...
    def log(self, message: str) -> None: ...
    def end(self, result: TrainResult) -> None: ...
