"""A run's checkpoints as its trainer writes them: when one is due, ckpt_last.pt and ckpt_best.pt, and, on resume,
a ckpt_best.pt put right that a kill left behind."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gptwiz.runs.paths import RunPaths
from gptwiz.training.checkpoint import read_checkpoint_summary, save_checkpoint
from gptwiz.training.distributed import full_state
from gptwiz.training.options import RunConfig
from gptwiz.training.ranks import DistContext
from gptwiz.training.status_writer import StatusWriter


class Checkpointer:
    """Writes the run's checkpoints (rank 0 writes; under FSDP every rank takes part in gathering the state) and
    keeps their schedule: one every cfg.ckpt_interval_s, besides those after evaluations."""

    def __init__(self, cfg: RunConfig, paths: RunPaths, dist: DistContext, status: StatusWriter,
                 say: Callable[[str], None]):
        self.cfg = cfg
        self.paths = paths
        self.dist = dist
        self.status = status
        self.say = say
        self.last_time = time.monotonic()  # of the last checkpoint, or of the loop's start

    def restart_clock(self) -> None:
        self.last_time = time.monotonic()

    def due(self) -> bool:
        """This rank's view of whether a checkpoint by time is due; ranks agree on it before acting."""
        return time.monotonic() - self.last_time > self.cfg.ckpt_interval_s

    def save(self, model: Any, optimizer: Any, *, iter_num: int, best_val: float, val_loss: float | None,
             best: bool) -> None:
        """ckpt_last.pt, and ckpt_best.pt too when `best`. `model`: the wrapped model under FSDP, else the raw one;
        `val_loss`: these weights' own validation loss, if they were evaluated."""
        t0 = time.perf_counter()
        self.status.phase("checkpointing")
        # Under FSDP gathering the whole state is a collective: every rank takes part, rank 0 writes.
        model_state, optim_state = full_state(model, optimizer, self.dist.fsdp)
        if self.dist.is_main:
            # The weights' own validation loss goes with them: it says which checkpoint holds the best
            # (reconcile_best). ckpt_last.pt is written first, so that a kill while ckpt_best.pt is written
            # leaves the best weights in ckpt_last.pt, where a resume finds them.
            config = self.cfg.to_json()
            save_checkpoint(self.paths.ckpt_last, model_state=model_state, optimizer_state=optim_state,
                            iter_num=iter_num, best_val_loss=best_val, config=config, val_loss=val_loss)
            if best:
                save_checkpoint(self.paths.ckpt_best, model_state=model_state, optimizer_state=None,
                                iter_num=iter_num, best_val_loss=best_val, config=config, val_loss=val_loss)
        self.last_time = time.monotonic()
        # How long one took: viewers count the checkpoints still to come in their ETA.
        self.status.phase("training", ckpt_s=round(time.perf_counter() - t0, 3))

    def reconcile_best(self, resumed_from: Path, state: dict[str, Any], best_val: float) -> float:
        """On resume: ckpt_best.pt must hold the weights of the best validation loss the run records. A kill
        while it was being written leaves an older one (or none); the weights of that best are then those just
        resumed (ckpt_last.pt is written first), and ckpt_best.pt is rewritten from them. Where they are lost,
        the best recorded becomes what ckpt_best.pt does hold, so that a later evaluation replaces it. Returns
        the best validation loss from now on."""
        best_path = self.paths.ckpt_best
        if resumed_from == best_path or not math.isfinite(best_val):
            return best_val  # resumed from the best itself, or nothing evaluated yet
        held = read_checkpoint_summary(best_path)
        held_best = held["val_loss"] if held is not None and held["val_loss"] is not None else float("inf")
        if held_best <= best_val:
            if held_best < best_val:
                self.say(f"{best_path.name} holds a val loss of {held_best:.4f}, below the {best_val:.4f} "
                         f"{resumed_from.name} records: that is the best from now on")
            return held_best
        had = (f"held iteration {held['iter']}" + (f" (val loss {held_best:.4f})" if math.isfinite(held_best) else "")
               if held is not None else "was missing or unreadable")
        own = state.get("val_loss")
        iter_num = int(state["iter"])
        if isinstance(own, float) and own == best_val:
            save_checkpoint(best_path, model_state=state["model"], optimizer_state=None, iter_num=iter_num,
                            best_val_loss=best_val, config=self.cfg.to_json(), val_loss=own)
            self.say(f"{best_path.name} {had} instead of the weights of the best val loss {best_val:.4f}: "
                     f"rewritten from {resumed_from.name} (iteration {iter_num}), which holds them")
            return best_val
        self.say(f"warning: {best_path.name} {had}, and no checkpoint holds the weights of the best val loss "
                 f"{best_val:.4f}; the best is now "
                 + (f"{held_best:.4f}, that of {best_path.name}" if math.isfinite(held_best)
                    else "the next evaluation's"))
        return held_best
