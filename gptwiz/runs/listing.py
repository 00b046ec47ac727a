"""The runs in a runs folder, newest first, for `gptwiz runs`, the welcome screen and the plain wizard."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gptwiz.common import fmt
from gptwiz.common.inert import inert
from gptwiz.common.safe_read import UnreadableFile
from gptwiz.runs.checkpoints import resume_point
from gptwiz.runs.jsonfile import load_json
from gptwiz.runs.metrics import latest_eval
from gptwiz.runs.paths import RunPaths, run_folders
from gptwiz.runs.status import effective_state, read_status


@dataclass(frozen=True)
class RunSummary:
    """One run as a list shows it: its status.json, read once, with the state a viewer should show. A run whose
    status.json or config.json cannot be used is listed all the same, in state unknown, with `unreadable` saying
    why ("status.json is a named pipe, not a regular file")."""
    name: str
    path: Path
    state: str
    iter: int
    max_iters: int
    last_loss: float | None
    updated_at: str
    has_checkpoint: bool = False
    checkpoint_iter: int | None = None  # the iteration a resume continues from (None: no readable checkpoint)
    mtime: float = field(default=0.0, compare=False)  # the newest of its files: the list's order, not its content
    unreadable: str | None = None
    held_out: dict[str, Any] | None = None  # the latest `gptwiz eval` record (eval.jsonl)

    @property
    def name_text(self) -> str:
        """The folder's name as a list shows it: inert (`name` is the folder's, for paths and commands)."""
        return inert(self.name)

    @property
    def state_text(self) -> str:
        """The state as a list shows it: 'unreadable' for a run whose files cannot be used."""
        return "unreadable" if self.unreadable else self.state

    @property
    def progress_text(self) -> str:
        if not self.max_iters:
            return fmt.UNKNOWN
        return f"{self.iter}/{self.max_iters} ({100 * self.iter / self.max_iters:.0f}%)"

    @property
    def loss_text(self) -> str:
        return f"{self.last_loss:.4f}" if self.last_loss is not None else fmt.UNKNOWN

    @property
    def redo(self) -> str | None:
        """The iterations a resume trains again, `1-17` (status.json ran past the checkpoint: a kill, a full disk);
        None when it continues where the run ended."""
        if self.checkpoint_iter is None or self.iter <= self.checkpoint_iter:
            return None
        first = self.checkpoint_iter + 1
        return f"{first}" if first == self.iter else f"{first}-{self.iter}"

    @property
    def checkpoint_text(self) -> str:
        """The checkpoint's iteration, for a column: `-` when it cannot be read, `none` when there is none."""
        if self.checkpoint_iter is None:
            return fmt.UNKNOWN if self.has_checkpoint else "none"
        return str(self.checkpoint_iter)

    @property
    def updated_text(self) -> str:
        """`2026-11-24 04:39`: status.json's time to the minute, for a column."""
        return inert(self.updated_at.replace("T", " ")[:16])  # status.json's text, whatever it holds

    @property
    def resume_text(self) -> str:
        """`from its checkpoint at iteration 0 of 60 (iterations 1-17 will be redone)`: what a resume does."""
        if self.checkpoint_iter is None:
            return "from its last checkpoint (its iteration could not be read)"
        redo = self.redo
        return (f"from its checkpoint at iteration {self.checkpoint_iter} of {self.max_iters or fmt.UNKNOWN}"
                + (f" (iteration{'s' if '-' in redo else ''} {redo} will be redone)" if redo else ""))

    @property
    def resumable(self) -> bool:
        """A run that ended early with a checkpoint can go on with `gptwiz train --model_name NAME --resume`."""
        return self.has_checkpoint and self.state in ("stopped", "failed", "diverged") and not self.unreadable

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "state": self.state, "iter": self.iter, "max_iters": self.max_iters,
                "last_loss": self.last_loss, "updated_at": self.updated_at, "path": str(self.path),
                "checkpoint_iter": self.checkpoint_iter, "unreadable": self.unreadable, "eval": self.held_out}


def _problem(paths: RunPaths) -> tuple[dict[str, Any], str | None]:
    """The run's checked status (empty when there is none or it cannot be used), and what keeps its files from
    being used, if anything."""
    try:
        status = read_status(paths) or {}
    except UnreadableFile as exc:
        return {}, f"{paths.status.name} {exc.reason}"
    try:
        load_json(paths.config)
    except UnreadableFile as exc:
        return status, f"{paths.config.name} {exc.reason}"
    return status, None


def summarize(paths: RunPaths) -> RunSummary:
    status, problem = _problem(paths)
    last_loss = status.get("last_loss")
    resume_from = resume_point(paths)
    mtimes = []
    for p in (paths.status, paths.metrics, paths.config):
        try:
            mtimes.append(p.stat().st_mtime)
        except OSError:  # not written yet, or removed since the folder was listed
            pass
    return RunSummary(
        name=paths.name, path=paths.root, state=effective_state(status, paths),
        iter=int(status.get("iter", 0) or 0), max_iters=int(status.get("max_iters", 0) or 0),
        last_loss=float(last_loss) if isinstance(last_loss, (int, float)) else None,
        updated_at=str(status.get("updated_at", "")), has_checkpoint=paths.ckpt_last.exists(),
        checkpoint_iter=resume_from.iter if resume_from is not None else None,
        mtime=max(mtimes, default=0.0), unreadable=problem, held_out=latest_eval(paths) if problem is None else None,
    )


def folder_text(runs_dir: Path | str) -> str:
    """The runs folder as the user gave it, a bare relative name shown as one (`./runs`)."""
    text = str(runs_dir)
    return text if text.startswith(("/", ".", "~")) else f"./{text}"


def list_runs(runs_dir: Path | str) -> list[RunSummary]:
    """Newest first."""
    return sorted((summarize(p) for p in run_folders(runs_dir)), key=lambda r: r.mtime, reverse=True)


def latest_run(runs_dir: Path | str) -> RunPaths | None:
    runs = list_runs(runs_dir)
    return RunPaths(runs[0].path) if runs else None


__all__ = ["RunSummary", "folder_text", "summarize", "list_runs", "latest_run"]
