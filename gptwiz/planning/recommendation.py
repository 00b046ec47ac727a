"""What `recommend` returns: the preset and its settings, the memory and time they need, and the reasons.

Structured data only: the `gptwiz train` lines that run it are built above planning (gptwiz.wizard.commands).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from gptwiz.planning.knobs import Knobs
from gptwiz.planning.memory import MemoryEstimate
from gptwiz.planning.phases import Phase
from gptwiz.planning.quality import Quality
from gptwiz.planning.timing import RunTime

_KNOB_KEYS = ("preset", "block_size", "batch_size", "grad_accum", "learning_rate", "dropout", "max_iters")


@dataclass(frozen=True)
class Recommendation:
    use_case: str
    vram_gb: float
    gpu_count: int
    device_type: str
    dtype: str
    knobs: Knobs               # the preset and its settings; read flat through the properties below
    params: int
    estimate_bytes: int
    memory_bytes: int | None   # what the estimate is checked against (90% of it); None: not checked
    fits: bool
    reasons: list[str]
    warnings: list[str]
    alternatives: list[tuple[str, str]]
    phases: list[Phase] = field(default_factory=list)
    estimate: MemoryEstimate | None = None
    run_time: RunTime | None = None     # the run's predicted time; None: no throughput given
    probe_time: RunTime | None = None   # its 100-iteration probe's
    quality: Quality | None = None      # the run's predicted final validation loss
    alternative_quality: dict[str, Quality] = field(default_factory=dict)  # each alternative's, in the same budget

    @property
    def eta_s(self) -> float | None:
        return self.run_time.seconds if self.run_time else None

    @property
    def probe_eta_s(self) -> float | None:
        return self.probe_time.seconds if self.probe_time else None

    @property
    def preset(self) -> str:
        return self.knobs.preset

    @property
    def block_size(self) -> int:
        return self.knobs.block_size

    @property
    def batch_size(self) -> int:
        return self.knobs.batch_size

    @property
    def grad_accum(self) -> int:
        return self.knobs.grad_accum

    @property
    def learning_rate(self) -> float:
        return self.knobs.learning_rate

    @property
    def dropout(self) -> float | None:
        return self.knobs.dropout

    @property
    def max_iters(self) -> int:
        return self.knobs.max_iters

    @property
    def effective_batch(self) -> int:
        """Sequences per optimizer step, over accumulation and all cards."""
        return self.batch_size * self.grad_accum * self.gpu_count

    def to_json(self) -> dict[str, Any]:
        """Its fields as JSON, the knobs flat; the command lines are the caller's to add (before "estimate")."""
        data: dict[str, Any] = {}
        for key, value in asdict(self).items():
            if key == "knobs":  # flat, in the order the JSON has always had
                data.update((name, value[name]) for name in _KNOB_KEYS)
            else:
                data[key] = value
        data.pop("estimate")
        data["eta_s"] = round(self.eta_s, 1) if self.eta_s is not None else None
        data["probe_eta_s"] = round(self.probe_eta_s, 1) if self.probe_eta_s is not None else None
        data["run_time"] = self.run_time.to_json() if self.run_time else None
        data["probe_time"] = self.probe_time.to_json() if self.probe_time else None
        data.pop("alternative_quality")
        data["alternatives"] = [{"preset": p, "why": why, "quality": self._quality_of(p)} for p, why in self.alternatives]
        data["effective_batch"] = self.effective_batch
        data["estimate"] = self.estimate.to_json() if self.estimate else None
        data["quality"] = self.quality.to_json() if self.quality else None
        return data

    def _quality_of(self, preset: str) -> dict[str, Any] | None:
        q = self.alternative_quality.get(preset)
        return q.to_json() if q else None


__all__ = ["Recommendation"]
