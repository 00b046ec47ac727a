"""TensorBoard event files, written through torch.utils.tensorboard (the `tensorboard` package is an optional
extra: `pip install 'gptwiz[tensorboard]'`)."""

from __future__ import annotations

import errno
import importlib.util
import json
import os
import stat
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from gptwiz.common.errors import UsageError
from gptwiz.common.files import check_own_folder
from gptwiz.common.inert import quote
from gptwiz.trackers.scalars import scalars, step_of, wall_time

EVENT_PREFIX = "events.out.tfevents."
MISSING = "needs the tensorboard package, which is not installed: pip install 'gptwiz[tensorboard]' (or tensorboard)"


def check_available(flag: str = "--tensorboard") -> None:
    """A UsageError (one line, exit 2) before anything starts when the package is missing."""
    if importlib.util.find_spec("tensorboard") is None:
        raise UsageError(f"{flag} {MISSING}")


def config_text(config: dict[str, Any]) -> str:
    """The resolved config as TensorBoard's text plugin shows it: markdown, so the JSON goes in a code block."""
    return "\n".join("    " + line for line in json.dumps(config, indent=2).splitlines())


class TensorBoardSink:
    """One run's event files in `log_dir`. `purge_step`: a resumed run's first iteration, so that TensorBoard
    drops what an earlier attempt logged from there on (those iterations are trained again)."""

    def __init__(self, log_dir: Path, config: dict[str, Any] | None = None, purge_step: int | None = None):
        check_available()
        from torch.utils.tensorboard import SummaryWriter  # torch and tensorboard: only when logging to it

        log_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir = log_dir
        self._writer = SummaryWriter(log_dir=str(log_dir), purge_step=purge_step or None, flush_secs=10)
        if config:
            self._writer.add_text("config", config_text(config), global_step=purge_step or 0)

    def add(self, record: dict[str, Any]) -> None:
        step = step_of(record)
        if step is None:
            return
        t = wall_time(record)
        for tag, v in scalars(record).items():
            self._writer.add_scalar(tag, v, global_step=step, walltime=t)

    def flush(self) -> None:
        self._writer.flush()

    def close(self, exit_code: int = 0) -> None:
        self._writer.close()


def remove_event_files(log_dir: Path) -> None:
    """Delete the event files in `log_dir`, a real folder: a symlink there (or one swapped in meanwhile) is
    refused in one line, never followed, so no file outside it is deleted; an event file that is a link is
    removed itself."""
    check_own_folder(log_dir, "the event folder")
    try:
        fd = os.open(log_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):  # replaced by a link or a file since the check
            raise UsageError(f"the event folder {quote(log_dir)} is not a real folder; remove it") from None
        raise
    try:
        for name in os.listdir(fd):
            if name.startswith(EVENT_PREFIX):
                mode = os.stat(name, dir_fd=fd, follow_symlinks=False).st_mode
                if stat.S_ISREG(mode) or stat.S_ISLNK(mode):
                    os.unlink(name, dir_fd=fd)
    finally:
        os.close(fd)


def replay(records: Iterable[dict[str, Any]], config: dict[str, Any] | None, log_dir: Path) -> int:
    """A run's records written as event files after the fact, replacing the event files already in `log_dir`
    (they can only hold the same records, or fewer); the number of records written."""
    check_available()
    remove_event_files(log_dir)
    sink = TensorBoardSink(log_dir, config)
    written = 0
    try:
        for record in records:
            if scalars(record):
                sink.add(record)
                written += 1
    finally:
        sink.close()
    return written
