"""Atomic file writes: a reader, or a kill at any moment, sees the old file or the new one, never half of one."""

from __future__ import annotations

import errno
import json
import os
import signal
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from gptwiz.common.faults import atomic_fault


def atomic_write(path: Path | str, write: Callable[[IO[bytes]], None]) -> None:
    """Write through `write(file)` to a temporary file beside `path`, fsync it, then rename it over `path`."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        # mkstemp makes the file private (0600); the result should read like any file the user writes.
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        _injected_fault(path)
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(exc, OSError) and not exc.filename:
            exc.filename = str(path)  # a full disk says where: "No space left on device" alone does not
        raise
    fsync_dir(path.parent)


def is_temp_file(name: str) -> bool:
    """A temporary file of atomic_write (".NAME.XXXXXXXX.tmp")."""
    return name.startswith(".") and name.endswith(".tmp")


def remove_temp_files(folder: Path | str) -> list[Path]:
    """Delete what atomic_write left in `folder` when its process was killed mid-write (a checkpoint's can be
    gigabytes). Only for a folder no other process is writing: the caller holds its lock."""
    removed = []
    try:
        entries = list(Path(folder).iterdir())
    except OSError:
        return removed
    for entry in entries:
        if is_temp_file(entry.name) and entry.is_file() and not entry.is_symlink():
            try:
                entry.unlink()
                removed.append(entry)
            except OSError:
                pass
    return removed


def _injected_fault(path: Path) -> None:
    """The test-only GPTWIZ_FAULT_ATOMIC hook (gptwiz.common.faults), between the write and the rename."""
    fault = atomic_fault()
    if fault is None or not fault.matches(path.name) or not path.exists():
        return
    if fault.action.startswith("sleep="):
        time.sleep(float(fault.action.split("=", 1)[1]))
    elif fault.action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    elif fault.action == "enospc":
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))


def fsync_dir(folder: Path) -> None:
    # The rename itself lives in the directory; without this a power cut can forget it.
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_json(path: Path | str, data: Any) -> None:
    payload = (json.dumps(data, indent=2, sort_keys=False) + "\n").encode("utf-8")
    atomic_write(path, lambda f: f.write(payload))
