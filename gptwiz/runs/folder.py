"""The run folder, runs/<name>/: the only interface between the trainer and everything that watches it.

    config.json    the fully resolved settings (written once at start)
    status.json    state, pid, iter, max_iters, times, error (rewritten atomically)
    metrics.jsonl  one JSON object a line, appended ("train", "eval", "probe" records)
    train.log      plain log lines, appended
    ckpt_last.pt   the latest checkpoint; ckpt_best.pt the one with the lowest val loss
    lock           the pid of the trainer that owns the folder
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gptwiz.common.atomic import atomic_write_json
from gptwiz.common.errors import UsageError

STATES = ("running", "finished", "stopped", "failed", "diverged")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


def validate_run_name(name: str) -> str:
    """Run names become folder names, so they may not climb out of runs/ or name a path."""
    if not _NAME_RE.match(name or "") or ".." in name:
        raise UsageError(
            f"invalid --model_name {name!r}: use letters, digits, '.', '_' and '-' only "
            "(no path separators, no '..', at most 100 characters)"
        )
    return name


@dataclass(frozen=True)
class RunPaths:
    root: Path

    @property
    def name(self) -> str:
        return self.root.name

    @property
    def config(self) -> Path:
        return self.root / "config.json"

    @property
    def status(self) -> Path:
        return self.root / "status.json"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.jsonl"

    @property
    def log(self) -> Path:
        return self.root / "train.log"

    @property
    def ckpt_last(self) -> Path:
        return self.root / "ckpt_last.pt"

    @property
    def ckpt_best(self) -> Path:
        return self.root / "ckpt_best.pt"

    @property
    def lock(self) -> Path:
        return self.root / "lock"

    @property
    def probe(self) -> Path:
        return self.root / "probe.json"


def run_paths(runs_dir: Path | str, name: str) -> RunPaths:
    root = Path(runs_dir) / validate_run_name(name)
    # A name is checked above; the folder may still be a symlink (or runs/ hold one) leading elsewhere,
    # where the trainer would write. runs_dir itself may be a symlink: it is the user's choice of disk.
    if root.is_symlink() or (root.exists() and root.resolve().parent != Path(runs_dir).resolve()):
        raise UsageError(f"run folder {root} is a symlink to {root.resolve()}, outside {runs_dir}; gptwiz writes only "
                         "inside its runs folder: remove the link or choose another --model_name")
    return RunPaths(root)


def resolve_run(spec: str, runs_dir: Path | str) -> RunPaths:
    """A run given by name or by folder path; the guide's `checkpoints/base_750M` means the run base_750M."""
    path = Path(spec)
    if path.is_dir() and (path / "config.json").exists():
        return RunPaths(path)
    candidate = Path(runs_dir) / path.name
    if path.name and ".." not in path.name and candidate.is_dir():
        return RunPaths(candidate)
    raise UsageError(f"no run '{spec}' (looked for the folder {spec} and {candidate}); "
                     f"existing runs: {', '.join(r.name for r in list_runs(runs_dir)) or 'none'}")


# --- status.json -----------------------------------------------------------------------------------

def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def write_status(paths: RunPaths, status: dict[str, Any]) -> None:
    status = dict(status, updated_at=now_iso())
    atomic_write_json(paths.status, status)


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def effective_state(status: dict[str, Any] | None) -> str:
    """The state a viewer should show: a 'running' run whose trainer has died is 'failed'."""
    if not status:
        return "unknown"
    state = status.get("state", "unknown")
    if state == "running" and not pid_alive(int(status.get("pid") or 0)):
        return "failed"
    return state


# --- metrics.jsonl ---------------------------------------------------------------------------------

class MetricsReader:
    """Reads only what was appended since the last call; a line cut mid-write waits for its end."""

    def __init__(self, path: Path):
        self.path = path
        self.offset = 0
        self._partial = b""

    def read_new(self) -> list[dict[str, Any]]:
        try:
            with open(self.path, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                if size < self.offset:  # rewritten (a resume trims it): start again
                    self.offset, self._partial = 0, b""
                f.seek(self.offset)
                chunk = f.read()
        except OSError:  # not there (yet, or any more), or unreadable: nothing new to show
            return []
        self.offset += len(chunk)
        data = self._partial + chunk
        lines = data.split(b"\n")
        self._partial = lines.pop()
        records = []
        for line in lines:
            try:
                rec = json.loads(line)
            except ValueError:
                continue  # a torn line from a killed writer: skip it, keep the rest
            if isinstance(rec, dict):
                records.append(rec)
        return records


def read_metrics(path: Path) -> list[dict[str, Any]]:
    reader = MetricsReader(path)
    records = reader.read_new()
    if reader._partial:
        try:
            rec = json.loads(reader._partial)
            if isinstance(rec, dict):
                records.append(rec)
        except ValueError:
            pass
    return records


class MetricsWriter:
    def __init__(self, path: Path):
        self._f = open(path, "a", encoding="utf-8")

    def write(self, record: dict[str, Any]) -> None:
        # One write call per line, flushed, so a concurrent reader sees whole lines as soon as possible.
        self._f.write(json.dumps(record, separators=(",", ":")) + "\n")
        self._f.flush()

    def close(self) -> None:
        self._f.close()


def trim_metrics(path: Path, max_iter: int) -> None:
    """On resume, drop records from beyond the checkpoint: those iterations will be run again."""
    if not path.exists():
        return
    kept = [r for r in read_metrics(path)  # (a damaged record without a numeric iter goes too)
            if isinstance(r.get("iter", 0), (int, float)) and r.get("iter", 0) <= max_iter]
    payload = "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in kept).encode()
    from gptwiz.common.atomic import atomic_write

    atomic_write(path, lambda f: f.write(payload))


# --- the lock --------------------------------------------------------------------------------------

class RunLock:
    """One trainer per run folder: the lock file holds the owner's pid (for `gptwiz stop` and viewers), and the
    owner holds an exclusive flock on it. The kernel drops the flock when the owner dies, however it dies,
    so a dead trainer's lock is taken over, and neither two starters at once nor a reused pid can fool it."""

    def __init__(self, paths: RunPaths):
        self.path = paths.lock
        self.held = False
        self._fd: int | None = None

    def acquire(self) -> None:
        import fcntl

        for _ in range(10):
            try:
                # Never through a symlink: taking the lock truncates the file it names.
                fd = os.open(self.path, os.O_CREAT | os.O_RDWR | os.O_NOFOLLOW, 0o644)
            except OSError as exc:
                raise UsageError(f"cannot take the lock {self.path} ({exc.strerror}); "
                                 "remove it if no trainer of this run is running") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                owner = _read_pid(self.path)
                raise UsageError(f"run '{self.path.parent.name}' is already being trained by process "
                                 f"{owner or '(unknown)'}; watch it with `gptwiz watch` or pick another --model_name") from None
            try:
                same_file = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same_file = False
            if not same_file:  # its owner released it (removing the file) as we opened it: take the new one
                os.close(fd)
                continue
            os.ftruncate(fd, 0)
            os.write(fd, str(os.getpid()).encode())
            self._fd, self.held = fd, True
            return
        raise UsageError(f"could not take the lock {self.path}; other processes keep taking and releasing it")

    def release(self) -> None:
        if self.held and self._fd is not None:
            try:
                self.path.unlink()  # still holding the flock: nobody can have taken it meanwhile
            except FileNotFoundError:
                pass
            os.close(self._fd)
            self._fd, self.held = None, False


def _read_pid(path: Path) -> int:
    try:
        return int(path.read_text().strip() or 0)
    except (OSError, ValueError):
        return 0


# --- listing ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RunSummary:
    name: str
    path: Path
    state: str
    iter: int
    max_iters: int
    last_loss: float | None
    updated_at: str
    mtime: float


def summarize(paths: RunPaths) -> RunSummary:
    status = read_json(paths.status) or {}
    last_loss = status.get("last_loss")
    mtimes = []
    for p in (paths.status, paths.metrics, paths.config):
        try:
            mtimes.append(p.stat().st_mtime)
        except OSError:  # not written yet, or removed since the folder was listed
            pass
    mtime = max(mtimes, default=0.0)
    return RunSummary(
        name=paths.name, path=paths.root, state=effective_state(status) if status else "unknown",
        iter=int(status.get("iter", 0) or 0), max_iters=int(status.get("max_iters", 0) or 0),
        last_loss=float(last_loss) if isinstance(last_loss, (int, float)) else None,
        updated_at=str(status.get("updated_at", "")), mtime=mtime,
    )


def list_runs(runs_dir: Path | str) -> list[RunSummary]:
    root = Path(runs_dir)
    if not root.is_dir():
        return []
    runs = [summarize(RunPaths(p)) for p in root.iterdir()
            if p.is_dir() and not p.is_symlink() and ((p / "config.json").exists() or (p / "status.json").exists())]
    return sorted(runs, key=lambda r: r.mtime, reverse=True)


def latest_run(runs_dir: Path | str) -> RunPaths | None:
    runs = list_runs(runs_dir)
    return RunPaths(runs[0].path) if runs else None
