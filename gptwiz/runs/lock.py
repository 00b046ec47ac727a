"""The run's lock: one trainer per run folder, and how a viewer tells whether a trainer is at work."""

from __future__ import annotations

import errno
import fcntl
import os
import stat
import struct

from gptwiz.common import procs
from gptwiz.common.errors import UsageError
from gptwiz.common.files import file_kind, is_write_failure
from gptwiz.common.inert import quote
from gptwiz.common.safe_read import open_regular
from gptwiz.runs.paths import RunPaths

# Linux's struct flock (off_t is 64-bit: Python builds with large file support): type, whence, start, len, pid.
_FLOCK = "hhqqi"


def lock_exclusive(fd: int) -> bool:
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
    return pid if procs.pid_alive(pid) else None


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
            if not lock_exclusive(fd):
                os.close(fd)
                owner = lock_owner(self.paths)
                raise UsageError(f"run {quote(self.path.parent.name)} is already being trained by process "
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
