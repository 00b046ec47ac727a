"""Sources: the NAME:GLOB[:WEIGHT] specs, and the files each glob matches (planned before any work)."""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from gptwiz.common.errors import UsageError
from gptwiz.common.inert import quote
from gptwiz.data.globbing import has_magic, safe_glob

JSONL_SUFFIXES = (".jsonl",)

_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


# --- source specs ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class SourceSpec:
    name: str
    glob: str
    weight: float = 1.0


def parse_source(spec: str) -> SourceSpec:
    """NAME:GLOB[:WEIGHT] -> SourceSpec. The weight is whatever follows the last colon, when there are two."""
    name, sep, rest = spec.partition(":")
    glob_text, weight_text = rest, None
    if ":" in rest:
        glob_text, _, weight_text = rest.rpartition(":")
    example = "write NAME:GLOB[:WEIGHT], e.g. docs:data/company_docs/*.txt or wiki:data/wiki/**/*.md:3"
    if not sep or not glob_text.strip():
        raise UsageError(f"--source {quote(spec)} has no glob: {example}")
    if not name:
        raise UsageError(f"--source {quote(spec)} has no name before the first ':': {example}")
    if not _NAME_RE.fullmatch(name):
        raise UsageError(f"--source {quote(spec)}: the name {quote(name)} may hold only letters, digits, '-', '_' and '.', "
                         "start with a letter or digit, and be at most 64 characters (it names the shard files)")
    weight = 1.0
    if weight_text is not None:
        try:
            weight = float(weight_text)
        except ValueError:
            weight = float("nan")
        if not math.isfinite(weight) or weight <= 0:
            raise UsageError(f"--source {quote(spec)}: the weight {quote(weight_text)} is not a positive number "
                             "(e.g. 1 or 2.5; a glob that holds ':' needs an explicit weight, NAME:GLOB:1)")
    return SourceSpec(name=name, glob=glob_text, weight=weight)


def parse_sources(specs: Iterable[str]) -> list[SourceSpec]:
    sources = [parse_source(s) for s in specs]
    if not sources:
        raise UsageError("give at least one --source NAME:GLOB[:WEIGHT], e.g. --source docs:data/company_docs/*.txt")
    seen: dict[str, SourceSpec] = {}
    for s in sources:
        key = s.name.casefold()  # the names become file names, and some file systems ignore case
        if key in seen:
            same = quote(s.name) if s.name == seen[key].name else f"{quote(seen[key].name)} and {quote(s.name)} (names differing only in case)"
            raise UsageError(f"two sources are named {same} ({quote(seen[key].glob)} and {quote(s.glob)}); "
                             "give each --source its own name")
        seen[key] = s
    return sources


# --- planning: what each source's glob matches -----------------------------------------------------

@dataclass(frozen=True)
class PlannedFile:
    path: str       # as the glob matched it
    rel: str        # relative to the glob's fixed leading folders: stable whatever the working folder
    size: int
    mtime_ns: int
    is_jsonl: bool = False


@dataclass
class SourcePlan:
    spec: SourceSpec
    root: str
    files: list[PlannedFile]

    @property
    def bytes(self) -> int:
        return sum(f.size for f in self.files)

    def fingerprint(self) -> str:
        """Changes when the source's spec, its matched files, their sizes or their times change."""
        h = hashlib.sha256(json.dumps([self.spec.name, self.spec.glob, self.spec.weight, self.root]).encode())
        for f in self.files:
            h.update(f"\0{f.rel}\0{f.size}\0{f.mtime_ns}".encode("utf-8", "surrogateescape"))
        return h.hexdigest()


def glob_root(pattern: str) -> str:
    """The leading folders of a glob that hold no wildcard ('.' if none): document paths are relative to it."""
    parts = Path(pattern).parts
    fixed: list[str] = []
    for part in parts:
        if has_magic(part):
            break
        fixed.append(part)
    else:
        fixed = fixed[:-1]  # no wildcard at all: the pattern names a file, its folder is the root
    return str(Path(*fixed)) if fixed else "."


def plan_source(spec: SourceSpec, out_dir: Path | None = None) -> SourcePlan:
    """The files `spec` matches, sorted; never those of the dataset being written (a glob may cover it)."""
    pattern = os.path.expanduser(spec.glob)
    root = glob_root(pattern)
    inside_out = os.path.join(os.path.realpath(out_dir), "") if out_dir is not None else None
    files: list[PlannedFile] = []
    inside = 0
    for path in sorted(safe_glob(pattern)):
        if os.path.isdir(path):
            continue
        if inside_out and os.path.realpath(path).startswith(inside_out):
            inside += 1
            continue
        try:
            st = os.stat(path)
        except OSError as exc:
            raise UsageError(f"source {spec.name}: cannot read {path} ({exc.strerror})") from None
        if not stat.S_ISREG(st.st_mode):
            raise UsageError(f"source {spec.name}: {path} is not a regular file (a device, socket or pipe); "
                             "narrow the glob to documents")
        if not os.access(path, os.R_OK):
            raise UsageError(f"source {spec.name}: cannot read {path} (permission denied)")
        rel = Path(os.path.relpath(path, root)).as_posix()
        files.append(PlannedFile(path=path, rel=rel, size=st.st_size, mtime_ns=st.st_mtime_ns,
                                 is_jsonl=path.lower().endswith(JSONL_SUFFIXES)))
    if not files and inside:
        raise UsageError(f"source {spec.name}: the glob {quote(spec.glob)} matches only files inside --out_dir {out_dir}, "
                         "where the dataset is written; choose an --out_dir outside the documents")
    if not files:
        where = "" if os.path.isabs(pattern) else f" (relative to {os.getcwd()})"
        raise UsageError(f"source {spec.name}: the glob {quote(spec.glob)} matches no files{where}; "
                         "check the path, and quote globs that use ** so the shell leaves them alone")
    return SourcePlan(spec=spec, root=str(Path(root).resolve()), files=files)
