"""SIGINT and SIGTERM during training: a flag the loop reads, never an exception thrown into it."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from typing import Any


class StopRequest:
    """SIGINT/SIGTERM only set a flag: the loop finishes its step (or drops the evaluation under way, at its next
    batch) and checkpoints before leaving."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict[signal.Signals, Any] = {}

    @contextlib.contextmanager
    def listening(self) -> Iterator[StopRequest]:
        """The signals set the flag while the block runs; their previous handlers come back after it."""
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread: the caller handles stopping
                pass
        try:
            yield self
        finally:
            for sig, handler in self._previous.items():
                signal.signal(sig, handler)
            self._previous.clear()

    def _handle(self, signum: int, frame: Any) -> None:
        self.requested = True
