"""The run folder while a trainer owns it: taken with its lock, logged to, and put back after a failed start.

`RunFolderLease` is the context manager the trainer runs inside. On entry rank 0 creates the folder, takes its
lock (a second trainer of the same run is refused), notes what the folder held and removes what a killed trainer
left mid-write; on exit it closes train.log and releases the lock. A run that fails before its first step puts
the folder back as it found it (`put_back`), so that the same command, once corrected, starts afresh.
"""

from __future__ import annotations

import errno
import logging
from types import TracebackType

from gptwiz.common.atomic import remove_temp_files
from gptwiz.common.files import AppendFile, open_append, write_failure
from gptwiz.common.inert import inert
from gptwiz.runs.lock import RunLock
from gptwiz.runs.paths import RunPaths
from gptwiz.runs.restore import FolderBefore, missing_folders, remove_empty_folders


class FolderUnwritable(Exception):
    """The run folder could not be made or locked for want of a writable disk (`cause`, an OSError): the run
    never began, and leaves no folder."""

    def __init__(self, cause: OSError):
        super().__init__(str(cause))
        self.cause = cause


class RunFolderLease:
    """The run folder, owned by this process while the `with` block runs (`owner`: rank 0; the other ranks hold
    nothing). `restores`: whether a failed start puts the folder back; a probe's is left as the failure left it,
    for its parent to read."""

    def __init__(self, paths: RunPaths, owner: bool, restores: bool, log: logging.Logger):
        self.paths = paths
        self.owner = owner
        self.restores = restores
        self.log = log
        self.lock = RunLock(paths)
        self.before: FolderBefore | None = None  # what the folder held when the lock was taken
        self._handler: _LogFileHandler | None = None
        self._put_back = False

    def __enter__(self) -> RunFolderLease:
        """Raises FolderUnwritable for a full or read-only disk, and UsageError for a folder another trainer
        holds; either way the folders it made are gone again."""
        if not self.owner:
            return self
        made = missing_folders(self.paths.root)
        try:
            self.paths.root.mkdir(parents=True, exist_ok=True)
            self.lock.acquire()
        except OSError as exc:
            remove_empty_folders(made)
            raise FolderUnwritable(exc) from exc
        except BaseException:
            remove_empty_folders(made)
            raise
        self.before = FolderBefore.take(self.paths, made) if self.restores else None
        remove_temp_files(self.paths.root)  # what a trainer killed mid-write left; the lock says none is writing
        return self

    def open_log(self) -> None:
        """train.log, appended to by this rank's logger from now on (rank 0 only)."""
        if not self.owner:
            return
        self.log.setLevel(logging.INFO)
        self.log.propagate = False
        self._handler = _LogFileHandler(open_append(self.paths.log))
        self.log.addHandler(self._handler)

    def failed_before_first_step(self, records_written: int) -> bool:
        """Whether a failure now leaves nothing a later command needs: no record, no checkpoint of its own."""
        return self.before is not None and records_written == 0 and not self.before.wrote_checkpoint()

    def put_back(self) -> None:
        """The folder as it was before this run started (the folders it made go on exit, once empty)."""
        if self.before is not None:
            self.before.restore()
            self._put_back = True

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._handler is not None:
            self.log.removeHandler(self._handler)
            self._handler.close()
            self._handler = None
        self.lock.release()
        if self._put_back and self.before is not None:
            remove_empty_folders(self.before.made)


def run_logger(name: str, rank: int = 0) -> logging.Logger:
    """The logger of run `name`'s rank: what it is told goes to train.log while that rank's lease holds the log
    open (rank 0's; the other ranks' go nowhere), so that whoever speaks for the run writes the log one way."""
    return logging.getLogger(f"gptwiz.training.trainer.{name}.{rank}")


class _InertFormatter(logging.Formatter):
    """Every line of train.log inert, whatever the caller passed: a message holds outside text (a preset's or a
    file's name, another process's error) and a terminal may `cat` the log. Newlines and tabs stay: a failure's
    traceback is logged whole."""

    def format(self, record: logging.LogRecord) -> str:
        return inert(super().format(record), multiline=True)


class _LogFileHandler(logging.Handler):
    """train.log, appended through open_append (never through a link). A line the disk has no room for is
    dropped: the failure reaches the user as the run's own one-line error, not as logging's report of it."""

    def __init__(self, file: AppendFile):
        super().__init__()
        self.file = file
        self.setFormatter(_InertFormatter("%(asctime)s %(message)s", "%Y-%m-%d %H:%M:%S"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.file.write((self.format(record) + "\n").encode("utf-8", "backslashreplace"))
        except Exception:  # a full disk, a closed file: never "--- Logging error ---" and a traceback
            pass

    def close(self) -> None:
        self.file.close()
        super().close()


def describe_failure(exc: BaseException, resumable: bool = True) -> str:
    """A failure in one line: a write failure with what to do about it, else the exception's class and first
    line."""
    failure = write_failure(exc)
    if failure is not None:
        if isinstance(exc, OSError) and exc.errno == errno.EROFS:
            return failure
        return f"{failure}; free some space and {'--resume' if resumable else 'start the run again'}"
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{exc.__class__.__name__}: {text}" if text else exc.__class__.__name__
