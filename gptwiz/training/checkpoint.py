"""Checkpoints: written atomically, read with weights_only=True so that opening one never runs code from it."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from gptwiz.common.atomic import atomic_write
from gptwiz.common.errors import UsageError
from gptwiz.runs.folder import RunPaths


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


def check_integrity(path: Path) -> None:
    """Refuse a checkpoint whose bytes changed since it was written: torch.save stores a CRC-32 of every
    record, but torch.load does not check them, and flipped bits inside a tensor would load as wrong weights."""
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except FileNotFoundError:
        raise UsageError(f"checkpoint {path} does not exist") from None
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:  # truncated, or not a checkpoint at all
        raise UsageError(f"checkpoint {path} is damaged or truncated ({exc.__class__.__name__}); "
                         "it was not loaded") from None
    if bad is not None:
        raise UsageError(f"checkpoint {path} is damaged: its record {bad} fails its CRC check; it was not loaded")


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    check_integrity(path)
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise UsageError(f"checkpoint {path} does not exist") from None
    except Exception as exc:  # a truncated zip, a foreign pickle refused by the weights-only unpickler, ...
        raise UsageError(f"checkpoint {path} is unreadable or unsafe ({exc.__class__.__name__}); "
                         "it was not loaded") from None
    if not isinstance(state, dict) or not isinstance(state.get("model"), dict) or not isinstance(state.get("iter"), int):
        raise UsageError(f"checkpoint {path} is not a gptwiz checkpoint")
    for key in ("config", "extra"):
        try:
            value = json.loads(state.pop(f"{key}_json", "{}"))
        except (TypeError, ValueError):
            value = None
        if not isinstance(value, dict):
            raise UsageError(f"checkpoint {path} is not a gptwiz checkpoint (its {key} is not a JSON object)")
        state[key] = value
    return state


def find_checkpoint(paths: RunPaths, prefer: str = "last") -> Path | None:
    order = [paths.ckpt_last, paths.ckpt_best] if prefer == "last" else [paths.ckpt_best, paths.ckpt_last]
    for p in order:
        if p.exists():
            return p
    return None


def load_run_checkpoint(paths: RunPaths, prefer: str = "last", map_location: str | torch.device = "cpu",
                        warn: Callable[[str], None] | None = None) -> tuple[Path, dict[str, Any]]:
    """The preferred checkpoint of a run, falling back to the other one when it is missing or damaged;
    `warn` is told which file was bad and which was loaded instead."""
    order = [paths.ckpt_last, paths.ckpt_best] if prefer == "last" else [paths.ckpt_best, paths.ckpt_last]
    problems = []
    for p in order:
        if not p.exists():
            continue
        try:
            state = load_checkpoint(p, map_location)
        except UsageError as exc:
            problems.append(str(exc))
            continue
        if problems and warn is not None:
            warn(f"warning: {'; '.join(problems)}; loaded {p.name} (iteration {state['iter']}) instead")
        return p, state
    if problems:
        raise UsageError("; ".join(problems))
    raise UsageError(f"run '{paths.name}' has no checkpoint in {paths.root} (nothing to resume or load yet)")
