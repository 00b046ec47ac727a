"""Putting a run folder back as it was when a start that failed before its first step took it."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from gptwiz.common.atomic import atomic_write, remove_temp_files
from gptwiz.runs.paths import RunPaths

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
    it back: what it wrote there goes, config.json, status.json and quality.json get their old content back (a
    probe's, or a resumed run's), train.log its old length, and `made` (the folders the trainer created) are
    removed if empty.
    A refused start leaves nothing behind; a refused resume changes nothing."""
    paths: RunPaths
    made: list[Path]
    files: dict[str, bytes | None]   # config.json, status.json, quality.json: their content; None where absent
                                     # (or too big)
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
        kept = (paths.config, paths.status, paths.quality)
        return cls(paths, made, {p.name: _read_small(p) for p in kept}, present, log_size,
                   {p.name: _file_id(p) for p in (paths.ckpt_last, paths.ckpt_best)})

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
