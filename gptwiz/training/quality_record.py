"""quality.json: what was predicted of a run's final validation loss (before it, and after its probe) and what the
run reached, so that `gptwiz runs --calibration` can keep score and the dashboard can draw the predicted band.

Written when a run from random weights on plain text starts (the quality model covers neither a tuned base
nor instruction data), completed when it finishes. Losing it loses no training: a failure to write it is
logged and the run goes on.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from typing import Any

from gptwiz.common.atomic import atomic_write_json
from gptwiz.common.safe_read import read_json_file
from gptwiz.data.dataset import TokenDataset
from gptwiz.data.difficulty import dataset_difficulty
from gptwiz.data.facts import data_facts
from gptwiz.planning.quality import QUALITY_MODEL, RunShape, loss_bits_per_byte, predict_quality, run_shape
from gptwiz.runs.paths import RunPaths
from gptwiz.training.options import RunConfig

VERSION = 1


def run_shape_of(cfg: RunConfig) -> RunShape:
    t = cfg.train
    return run_shape(cfg.model, tokens_per_iter=cfg.tokens_per_iter, max_iters=t.max_iters,
                     learning_rate=t.learning_rate, min_lr=t.min_lr, preset_warmup=t.warmup_iters)


def start_record(paths: RunPaths, cfg: RunConfig, dataset: Any, log: logging.Logger) -> None:
    """The prediction before the run (and the probe's, from probe.json in the folder, if one was made there)."""
    if cfg.init_from or not isinstance(dataset, TokenDataset):
        return
    try:
        shape = run_shape_of(cfg)
        facts = data_facts(dataset_difficulty(dataset), dataset.tokens("train"))
        record = {"version": VERSION, "model": QUALITY_MODEL.fitted_on, "shape": asdict(shape),
                  "data": facts.to_json(), "before": predict_quality(shape, facts).to_json(),
                  "after_probe": _probe_quality(paths, cfg), "reached": None}
        atomic_write_json(paths.quality, record)
    except (OSError, ValueError) as exc:
        log.warning("warning: the quality prediction was not recorded (%s)", exc)


def _probe_quality(paths: RunPaths, cfg: RunConfig) -> dict[str, Any] | None:
    """The probe's refitted prediction, where the folder's probe was of this very run (preset, context, tokens
    a step, length)."""
    try:
        probe = read_json_file(paths.probe)
    except (OSError, ValueError):
        return None
    if not isinstance(probe, dict):
        return None
    same = (probe.get("preset") == cfg.preset and probe.get("block_size") == cfg.model.block_size
            and probe.get("full_run_iters") == cfg.train.max_iters
            and _tokens_per_iter(probe) == cfg.tokens_per_iter)
    q = probe.get("quality")
    return q if same and isinstance(q, dict) else None


def _tokens_per_iter(probe: dict[str, Any]) -> int | None:
    try:
        return int(probe["batch_size"]) * int(probe["grad_accum"]) * int(probe["block_size"])
    except (KeyError, TypeError, ValueError):
        return None


def finish_record(paths: RunPaths, iter_num: int, val_loss: float | None, log: logging.Logger) -> None:
    """What the run reached: its final weights' validation loss."""
    if val_loss is None:
        return
    try:
        record = read_json_file(paths.quality)
    except (OSError, ValueError):
        return  # none was started (a tuned run), or it is unreadable: nothing to complete
    if not isinstance(record, dict) or record.get("version") != VERSION:
        return
    bpt = (record.get("data") or {}).get("bytes_per_token")
    record["reached"] = {"iter": iter_num, "val_loss": val_loss,
                         "bits_per_byte": loss_bits_per_byte(val_loss, bpt if isinstance(bpt, float) else None)}
    try:
        atomic_write_json(paths.quality, record)
    except OSError as exc:
        log.warning("warning: the reached quality was not recorded (%s)", exc)
