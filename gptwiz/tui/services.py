"""The wizard's calls into the modules that decide and measure (recommend, memory, hardware, prepare).

Thin by design: each function calls the module that owns the logic and turns its answer into the
plain values the screens draw. Every import is inside the function so the app starts without them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gptwiz.tui.state import Knobs, WizardState


def _get(obj: Any, name: str, default: Any = None) -> Any:
    return obj.get(name, default) if isinstance(obj, dict) else getattr(obj, name, default)


def use_cases() -> list[tuple[str, str, str]]:
    """(key, human name, one-line explanation) in the guide's order."""
    from gptwiz.recommend import USE_CASES

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


def _alternative(item: Any) -> Alternative:
    if isinstance(item, str):
        return Alternative(item, "")
    if isinstance(item, (tuple, list)) and item:
        return Alternative(str(item[0]), str(item[1]) if len(item) > 1 else "")
    preset = _get(item, "preset") or _get(item, "name") or "?"
    why = _get(item, "why") or _get(item, "reason") or _get(item, "description") or ""
    return Alternative(str(preset), str(why))


def view(rec: Any) -> RecView:
    max_iters = _get(rec, "max_iters")
    if max_iters is None:
        from gptwiz.presets import load_preset

        max_iters = load_preset(_get(rec, "preset")).train.max_iters
    return RecView(
        preset=str(_get(rec, "preset")), block_size=int(_get(rec, "block_size")), batch_size=int(_get(rec, "batch_size")),
        grad_accum=int(_get(rec, "grad_accum", 1) or 1), learning_rate=float(_get(rec, "learning_rate")),
        max_iters=int(max_iters),
        estimate_bytes=int(_get(rec, "estimate_bytes")) if _get(rec, "estimate_bytes") is not None else None,
        fits=_get(rec, "fits"), reasons=[str(r) for r in _get(rec, "reasons", []) or []],
        warnings=[str(w) for w in _get(rec, "warnings", []) or []],
        alternatives=[_alternative(a) for a in _get(rec, "alternatives", []) or []],
        dropout=_get(rec, "dropout"), dtype=str(_get(rec, "dtype", "bfloat16")),
        device_type=str(_get(rec, "device_type", "cuda")),
        phases=[f"{p.name}: {p.preset}, learning rate {p.learning_rate:g}, {p.max_iters:,} iterations"
                + (f" ({p.note})" if p.note else "") for p in _get(rec, "phases", []) or []],
    )


def recommend_for(state: WizardState) -> Any:
    from gptwiz.recommend import recommend

    d = state.dataset
    ram = getattr(state.hardware, "ram_total_bytes", None)
    return recommend(state.use_case, state.vram_gb, d.bytes if d is not None else None,
                     gpu_count=state.gpu_count if state.on_gpu else 1,
                     dataset_tokens=d.tokens if d is not None else None,
                     ram_gb=ram / 2**30 if ram and not state.on_gpu else None)


def knobs_for_preset(preset: str, current: Knobs | None = None) -> Knobs:
    """Switching to an alternative: that preset's own settings, keeping the run length chosen so far."""
    from gptwiz.presets import load_preset

    p = load_preset(preset)
    return Knobs(p.name, p.model.block_size, p.train.batch_size, p.train.grad_accum, p.train.learning_rate,
                 current.max_iters if current is not None else p.train.max_iters, p.model.dropout)


def estimate_bytes(knobs: Knobs, state: WizardState) -> int | None:
    """gptwiz.memory's peak-memory estimate for these knobs on the planned device; None if it cannot say."""
    from gptwiz.memory import estimate_memory
    from gptwiz.presets import load_preset

    model = load_preset(knobs.preset).with_overrides(block_size=knobs.block_size, dropout=knobs.dropout).model
    rec = state.recommendation
    # The same device and dtype the recommendation estimated with, so the bar starts where it did.
    dtype = rec.dtype if isinstance(rec, RecView) else "bfloat16"
    device_type = "cuda" if state.on_gpu else "cpu"
    est = estimate_memory(model, batch_size=knobs.batch_size, block_size=knobs.block_size, dtype=dtype,
                          device_type=device_type, grad_accum=knobs.grad_accum)
    return int(_get(est, "total"))


def hardware_lines(report: Any) -> list[str]:
    """What was detected, a line each."""
    lines = []
    for i, gpu in enumerate(_get(report, "gpus", []) or []):
        total, free = _get(gpu, "memory_total_bytes", 0) or 0, _get(gpu, "memory_free_bytes")
        free_text = f", {free / 2**30:.1f} GiB free" if free is not None else ""
        lines.append(f"GPU {i}: {_get(gpu, 'name', '?')}, {total / 2**30:.1f} GiB{free_text}")
    cpu = _get(report, "cpu_count")
    ram, avail = _get(report, "ram_total_bytes"), _get(report, "ram_available_bytes")
    if cpu is not None or ram is not None:
        ram_text = f"{ram / 2**30:.1f} GiB RAM" if ram else "RAM unknown"
        avail_text = f" ({avail / 2**30:.1f} GiB available)" if avail else ""
        lines.append(f"CPU: {cpu or '?'} cores, {ram_text}{avail_text}")
    return lines
