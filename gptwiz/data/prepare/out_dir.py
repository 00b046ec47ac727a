"""The output folder: whether out_dir can be a dataset folder at all, whether it may be written (or already holds
this very dataset), the hidden .OUT.partial-PID folder the dataset is written into, the rename that puts it in
place, and what is done with the folders a killed prepare left beside it.

A dataset is swapped in with two renames: out_dir (the old dataset, or an empty folder) to .OUT.old-PID, then
.OUT.partial-PID (complete: its manifest is written) to out_dir. A kill between them leaves out_dir absent; the
next prepare of that out_dir puts the new dataset in place, or the old one back when the new one is not whole
(recover_interrupted), before it removes what a dead prepare left (a partial folder without a manifest, an old
dataset that out_dir replaced).

A symlink given as out_dir is followed: the dataset is written where it points (its partial folder beside the
target, so the last rename stays on one filesystem) and the link is left as it was.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gptwiz.common.atomic import fsync_dir
from gptwiz.common.errors import UsageError
from gptwiz.common.files import check_folder, file_kind
from gptwiz.common.procs import pid_alive
from gptwiz.common.safe_read import MANIFEST_LIMIT, read_json_object
from gptwiz.data.manifest import MANIFEST, TOKEN_DTYPE
from gptwiz.data.prepare.options import PrepareOptions
from gptwiz.data.prepare.sources import SourcePlan

_NAME_MAX = 255
# What the working folders add to out_dir's name: ".NAME.partial-PID" (a pid has at most 10 digits).
_WORK_NAME_EXTRA = len("..partial-") + 10
_KINDS = ("partial", "old")
# The errors of a write that only more room fixes: a runtime failure, not bad input.
NO_ROOM = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


@dataclass(frozen=True)
class Destination:
    """Where a dataset is written, and how messages name it."""
    path: Path      # the folder written: out_dir, or where a link given as out_dir points
    label: str      # what the user typed, for messages: "--out_dir data/ds"
    elsewhere: str  # the other way out of a full disk: "choose another --out_dir"


def resolve_out_dir(given: str, flag: str = "--out_dir") -> Destination:
    """The folder `given` (as typed after `flag`) names, refused in one line when it cannot be a dataset folder:
    a file or device, a name too long, the current folder or one above it, a mount point (a dataset is put in
    place by a rename, and a mount point cannot be renamed), a kernel or read-only filesystem."""
    label = f"{flag} {given if len(given) <= 80 else given[:60] + '...'}"
    path = Path(os.path.expanduser(given))
    if "\x00" not in str(path):
        _check_name_room(path, label)
    if path.name in ("", ".", ".."):
        raise UsageError(f"{label} names no folder of its own (it is '.', '..' or '/'), so no dataset can replace "
                         f"it; name a new folder for it, e.g. {flag} {os.path.join(given, 'dataset')}")
    if os.path.islink(path):
        real = Path(os.path.realpath(path))
        if os.path.islink(real):
            raise UsageError(f"{label} is a symlink that never reaches a folder (a loop); give a folder")
        path = real
    try:
        info = os.stat(path)
    except OSError:
        info = None
    if info is not None and not stat.S_ISDIR(info.st_mode):
        kind = "a file" if stat.S_ISREG(info.st_mode) else file_kind(info.st_mode)
        raise UsageError(f"{label} is {kind}, not a folder; choose a folder for the dataset")
    check_folder(path, flag, write=True)
    if info is not None and os.path.ismount(path):
        raise UsageError(f"{label} is a mount point, which a dataset cannot replace (it is put in place by a "
                         f"rename); choose a folder inside it, e.g. {flag} {os.path.join(given, 'dataset')}")
    where, cwd = os.path.realpath(path), os.getcwd()
    if cwd == where or cwd.startswith(os.path.join(where, "")):
        raise UsageError(f"{label} is the current folder or holds it, which cannot be replaced by a dataset; "
                         "choose another folder")
    return Destination(path=path, label=label, elsewhere=f"choose another {flag}")


def _check_name_room(path: Path, label: str) -> None:
    """Refuse a name too long for out_dir's working folder (".NAME.partial-PID") before any look at the path
    (where a name over the limit fails every call)."""
    for part in path.parts[:-1]:
        if len(os.fsencode(part)) > _NAME_MAX:
            raise UsageError(f"{label}: the folder name {part[:40]}... is {len(os.fsencode(part))} bytes long, "
                             f"more than the {_NAME_MAX} a file name may have")
    size = len(os.fsencode(path.name))
    if size + _WORK_NAME_EXTRA > _NAME_MAX:
        raise UsageError(f"{label}: the folder name {path.name[:40]}... is {size} bytes long; a dataset folder's "
                         f"name may have at most {_NAME_MAX - _WORK_NAME_EXTRA} (of the {_NAME_MAX} a file name "
                         "may have, gptwiz needs the rest for the working folder beside it); choose a shorter name")


def _request_key(sources: list[dict[str, Any]], val_fraction: Any, variant: Any = None) -> Any:
    key = [val_fraction, [[s.get("name"), s.get("glob"), s.get("weight"), s.get("fingerprint")] for s in sources]]
    return key if variant is None else [*key, variant]


def dataset_variant(manifest: dict[str, Any]) -> Any:
    """What besides the sources and val_fraction made a dataset: the kind and block size of an instruction-tuning
    one (its examples are cut to the block); for a text dataset, the tokenizer asked for, None for GPT-2's."""
    variant = ["sft", (manifest.get("sft") or {}).get("block_size")] if manifest.get("kind") == "sft" else []
    if manifest.get("tokenizer_request") is not None:
        variant += ["tokenizer", manifest["tokenizer_request"]]
    return variant or None


def check_out_dir(dest: Destination, plans: list[SourcePlan], opts: PrepareOptions,
                  variant: Any = None) -> dict[str, Any] | None:
    """None to go ahead; the existing manifest when out_dir already holds exactly this dataset (`variant`: what
    dataset_variant gives for the dataset asked for)."""
    out_dir = dest.path
    try:
        if not out_dir.is_dir() or not any(out_dir.iterdir()):
            return None
    except OSError as exc:
        raise UsageError(f"{dest.label} cannot be read ({exc.strerror}); choose a folder you can read") from None
    manifest_path = out_dir / MANIFEST
    if not os.path.lexists(manifest_path):
        # Never delete a folder gptwiz did not write, --overwrite or not.
        raise UsageError(f"{dest.label} is not empty and is not a gptwiz dataset (it has no {MANIFEST}); "
                         "choose a new or empty folder")
    try:
        existing: dict[str, Any] | None = read_json_object(manifest_path, MANIFEST_LIMIT)
        assert existing is not None
        old_key = _request_key(existing["sources"], existing.get("val_fraction"), dataset_variant(existing))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        existing, old_key = None, None
    new_key = _request_key([{"name": p.spec.name, "glob": p.spec.glob, "weight": p.spec.weight,
                             "fingerprint": p.fingerprint()} for p in plans], opts.val_fraction, variant)
    if opts.overwrite:
        return None
    if old_key == new_key:
        return existing
    names = ", ".join(str(s.get("name")) for s in existing["sources"]) if existing else "unreadable manifest"
    raise UsageError(f"{dest.label} already holds a different dataset (sources: {names}); "
                     "pass --overwrite to replace it, or choose another --out_dir")


# --- what a dataset folder holds --------------------------------------------------------------------

def complete_manifest(folder: Path) -> dict[str, Any] | None:
    """The manifest of a whole dataset in `folder` (a real folder, its manifest readable, and every shard it
    lists a regular file, all together the size of the tokens it counts); None for anything less."""
    try:
        if not stat.S_ISDIR(os.lstat(folder).st_mode):
            return None
        manifest = read_json_object(folder / MANIFEST, MANIFEST_LIMIT, follow_symlinks=False)
        itemsize = TOKEN_DTYPE().itemsize
        for source in manifest["sources"]:
            for split in ("train", "val"):
                size = 0
                for name in source[f"{split}_shards"]:
                    info = os.lstat(folder / name)
                    if not stat.S_ISREG(info.st_mode):
                        return None
                    size += info.st_size
                if size != itemsize * int(source[f"{split}_tokens"]):
                    return None
                if manifest.get("kind") == "sft":
                    masks = source["sft"][f"{split}_mask_shards"]
                    if sum(os.lstat(folder / name).st_size for name in masks) != int(source[f"{split}_tokens"]):
                        return None
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return manifest


def remove_dataset(path: Path) -> None:
    """Remove a dataset folder gptwiz wrote, the manifest first (so a removal cut short never leaves a folder
    that passes for whole); a symlink is removed itself, never what it points at."""
    try:
        if not stat.S_ISDIR(os.lstat(path).st_mode):
            path.unlink()
            return
    except OSError:
        return
    with contextlib.suppress(OSError):
        (path / MANIFEST).unlink()
    shutil.rmtree(path, ignore_errors=True)


# --- what a killed prepare left ---------------------------------------------------------------------

@dataclass(frozen=True)
class _Leftover:
    path: Path
    kind: str  # "partial" or "old"
    pid: int


def _leftovers(out_dir: Path) -> list[_Leftover]:
    """The working folders of out_dir whose prepare is no longer running."""
    found = []
    try:
        entries = list(out_dir.parent.iterdir())
    except OSError:
        return []
    for entry in entries:
        for kind in _KINDS:
            prefix = f".{out_dir.name}.{kind}-"
            pid = entry.name[len(prefix):]
            if entry.name.startswith(prefix) and pid.isdigit() and int(pid) != os.getpid() \
                    and not pid_alive(int(pid)):
                found.append(_Leftover(entry, kind, int(pid)))
    return found


def _vacant(out_dir: Path) -> bool:
    """Nothing at out_dir, or an empty folder (which a rename replaces)."""
    try:
        info = os.lstat(out_dir)
    except FileNotFoundError:
        return True
    except OSError:
        return False
    if not stat.S_ISDIR(info.st_mode):
        return False
    try:
        return not any(out_dir.iterdir())
    except OSError:
        return False


def recover_interrupted(out_dir: Path) -> Path | None:
    """Settle what killed prepares left beside out_dir. When out_dir is vacant and one of their working folders
    holds a whole dataset, it is renamed to out_dir: the new dataset a prepare finished and was putting in
    place, else the old one back. Then the rest is removed (partial folders without a manifest, old datasets
    out_dir replaced). Returns the folder put in place, or None."""
    restored = None
    if _vacant(out_dir):
        found = _leftovers(out_dir)
        whole = [(c, _mtime(c.path / MANIFEST)) for c in found if complete_manifest(c.path) is not None]
        whole.sort(key=lambda cm: (cm[0].kind != "partial", -cm[1]))  # the newest finished dataset first
        for leftover, _ in whole:
            try:
                os.rename(leftover.path, out_dir)
            except OSError:
                continue  # another prepare got there first, or out_dir is no longer vacant
            fsync_dir(out_dir.parent)
            restored = leftover.path
            break
    for leftover in _leftovers(out_dir):
        remove_dataset(leftover.path)
    return restored


def _mtime(path: Path) -> float:
    try:
        return os.lstat(path).st_mtime
    except OSError:
        return 0.0


def partial_dir(dest: Destination) -> Path:
    """A fresh hidden folder beside out_dir, after putting back what a killed prepare was swapping in and
    removing the rest of what dead prepares left."""
    out_dir = dest.path
    parent = out_dir.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        if exc.errno in NO_ROOM:
            raise
        raise UsageError(f"{dest.label}: cannot create {parent} ({exc.strerror})") from None
    recover_interrupted(out_dir)
    work = parent / f".{out_dir.name}.partial-{os.getpid()}"
    remove_dataset(work)
    try:
        work.mkdir()
    except OSError as exc:
        if exc.errno in NO_ROOM:
            raise
        raise UsageError(f"{dest.label}: cannot write in {parent} ({exc.strerror})") from None
    return work


def install(work: Path, out_dir: Path) -> None:
    """Rename the finished folder to out_dir (moving aside what was there: an empty folder or the old dataset)."""
    old = None
    if os.path.lexists(out_dir):
        old = out_dir.parent / f".{out_dir.name}.old-{os.getpid()}"
        os.rename(out_dir, old)
    try:
        os.rename(work, out_dir)
    except BaseException:
        if old is not None:  # the old dataset back where it was, not left aside
            with contextlib.suppress(OSError):
                os.rename(old, out_dir)
        raise
    fsync_dir(out_dir.parent)
    if old is not None:
        remove_dataset(old)
