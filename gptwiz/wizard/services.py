"""The wizard's calls into the modules that decide and measure (recommend, memory, hardware, prepare).

Thin by design: each function calls the module that owns the logic and turns its answer into the
plain values the screens draw. Every import is inside the function so the app starts without them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gptwiz.common import fmt
from gptwiz.common.errors import UsageError
from gptwiz.planning.knobs import Knobs
from gptwiz.wizard.state import WizardState


def use_cases() -> list[tuple[str, str, str]]:
    """(key, human name, one-line explanation) in the guide's order."""
    from gptwiz.planning.recommend import USE_CASES

    return [(key, value[0], value[1]) for key, value in USE_CASES.items()]


@dataclass(frozen=True)
class Alternative:
    preset: str
    why: str


@dataclass(frozen=True)
class RecView:
    """A Recommendation as the screen shows it."""
    knobs: Knobs
    estimate_bytes: int | None
    fits: bool | None
    reasons: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    alternatives: list[Alternative] = field(default_factory=list)
    dtype: str = "bfloat16"
    device_type: str = "cuda"
    phases: list[str] = field(default_factory=list)   # domain: the base run, then the adaptation, one line each


def view(rec: Any) -> RecView:
    """A gptwiz.planning.recommend.Recommendation as the screen shows it."""
    return RecView(
        knobs=rec.knobs, estimate_bytes=rec.estimate_bytes, fits=rec.fits,
        reasons=list(rec.reasons), warnings=list(rec.warnings),
        alternatives=[Alternative(preset, why) for preset, why in rec.alternatives],
        dtype=rec.dtype, device_type=rec.device_type,
        phases=[f"{p.name}: {p.preset}, learning rate {p.learning_rate:g}, {p.max_iters:,} iterations"
                + (f" ({p.note})" if p.note else "") for p in rec.phases],
    )


def recommend_for(state: WizardState) -> Any:
    from gptwiz.planning.recommend import recommend

    if state.use_case is None:
        raise UsageError("no use case chosen yet")
    d = state.dataset
    ram = getattr(state.hardware, "ram_total_bytes", None)
    return recommend(state.use_case, state.vram_gb, d.bytes if d is not None else None,
                     gpu_count=state.gpu_count if state.on_gpu else 1,
                     dataset_tokens=d.tokens if d is not None else None,
                     ram_gb=ram / 2**30 if ram and not state.on_gpu else None)


def knobs_for_preset(preset: str, current: Knobs | None = None) -> Knobs:
    """Switching to an alternative: that preset's own settings, keeping the run length chosen so far."""
    from gptwiz.planning.presets import load_preset

    p = load_preset(preset)
    return Knobs(p.name, p.model.block_size, p.train.batch_size, p.train.grad_accum, p.train.learning_rate,
                 current.max_iters if current is not None else p.train.max_iters, p.model.dropout)


def estimate_bytes(knobs: Knobs, state: WizardState) -> int | None:
    """gptwiz.planning.memory's peak-memory estimate for these knobs on the planned device; None if it cannot say."""
    from gptwiz.planning.memory import estimate_memory
    from gptwiz.planning.presets import load_preset

    model = load_preset(knobs.preset).with_overrides(block_size=knobs.block_size, dropout=knobs.dropout).model
    rec = state.recommendation
    # The same device and dtype the recommendation estimated with, so the bar starts where it did.
    dtype = rec.dtype if isinstance(rec, RecView) else "bfloat16"
    device_type = "cuda" if state.on_gpu else "cpu"
    est = estimate_memory(model, batch_size=knobs.batch_size, block_size=knobs.block_size, dtype=dtype,
                          device_type=device_type, grad_accum=knobs.grad_accum)
    return int(est.total)


def hardware_lines(report: Any) -> list[str]:
    """What gptwiz.planning.hardware detected, a line each."""
    lines = [f"GPU {g.index}: {g.name}, {fmt.gib(g.memory_total_bytes)}, {fmt.gib(g.memory_free_bytes)} free"
             for g in report.gpus]
    lines.append(f"CPU: {report.cpu_count} cores, {fmt.gib(report.ram_total_bytes)} RAM "
                 f"({fmt.gib(report.ram_available_bytes)} available)")
    lines.extend(f"note: {w}" for w in report.warnings)
    return lines
