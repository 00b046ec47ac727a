"""What the dashboard shows of a run, built from its folder by reading only what was appended since the last poll.

Pure data: no Textual here, so the aggregation is tested without an app and the widgets only draw
the `RunSnapshot` (gptwiz.runs.snapshot) they are handed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from gptwiz.common.records import Bound, read_lenient, rule
from gptwiz.common.safe_read import UnreadableFile
from gptwiz.runs.eta import eta_seconds, eval_plan_from_config
from gptwiz.runs.history import RunHistory, number
from gptwiz.runs.jsonfile import read_json
from gptwiz.runs.lock import lock_owner
from gptwiz.runs.metrics import MetricsReader, held_out_text, latest_eval
from gptwiz.runs.paths import RunPaths
from gptwiz.runs.snapshot import HISTORY_LISTS, RunSnapshot, parse_iso, schedule_from_config
from gptwiz.runs.status import activity, effective_state, read_status
from gptwiz.runs.tail import LogTail


@dataclass(frozen=True)
class ConfigHeader:
    """What the dashboard's header shows of config.json; a value of the wrong type shows as nothing."""
    preset: str = ""
    device: str = ""
    dtype: str = ""
    params: int = field(default=0, metadata=rule(Bound(0, 10**15 - 1)))


class RunMonitor:
    """Polls one run folder; each `poll()` reads only what was appended and returns a fresh snapshot."""

    def __init__(self, paths: RunPaths, clock: Callable[[], float] = time.time):
        self.paths = paths
        self.clock = clock
        self._metrics = MetricsReader(paths.metrics)
        self._log = LogTail(paths.log)
        self._held_out_stamp: tuple[float, int] | None = None  # eval.jsonl's (mtime, size) when last read
        self._quality_key: tuple[int, int, int] | None = None  # quality.json's inode, mtime and size when last read
        self._snap = RunSnapshot(name=paths.name)
        self._history = RunHistory(self._snap)
        self._config_loaded = False
        self._status_key: tuple[int, int, int] | None = None  # inode, mtime and size of the status.json last read
        self._status: dict[str, Any] = {}
        self._status_problem: str | None = None  # why status.json cannot be used, while it cannot
        self._frozen_lists: dict[str, Any] = {name: [] for name in HISTORY_LISTS}

    def poll(self) -> RunSnapshot:
        s = self._snap
        if not self._config_loaded:
            self._load_config()
        changed = self._read_metrics()
        changed |= self._read_status()
        changed |= self._log.read_new()
        changed |= self._read_held_out()
        changed |= self._read_quality()
        status = self._status
        self._set_state(status)
        self._set_progress(status)
        if changed:
            s.version += 1
            self._frozen_lists = {name: list(getattr(s, name)) for name in HISTORY_LISTS}
        # The caller gets a copy: the poller goes on appending to its own lists from another thread.
        return replace(s, **self._frozen_lists)

    def _load_config(self) -> None:
        config = read_json(self.paths.config)
        if config is None:
            return
        s = self._snap
        s.schedule = schedule_from_config(config)
        self._history.eval_plan = eval_plan_from_config(config)
        header = read_lenient(ConfigHeader, config)
        s.preset = header.preset[:80]
        s.device = f"{header.device[:80]} {header.dtype[:80]}".strip()
        s.params = header.params
        if s.schedule and not s.max_iters:
            s.max_iters = s.schedule.max_iters
        self._config_loaded = True

    def _read_metrics(self) -> bool:
        records = self._metrics.read_new()
        if self._metrics.restarted:  # a resume trimmed the file: the reader starts over, so must the history
            self._history.reset()
        for rec in records:
            self._history.apply(rec)
        return bool(records) or self._metrics.restarted

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

    def _read_quality(self) -> bool:
        """quality.json, read again only when it changed: written once when the run starts, completed when it
        ends. A file that cannot be used (damaged, not an object, too large) is no prediction, until it changes."""
        try:
            st = self.paths.quality.stat()
            key: tuple[int, int, int] | None = (st.st_ino, st.st_mtime_ns, st.st_size)
        except OSError:
            key = None
        if key == self._quality_key:
            return False
        self._quality_key = key
        self._snap.quality_record = read_json(self.paths.quality) if key else None
        return True

    def _set_state(self, status: dict[str, Any]) -> None:
        """The run's state and error, and the process to read CPU and RAM of."""
        s = self._snap
        s.exists = self.paths.root.is_dir()
        if self._status_problem:
            s.state = "unreadable"
        elif status:
            s.state = effective_state(status, self.paths)
        elif not s.exists:
            s.state = "missing"
        else:  # a detached trainer still loading (console.log is there before its status is)
            s.state = "starting" if self.paths.console.exists() else "unknown"
        s.error = self._status_problem or status.get("error") or None
        if s.state == "failed" and not s.error and status.get("state") == "running":
            s.error = f"the trainer (pid {status.get('pid')}) ended without recording why; see {self.paths.log.name}"
        if not s.exists:  # deleted or moved under the dashboard: its last state is not current any more
            s.state = "missing"
            s.error = f"the run folder {self.paths.root} is gone (deleted or moved); the history shown is what was read"
        # The lock's holder, while there is one.
        holder = lock_owner(self.paths) if s.state in ("running", "unreadable") else None
        s.pid = holder or int(status.get("pid") or 0)

    def _set_progress(self, status: dict[str, Any]) -> None:
        """Iteration, best loss, rate, elapsed time, activity and ETA: the history's, where status.json says more.
        `status` is read_status's, so each key it has holds what gptwiz.runs.status.RunStatus allows."""
        s = self._snap
        if status.get("max_iters"):
            s.max_iters = status["max_iters"]
        if status.get("iter") is not None:
            s.iter = max(s.iter, status["iter"])
        if status.get("best_val_loss") is not None:
            s.best_val_loss = float(status["best_val_loss"])
        if s.schedule is not None:
            s.lr = s.schedule.lr(s.iter) if s.lr is None else s.lr
        s.tokens_per_sec_history = self._history.tokens_per_sec
        s.log_tail = list(self._log.lines)
        started = parse_iso(status.get("started_at"))
        if started is not None:
            end = self.clock() if s.state == "running" else (parse_iso(status.get("updated_at")) or started)
            s.elapsed_s = max(0.0, end - started)
        s.activity = activity(status) if s.state == "running" else None
        step_s = self._history.step_s
        if s.state == "running" and step_s is not None and s.max_iters:
            s.eta_s = self._eta(status, step_s)
        else:
            s.eta_s = None if s.state == "running" else 0.0

    def _eta(self, status: dict[str, Any], step_s: float) -> float:
        """The steps left at the median step time, with the evaluations and checkpoints still to come."""
        s = self._snap
        evaluated_to = int(max(s.eval_iters)) if s.eval_iters else -1
        batches_left = None
        done, total = status.get("eval_done"), status.get("eval_total")
        if status.get("phase") == "evaluating" and status.get("iter") == s.iter and done is not None and total:
            evaluated_to, batches_left = max(evaluated_to, s.iter), max(0, total - done)
        ckpt_s = number(status.get("ckpt_s"))
        return eta_seconds(self._history.eval_plan, iter=s.iter, max_iters=s.max_iters, step_s=step_s,
                           evaluated_to=evaluated_to, eval_batch_s=self._history.eval_batch_s,
                           eval_batches_left=batches_left, ckpt_s=ckpt_s if ckpt_s >= 0 else None)
