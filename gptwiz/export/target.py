"""The folder an export writes (--out DIR): its name within the filesystem's limit, one export at a time per
folder, the hidden temporary folder the model is written into and renamed from, and what a killed export left.

Beside DIR, in its parent folder, an export keeps three names of its own, each made from a hash of DIR's name
(so that a name as long as the filesystem allows still leaves room for them):

    .gptwiz-export-HASH.lock   held locked while the export runs; removed when it ends (a kill leaves it,
                               unlocked: the kernel drops a dead process's lock, and the next export takes it)
    .gptwiz-export-HASH.tmp    the new model folder being written, renamed to DIR once whole
    .gptwiz-export-HASH.old    with --overwrite, the earlier export, between the two renames that swap them

A second export to DIR while the lock is held is refused in one line. The export that holds it first settles
what a killed one left: its temporary folder is removed, and an earlier export moved aside goes back to DIR if
DIR is gone. A folder at one of those names is taken for the export's only if it is a real folder of this
user's holding nothing but what an export writes; anything else is left alone and named in a refusal.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import shutil
import stat
import time
from collections.abc import Callable, Collection, Iterator
from pathlib import Path

from gptwiz.common.atomic import fsync_dir
from gptwiz.common.errors import UsageError, WriteFailed
from gptwiz.common.faults import export_hold
from gptwiz.common.files import file_kind, is_write_failure, write_failure
from gptwiz.common.inert import quote
from gptwiz.runs.jsonfile import read_json
from gptwiz.runs.lock import lock_exclusive
from gptwiz.runs.restore import missing_folders, remove_empty_folders

_PREFIX = ".gptwiz-export-"
_DEFAULT_NAME_MAX = 255  # where the filesystem does not say (every common Linux one allows this)


def shown(text: str, limit: int = 200) -> str:
    """A value for a message, cut short when long (a 300-byte name would fill the line)."""
    return quote(text if len(text) <= limit else f"{text[:limit]}...")


def name_max(folder: Path) -> int:
    """The longest file name, in bytes, the filesystem holding `folder` (or its nearest existing parent) allows."""
    for candidate in (folder, *folder.parents):
        try:
            return int(os.pathconf(candidate, "PC_NAME_MAX"))
        except (OSError, ValueError):
            continue
    return _DEFAULT_NAME_MAX


def check_name(out: Path, given: str) -> None:
    """Refuse, in one line, a folder name the filesystem cannot hold (before any call that would fail on it)."""
    if "\x00" in given:
        raise UsageError(f"invalid --out {shown(given)}: a path cannot hold a NUL character")
    limit = name_max(out.parent if str(out.parent) else Path("."))
    size = len(os.fsencode(out.name))
    if size > limit:
        raise UsageError(f"invalid --out {shown(given)}: its name is {size} bytes long, more than the {limit} a "
                         "file name may have on that filesystem; give a shorter name")


class ExportTarget:
    """The folder `out`, claimed for one export: its parent made, its lock held, what a killed export left
    settled. `write(fill)` puts a new model folder in place whole; leaving the block releases the lock (and,
    after a failure, removes the folders the claim made, if they are empty). `files`: the names an export
    writes, by which its temporary folder is told from anyone else's (`suffixes`: the endings of the names
    not known before, such as a GGUF export's <run name>.gguf)."""

    def __init__(self, out: Path, files: Collection[str], suffixes: tuple[str, ...] = ()):
        self.out = out
        self.parent = out.parent if str(out.parent) else Path(".")
        key = hashlib.sha256(os.fsencode(out.name)).hexdigest()[:16]
        self.lock_path = self.parent / f"{_PREFIX}{key}.lock"
        self.tmp = self.parent / f"{_PREFIX}{key}.tmp"
        self.old = self.parent / f"{_PREFIX}{key}.old"
        self.files = frozenset(files)
        self.suffixes = suffixes  # names an export writes that are known only by their ending (<run>.gguf)
        self._fd: int | None = None

    @contextlib.contextmanager
    def claimed(self) -> Iterator[ExportTarget]:
        made = missing_folders(self.parent)
        try:
            try:
                self.parent.mkdir(parents=True, exist_ok=True)
                self._lock()
                self._settle_leftovers()
            except OSError as exc:
                raise self._failed(exc) from None
            yield self
        except BaseException:
            self._unlock()
            remove_empty_folders(made)
            raise
        self._unlock()

    def _lock(self) -> None:
        for _ in range(10):
            try:
                # Never through a link (taking it would write where the link points); O_NONBLOCK: a FIFO planted
                # here fails the type check below instead of blocking.
                fd = os.open(self.lock_path, os.O_CREAT | os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK,
                             0o644)
            except FileNotFoundError:  # a failed export to a sibling folder removed the parent it had made
                self.parent.mkdir(parents=True, exist_ok=True)
                continue
            except OSError as exc:
                if is_write_failure(exc):
                    exc.filename = exc.filename or str(self.lock_path)
                    raise
                why = "it is a symlink" if exc.errno == errno.ELOOP else exc.strerror
                raise UsageError(f"cannot take the export lock {quote(self.lock_path)} ({why}); remove it if no "
                                 f"export to --out {shown(str(self.out))} is running") from None
            mode = os.fstat(fd).st_mode
            if not stat.S_ISREG(mode):
                os.close(fd)
                raise UsageError(f"the export lock {quote(self.lock_path)} is {file_kind(mode)}, not a regular file; "
                                 "remove it")
            if not lock_exclusive(fd):
                os.close(fd)
                raise UsageError(f"--out {shown(str(self.out))}: another export is writing it right now; wait "
                                 "for it to end, or give another folder")
            try:
                same_file = os.fstat(fd).st_ino == os.lstat(self.lock_path).st_ino
            except FileNotFoundError:
                same_file = False
            if same_file:
                self._fd = fd
                return
            os.close(fd)  # its holder released it (removing the file) as this opened it: take the new one
        raise UsageError(f"could not take the export lock {quote(self.lock_path)}; other exports keep taking "
                         "and releasing it")

    def _unlock(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                self.lock_path.unlink()  # still holding the lock: nobody can have taken it meanwhile
            os.close(self._fd)
            self._fd = None

    def _settle_leftovers(self) -> None:
        """What a killed export left: the earlier export back in place if it was moved aside and `out` is gone,
        else removed; the temporary folder removed. Run under the lock, so no live export is writing them."""
        if os.path.lexists(self.old):
            if not _own_folder(self.old) or not is_model_folder(self.old):
                raise self._in_the_way(self.old)
            if _vacant(self.out):
                os.rename(self.old, self.out)
                fsync_dir(self.parent)
            else:
                shutil.rmtree(self.old)
        if os.path.lexists(self.tmp):
            if not self._own_temporary(self.tmp):
                raise self._in_the_way(self.tmp)
            shutil.rmtree(self.tmp)

    def _own_temporary(self, folder: Path) -> bool:
        if not _own_folder(folder):
            return False
        try:
            with os.scandir(folder) as entries:
                return all((e.name in self.files or e.name.endswith(self.suffixes)) and e.is_file(follow_symlinks=False)
                           for e in entries)
        except OSError:
            return False

    def _in_the_way(self, path: Path) -> UsageError:
        return UsageError(f"--out {shown(str(self.out))}: {quote(path)} is in the way (a name gptwiz's export "
                          "uses beside the folder, holding something an export did not write); remove or rename it")

    def _failed(self, exc: OSError) -> WriteFailed:
        """A write that failed, in one line: a file in the temporary folder named as where it was to land."""
        if exc.filename:
            with contextlib.suppress(ValueError):
                exc.filename = str(self.out / Path(exc.filename).relative_to(self.tmp))
        line = write_failure(exc) or (f"cannot write {quote(exc.filename or self.out)} "
                                      f"({exc.strerror or exc.__class__.__name__})")
        return WriteFailed(f"{line}; nothing was exported")

    def write(self, fill: Callable[[Path], None], replace: bool) -> None:
        """`fill(folder)` writes the files into the temporary folder, which then takes out's place whole (the
        earlier export moved aside first when `replace`): a failure or an interrupt at any moment leaves what was
        there before (or nothing), never half a model. A failed write is a WriteFailed (one line, exit 1)."""
        assert self._fd is not None, "write() outside claimed()"
        try:
            self._write(fill, replace)
        except OSError as exc:
            raise self._failed(exc) from None

    def _write(self, fill: Callable[[Path], None], replace: bool) -> None:
        os.mkdir(self.tmp)  # the umask's mode: the export reads like any folder the user makes
        moved = False
        try:
            fill(self.tmp)
            for entry in self.tmp.iterdir():
                with open(entry, "rb") as f:
                    os.fsync(f.fileno())
            fsync_dir(self.tmp)
            hold = export_hold()
            if hold:
                time.sleep(hold)
            if replace and not _vacant(self.out):  # an earlier export, with --overwrite (checked before)
                os.rename(self.out, self.old)
                moved = True
            os.rename(self.tmp, self.out)  # (over an empty folder too: rename replaces an empty directory)
            fsync_dir(self.parent)
        except BaseException:
            shutil.rmtree(self.tmp, ignore_errors=True)
            if moved and not os.path.lexists(self.out):
                os.rename(self.old, self.out)
            raise
        if moved:
            shutil.rmtree(self.old, ignore_errors=True)


def _own_folder(path: Path) -> bool:
    """A real folder (not a link to one) of this user's."""
    try:
        info = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid()


GGUF_MAGIC = b"GGUF"


def is_model_folder(folder: Path) -> bool:
    """An earlier export, of either format: a Hugging Face folder (the config.json of a GPT-2 model) or a GGUF
    export (a Modelfile beside a file that is a GGUF). What --overwrite may replace."""
    if (read_json(folder / "config.json") or {}).get("model_type") == "gpt2":
        return True
    try:
        with os.scandir(folder) as entries:
            found = {e.name: e.is_file(follow_symlinks=False) for e in entries}
    except OSError:
        return False
    ggufs = [name for name, is_file in found.items() if is_file and name.endswith(".gguf")]
    return bool(found.get("Modelfile")) and any(_starts_with(folder / name, GGUF_MAGIC) for name in ggufs)


def _starts_with(path: Path, magic: bytes) -> bool:
    try:
        with open(path, "rb") as f:  # a regular file (checked by the caller): the open cannot block
            return f.read(len(magic)) == magic
    except OSError:
        return False


def _vacant(path: Path) -> bool:
    """Nothing at `path`, or an empty real folder (which a rename replaces)."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return True
    if not stat.S_ISDIR(info.st_mode):
        return False
    with os.scandir(path) as entries:
        return not any(entries)
