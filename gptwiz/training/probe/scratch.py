"""The probe's private temporary folder, and the removal of those left by probes killed before they could remove
their own.

Each folder is made by mkdtemp (mode 0700, a name nobody can have made before) and holds a lock file, locked
while its probe lives: the kernel drops the lock with its holder, so a folder whose lock is free is an orphan.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import stat
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

SCRATCH_PREFIX = "gptwiz-probe-"
_SCRATCH_LOCK = "lock"
_UNLOCKED_GRACE_S = 60.0  # a folder without its lock file yet may be a probe starting this instant


@contextlib.contextmanager
def scratch_folder() -> Iterator[Path]:
    """A private temporary folder for one probe, with a lock held on a file in it while the probe lives. Folders
    of probes that were killed (no clean-up ran) are removed first: their lock is free."""
    remove_stale_scratch()
    while True:
        folder = Path(tempfile.mkdtemp(prefix=SCRATCH_PREFIX))
        try:
            fd = os.open(folder / _SCRATCH_LOCK, os.O_CREAT | os.O_RDWR | os.O_NOFOLLOW, 0o600)
        except OSError:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        # Another probe's clean-up may take the lock in the instant before this does, and remove the folder
        # as a dead probe's: then the lock file has no name left (no links), and another folder is made.
        fcntl.flock(fd, fcntl.LOCK_EX)
        if os.fstat(fd).st_nlink:
            break
        os.close(fd)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        os.close(fd)


def remove_stale_scratch(root: Path | None = None) -> list[Path]:
    """Remove the temporary folders of this user's probes that died without cleaning up; the folders removed."""
    root = Path(root or tempfile.gettempdir())
    removed: list[Path] = []
    try:
        entries = [e for e in os.scandir(root) if e.name.startswith(SCRATCH_PREFIX)]
    except OSError:
        return removed
    for entry in entries:
        try:
            info = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        # Only a real folder of this user's: another user's (or a link planted there) is not ours to remove.
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or _scratch_in_use(Path(entry.path), info):
            continue
        shutil.rmtree(entry.path, ignore_errors=True)
        removed.append(Path(entry.path))
    return removed


def _scratch_in_use(folder: Path, info: os.stat_result) -> bool:
    try:
        fd = os.open(folder / _SCRATCH_LOCK, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return time.time() - info.st_mtime < _UNLOCKED_GRACE_S
    except OSError:
        return True  # unreadable: leave it
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:  # held: its probe is alive
        return True
    finally:
        os.close(fd)
    return False
