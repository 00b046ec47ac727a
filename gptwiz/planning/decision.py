"""The pieces `recommend` is made of: what it is asked, a step's answer, and the decision path the answers
add up to. Each step is a function that returns its pick with the lines it adds to the path."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Generic, TypeVar

from gptwiz.data.facts import ASSUMED_DATA, DataFacts
from gptwiz.planning.batch_fit import Fit, memory_label
from gptwiz.planning.guide_tables import USE_CASES
from gptwiz.planning.presets import Preset
from gptwiz.planning.quality import QUALITY_MODEL, QualityModel

T = TypeVar("T")


@dataclass(frozen=True)
class Ask:
    """What a recommendation is for: the use case, the card (or CPU) it trains on, the data, and the user's own
    preset."""
    use_case: str
    vram_gb: float
    gpu_count: int
    dtype: str
    memory_bytes: int | None          # what estimates are checked against; None: not checked
    presets: dict[str, Preset]        # the guide's presets, loaded once
    choice: str | None = None         # the user's preset instead of the guide's pick
    data: DataFacts = ASSUMED_DATA    # the data's measured difficulty, for the predicted quality
    quality_model: QualityModel = QUALITY_MODEL

    @property
    def gpu(self) -> bool:
        return self.vram_gb > 0

    @property
    def device_type(self) -> str:
        return "cuda" if self.gpu else "cpu"

    @property
    def name(self) -> str:
        """The use case as the guide names it."""
        return USE_CASES[self.use_case][0]

    @property
    def memory(self) -> str:
        """Where the estimate must fit, in words."""
        return memory_label(self.gpu, self.memory_bytes)


@dataclass(frozen=True)
class Sized:
    """A preset with the settings it trains at."""
    preset: str
    block_size: int
    fit: Fit
    learning_rate: float
    dropout: float
    max_iters: int


@dataclass(frozen=True)
class Step(Generic[T]):
    """One step's answer: what it picked, the line (rarely none, or more) it adds to the decision path, and what
    it warns of."""
    pick: T
    reasons: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()


@dataclass
class DecisionPath:
    """The reasons and warnings of the steps taken so far, in their order."""
    reasons: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def take(self, step: Step[T]) -> T:
        """Record the step's lines and return its pick."""
        self.reasons.extend(step.reasons)
        self.warnings.extend(step.warnings)
        return step.pick


__all__ = ["Ask", "Sized", "Step", "DecisionPath"]
