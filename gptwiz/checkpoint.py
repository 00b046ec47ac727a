"""Checkpoints: written atomically, read with weights_only=True so that opening one never runs code from it."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import torch

from gptwiz.atomic import atomic_write
from gptwiz.errors import UsageError
from gptwiz.runfolder import RunPaths


def save_checkpoint(path: Path, *, model_state: dict[str, Any], optimizer_state: dict[str, Any] | None,
                    iter_num: int, best_val_loss: float, config: dict[str, Any], extra: dict[str, Any] | None = None) -> None:
    state = {
        "model": model_state,
        "optimizer": optimizer_state,
        "iter": iter_num,
        "best_val_loss": best_val_loss,
        # Plain JSON text: nothing in a checkpoint needs to be more than tensors, numbers and strings.
        "config_json": json.dumps(config),
        "torch_rng": torch.get_rng_state(),
        "extra_json": json.dumps(extra or {}),
    }
    buf = io.BytesIO()
    torch.save(state, buf)
    atomic_write(path, lambda f: f.write(buf.getbuffer()))


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise UsageError(f"checkpoint {path} does not exist") from None
    except Exception as exc:  # a truncated zip, a foreign pickle refused by the weights-only unpickler, ...
        raise UsageError(f"checkpoint {path} is unreadable or unsafe ({exc.__class__.__name__}); "
                         "it was not loaded") from None
    if not isinstance(state, dict) or "model" not in state or "iter" not in state:
        raise UsageError(f"checkpoint {path} is not a gptwiz checkpoint")
    state["config"] = json.loads(state.pop("config_json", "{}"))
    state["extra"] = json.loads(state.pop("extra_json", "{}"))
    return state


def find_checkpoint(paths: RunPaths, prefer: str = "last") -> Path | None:
    order = [paths.ckpt_last, paths.ckpt_best] if prefer == "last" else [paths.ckpt_best, paths.ckpt_last]
    for p in order:
        if p.exists():
            return p
    return None


def load_run_checkpoint(paths: RunPaths, prefer: str = "last",
                        map_location: str | torch.device = "cpu") -> tuple[Path, dict[str, Any]]:
    """The preferred checkpoint of a run, falling back to the other one when it is missing or damaged."""
    order = [paths.ckpt_last, paths.ckpt_best] if prefer == "last" else [paths.ckpt_best, paths.ckpt_last]
    problems = []
    for p in order:
        if not p.exists():
            continue
        try:
            return p, load_checkpoint(p, map_location)
        except UsageError as exc:
            problems.append(str(exc))
    if problems:
        raise UsageError("; ".join(problems))
    raise UsageError(f"run '{paths.name}' has no checkpoint in {paths.root} (nothing to resume or load yet)")
