"""status.json: what a run is doing, rewritten atomically by its trainer, and what its viewers make of it.

`RunStatus` is the file's schema: the fields the trainer writes and what each may hold. A file holding anything
else is unreadable, so that no viewer acts on it (a pid of 10**20 handed to os.kill, an iteration that is text).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from gptwiz.common import procs
from gptwiz.common.atomic import atomic_write_json
from gptwiz.common.records import ANY_NUMBER, Bound, RecordError, check_record, rule
from gptwiz.common.safe_read import UnreadableFile
from gptwiz.runs.jsonfile import load_json
from gptwiz.runs.lock import lock_owner
from gptwiz.runs.paths import RunPaths

State = Literal["running", "finished", "stopped", "failed", "diverged"]
STATES: tuple[str, ...] = get_args(State)
PID_MAX = 2**31 - 1  # pid_t
ITER_MAX = 10**12


def _whole(limit: int) -> Any:
    return field(default=None, metadata=rule(Bound(0, limit)))


def _number() -> Any:
    return field(default=None, metadata=rule(ANY_NUMBER))  # NaN too: the loss of a run that diverged


def _text() -> Any:
    return field(default=None)


@dataclass(frozen=True)
class RunStatus:
    """What a status.json may hold, as the trainer writes it (None: absent, or null; other keys are let be).
    Checked in field order, so the first field that is wrong is the one named."""
    state: State
    pid: int | None = _whole(PID_MAX)
    iter: int | None = _whole(ITER_MAX)
    max_iters: int | None = _whole(ITER_MAX)
    world_size: int | None = _whole(2**20)
    peak_mem_bytes: int | None = _whole(2**62)
    eval_done: int | None = _whole(2**40)
    eval_total: int | None = _whole(2**40)
    last_loss: float | None = _number()
    best_val_loss: float | None = _number()
    ckpt_s: float | None = _number()
    name: str | None = _text()
    started_at: str | None = _text()
    updated_at: str | None = _text()
    error: str | None = _text()
    phase: str | None = _text()
    probe: bool | None = None


def _is_whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def status_problem(status: dict[str, Any]) -> str | None:
    """What in a status.json's object (damaged, or edited by hand) no viewer should act on, if anything:
    "has iter 'abc', not a whole number ..." (to follow the file's name)."""
    try:
        check_record(RunStatus, status, "status.json", open_keys=(RunStatus,))
    except RecordError as exc:
        return f"has {exc.key} {exc.got}, not {exc.valid}" if exc.valid else f"has no '{exc.key}'"
    return None


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def write_status(paths: RunPaths, status: dict[str, Any]) -> None:
    status = dict(status, updated_at=now_iso())
    atomic_write_json(paths.status, status)


def read_status(paths: RunPaths) -> dict[str, Any] | None:
    """The run's status.json, None when there is none yet; UnreadableFile (naming the file and what is wrong in
    it) when it cannot be read or holds what the trainer never writes."""
    status = load_json(paths.status)
    if status is None:
        return None
    problem = status_problem(status)
    if problem:
        raise UnreadableFile(paths.status, problem)
    return status


def activity(status: dict[str, Any]) -> str | None:
    """What a running trainer is busy with besides its steps, as its status.json says: "evaluating (3 of 40
    batches)", "checkpointing"; None while it trains, once it has ended, or for a trainer that does not say."""
    if status.get("state") != "running":
        return None
    phase = status.get("phase")
    if phase == "evaluating":
        done, total = status.get("eval_done"), status.get("eval_total")
        if _is_whole(done) and _is_whole(total) and total:
            return f"evaluating ({min(done, total):,} of {total:,} batches)"
        return "evaluating"
    return "checkpointing" if phase == "checkpointing" else None


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists (any process: only the run's lock says it is the trainer)."""
    return procs.pid_alive(pid)


def effective_state(status: Any, paths: RunPaths) -> str:
    """The state a viewer should show: a 'running' run whose lock no process holds (its trainer died) is 'failed'."""
    if not isinstance(status, dict) or not status:
        return "unknown"
    state = status.get("state")
    if not isinstance(state, str) or state not in STATES:  # a damaged or hand-edited status.json
        return "unknown"
    if state == "running" and lock_owner(paths) is None:
        return "failed"
    return state
