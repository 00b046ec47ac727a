"""What the dashboard shows of a run, built from its folder by reading only what was appended since the last poll.

Pure data: no Textual here, so the aggregation is tested without an app and the widgets only draw
the `RunSnapshot` they are handed.
"""

from __future__ import annotations

import math
import os
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from statistics import median
from typing import Any

from gptwiz.common.safe_read import UnreadableFile, open_regular
from gptwiz.common.schedule import lr_at
from gptwiz.model.config import FORWARD_SHARE
from gptwiz.runs.folder import (
    ITER_MAX,
    MetricsReader,
    RunPaths,
    activity,
    effective_state,
    held_out_text,
    latest_eval,
    lock_owner,
    read_json,
    read_status,
)

LOG_TAIL_LINES = 200
_LOG_FIRST_READ_BYTES = 64 * 1024  # a long train.log: start near its end, the tail is what is shown
SPARK_POINTS = 120
LR_CURVE_POINTS = 200


@dataclass(frozen=True)
class Schedule:
    """The learning-rate schedule of the run, from its config.json."""
    learning_rate: float
    min_lr: float
    warmup_iters: int
    max_iters: int

    def lr(self, it: int) -> float:
        return lr_at(it, learning_rate=self.learning_rate, min_lr=self.min_lr,
                     warmup_iters=self.warmup_iters, decay_iters=self.max_iters)

    def curve(self, points: int = LR_CURVE_POINTS) -> tuple[list[float], list[float]]:
        step = max(1, self.max_iters // points)
        xs = list(range(0, self.max_iters + 1, step))
        if xs[-1] != self.max_iters:
            xs.append(self.max_iters)
        return [float(x) for x in xs], [self.lr(x) for x in xs]


def schedule_from_config(config: dict[str, Any] | None) -> Schedule | None:
    """The schedule to draw; None when the config (damaged, or edited by hand) holds none that can be drawn."""
    try:
        train = config["train"]  # type: ignore[index]
        schedule = Schedule(float(train["learning_rate"]), float(train.get("min_lr", 0.0)),
                            int(config.get("warmup_iters", train.get("warmup_iters", 0))),  # type: ignore[union-attr]
                            int(train["max_iters"]))
    except (TypeError, KeyError, ValueError, OverflowError, AttributeError):
        return None
    rates_ok = all(math.isfinite(r) and 0 <= r < 1e30 for r in (schedule.learning_rate, schedule.min_lr))
    iters_ok = 0 <= schedule.warmup_iters <= ITER_MAX and 0 < schedule.max_iters <= ITER_MAX
    return schedule if rates_ok and iters_ok else None




@dataclass(frozen=True)
class EvalPlan:
    """When a run evaluates and checkpoints (its config.json): what its ETA counts beside the steps."""
    eval_interval: int
    eval_iters: int             # batches of each split in an evaluation
    grad_accum: int
    ckpt_interval_s: float      # also a checkpoint every this many seconds (inf: only at evaluations)
    evaluates: bool = True      # a probe neither evaluates nor checkpoints


def eval_plan_from_config(config: dict[str, Any] | None) -> EvalPlan | None:
    """The run's evaluation plan; None when its config (damaged, or from an older gptwiz) holds none."""
    try:
        train = config["train"]  # type: ignore[index]
        plan = EvalPlan(int(train["eval_interval"]), int(train["eval_iters"]), int(train.get("grad_accum", 1)),
                        float(config.get("ckpt_interval_s", 300.0)),  # type: ignore[union-attr]
                        not config.get("probe", False))  # type: ignore[union-attr]
    except (TypeError, KeyError, ValueError, OverflowError, AttributeError):
        return None
    ok = (0 < plan.eval_interval <= ITER_MAX and 0 < plan.eval_iters <= ITER_MAX and 0 < plan.grad_accum <= ITER_MAX
          and plan.ckpt_interval_s > 0)
    return plan if ok else None


def evaluations_left(plan: EvalPlan, iter: int, max_iters: int, evaluated_to: int) -> int:
    """Evaluations still to start: at each multiple of eval_interval from `iter` on, and at max_iters, skipping
    those up to `evaluated_to` (the last recorded, or the one under way)."""
    first = max(iter, evaluated_to + 1)
    if first > max_iters:
        return 0
    n = max_iters // plan.eval_interval - (first - 1) // plan.eval_interval
    return n + (1 if max_iters % plan.eval_interval else 0)


def eta_seconds(plan: EvalPlan | None, *, iter: int, max_iters: int, step_s: float, evaluated_to: int = -1,
                eval_batch_s: float | None = None, eval_batches_left: int | None = None,
                ckpt_s: float | None = None) -> float:
    """Seconds until the run ends: its steps left at `step_s` each, plus the evaluations and checkpoints still to
    come. An evaluation batch takes `eval_batch_s` (measured by this run), else FORWARD_SHARE of a micro-step;
    a checkpoint `ckpt_s` (the latest one's), else as long as a step. `eval_batches_left`: those of the
    evaluation under way, if one is (it then counts as `evaluated_to`, its checkpoint still to come)."""
    steps_left = max(0, max_iters - iter)
    total = step_s * steps_left
    if plan is None or not plan.evaluates:
        return total
    batch_s = eval_batch_s if eval_batch_s is not None else step_s * FORWARD_SHARE / plan.grad_accum
    eval_s = 2 * plan.eval_iters * batch_s
    evals = evaluations_left(plan, iter, max_iters, evaluated_to)
    # Each evaluation writes a checkpoint; between two, one every ckpt_interval_s of training and evaluating.
    between_s = plan.eval_interval * step_s + eval_s
    by_time = math.floor(between_s / plan.ckpt_interval_s) if math.isfinite(plan.ckpt_interval_s) else 0
    under_way = eval_batches_left is not None
    checkpoints = evals + under_way + by_time * steps_left / plan.eval_interval
    return (total + (eval_batches_left or 0) * batch_s + evals * eval_s
            + checkpoints * (ckpt_s if ckpt_s is not None else step_s))


def _text(value: Any) -> str:
    """A config's text field as shown; what is not text shows as nothing."""
    return value[:80] if isinstance(value, str) else ""


@dataclass
class RunSnapshot:
    """Everything the dashboard draws, as plain data; `version` changes whenever the history changed."""
    name: str
    state: str = "unknown"
    error: str | None = None
    pid: int = 0
    preset: str = ""
    device: str = ""
    params: int = 0
    iter: int = 0
    max_iters: int = 0
    train_iters: list[float] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    eval_iters: list[float] = field(default_factory=list)
    eval_train_loss: list[float] = field(default_factory=list)
    eval_val_loss: list[float] = field(default_factory=list)
    best_val_loss: float | None = None
    lr: float | None = None
    schedule: Schedule | None = None
    tokens_per_sec: float | None = None
    tokens_per_sec_history: list[float] = field(default_factory=list)
    mfu: float | None = None
    peak_mem_bytes: int | None = None
    elapsed_s: float | None = None
    eta_s: float | None = None
    activity: str | None = None  # "evaluating (3 of 40 batches)", "checkpointing": what a running trainer is busy with
    held_out: str | None = None  # the latest `gptwiz eval` result, as one line (eval.jsonl)
    log_tail: list[str] = field(default_factory=list)
    version: int = 0
    exists: bool = True

    @property
    def last_loss(self) -> float | None:
        return self.train_loss[-1] if self.train_loss else None

    @property
    def progress(self) -> float:
        return min(1.0, self.iter / self.max_iters) if self.max_iters else 0.0

    @property
    def live(self) -> bool:
        return self.state == "running"


def parse_iso(text: Any) -> float | None:
    try:
        return datetime.strptime(str(text), "%Y-%m-%dT%H:%M:%S%z").timestamp()
    except ValueError:
        return None


class LogFollower:
    """The complete lines appended to a text file since the last read (a partial last line waits for its end),
    reading only the new bytes. A file that is new to it is read from its last `first_read_bytes`; one replaced
    or cut shorter starts over the same way. `catch_up`: a file grown by more than `first_read_bytes` since the
    last read jumps to its end too (a tail shows only the end anyway); otherwise it is read through, at most
    `max_read_bytes` a call."""

    def __init__(self, path: Path, first_read_bytes: int, *, catch_up: bool = False, max_read_bytes: int = 1 << 20):
        self.path = path
        self.first_read_bytes, self.catch_up, self.max_read_bytes = first_read_bytes, catch_up, max_read_bytes
        self.offset: int | None = None  # None until the file has been opened once
        self._partial = b""

    def read_new(self) -> tuple[list[str], bool]:
        """(new lines, restarted): restarted when what was read before no longer leads to these lines (the file
        replaced, cut shorter, or jumped ahead), so a reader keeping lines starts over."""
        try:
            fd = open_regular(self.path)  # never a FIFO: opening one would block the reader
        except OSError:  # gone, not a file, or unreadable (the run folder deleted or replaced under the reader)
            return [], False
        restarted = skip_first = False
        try:
            size = os.fstat(fd).st_size
            jump = self.offset is None or size < self.offset or \
                (self.catch_up and size - self.offset > self.first_read_bytes)
            if jump:
                restarted = self.offset is not None
                self.offset = max(0, size - self.first_read_bytes)
                self._partial = b""
                skip_first = self.offset > 0
            assert self.offset is not None
            if size == self.offset:
                return [], restarted
            chunk = os.pread(fd, min(size - self.offset, self.max_read_bytes), self.offset)
        except OSError:
            return [], restarted
        finally:
            os.close(fd)
        self.offset += len(chunk)
        parts = (self._partial + chunk).split(b"\n")
        self._partial = parts.pop()
        if skip_first and parts:
            parts = parts[1:]  # started mid-line
        return [p.decode("utf-8", "replace").rstrip("\r") for p in parts], restarted


class LogTail:
    """The last `keep` lines of a growing text file (train.log for the dashboard's panel)."""

    def __init__(self, path: Path, keep: int = LOG_TAIL_LINES):
        self.lines: deque[str] = deque(maxlen=keep)
        self._follower = LogFollower(path, _LOG_FIRST_READ_BYTES, catch_up=True,
                                     max_read_bytes=_LOG_FIRST_READ_BYTES)

    @property
    def offset(self) -> int | None:
        return self._follower.offset

    def read_new(self) -> bool:
        """Whether the lines changed."""
        lines, restarted = self._follower.read_new()
        if restarted:
            self.lines.clear()
        self.lines.extend(lines)
        return bool(lines) or restarted


def _number(value: Any) -> float:
    """A record's number; NaN (a gap in a chart) when a damaged record holds something else there, or a number
    no chart can draw (plotext overflows near 1e308)."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and abs(value) < 1e30
    return float(value) if ok else float("nan")


_HISTORY_LISTS = ("train_iters", "train_loss", "eval_iters", "eval_train_loss", "eval_val_loss",
                  "tokens_per_sec_history", "log_tail")


class RunMonitor:
    """Polls one run folder; each `poll()` reads only what was appended and returns a fresh snapshot."""

    def __init__(self, paths: RunPaths, clock: Callable[[], float] = time.time):
        self.paths = paths
        self.clock = clock
        self._metrics = MetricsReader(paths.metrics)
        self._log = LogTail(paths.log)
        self._held_out_stamp: tuple[float, int] | None = None  # eval.jsonl's (mtime, size) when last read
        self._snap = RunSnapshot(name=paths.name)
        self._dts: deque[float] = deque(maxlen=20)
        self._eval_batch_s: deque[float] = deque(maxlen=5)  # seconds an evaluation batch took, in this run's records
        self._last_record_time: float | None = None
        self._eval_plan: EvalPlan | None = None
        self._tps: deque[float] = deque(maxlen=SPARK_POINTS)
        self._config_loaded = False
        self._status_key: tuple[int, int, int] | None = None  # inode, mtime and size of the status.json last read
        self._status: dict[str, Any] = {}
        self._status_problem: str | None = None  # why status.json cannot be used, while it cannot
        self._frozen_lists: dict[str, Any] = {name: [] for name in _HISTORY_LISTS}

    def _load_config(self) -> None:
        config = read_json(self.paths.config)
        if config is None:
            return
        s = self._snap
        s.schedule = schedule_from_config(config)
        self._eval_plan = eval_plan_from_config(config)
        s.preset = _text(config.get("preset"))
        s.device = f"{_text(config.get('device'))} {_text(config.get('dtype'))}".strip()
        params = config.get("params")
        s.params = params if isinstance(params, int) and not isinstance(params, bool) and 0 <= params < 10**15 else 0
        if s.schedule and not s.max_iters:
            s.max_iters = s.schedule.max_iters
        self._config_loaded = True

    def _reset_history(self) -> None:
        s = self._snap
        for name in ("train_iters", "train_loss", "eval_iters", "eval_train_loss", "eval_val_loss"):
            getattr(s, name).clear()
        self._dts.clear()
        self._tps.clear()
        self._eval_batch_s.clear()
        self._last_record_time = None
        s.iter = 0

    def _apply(self, rec: dict[str, Any]) -> None:
        s = self._snap
        kind = rec.get("type")
        it = rec.get("iter")
        if isinstance(it, bool) or not isinstance(it, int) or not 0 <= it < 10**12:  # the trainer writes ints
            return
        if kind in ("train", "probe") and math.isfinite(_number(rec.get("loss"))):
            s.train_iters.append(float(it))
            s.train_loss.append(float(rec["loss"]))
            s.iter = max(s.iter, int(it))
            if isinstance(rec.get("lr"), (int, float)):
                s.lr = float(rec["lr"])
            if isinstance(rec.get("tokens_per_sec"), (int, float)):
                s.tokens_per_sec = float(rec["tokens_per_sec"])
                self._tps.append(s.tokens_per_sec)
            if isinstance(rec.get("mfu"), (int, float)):
                s.mfu = float(rec["mfu"])
            if isinstance(rec.get("dt_s"), (int, float)):
                self._dts.append(float(rec["dt_s"]))
            if isinstance(rec.get("peak_mem_bytes"), (int, float)):
                s.peak_mem_bytes = int(rec["peak_mem_bytes"])
        elif kind == "eval":
            s.eval_iters.append(float(it))
            s.eval_train_loss.append(_number(rec.get("train_loss")))
            s.eval_val_loss.append(_number(rec.get("val_loss")))
            if isinstance(rec.get("best_val_loss"), (int, float)):
                s.best_val_loss = float(rec["best_val_loss"])
            self._note_eval_time(rec)
        t = _number(rec.get("time"))
        self._last_record_time = t if math.isfinite(t) else None

    def _note_eval_time(self, rec: dict[str, Any]) -> None:
        """An evaluation batch's seconds: its record's eval_s, or (a trainer that writes none) the time since the
        record before it, over its batches (a full evaluation's where it does not say)."""
        plan = self._eval_plan
        batches = _number(rec.get("batches"))
        if not batches > 0:
            batches = 2.0 * plan.eval_iters if plan is not None else float("nan")
        seconds = _number(rec.get("eval_s"))
        if not seconds >= 0 and self._last_record_time is not None:
            seconds = _number(rec.get("time")) - self._last_record_time
        if seconds >= 0 and batches > 0:
            self._eval_batch_s.append(seconds / batches)

    def _read_status(self) -> bool:
        try:
            st = self.paths.status.stat()
        except OSError:
            return False
        key = (st.st_ino, st.st_mtime_ns, st.st_size)  # a replacement within one mtime tick is a new inode
        if key == self._status_key:
            return False
        try:
            status = read_status(self.paths)
        except UnreadableFile as exc:  # shown as the run's state until a readable one replaces it
            self._status_key = key
            self._status, self._status_problem = {}, f"{self.paths.status.name} {exc.reason}"
            return True
        if status is None:  # removed between stat and read: next poll
            return False
        self._status_key = key
        self._status, self._status_problem = status, None
        return True

    def poll(self) -> RunSnapshot:
        s = self._snap
        changed = False
        if not self._config_loaded:
            self._load_config()
        try:
            size = self.paths.metrics.stat().st_size
        except OSError:
            size = None
        if size is not None and size < self._metrics.offset:
            self._reset_history()  # a resume trimmed the file: the reader starts over, so must the history
            changed = True
        records = self._metrics.read_new()
        for rec in records:
            self._apply(rec)
        changed |= bool(records)
        changed |= self._read_status()
        changed |= self._log.read_new()
        changed |= self._read_held_out()

        status = self._status
        s.exists = self.paths.root.is_dir()
        if self._status_problem:
            s.state = "unreadable"
        elif status:
            s.state = effective_state(status, self.paths)
        elif not s.exists:
            s.state = "missing"
        else:  # a detached trainer still loading (console.log is there before its status is)
            s.state = "starting" if (self.paths.root / "console.log").exists() else "unknown"
        s.error = self._status_problem or status.get("error") or None
        if s.state == "failed" and not s.error and status.get("state") == "running":
            s.error = f"the trainer (pid {status.get('pid')}) ended without recording why; see train.log"
        if not s.exists:  # deleted or moved under the dashboard: its last state is not current any more
            s.state = "missing"
            s.error = f"the run folder {self.paths.root} is gone (deleted or moved); the history shown is what was read"
        # The process to read CPU and RAM of: the lock's holder, while there is one.
        s.pid = (lock_owner(self.paths) if s.state in ("running", "unreadable") else None) or int(status.get("pid") or 0)
        if isinstance(status.get("max_iters"), int) and status["max_iters"]:
            s.max_iters = int(status["max_iters"])
        if isinstance(status.get("iter"), int):
            s.iter = max(s.iter, int(status["iter"]))
        if isinstance(status.get("best_val_loss"), (int, float)):
            s.best_val_loss = float(status["best_val_loss"])
        if s.schedule is not None:
            s.lr = s.schedule.lr(s.iter) if s.lr is None else s.lr
        s.tokens_per_sec_history = list(self._tps)
        s.log_tail = list(self._log.lines)
        started = parse_iso(status.get("started_at"))
        if started is not None:
            end = self.clock() if s.state == "running" else (parse_iso(status.get("updated_at")) or started)
            s.elapsed_s = max(0.0, end - started)
        s.activity = activity(status) if s.state == "running" else None
        if s.state == "running" and self._dts and s.max_iters:
            s.eta_s = self._eta(status)
        else:
            s.eta_s = None if s.state == "running" else 0.0
        if changed:
            s.version += 1
            self._frozen_lists = {name: list(getattr(s, name)) for name in _HISTORY_LISTS}
        # The caller gets a copy: the poller goes on appending to its own lists from another thread.
        return replace(s, **self._frozen_lists)

    def _read_held_out(self) -> bool:
        """eval.jsonl, read again only when it changed (`gptwiz eval` appends a line now and then)."""
        try:
            stamp: tuple[float, int] | None = (self.paths.evals.stat().st_mtime, self.paths.evals.stat().st_size)
        except OSError:
            stamp = None
        if stamp == self._held_out_stamp:
            return False
        self._held_out_stamp = stamp
        self._snap.held_out = held_out_text(latest_eval(self.paths)) if stamp else None
        return True

    def _eta(self, status: dict[str, Any]) -> float:
        """The steps left at the median step time, with the evaluations and checkpoints still to come."""
        s = self._snap
        evaluated_to = int(max(s.eval_iters)) if s.eval_iters else -1
        batches_left = None
        done, total = _whole_number(status.get("eval_done")), _whole_number(status.get("eval_total"))
        if status.get("phase") == "evaluating" and status.get("iter") == s.iter and done is not None and total:
            evaluated_to, batches_left = max(evaluated_to, s.iter), max(0, total - done)
        ckpt_s = _number(status.get("ckpt_s"))
        return eta_seconds(self._eval_plan, iter=s.iter, max_iters=s.max_iters, step_s=median(self._dts),
                           evaluated_to=evaluated_to,
                           eval_batch_s=median(self._eval_batch_s) if self._eval_batch_s else None,
                           eval_batches_left=batches_left, ckpt_s=ckpt_s if ckpt_s >= 0 else None)


def _whole_number(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def downsample(xs: list[float], ys: list[float], max_points: int) -> tuple[list[float], list[float]]:
    """At most `max_points` points, keeping the last one: a chart a terminal wide needs no more."""
    n = len(xs)
    if n <= max_points or max_points < 2:
        return xs, ys
    step = n / (max_points - 1)
    idx = sorted({min(n - 1, int(i * step)) for i in range(max_points - 1)} | {n - 1})
    return [xs[i] for i in idx], [ys[i] for i in idx]
