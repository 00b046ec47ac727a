"""Fault hooks: environment variables that make production code fail on purpose, for the tests only.

The tests set them (tests/faults/, tests/test_distributed.py, tests/test_probe.py) to put a failure at a chosen
moment; a user has no reason to. Each is off unless set, and is read only through the functions below, by the
code that acts on it:

GPTWIZ_FAULT_ATOMIC="ACTION:PATTERN" (`atomic_fault`, acted on by gptwiz.common.atomic.atomic_write)
    Acts on each atomic write of a file whose name matches the glob PATTERN (every file if it is empty) and
    which already exists (so a run's first checkpoint is always written), once the new content is in the
    temporary file and before it replaces the old one. ACTION is sleep=SECONDS (widen the window a kill or a
    signal can hit), kill (SIGKILL the process there), or enospc (fail as a full disk does).
GPTWIZ_FAULT_EXPORT="sleep=SECONDS" (`export_hold`, acted on by gptwiz.export.target)
    An export sleeps once its files are written into its temporary folder, before that folder is renamed into
    place (holding the lock of its --out folder all the while), so that a second export or a kill lands there.
GPTWIZ_FAULT_FAIL_RANK="R:I" (`rank_failure`, acted on by gptwiz.training.trainer through
    gptwiz.training.distributed.injected_failure)
    Rank R of a run raises a RuntimeError when it is about to train iteration I, as a crashing rank would.
GPTWIZ_PROBE_FAKE_OOM_ABOVE_BATCH=N (`fake_oom_above_batch`, acted on by gptwiz.training.probe's child)
    Every forward pass of a micro-batch of more than N sequences raises the CUDA out-of-memory error, on any
    device, so that the probe's retry at a smaller batch can be tested without filling a GPU.
"""

from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass

ATOMIC_ENV = "GPTWIZ_FAULT_ATOMIC"
EXPORT_ENV = "GPTWIZ_FAULT_EXPORT"
FAIL_RANK_ENV = "GPTWIZ_FAULT_FAIL_RANK"
FAKE_OOM_ENV = "GPTWIZ_PROBE_FAKE_OOM_ABOVE_BATCH"


@dataclass(frozen=True)
class AtomicFault:
    action: str   # "sleep=SECONDS", "kill" or "enospc"; any other does nothing
    pattern: str  # a glob on the file name; empty: every file

    def matches(self, name: str) -> bool:
        return fnmatch.fnmatch(name, self.pattern or "*")


@dataclass(frozen=True)
class RankFailure:
    rank: int
    iteration: int


def atomic_fault() -> AtomicFault | None:
    """GPTWIZ_FAULT_ATOMIC, if set."""
    spec = os.environ.get(ATOMIC_ENV)
    if not spec:
        return None
    action, _, pattern = spec.partition(":")
    return AtomicFault(action, pattern)


def export_hold() -> float:
    """The seconds GPTWIZ_FAULT_EXPORT=sleep=SECONDS holds an export before its rename; 0 when unset."""
    action = os.environ.get(EXPORT_ENV, "")
    return float(action.split("=", 1)[1]) if action.startswith("sleep=") else 0.0


def rank_failure() -> RankFailure | None:
    """GPTWIZ_FAULT_FAIL_RANK, if set to two whole numbers R:I; anything else is no fault."""
    try:
        rank, iteration = (int(v) for v in os.environ.get(FAIL_RANK_ENV, "").split(":"))
    except ValueError:
        return None
    return RankFailure(rank, iteration)


def fake_oom_above_batch() -> int | None:
    """GPTWIZ_PROBE_FAKE_OOM_ABOVE_BATCH, if set (a value that is not a whole number raises ValueError)."""
    value = os.environ.get(FAKE_OOM_ENV)
    return int(value) if value else None
