"""Checkpoints: written atomically, read with weights_only=True so that opening one never runs code from it."""

from __future__ import annotations

import io
import json
import math
import zipfile
from collections.abc import Callable
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import torch

from gptwiz.common.atomic import atomic_write
from gptwiz.common.errors import UsageError
from gptwiz.common.inert import quote
from gptwiz.common.safe_read import UnreadableFile, open_regular
from gptwiz.model.config import ModelConfig
from gptwiz.model.gpt import GPT
from gptwiz.planning.presets import BOUNDS, shown
from gptwiz.runs.checkpoints import checkpoint_problem, own_val_loss, stored_json
from gptwiz.runs.paths import RunPaths


def save_checkpoint(path: Path, *, model_state: dict[str, Any], optimizer_state: dict[str, Any] | None,
                    iter_num: int, best_val_loss: float, config: dict[str, Any], extra: dict[str, Any] | None = None,
                    val_loss: float | None = None) -> None:
    """`val_loss`: the validation loss of these very weights, when they were evaluated at `iter_num`; it tells
    whether a checkpoint holds the weights its `best_val_loss` belongs to."""
    state = {
        "model": model_state,
        "optimizer": optimizer_state,
        "iter": iter_num,
        "best_val_loss": best_val_loss,
        "val_loss": val_loss,
        # Plain JSON text: nothing in a checkpoint needs to be more than tensors, numbers and strings.
        "config_json": json.dumps(config),
        "torch_rng": torch.get_rng_state(),
        "extra_json": json.dumps(extra or {}),
    }
    buf = io.BytesIO()
    torch.save(state, buf)
    atomic_write(path, lambda f: f.write(buf.getbuffer()))


def _finite(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) \
        else None


def checkpoint_val_loss(path: Path, state: dict[str, Any]) -> float | None:
    """The validation loss of the weights a checkpoint holds, where it is known (gptwiz.runs.checkpoints)."""
    return own_val_loss(path.name, state)


def read_checkpoint_summary(path: Path) -> dict[str, Any] | None:
    """A checkpoint's iteration and losses without reading its tensors into memory (they are mapped, never
    touched); None when it is missing, damaged or not a gptwiz checkpoint."""
    try:
        check_integrity(path)
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # a UsageError from the check, or whatever an unreadable file makes torch.load raise
        return None
    if checkpoint_problem(state) is not None:  # the one rule (gptwiz.runs.checkpoints)
        return None
    return {"iter": state["iter"], "best_val_loss": _finite(state.get("best_val_loss")),
            "val_loss": checkpoint_val_loss(path, state)}


def check_integrity(path: Path) -> None:
    """Refuse a checkpoint whose bytes changed since it was written: torch.save stores a CRC-32 of every
    record, but torch.load does not check them, and flipped bits inside a tensor would load as wrong weights."""
    try:
        fd = open_regular(path)  # never a FIFO (an open of one blocks for good), a folder or a device
    except FileNotFoundError:
        raise UsageError(f"checkpoint {path} does not exist") from None
    except UnreadableFile as exc:
        raise UsageError(f"checkpoint {exc}; it was not loaded") from None
    try:
        with open(fd, "rb") as f, zipfile.ZipFile(f) as archive:
            bad = archive.testzip()
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
    problem = checkpoint_problem(state)  # the one rule `gptwiz runs` lists checkpoints by
    if problem is not None:
        raise UsageError(f"checkpoint {quote(path)} is not a gptwiz checkpoint ({problem}); it was not loaded")
    for key in ("config", "extra"):
        state[key] = stored_json(state, key)
        state.pop(f"{key}_json", None)
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
    raise UsageError(f"run {quote(paths.name)} has no checkpoint in {paths.root} (nothing to resume or load yet)")


def check_model_state(path: Path, state: dict[str, Any]) -> ModelConfig:
    """The model a loaded checkpoint's config describes, once its tensors are checked to be exactly that model's:
    every name and shape, compared with a model built on the meta device (no memory), so that a checkpoint whose
    config claims a model far bigger than its tensors is refused before the model is built."""
    def refuse(why: str) -> UsageError:
        return UsageError(f"checkpoint {path} does not hold the model its config describes ({why}); "
                          "it was not loaded")

    described = state.get("config", {}).get("model")
    if not isinstance(described, dict):
        raise refuse("its config has no model")
    names = {f.name for f in fields(ModelConfig)}
    if set(described) - names or not {"n_layer", "n_head", "n_embd", "block_size"} <= set(described):
        raise refuse(f"its model keys are {sorted(described)}")
    for key in ("n_layer", "n_head", "n_embd", "block_size", "vocab_size", "dropout"):
        if key in described and not BOUNDS[key].holds(described[key]):
            raise refuse(f"{key} {shown(described[key])} is not {BOUNDS[key].describe()}")
    if not isinstance(described.get("bias", False), bool) or described["n_embd"] % described["n_head"]:
        raise refuse(f"n_embd {described['n_embd']} over n_head {described['n_head']}, bias {described.get('bias')!r}")
    config = ModelConfig(**described)
    with torch.device("meta"):  # one block stands for all of them: they are alike
        one_block = GPT(replace(config, n_layer=1)).state_dict()
    expected: dict[str, tuple[int, ...]] = {}
    for name, tensor in one_block.items():
        if name.startswith("transformer.h.0."):
            rest = name[len("transformer.h.0."):]
            expected.update({f"transformer.h.{i}.{rest}": tuple(tensor.shape) for i in range(config.n_layer)})
        else:
            expected[name] = tuple(tensor.shape)
    weights = state["model"]
    missing = sorted(set(expected) - set(weights))
    unexpected = sorted(set(weights) - set(expected))
    if missing or unexpected:
        raise refuse(f"{len(missing)} tensors missing, such as {missing[:1]}, {len(unexpected)} unexpected, "
                     f"such as {unexpected[:1]}")
    for name, shape in expected.items():
        tensor = weights[name]
        if not isinstance(tensor, torch.Tensor) or tuple(tensor.shape) != shape:
            got = tuple(tensor.shape) if isinstance(tensor, torch.Tensor) else type(tensor).__name__
            raise refuse(f"{name} is {got}, its config says {shape}")
    return config
