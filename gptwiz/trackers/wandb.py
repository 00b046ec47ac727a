"""Weights & Biases, when its package is installed. With WANDB_MODE=offline it writes its files locally and
needs no network (`wandb sync` uploads them later); gptwiz itself never reaches the network."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from gptwiz.common.errors import UsageError
from gptwiz.common.files import check_own_folder
from gptwiz.trackers.scalars import scalars, step_of

MISSING = ("needs the wandb package, which is not installed: pip install wandb "
           "(WANDB_MODE=offline logs without network)")


def check_available(flag: str = "--wandb") -> None:
    """A UsageError (one line, exit 2) before anything starts when the package is missing."""
    if importlib.util.find_spec("wandb") is None:
        raise UsageError(f"{flag} {MISSING}")


class WandbSink:
    """One W&B run named after the gptwiz run, its config the resolved config.json; files under `folder`."""

    def __init__(self, project: str, name: str, config: dict[str, Any], folder: Path | None = None):
        check_available()
        import wandb  # optional, and slow to import: only when logging to it

        if folder is not None:
            # wandb keeps its files in folder/wandb/ and replaces a link of its own there (latest-run): a link
            # planted as that folder would send both elsewhere.
            check_own_folder(folder / "wandb", "the W&B folder")
            folder.mkdir(parents=True, exist_ok=True)
        self._wandb = wandb
        self._run = wandb.init(project=project, name=name, config=config,
                               dir=str(folder) if folder is not None else None)
        self._last_step = -1

    def add(self, record: dict[str, Any]) -> None:
        step, values = step_of(record), scalars(record)
        # W&B refuses a step lower than one it has logged; an evaluation shares its iteration's step.
        if step is None or not values or step < self._last_step:
            return
        self._last_step = step
        self._run.log(values, step=step)

    def flush(self) -> None:
        pass

    def close(self, exit_code: int = 0) -> None:
        self._run.finish(exit_code=exit_code)
