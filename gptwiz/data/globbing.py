"""Globs over a user's folders that follow symlinked folders but never around a loop.

Python's `glob.glob(..., recursive=True)` follows every symlink to a folder, so one link back to a parent makes
`**` walk without end, in memory as well as time (and the wizard runs it in a thread nothing can stop). Here a
link back to a folder the walk is already inside is not entered; any other link is followed, as glob does. The
rules are glob's: `**` matches any number of folders, a wildcard never matches a name starting with a dot unless
the pattern's part does, and the paths come back spelled from the pattern's own leading folders.
"""

from __future__ import annotations

import os
import re
from fnmatch import fnmatchcase

_MAGIC = re.compile(r"[*?[]")


def has_magic(pattern: str) -> bool:
    return _MAGIC.search(pattern) is not None


def safe_glob(pattern: str) -> list[str]:
    """The paths `pattern` matches (files and folders, unsorted), like glob.glob(pattern, recursive=True)."""
    if not has_magic(pattern):
        return [pattern] if os.path.lexists(pattern) else []
    parts = pattern.split(os.sep)
    first = next(i for i, part in enumerate(parts) if has_magic(part))
    prefix = os.sep.join(parts[:first]) or (os.sep if first else "")
    rest = [part for part in parts[first:] if part]
    found: list[str] = []
    if os.path.isdir(prefix or "."):
        _walk(prefix or ".", prefix, rest, set(), found)
    return found


def _hidden(name: str, part: str) -> bool:
    return name.startswith(".") and not part.startswith(".")


def _folder_key(path: str, depth: int) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino, depth


def _entries(folder: str) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(folder) as it:
            return list(it)
    except OSError:  # unreadable or vanished: glob skips it too
        return []


def _is_dir(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir()
    except OSError:
        return False


def _walk(folder: str, shown: str, rest: list[str], seen: set[tuple[int, int, int]], found: list[str]) -> None:
    """Match `rest` (the pattern's parts still to match) below `folder`, shown to the caller as `shown`; `seen`
    holds the folders being walked above this one (with the place in the pattern), so a link back to one of them
    is a loop and is not entered."""
    key = _folder_key(folder, len(rest))
    if key is None or key in seen:
        return
    seen.add(key)
    try:
        _match(folder, shown, rest, seen, found)
    finally:
        seen.discard(key)


def _match(folder: str, shown: str, rest: list[str], seen: set[tuple[int, int, int]], found: list[str]) -> None:
    part, later = rest[0], rest[1:]
    wild = part == "**"
    if not wild and not has_magic(part):
        path, real = os.path.join(shown, part) if shown else part, os.path.join(folder, part)
        if not later and os.path.lexists(real):
            found.append(path)
        elif later and os.path.isdir(real):
            _walk(real, path, later, seen, found)
        return
    if wild and later:
        _walk(folder, shown, later, seen, found)  # ** as no folder at all
    for entry in _entries(folder):
        if _hidden(entry.name, part) or not (wild or fnmatchcase(entry.name, part)):
            continue
        path = os.path.join(shown, entry.name) if shown else entry.name
        if not later:
            found.append(path)
        if (wild or later) and _is_dir(entry):
            _walk(entry.path, path, rest if wild else later, seen, found)  # ** goes on matching below
