"""status.json as a trainer keeps it: its state, what it is busy with, and a heartbeat at most once a second."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from gptwiz.runs.paths import RunPaths
from gptwiz.runs.status import write_status

# status.json's heartbeat: at most once a second, during training steps and evaluations alike.
HEARTBEAT_S = 1.0


class StatusWriter:
    """The fields of status.json (gptwiz.runs.status.RunStatus), written by rank 0 (`writes`); `progress` gives
    the iteration, max_iters and last loss at each write."""

    def __init__(self, paths: RunPaths, writes: bool, progress: Callable[[], dict[str, Any]], **fields: Any):
        self.paths = paths
        self.writes = writes
        self.progress = progress
        self.fields: dict[str, Any] = dict(fields)
        self.last_write = 0.0  # time.monotonic() of the last heartbeat

    @property
    def error(self) -> str | None:
        return self.fields.get("error")

    def set(self, state: str, **extra: Any) -> None:
        """The run's state (and any fields in `extra`), written at once."""
        if not self.writes:
            return
        self.fields.update(extra)
        if state != "running":  # what the trainer is busy with says nothing once it has ended
            self.fields.update(phase=None, eval_done=None, eval_total=None)
        self.fields.update(state=state, **self.progress())
        write_status(self.paths, self.fields)

    def heartbeat_due(self) -> bool:
        return time.monotonic() - self.last_write > HEARTBEAT_S

    def phase(self, phase: str, now: bool = False, **extra: Any) -> None:
        """What the run is busy with ("training", "evaluating", "checkpointing"), in status.json at once when `now`
        (the start of an evaluation after the first), else at most once a second like every heartbeat: the start's
        status is not rewritten before the run's first checkpoint exists."""
        self.fields.update(phase=phase, **{"eval_done": None, "eval_total": None, **extra})
        if now or self.heartbeat_due():
            self.set("running")
            self.last_write = time.monotonic()

    def heartbeat(self) -> None:
        """At most once a second: viewers see the iteration advance without a write per step."""
        if self.heartbeat_due():
            self.phase("training")
