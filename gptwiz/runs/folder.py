"""The run folder, runs/<name>/: the only interface between the trainer and everything that watches it.

    config.json    the fully resolved settings (written once at start)
    status.json    state, pid, iter, max_iters, times, error, what a running trainer is busy with (rewritten atomically)
    metrics.jsonl  one JSON object a line, appended ("train", "eval", "probe" records)
    train.log      plain log lines, appended
    ckpt_last.pt   the latest checkpoint; ckpt_best.pt the one with the lowest val loss
    eval.jsonl     one JSON object a line, appended by `gptwiz eval` (held-out loss, bits per byte)
    lock           the pid of the trainer that owns the folder, which holds a lock on this file
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import re
import stat
import struct
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from gptwiz.common import procs
from gptwiz.common.atomic import atomic_write, atomic_write_json, remove_temp_files
from gptwiz.common.errors import UsageError
from gptwiz.common.files import check_folder, file_kind, is_write_failure, open_append
from gptwiz.common.safe_read import UnreadableFile, open_regular, read_json_object

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

    @property
    def evals(self) -> Path:
        return self.root / "eval.jsonl"


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
    if _is_dir(path) and os.path.exists(path / "config.json"):
        return RunPaths(path)
    check_folder(runs_dir, "--runs_dir", write=False)  # a file, /proc, a name too long: one line, not a traceback
    candidate = Path(runs_dir) / path.name
    if path.name and ".." not in path.name and _is_dir(candidate):
        return RunPaths(candidate)
    raise UsageError(f"no run '{spec}' (looked for the folder {spec} and {candidate}); "
                     f"existing runs: {', '.join(r.name for r in run_folders(runs_dir)) or 'none'}")


def _is_dir(path: Path) -> bool:
    try:
        return path.is_dir()
    except OSError:  # a name too long, ...: not a folder gptwiz can use
        return False


def check_run_files(paths: RunPaths) -> None:
    """Refuse a run folder where one of the files gptwiz reads or writes is something else (a FIFO, which would
    block the trainer at its first open, a folder, a device); a symlink is judged by what it leads to."""
    names = ("config.json", "status.json", "metrics.jsonl", "train.log", "lock", "ckpt_last.pt", "ckpt_best.pt",
             "probe.json", "console.log")
    for name in names:
        path = paths.root / name
        try:
            mode = os.stat(path).st_mode
        except OSError:  # not there (or a dangling link): nothing in the way
            continue
        if not stat.S_ISREG(mode):
            raise UsageError(f"run '{paths.name}': {path} is {file_kind(mode)}, not a regular file; remove it "
                             "(gptwiz reads and writes only regular files in a run folder)")


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
    """A run file's JSON object; None when it is missing or cannot be used (load_json says why)."""
    try:
        return read_json_object(path)
    except OSError:  # UnreadableFile included
        return None


def load_json(path: Path) -> dict[str, Any] | None:
    """A run file's JSON object, None when there is none; UnreadableFile when it is there but is no regular
    file, too large, or not a JSON object."""
    try:
        return read_json_object(path)
    except FileNotFoundError:
        return None


# What a status.json may hold, as the trainer writes it; anything else makes the file unreadable, so that no
# viewer acts on it (a pid of 10**20 handed to os.kill, an iteration that is text).
PID_MAX = 2**31 - 1  # pid_t
ITER_MAX = 10**12
_STATUS_INTS = {"pid": PID_MAX, "iter": ITER_MAX, "max_iters": ITER_MAX, "world_size": 2**20, "peak_mem_bytes": 2**62,
                "eval_done": 2**40, "eval_total": 2**40}
_STATUS_NUMBERS = ("last_loss", "best_val_loss", "ckpt_s")
_STATUS_TEXTS = ("name", "started_at", "updated_at", "error", "phase")


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def status_problem(status: dict[str, Any]) -> str | None:
    """What in a status.json's object (damaged, or edited by hand) no viewer should act on, if anything:
    "has iter 'abc', not a whole number ..." (to follow the file's name)."""
    state = status.get("state")
    if "state" not in status:
        return "has no 'state'"
    if not isinstance(state, str) or state not in STATES:
        return f"has state {repr(state)[:40]}, not one of {', '.join(STATES)}"
    for key, limit in _STATUS_INTS.items():
        value = status.get(key)
        if value is not None and not (_whole(value) and 0 <= value <= limit):
            return f"has {key} {repr(value)[:40]}, not a whole number from 0 to {limit:,}"
    for key in _STATUS_NUMBERS:
        value = status.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            return f"has {key} {repr(value)[:40]}, not a number"
    for key in _STATUS_TEXTS:
        value = status.get(key)
        if value is not None and not isinstance(value, str):
            return f"has {key} {repr(value)[:40]}, not text"
    if "probe" in status and not isinstance(status["probe"], bool):
        return f"has probe {repr(status['probe'])[:40]}, not true or false"
    return None


def activity(status: dict[str, Any]) -> str | None:
    """What a running trainer is busy with besides its steps, as its status.json says: "evaluating (3 of 40
    batches)", "checkpointing"; None while it trains, once it has ended, or for a trainer that does not say."""
    if status.get("state") != "running":
        return None
    phase = status.get("phase")
    if phase == "evaluating":
        done, total = status.get("eval_done"), status.get("eval_total")
        if _whole(done) and _whole(total) and total:
            return f"evaluating ({min(done, total):,} of {total:,} batches)"
        return "evaluating"
    return "checkpointing" if phase == "checkpointing" else None


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


# --- metrics.jsonl ---------------------------------------------------------------------------------

# A line longer than this is no record the trainer wrote: dropped, rather than held in memory while it grows.
_MAX_LINE = 1 << 20
_READ_CHUNK = 64 << 20  # read_new reads at most this much a call: a huge file is taken in several polls


class MetricsReader:
    """Reads only what was appended since the last call; a line cut mid-write waits for its end. Only a regular
    file is read (a FIFO would block the reader): anything else is, like a missing file, nothing to show."""

    def __init__(self, path: Path):
        self.path = path
        self.offset = 0
        self._partial = b""
        self._skipping = False  # inside an over-long line: drop bytes up to its end
        self.caught_up = True  # the last read_new reached the end of the file

    def read_new(self, max_bytes: int = _READ_CHUNK) -> list[dict[str, Any]]:
        self.caught_up = True  # (also when nothing can be read: there is nothing more to wait for)
        try:
            fd = open_regular(self.path)
        except OSError:  # not there (yet, or any more), not a regular file, or unreadable: nothing new to show
            return []
        try:
            size = os.fstat(fd).st_size
            if size < self.offset:  # rewritten (a resume trims it): start again
                self.offset, self._partial, self._skipping = 0, b"", False
            chunk = os.pread(fd, max(0, min(max_bytes, size - self.offset)), self.offset)
        except OSError:
            return []
        finally:
            os.close(fd)
        self.offset += len(chunk)
        self.caught_up = self.offset >= size
        data = self._partial + chunk
        lines = data.split(b"\n")
        self._partial = lines.pop()
        if self._skipping and lines:
            lines, self._skipping = lines[1:], False  # the rest of the over-long line
        if len(self._partial) > _MAX_LINE:
            self._partial, self._skipping = b"", True
        records = []
        for line in lines:
            rec = _record(line)
            if rec is not None:
                records.append(rec)
        return records


def _record(line: bytes) -> dict[str, Any] | None:
    """One metrics line as a record; None for a torn line from a killed writer, or anything but an object."""
    if len(line) > _MAX_LINE:
        return None
    try:
        rec = json.loads(line)
    except (ValueError, RecursionError):
        return None
    return rec if isinstance(rec, dict) else None


def latest_eval(paths: RunPaths) -> dict[str, Any] | None:
    """The run's latest `gptwiz eval` result (eval.jsonl); None when it has none readable."""
    try:
        records = [r for r in read_metrics(paths.evals) if isinstance(r.get("loss"), (int, float))]
    except (OSError, UnreadableFile):
        return None
    return records[-1] if records else None


def held_out_text(record: dict[str, Any] | None) -> str | None:
    """'held-out: loss 8.342, 3.947 bits/byte (held.txt, ckpt_best.pt iteration 50)', of a `gptwiz eval` record."""
    if not record:
        return None
    bpb = record.get("bits_per_byte")
    data = record.get("data") if isinstance(record.get("data"), dict) else {}
    where = Path(str(next(iter(data.values()), ""))).name if data else ""
    what = ", ".join(x for x in (where, f"{record.get('checkpoint', '?')} iteration {record.get('iter', '?')}") if x)
    bits = f", {bpb:.3f} bits/byte" if isinstance(bpb, (int, float)) else ""
    return f"held-out: loss {record['loss']:.3f}{bits} ({what})"


def read_metrics(path: Path) -> list[dict[str, Any]]:
    reader = MetricsReader(path)
    records = reader.read_new()
    while not reader.caught_up:
        records += reader.read_new()
    if reader._partial and not reader._skipping:
        rec = _record(reader._partial)
        if rec is not None:
            records.append(rec)
    return records


class MetricsWriter:
    """Appends records to metrics.jsonl (never through a symlink); `written` counts this writer's records."""

    def __init__(self, path: Path):
        self._f = open_append(path)
        self.written = 0

    def write(self, record: dict[str, Any]) -> None:
        # One write call per line, unbuffered, so a concurrent reader sees whole lines as soon as possible; a
        # line the disk had no room for is cut back off (AppendFile), so no torn line is left before the next.
        self._f.write(json.dumps(record, separators=(",", ":")) + "\n")
        self.written += 1

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


# --- a start that failed ---------------------------------------------------------------------------

_SNAPSHOT_LIMIT = 1 << 20  # config.json and status.json are a few kB; anything bigger is not put back


def missing_folders(folder: Path) -> list[Path]:
    """`folder` and those of its parents that do not exist yet (what mkdir(parents=True) will make), innermost
    first."""
    missing = []
    for candidate in (folder, *folder.parents):
        if os.path.lexists(candidate):
            break
        missing.append(candidate)
    return missing


def remove_empty_folders(folders: list[Path]) -> None:
    """rmdir each of `folders` (innermost first) while they are empty: a folder someone put anything in stays."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            return


def _read_small(path: Path) -> bytes | None:
    """The bytes of a small regular file; None when it is absent. Never through a link, never blocking on a FIFO."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > _SNAPSHOT_LIMIT:
            return None
        return os.pread(fd, info.st_size, 0)
    except OSError:
        return None
    finally:
        os.close(fd)


def _file_id(path: Path) -> tuple[int, int] | None:
    try:
        info = os.lstat(path)
    except OSError:
        return None
    return info.st_ino, info.st_mtime_ns


def _write_bytes(path: Path, data: bytes) -> None:
    def write(f: IO[bytes]) -> None:
        f.write(data)

    atomic_write(path, write)


@dataclass
class FolderBefore:
    """A run folder as it was when a trainer took its lock, so that a run that fails before its first step puts
    it back: what it wrote there goes, config.json and status.json get their old content back (a probe's, or a
    resumed run's), train.log its old length, and `made` (the folders the trainer created) are removed if empty.
    A refused start leaves nothing behind; a refused resume changes nothing."""
    paths: RunPaths
    made: list[Path]
    files: dict[str, bytes | None]   # config.json, status.json: their content; None where absent (or too big)
    present: set[str]                # the names in the folder
    log_size: int | None             # train.log's length; None where absent
    checkpoints: dict[str, tuple[int, int] | None]  # (inode, mtime) of each checkpoint, to tell a new one

    @classmethod
    def take(cls, paths: RunPaths, made: list[Path]) -> FolderBefore:
        try:
            present = {p.name for p in paths.root.iterdir()}
        except OSError:
            present = set()
        try:
            info = os.lstat(paths.log)
            log_size: int | None = info.st_size if stat.S_ISREG(info.st_mode) else None
        except OSError:
            log_size = None
        return cls(paths, made, {p.name: _read_small(p) for p in (paths.config, paths.status)}, present,
                   log_size, {p.name: _file_id(p) for p in (paths.ckpt_last, paths.ckpt_best)})

    def wrote_checkpoint(self) -> bool:
        """Whether a checkpoint was written since: then the run has something to resume, and it stays."""
        return any(_file_id(self.paths.root / name) != before for name, before in self.checkpoints.items())

    def restore(self) -> None:
        """Put the folder back (the caller still holds the lock: no other trainer writes meanwhile); errors are
        passed over, as this runs on the way out of a failure that is being reported."""
        root = self.paths.root
        for name, content in self.files.items():
            path = root / name
            try:
                if content is not None:
                    if _read_small(path) != content:  # (unchanged, it is left alone: a full disk has no room)
                        _write_bytes(path, content)
                elif name not in self.present:
                    path.unlink(missing_ok=True)
            except OSError:
                pass
        for path in (self.paths.metrics, self.paths.log):
            if path.name not in self.present:
                try:
                    if not path.is_symlink():
                        path.unlink(missing_ok=True)
                except OSError:
                    pass
        if self.log_size is not None:
            try:
                fd = os.open(self.paths.log, os.O_WRONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
                try:
                    if stat.S_ISREG(os.fstat(fd).st_mode) and os.fstat(fd).st_size > self.log_size:
                        os.ftruncate(fd, self.log_size)
                finally:
                    os.close(fd)
            except OSError:
                pass
        remove_temp_files(root)


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
        fd = open_regular(paths.lock, follow_symlinks=False)  # a FIFO planted there would block a plain open
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
                # Never through a symlink: taking the lock truncates the file it names. O_NONBLOCK: a FIFO
                # planted here fails the check below rather than blocking.
                fd = os.open(self.path, os.O_CREAT | os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, 0o644)
            except OSError as exc:
                if is_write_failure(exc):  # a full or read-only disk: the trainer says so in one line
                    exc.filename = exc.filename or str(self.path)
                    raise
                raise UsageError(f"cannot take the lock {self.path} ({exc.strerror}); "
                                 "remove it if no trainer of this run is running") from None
            mode = os.fstat(fd).st_mode
            if not stat.S_ISREG(mode):
                os.close(fd)
                raise UsageError(f"the lock {self.path} is {file_kind(mode)}, not a regular file; remove it")
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
            try:
                os.ftruncate(fd, 0)
                if os.write(fd, str(os.getpid()).encode()) == 0:
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self.path))
            except OSError as exc:
                # No room for the pid (a full disk): leave no empty lock behind that looks like a run's.
                self.path.unlink(missing_ok=True)  # still holding the lock: nobody can have taken it meanwhile
                os.close(fd)
                exc.filename = exc.filename or str(self.path)
                raise
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
