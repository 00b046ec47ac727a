"""The wizard's calls into the modules that decide and measure (recommend, memory, hardware, prepare).

Thin by design: each function calls the module that owns the logic and turns its answer into the
plain values the screens draw. Every import is inside the function so the app starts without them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gptwiz.wizard.state import Knobs, WizardState


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
    preset: str
    block_size: int
    batch_size: int
    grad_accum: int
    learning_rate: float
    max_iters: int
    estimate_bytes: int | None
    fits: bool | None
    reasons: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    alternatives: list[Alternative] = field(default_factory=list)
    dropout: float | None = None
    dtype: str = "bfloat16"
    device_type: str = "cuda"
    phases: list[str] = field(default_factory=list)   # domain: the base run, then the adaptation, one line each

    @property
    def knobs(self) -> Knobs:
        return Knobs(self.preset, self.block_size, self.batch_size, self.grad_accum, self.learning_rate,
                     self.max_iters, self.dropout)


def view(rec: Any) -> RecView:
    """A gptwiz.planning.recommend.Recommendation as the screen shows it."""
    return RecView(
        preset=rec.preset, block_size=rec.block_size, batch_size=rec.batch_size, grad_accum=rec.grad_accum,
        learning_rate=rec.learning_rate, max_iters=rec.max_iters, estimate_bytes=rec.estimate_bytes, fits=rec.fits,
        reasons=list(rec.reasons), warnings=list(rec.warnings),
        alternatives=[Alternative(preset, why) for preset, why in rec.alternatives],
        dropout=rec.dropout, dtype=rec.dtype, device_type=rec.device_type,
        phases=[f"{p.name}: {p.preset}, learning rate {p.learning_rate:g}, {p.max_iters:,} iterations"
                + (f" ({p.note})" if p.note else "") for p in rec.phases],
    )


def recommend_for(state: WizardState) -> Any:
    from gptwiz.planning.recommend import recommend

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
    lines = [f"GPU {g.index}: {g.name}, {g.memory_total_bytes / 2**30:.1f} GiB, {g.memory_free_bytes / 2**30:.1f} GiB free"
             for g in report.gpus]
    lines.append(f"CPU: {report.cpu_count} cores, {report.ram_total_bytes / 2**30:.1f} GiB RAM "
                 f"({report.ram_available_bytes / 2**30:.1f} GiB available)")
    lines.extend(f"note: {w}" for w in report.warnings)
    return lines
