"""Why a preset can need more memory than a larger one (`gptwiz presets`): tiny trains at batch 64 where small
trains at 32, and for models that small the loss's tensors over the 50,304-entry vocabulary, batch x block x
vocabulary, outweigh the weights. The words are computed from the estimates, so they follow the presets."""

from __future__ import annotations

from dataclasses import dataclass

from gptwiz.model.config import count_params
from gptwiz.planning.memory import MemoryEstimate
from gptwiz.planning.presets import Preset


@dataclass(frozen=True)
class Heavier:
    """`smaller` (fewer parameters) needs more memory than `larger` at their own settings."""
    smaller: Preset
    larger: Preset
    estimate: MemoryEstimate   # the smaller preset's

    def line(self) -> str:
        """'tiny: batch 64 (small: 32); the logits, batch × block × 50,304, weigh most'."""
        heaviest = _heaviest(self.estimate, self.smaller.model.vocab_size)
        return f"{self.smaller.name}: {_settings(self.smaller, self.larger)}; {heaviest}"


def heavier_than_larger(presets: list[tuple[Preset, MemoryEstimate]]) -> list[Heavier]:
    """Each pair of presets where the one with fewer parameters has the larger estimate, in the presets' order."""
    sized = [(p, e, count_params(p.model)) for p, e in presets]
    return [Heavier(p, q, e) for p, e, n in sized for q, f, m in sized if m > n and f.total < e.total]


def _settings(p: Preset, q: Preset) -> str:
    """The settings that differ between the two: batch, block, or both."""
    batch = (p.train.batch_size, q.train.batch_size)
    block = (p.model.block_size, q.model.block_size)
    if batch[0] != batch[1] and block[0] != block[1]:
        return f"batch {batch[0]} × block {block[0]} ({q.name}: {batch[1]} × {block[1]})"
    if batch[0] != batch[1]:
        return f"batch {batch[0]} ({q.name}: {batch[1]})"
    if block[0] != block[1]:
        return f"block {block[0]} ({q.name}: {block[1]})"
    return f"batch {batch[0]} × block {block[0]}, as {q.name}"


def _heaviest(est: MemoryEstimate, vocab: int) -> str:
    """The largest term of the estimate, and what it grows with where that is the batch and the block."""
    terms = {"logits": est.logits, "activations": est.activations, "weights": est.weights, "gradients": est.grads,
             "optimizer state": est.optimizer, "allocator overhead": est.allocator, "runtime": est.runtime,
             "checkpoint buffer": est.checkpoint, "weight copies": est.autocast}
    name = max(terms, key=lambda k: terms[k])
    if name == "logits":
        return f"the logits, batch × block × {vocab:,}, weigh most"
    if name == "activations":
        return "the saved activations weigh most"
    return f"the {name} {'weigh' if name.endswith('s') else 'weighs'} most"


__all__ = ["Heavier", "heavier_than_larger"]
