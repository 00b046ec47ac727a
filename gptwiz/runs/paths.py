"""Where a run's files are: runs/<name>/ and the name of every file in it. The only place those names are spelled.

    config.json    the fully resolved settings (written once at start)
    status.json    state, pid, iter, max_iters, times, error, what a running trainer is busy with (rewritten atomically)
    metrics.jsonl  one JSON object a line, appended ("train", "eval", "probe" records)
    train.log      plain log lines, appended
    console.log    a detached trainer's stdout and stderr (gptwiz.runs.launch)
    ckpt_last.pt   the latest checkpoint; ckpt_best.pt the one with the lowest val loss
    probe.json     the result of `gptwiz probe --model_name`
    quality.json   the predicted final validation loss (before the run, after its probe) and the one reached
    eval.jsonl     one JSON object a line, appended by `gptwiz eval` (held-out loss, bits per byte)
    tokenizer.json the data's byte-level BPE, when it was prepared with one of its own (none: GPT-2's)
    lock           the pid of the trainer that owns the folder, which holds a lock on this file
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

from gptwiz.common.errors import UsageError
from gptwiz.common.files import check_folder, file_kind
from gptwiz.common.inert import quote
from gptwiz.data.bpe import TOKENIZER_FILE

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
CHECKPOINT_KINDS = ("last", "best")


def checkpoint_name(which: str) -> str:
    """A checkpoint's file name: ckpt_last.pt or ckpt_best.pt (`which`: one of CHECKPOINT_KINDS)."""
    if which not in CHECKPOINT_KINDS:
        raise ValueError(f"no checkpoint kind {which!r}")
    return f"ckpt_{which}.pt"


def validate_run_name(name: str) -> str:
    """Run names become folder names, so they may not climb out of runs/ or name a path."""
    if not _NAME_RE.match(name or "") or ".." in name:
        raise UsageError(
            f"invalid --model_name {quote(name)}: use letters, digits, '.', '_' and '-' only "
            "(no path separators, no '..', at most 100 characters)"
        )
    return name


@dataclass(frozen=True)
class RunPaths:
    root: Path

    @property
    def name(self) -> str:
        return self.root.name

    @property
    def config(self) -> Path:
        return self.root / "config.json"

    @property
    def status(self) -> Path:
        return self.root / "status.json"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.jsonl"

    @property
    def log(self) -> Path:
        return self.root / "train.log"

    @property
    def console(self) -> Path:
        return self.root / "console.log"

    def checkpoint(self, which: str) -> Path:
        """ckpt_last.pt or ckpt_best.pt (`which`: one of CHECKPOINT_KINDS)."""
        return self.root / checkpoint_name(which)

    @property
    def ckpt_last(self) -> Path:
        return self.checkpoint("last")

    @property
    def ckpt_best(self) -> Path:
        return self.checkpoint("best")

    @property
    def lock(self) -> Path:
        return self.root / "lock"

    @property
    def tokenizer(self) -> Path:
        return self.root / TOKENIZER_FILE

    @property
    def probe(self) -> Path:
        return self.root / "probe.json"

    @property
    def evals(self) -> Path:
        return self.root / "eval.jsonl"

    @property
    def quality(self) -> Path:
        return self.root / "quality.json"

    def files(self) -> tuple[Path, ...]:
        """Every file gptwiz reads or writes in the folder."""
        return (self.config, self.status, self.metrics, self.log, self.console, self.ckpt_last, self.ckpt_best,
                self.lock, self.probe, self.evals, self.quality, self.tokenizer)

    def probe_files(self) -> tuple[Path, ...]:
        """What `gptwiz probe --model_name` leaves in the folder (and a detached trainer's console.log)."""
        return (self.config, self.status, self.metrics, self.log, self.probe, self.lock, self.console, self.tokenizer)


def run_paths(runs_dir: Path | str, name: str) -> RunPaths:
    root = Path(runs_dir) / validate_run_name(name)
    # A name is checked above; the folder may still be a symlink (or runs/ hold one) leading elsewhere,
    # where the trainer would write. runs_dir itself may be a symlink: it is the user's choice of disk.
    if root.is_symlink() or (root.exists() and root.resolve().parent != Path(runs_dir).resolve()):
        raise UsageError(f"run folder {root} is a symlink to {root.resolve()}, outside {runs_dir}; gptwiz writes only "
                         "inside its runs folder: remove the link or choose another --model_name")
    return RunPaths(root)


def resolve_run(spec: str, runs_dir: Path | str) -> RunPaths:
    """A run given by name or by folder path; the guide's `checkpoints/base_750M` means the run base_750M."""
    path = Path(spec)
    if _is_dir(path) and os.path.exists(RunPaths(path).config):
        return RunPaths(path)
    check_folder(runs_dir, "--runs_dir", write=False)  # a file, /proc, a name too long: one line, not a traceback
    candidate = Path(runs_dir) / path.name
    if path.name and ".." not in path.name and _is_dir(candidate):
        return RunPaths(candidate)
    raise UsageError(f"no run {quote(spec)} (looked for the folder {spec} and {candidate}); "
                     f"existing runs: {', '.join(r.name for r in run_folders(runs_dir)) or 'none'}")


def _is_dir(path: Path) -> bool:
    try:
        return path.is_dir()
    except OSError:  # a name too long, ...: not a folder gptwiz can use
        return False


def check_run_files(paths: RunPaths) -> None:
    """Refuse a run folder where one of the files gptwiz reads or writes is something else (a FIFO, which would
    block the trainer at its first open, a folder, a device); a symlink is judged by what it leads to."""
    for path in paths.files():
        if path == paths.evals:  # `gptwiz eval` checks its own file when it appends
            continue
        try:
            mode = os.stat(path).st_mode
        except OSError:  # not there (or a dangling link): nothing in the way
            continue
        if not stat.S_ISREG(mode):
            raise UsageError(f"run {quote(paths.name)}: {path} is {file_kind(mode)}, not a regular file; remove it "
                             "(gptwiz reads and writes only regular files in a run folder)")


def run_folders(runs_dir: Path | str) -> list[RunPaths]:
    """The run folders in runs_dir, by name: those with a config.json or a status.json (no symlinks)."""
    root = Path(runs_dir)
    if not root.is_dir():
        return []
    runs = (RunPaths(p) for p in sorted(root.iterdir()) if p.is_dir() and not p.is_symlink())
    return [r for r in runs if r.config.exists() or r.status.exists()]
