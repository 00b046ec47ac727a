"""What the wizard offers after a probe, applying one offer to the knobs, and whether a probe's verdict still
holds for the knobs as they are now: the same in both front-ends."""

from __future__ import annotations

import math
from typing import Any

from gptwiz.common import fmt
from gptwiz.common.errors import UsageError
from gptwiz.planning.knobs import Advice, Knobs, flag_value
from gptwiz.wizard.state import WizardState

FITTING_BATCH_WHY = "the batch that fit in memory"


def probe_advice(result: Any, knobs: Knobs | None) -> list[Advice]:
    """The probe's advice, led by the batch it fell back to when the planned one ran out of memory; none for a
    cancelled probe (it has no verdict).

    result: a gptwiz.training.probe.ProbeResult. The probe retries at a smaller micro-batch after an
    out-of-memory; the batch it ended at differs from the knobs', and fits, so it is the first thing to offer.
    """
    if getattr(result, "verdict", None) == "cancelled":
        return []
    advice = list(getattr(result, "advice", None) or [])
    batch: int | None = getattr(result, "batch_size", None)
    accum: int = getattr(result, "grad_accum", None) or 1
    if knobs is not None and batch and (batch, accum) != (knobs.batch_size, knobs.grad_accum):
        advice.insert(0, Advice((("batch_size", batch), ("grad_accum", accum)), FITTING_BATCH_WHY))
    return advice


def apply_advice(state: WizardState, advice: Advice) -> None:
    """The knobs changed as `advice` says, remembered in the history; UsageError if there is nothing to apply."""
    if state.knobs is None:
        raise UsageError("no recommendation yet: nothing to apply the advice to")
    state.knobs = state.knobs.with_advice(advice)
    state.history.append(advice)


def probed_other_settings(result: Any, state: WizardState) -> list[str]:
    """The settings `result`'s probe ran with that differ from the wizard's now, each as 'what it ran (now
    what)'; [] when its verdict is about these settings. After an out-of-memory the probe ran at the batch that
    fit, so planned knobs that kept the bigger batch are other settings too."""
    k = state.knobs
    if result is None or k is None:
        return []
    r = result
    differ: list[str] = []
    if r.preset != k.preset:
        differ.append(f"preset {r.preset} (now {k.preset})")
    if r.block_size != k.block_size:
        differ.append(f"context {r.block_size} (now {k.block_size})")
    if (r.batch_size, r.grad_accum or 1) != (k.batch_size, k.grad_accum):
        differ.append(f"batch {r.batch_size} x accum {r.grad_accum or 1} (now {k.batch_size} x {k.grad_accum})")
    if r.learning_rate is not None and not math.isclose(r.learning_rate, k.learning_rate, rel_tol=1e-9):
        differ.append(f"learning rate {flag_value(float(r.learning_rate))} (now {flag_value(float(k.learning_rate))})")
    if r.full_run_iters and r.full_run_iters != k.max_iters:
        differ.append(f"{r.full_run_iters:,} iterations (now {k.max_iters:,})")
    probed_data = getattr(r, "input_file", None) or getattr(r, "dataset_dir", None)
    if probed_data is not None and state.dataset is not None:
        try:
            now = state.data_args()[1]
        except UsageError:  # not prepared yet: it cannot be what was probed
            now = state.dataset.path
        if now != probed_data:
            differ.append(f"data {probed_data} (now {now})")
    return differ


def probe_summary(result: Any, state: WizardState) -> str:
    """One line on the probe for the launch step: its verdict only when it is about the settings launched."""
    if result is None:
        return "probe: not run"
    other = probed_other_settings(result, state)
    if other:
        return ("probe: it ran with other settings, so its verdict does not apply to these: " + "; ".join(other)
                + ". Go back to probe these settings, or launch without a probe.")
    if result.verdict == "cancelled":
        why = getattr(result, "loss_unjudged_reason", None)
        return f"probe: no verdict ({why})" if why else "probe: cancelled, no verdict"
    line = f"probe: {result.verdict}"
    if getattr(result, "projected_full_run_s", None):
        line += f" · the full run takes about {fmt.duration(result.projected_full_run_s)} at the probe's rate"
    q = getattr(result, "quality", None)
    if q:
        bpb = f", {q['bits_per_byte']:.2f} bits/byte" if q.get("bits_per_byte") is not None else ""
        line += (f" · its final val loss, refitted on the probe's curve: about {q['val_loss']:.2f} "
                 f"({q['low']:.2f}-{q['high']:.2f}){bpb}")
    return line


def budget_line(result: Any) -> str:
    """The full run's time against the probe's budget: 'the guide's Training Time for Testing/Learning (20m00s):
    over it by about 1h37m; the advice lists 3 runs that keep it' (both front-ends show it)."""
    label, budget = result.budget_label or "the budget", result.budget_s or 0.0
    projected = result.projected_full_run_s or 0.0
    if projected <= budget:
        return f"{label}: the full run keeps it"
    n = len(result.budget_options or [])
    keep = (f"the advice lists {n} run{'s' if n != 1 else ''} that keep it" if n
            else "no shorter run priced at the probe's rate keeps it")
    return f"{label}: over it by about {fmt.duration(projected - budget)}; {keep}"
