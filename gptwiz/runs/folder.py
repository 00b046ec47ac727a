"""The run folder, runs/<name>/: the only interface between the trainer and everything that watches it.

    config.json    the fully resolved settings (written once at start)
    status.json    state, pid, iter, max_iters, times, error (rewritten atomically)
    metrics.jsonl  one JSON object a line, appended ("train", "eval", "probe" records)
    train.log      plain log lines, appended
    ckpt_last.pt   the latest checkpoint; ckpt_best.pt the one with the lowest val loss
    lock           the pid of the trainer that owns the folder, which holds a lock on this file
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import re
import struct
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from gptwiz.common.atomic import atomic_write, atomic_write_json
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
                     f"existing runs: {', '.join(r.name for r in run_folders(runs_dir)) or 'none'}")


def run_folders(runs_dir: Path | str) -> list[RunPaths]:
    """The run folders in runs_dir, by name: those with a config.json or a status.json (no symlinks)."""
    root = Path(runs_dir)
    if not root.is_dir():
        return []
    return [RunPaths(p) for p in sorted(root.iterdir())
            if p.is_dir() and not p.is_symlink() and ((p / "config.json").exists() or (p / "status.json").exists())]


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
    """Whether a process with this pid exists (any process: only the run's lock says it is the trainer)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):  # (a number too big to be a pid)
        return False
    except PermissionError:  # another user's
        return True
    return True


def effective_state(status: dict[str, Any] | None, paths: RunPaths) -> str:
    """The state a viewer should show: a 'running' run whose lock no process holds (its trainer died) is 'failed'."""
    if not status:
        return "unknown"
    state = status.get("state", "unknown")
    if state == "running" and lock_owner(paths) is None:
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

    def write(f: IO[bytes]) -> None:
        f.write(payload)

    atomic_write(path, write)


# --- the lock --------------------------------------------------------------------------------------

# Linux's struct flock (off_t is 64-bit: Python builds with large file support): type, whence, start, len, pid.
_FLOCK = "hhqqi"


def _lock_exclusive(fd: int) -> bool:
    """An exclusive lock on the whole file through `fd`, or False if another open file holds one."""
    if hasattr(fcntl, "F_OFD_SETLK"):
        try:
            fcntl.fcntl(fd, fcntl.F_OFD_SETLK, struct.pack(_FLOCK, fcntl.F_WRLCK, os.SEEK_SET, 0, 0, 0))
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.EACCES):
                return False
            raise
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _locked_elsewhere(fd: int) -> bool:
    """Whether another open file holds the lock of the file `fd` reads, without taking it."""
    if hasattr(fcntl, "F_OFD_GETLK"):
        # A query, not an attempt: a trainer taking the lock at this instant is never refused because of it.
        query = struct.pack(_FLOCK, fcntl.F_RDLCK, os.SEEK_SET, 0, 0, 0)
        return struct.unpack(_FLOCK, fcntl.fcntl(fd, fcntl.F_OFD_GETLK, query))[0] != fcntl.F_UNLCK
    # No open-file-description locks (macOS): flock has no query, so a shared lock is taken and dropped.
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    fcntl.flock(fd, fcntl.LOCK_UN)
    return False


def lock_owner(paths: RunPaths) -> int | None:
    """The pid of the process holding the run's lock right now; None when no process holds it (a lock file
    left by a trainer that died, whatever pid it names, included). The lock is what says a trainer is at work."""
    try:
        fd = os.open(paths.lock, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        if not _locked_elsewhere(fd):
            return None
        text = os.pread(fd, 32, 0)
    except OSError:  # a file system without locks: no trainer can hold one there either
        return None
    finally:
        os.close(fd)
    try:
        pid = int(text.strip() or 0)
    except ValueError:
        return None
    # A new owner writes its pid just after taking the lock; until then the file names the dead one before it.
    return pid if pid_alive(pid) else None


class RunLock:
    """One trainer per run folder: the lock file holds the owner's pid (for `gptwiz stop` and viewers), and the
    owner holds an exclusive lock on it (an open-file-description lock where the system has them, else a flock).
    The kernel drops the lock when the owner dies, however it dies, so a dead trainer's lock is taken over, and
    neither two starters at once nor a reused pid can fool it. lock_owner reads it."""

    def __init__(self, paths: RunPaths):
        self.paths = paths
        self.path = paths.lock
        self.held = False
        self._fd: int | None = None

    def acquire(self) -> None:
        for _ in range(10):
            try:
                # Never through a symlink: taking the lock truncates the file it names.
                fd = os.open(self.path, os.O_CREAT | os.O_RDWR | os.O_NOFOLLOW, 0o644)
            except OSError as exc:
                raise UsageError(f"cannot take the lock {self.path} ({exc.strerror}); "
                                 "remove it if no trainer of this run is running") from None
            if not _lock_exclusive(fd):
                os.close(fd)
                owner = lock_owner(self.paths)
                raise UsageError(f"run '{self.path.parent.name}' is already being trained by process "
                                 f"{owner or '(unknown)'}; watch it with `gptwiz watch` or pick another --model_name")
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
                self.path.unlink()  # still holding the lock: nobody can have taken it meanwhile
            except FileNotFoundError:
                pass
            os.close(self._fd)
            self._fd, self.held = None, False
