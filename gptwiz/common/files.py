"""Files and folders gptwiz writes into: appends that never follow a link, folders checked before anything is
written into them, and a write that failed for want of space (or of a writable disk) told in one line."""

from __future__ import annotations

import errno
import os
import shutil
import stat
from pathlib import Path

from gptwiz.common import fmt
from gptwiz.common.errors import UsageError
from gptwiz.common.inert import quote

# A name longer than this is refused by every common Linux filesystem (ext4, xfs, btrfs, tmpfs).
_NAME_MAX = 255
_PATH_MAX = 4096

# Filesystems that are views of the kernel, not storage: nothing gptwiz writes can live there.
_PSEUDO_FILESYSTEMS = {"proc", "sysfs", "devpts", "cgroup", "cgroup2", "debugfs", "tracefs", "securityfs",
                       "configfs", "pstore", "bpf", "mqueue", "fusectl", "binfmt_misc", "efivarfs", "autofs",
                       "nsfs", "rpc_pipefs"}

# The errors of a write that no retry fixes until the user frees space or picks another disk.
_NO_ROOM = {errno.ENOSPC: "no space left on the disk", errno.EDQUOT: "disk quota exceeded",
            errno.EFBIG: "file too large for the disk"}


class AppendFile:
    """A file opened for appending by `open_append`: each `write` lands whole or not at all (a failed write is
    cut back to where it started), so a reader never sees half a line from a writer that ran out of space."""

    def __init__(self, fd: int, path: Path):
        self._fd: int | None = fd
        self.path = path

    def fileno(self) -> int:
        if self._fd is None:
            raise ValueError(f"{self.path} is closed")
        return self._fd

    def write(self, data: bytes | str) -> None:
        payload = data.encode("utf-8") if isinstance(data, str) else data
        fd = self.fileno()
        start = os.fstat(fd).st_size  # one writer (the run's lock holder): the end is where this write begins
        view = memoryview(payload)
        try:
            while view:
                view = view[os.write(fd, view):]
        except OSError as exc:
            try:
                os.ftruncate(fd, start)
            except OSError:
                pass
            if not exc.filename:
                exc.filename = str(self.path)  # "No space left on device" alone does not say where
            raise

    def close(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)

    def __enter__(self) -> AppendFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_append(path: Path | str) -> AppendFile:
    """Open `path` for appending (creating it), refusing a symlink (a planted link would send the writes to
    whatever file it names) and anything that is not a regular file (a FIFO would block, a device swallow)."""
    path = Path(path)
    try:
        # O_NONBLOCK: a FIFO planted here fails the type check below instead of blocking the open.
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK,
                     0o644)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UsageError(f"{path} is a symlink; gptwiz does not write through links: remove it") from None
        if exc.errno == errno.ENXIO:  # a FIFO nobody reads
            raise UsageError(f"{path} is not a regular file (a named pipe); remove it") from None
        if exc.errno == errno.EISDIR:
            raise UsageError(f"{path} is a folder, not a regular file; remove it") from None
        if not exc.filename:
            exc.filename = str(path)
        raise
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise UsageError(f"{path} is not a regular file ({file_kind(info.st_mode)}); remove it")
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return AppendFile(fd, path)


def file_kind(mode: int) -> str:
    """What a stat mode names, in words: 'a folder', 'a named pipe', ..."""
    for test, name in ((stat.S_ISDIR, "a folder"), (stat.S_ISREG, "a regular file"), (stat.S_ISFIFO, "a named pipe"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISLNK, "a symlink")):
        if test(mode):
            return name
    return "not a regular file"


def check_own_folder(path: Path, what: str) -> None:
    """Refuse, in one line, a folder gptwiz names itself (a run's tb/, its wandb/) that is a symlink or not a
    folder: gptwiz writes and deletes there, and a planted link would send that to wherever it points. Nothing
    there yet is fine (it is made as a real folder)."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISLNK(info.st_mode):
        raise UsageError(f"{what} {quote(path)} is a symlink (to {quote(os.readlink(path))}); gptwiz writes there "
                         "only into a real folder of its own: remove the link (what it points at is left alone)")
    if not stat.S_ISDIR(info.st_mode):
        raise UsageError(f"{what} {quote(path)} is {file_kind(info.st_mode)}, not a folder; remove it")


# --- a write that failed for want of room -------------------------------------------------------------

def free_space(path: Path | str) -> str:
    """'12.3 MB free of 1.00 TB' on the disk that holds `path` (its nearest existing folder), or '' if that
    cannot be told."""
    folder = _existing_ancestor(Path(path))
    try:
        usage = shutil.disk_usage(folder)
        vfs = os.statvfs(folder)
    except (OSError, ValueError):
        return ""
    # A disk can also run out of file entries (inodes) with bytes to spare: then no new file or folder fits.
    no_inodes = ", no inodes left" if vfs.f_files and not vfs.f_favail else ""
    return f"{fmt.bytes_(usage.free)} free of {fmt.bytes_(usage.total)}{no_inodes}"


def write_failure(exc: BaseException) -> str | None:
    """The one line for a write that failed because the disk is full, over quota or read-only, naming the file
    and the free space: "no space left on the disk while writing runs/a/lock (0 B free of 1.05 MB)". None for
    any other error."""
    if not isinstance(exc, OSError):
        return None
    where = exc.filename or "a file"
    if exc.errno in _NO_ROOM:
        room = free_space(where) if exc.filename else ""
        return f"{_NO_ROOM[exc.errno]} while writing {where}" + (f" ({room})" if room else "")
    if exc.errno == errno.EROFS:
        return f"cannot write {where}: its filesystem is read-only"
    return None


def is_write_failure(exc: BaseException) -> bool:
    return write_failure(exc) is not None


# --- folders given on the command line -----------------------------------------------------------------

def check_folder(path: Path | str, flag: str, *, write: bool) -> Path:
    """Refuse, in one line, a --runs_dir or --data_dir that cannot be a folder gptwiz reads (or, with `write`,
    makes and writes into): a file or a device, a path over the length limits, a kernel filesystem such as /proc,
    a read-only filesystem or one it may not write. A folder that does not exist yet is fine if it can be made
    (for reading, it simply holds nothing yet)."""
    path = Path(path)
    text = str(path)
    if "\x00" in text:
        raise UsageError(f"invalid {flag} {quote(text)}: a path cannot hold a NUL character")
    for part in path.parts:
        if len(os.fsencode(part)) > _NAME_MAX:
            raise UsageError(f"invalid {flag} {_short(text)}: its part {_short(part)} is {len(os.fsencode(part))} "
                             f"bytes long, more than the {_NAME_MAX} a file name may have")
    if len(os.fsencode(text)) >= _PATH_MAX:
        raise UsageError(f"invalid {flag} {_short(text)}: the path is {len(os.fsencode(text))} bytes long, "
                         f"more than the {_PATH_MAX - 1} a path may have")
    target = path
    try:
        info = os.stat(path)
    except FileNotFoundError:
        if os.path.islink(path):
            raise UsageError(f"invalid {flag} {text}: it is a symlink to {os.readlink(path)}, which does not exist; "
                             "give a folder") from None
        target = _existing_ancestor(path)
        try:
            info = os.stat(target)
        except OSError as exc:
            raise UsageError(f"invalid {flag} {text}: {target} cannot be read ({exc.strerror})") from None
        if not stat.S_ISDIR(info.st_mode):
            raise UsageError(f"invalid {flag} {text}: {target} is {file_kind(info.st_mode)}, not a folder, "
                             "so no folder can be made inside it; give a folder") from None
    except NotADirectoryError:
        file = _file_in_path(path)
        raise UsageError(f"invalid {flag} {text}: {file} is a file, not a folder; give a folder") from None
    except OSError as exc:  # a symlink loop, no permission to look, ...
        raise UsageError(f"invalid {flag} {text}: it cannot be used ({exc.strerror}); give another folder") from None
    if not stat.S_ISDIR(info.st_mode):
        raise UsageError(f"invalid {flag} {text}: it is {file_kind(info.st_mode)}, not a folder; give a folder")
    fs_type = filesystem_type(target)
    if fs_type in _PSEUDO_FILESYSTEMS:
        raise UsageError(f"invalid {flag} {text}: it is on the kernel's {fs_type} filesystem, which holds no files "
                         "of gptwiz; give a folder on a disk")
    if write:
        if _read_only(target):
            raise UsageError(f"invalid {flag} {text}: {target} is on a read-only filesystem; give a writable folder")
        if not os.access(target, os.W_OK | os.X_OK):
            raise UsageError(f"invalid {flag} {text}: {target} is not writable by this user; give a writable folder")
    elif target == path and not os.access(path, os.R_OK | os.X_OK):
        raise UsageError(f"invalid {flag} {text}: it cannot be read by this user; give a readable folder")
    return path


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else f"{text[:limit]}..."


def _existing_ancestor(path: Path) -> Path:
    """The nearest of path and its parents that exists (the current folder for a relative path with none)."""
    candidate = path
    while True:
        try:
            os.stat(candidate)
            return candidate
        except OSError:
            pass
        if candidate.parent == candidate:
            return candidate
        candidate = candidate.parent


def _file_in_path(path: Path) -> Path:
    """The first part of `path` that exists and is not a folder (what makes the rest of it impossible)."""
    for candidate in [*reversed(path.parents), path]:
        try:
            if not stat.S_ISDIR(os.stat(candidate).st_mode):
                return candidate
        except OSError:
            break
    return path


def _read_only(folder: Path) -> bool:
    try:
        return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def filesystem_type(path: Path | str) -> str | None:
    """The type of the filesystem holding `path` ('ext4', 'tmpfs', 'proc', ...) from /proc/self/mountinfo;
    None where that cannot be read (not Linux)."""
    try:
        real = os.path.realpath(path)
        with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    best, best_type = "", None
    for line in lines:
        fields = line.split(" ")
        if "-" not in fields or len(fields) < 5:
            continue
        mount_point = _unescape(fields[4])
        fs_type = fields[fields.index("-") + 1] if fields.index("-") + 1 < len(fields) else None
        inside = real == mount_point or real.startswith(mount_point.rstrip("/") + "/")
        if inside and len(mount_point) >= len(best):  # the last of equal mounts is the one on top
            best, best_type = mount_point, fs_type
    return best_type


def _unescape(text: str) -> str:
    # mountinfo writes space, tab, newline and backslash in paths as octal escapes (\040 ...).
    out, i = [], 0
    while i < len(text):
        if text[i] == "\\" and i + 3 < len(text) and text[i + 1:i + 4].isdigit():
            out.append(chr(int(text[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(text[i])
            i += 1
    return "".join(out)
