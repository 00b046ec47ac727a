"""The output folder: whether out_dir may be written (or already holds this very dataset), the hidden
.OUT.partial-PID folder the dataset is written into, and the rename that puts it in place.

A kill leaves the partial folder behind without a manifest (never at out_dir); the next prepare of that
out_dir removes it, as it does an .OUT.old-PID folder a kill left mid-swap.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from gptwiz.common.atomic import fsync_dir
from gptwiz.common.errors import UsageError
from gptwiz.data.manifest import MANIFEST
from gptwiz.data.prepare.options import PrepareOptions
from gptwiz.data.prepare.sources import SourcePlan


def _request_key(sources: list[dict[str, Any]], val_fraction: Any) -> Any:
    return [val_fraction, [[s.get("name"), s.get("glob"), s.get("weight"), s.get("fingerprint")] for s in sources]]


def check_out_dir(out_dir: Path, plans: list[SourcePlan], opts: PrepareOptions) -> dict[str, Any] | None:
    """None to go ahead; the existing manifest when out_dir already holds exactly this dataset."""
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"--out_dir {out_dir} is a file, not a folder; choose a folder for the dataset")
    if not out_dir.is_dir() or not any(out_dir.iterdir()):
        return None
    manifest_path = out_dir / MANIFEST
    if not manifest_path.exists():
        # Never delete a folder gptwiz did not write, --overwrite or not.
        raise UsageError(f"--out_dir {out_dir} is not empty and is not a gptwiz dataset (it has no {MANIFEST}); "
                         "choose a new or empty folder")
    try:
        existing = json.loads(manifest_path.read_text(encoding="utf-8"))
        old_key = _request_key(existing["sources"], existing.get("val_fraction"))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        existing, old_key = None, None
    new_key = _request_key([{"name": p.spec.name, "glob": p.spec.glob, "weight": p.spec.weight,
                             "fingerprint": p.fingerprint()} for p in plans], opts.val_fraction)
    if opts.overwrite:
        return None
    if old_key == new_key:
        return existing
    names = ", ".join(str(s.get("name")) for s in existing["sources"]) if existing else "unreadable manifest"
    raise UsageError(f"--out_dir {out_dir} already holds a different dataset (sources: {names}); "
                     "pass --overwrite to replace it, or choose another --out_dir")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def partial_dir(out_dir: Path) -> Path:
    """A fresh hidden folder beside out_dir, after removing those a killed prepare left behind."""
    parent = out_dir.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"--out_dir {out_dir}: cannot create {parent} ({exc.strerror})") from None
    for prefix in (f".{out_dir.name}.partial-", f".{out_dir.name}.old-"):
        for entry in parent.iterdir():
            pid = entry.name[len(prefix):]
            if entry.name.startswith(prefix) and pid.isdigit() and not _pid_alive(int(pid)):
                shutil.rmtree(entry, ignore_errors=True)
    work = parent / f".{out_dir.name}.partial-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    try:
        work.mkdir()
    except OSError as exc:
        raise UsageError(f"--out_dir {out_dir}: cannot write in {parent} ({exc.strerror})") from None
    return work


def install(work: Path, out_dir: Path) -> None:
    """Rename the finished folder to out_dir (moving aside what was there: an empty folder or the old dataset)."""
    old = None
    if out_dir.exists():
        old = out_dir.parent / f".{out_dir.name}.old-{os.getpid()}"
        os.rename(out_dir, old)
    os.rename(work, out_dir)
    fsync_dir(out_dir.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
