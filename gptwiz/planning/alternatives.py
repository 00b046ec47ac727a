"""The presets offered beside a recommendation: a step down, a step up (with whether it fits and why not), and the
use case's own proposal where the machine or the data held the pick below it."""

from __future__ import annotations

from gptwiz.common import fmt
from gptwiz.planning.batch_fit import fit_batch
from gptwiz.planning.decision import Ask
from gptwiz.planning.guide_tables import ORDER, combination, ladder


def alternatives(ask: Ask, pick: str, proposal: str, data_cap: str | None) -> list[tuple[str, str]]:
    """(preset, why) for the neighbours of `pick` on its ladder, and the use case's proposal.

    data_cap: the By Dataset Size table's recommended model, None when the dataset's size is not known."""
    out: list[tuple[str, str]] = []
    steps = ladder(ask.use_case, pick)
    i = steps.index(pick)
    if i > 0:
        out.append((steps[i - 1], "smaller and faster: a first validation run, or a quicker result"))
    if i + 1 < len(steps):
        bigger = steps[i + 1]
        preset = ask.presets[bigger]
        fit = fit_batch(preset, preset.model.block_size, combination(bigger, ask.vram_gb).batch_size,
                        ask.device_type, ask.dtype, ask.memory_bytes)
        size = fmt.bytes_(fit.estimate.total, binary=True)
        if not fit.fits:
            why = f"more capacity, but needs about {size} even at batch 1: does not fit"
        elif data_cap is not None and ORDER.index(bigger) > ORDER.index(data_cap):
            why = f"more capacity ({size} at batch {fit.batch_size}), more than the dataset supports"
        elif ORDER.index(bigger) > ORDER.index(proposal):
            why = f"more capacity ({size} at batch {fit.batch_size}) than this use case needs"
        else:
            why = f"more capacity, {size} at batch {fit.batch_size}"
        out.append((bigger, why))
    if proposal != pick and all(p != proposal for p, _ in out):
        out.append((proposal, "what the use case calls for, beyond this machine or dataset"))
    return out


__all__ = ["alternatives"]
