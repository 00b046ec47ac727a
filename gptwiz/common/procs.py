"""Processes: whether a pid names a live process."""

from __future__ import annotations

import os


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists (any process: a pid alone never says which program holds it)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):  # (a number too big to be a pid)
        return False
    except PermissionError:  # another user's
        return True
    return True
