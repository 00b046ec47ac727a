"""The trainer's options for a probe: the one place that says what makes a training run a probe (no evaluation,
no checkpoints, "probe" records), used both for the parent's check of the settings and for the child's run."""

from __future__ import annotations

from typing import Any

from gptwiz.training.options import TrainOptions


def probe_train_options(**settings: Any) -> TrainOptions:
    """TrainOptions from `settings` (TrainOptions' own fields), run as a probe."""
    return TrainOptions(**settings, evaluates=False, checkpoints=False, restores_folder=False, record_kind="probe")
