"""The runs in a runs folder, newest first, for `gptwiz runs`, the welcome screen and the plain wizard."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gptwiz.common import fmt
from gptwiz.common.safe_read import UnreadableFile
from gptwiz.runs.folder import RunPaths, effective_state, load_json, read_status, run_folders


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
    mtime: float = field(default=0.0, compare=False)  # the newest of its files: the list's order, not its content
    unreadable: str | None = None

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
    def resumable(self) -> bool:
        """A run that ended early with a checkpoint can go on with `gptwiz train --model_name NAME --resume`."""
        return self.has_checkpoint and self.state in ("stopped", "failed", "diverged") and not self.unreadable

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "state": self.state, "iter": self.iter, "max_iters": self.max_iters,
                "last_loss": self.last_loss, "updated_at": self.updated_at, "path": str(self.path),
                "unreadable": self.unreadable}


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
        mtime=max(mtimes, default=0.0), unreadable=problem,
    )


def list_runs(runs_dir: Path | str) -> list[RunSummary]:
    """Newest first."""
    return sorted((summarize(p) for p in run_folders(runs_dir)), key=lambda r: r.mtime, reverse=True)


def latest_run(runs_dir: Path | str) -> RunPaths | None:
    runs = list_runs(runs_dir)
    return RunPaths(runs[0].path) if runs else None


__all__ = ["RunSummary", "summarize", "list_runs", "latest_run"]
