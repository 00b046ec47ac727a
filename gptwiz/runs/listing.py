"""The list of runs as rows, for `gptwiz runs` and the welcome screen (no Textual here)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gptwiz.runs.folder import RunSummary, list_runs


@dataclass(frozen=True)
class RunRow:
    name: str
    state: str
    iter: int
    max_iters: int
    last_loss: float | None
    updated_at: str
    path: str
    has_checkpoint: bool = False

    @property
    def progress_text(self) -> str:
        if not self.max_iters:
            return "-"
        return f"{self.iter}/{self.max_iters} ({100 * self.iter / self.max_iters:.0f}%)"

    @property
    def loss_text(self) -> str:
        return f"{self.last_loss:.4f}" if self.last_loss is not None else "-"

    @property
    def resumable(self) -> bool:
        """A run that ended early with a checkpoint can go on with `gptwiz train --model_name NAME --resume`."""
        return self.has_checkpoint and self.state in ("stopped", "failed", "diverged")

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "state": self.state, "iter": self.iter, "max_iters": self.max_iters,
                "last_loss": self.last_loss, "updated_at": self.updated_at, "path": self.path}


def to_row(summary: RunSummary) -> RunRow:
    return RunRow(summary.name, summary.state, summary.iter, summary.max_iters, summary.last_loss,
                  summary.updated_at, str(summary.path), (Path(summary.path) / "ckpt_last.pt").exists())


def run_rows(runs_dir: Path | str) -> list[RunRow]:
    """Newest first, as list_runs orders them."""
    return [to_row(s) for s in list_runs(runs_dir)]
