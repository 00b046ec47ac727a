"""What the wizard offers after a probe, and applying one offer to the knobs: the same in both front-ends."""

from __future__ import annotations

from typing import Any

from gptwiz.common.errors import UsageError
from gptwiz.planning.knobs import Advice, Knobs
from gptwiz.wizard.state import WizardState

FITTING_BATCH_WHY = "the batch that fit in memory"


def probe_advice(result: Any, knobs: Knobs | None) -> list[Advice]:
    """The probe's advice, led by the batch it fell back to when the planned one ran out of memory.

    result: a gptwiz.training.probe.ProbeResult. The probe retries at a smaller micro-batch after an
    out-of-memory; the batch it ended at differs from the knobs', and fits, so it is the first thing to offer.
    """
    advice = list(getattr(result, "advice", None) or [])
    batch: int | None = getattr(result, "batch_size", None)
    accum: int = getattr(result, "grad_accum", None) or 1
    if knobs is not None and getattr(result, "verdict", None) != "cancelled" and batch \
            and (batch, accum) != (knobs.batch_size, knobs.grad_accum):
        advice.insert(0, Advice((("batch_size", batch), ("grad_accum", accum)), FITTING_BATCH_WHY))
    return advice


def apply_advice(state: WizardState, advice: Advice) -> None:
    """The knobs changed as `advice` says, remembered in the history; UsageError if there is nothing to apply."""
    if state.knobs is None:
        raise UsageError("no recommendation yet: nothing to apply the advice to")
    state.knobs = state.knobs.with_advice(advice)
    state.history.append(advice)
