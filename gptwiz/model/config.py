"""The GPT's shape: the architecture half of a preset, and its parameter count.

Kept apart from the model (and from torch) so that planning can size a model without building one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gptwiz.common.records import Bound, rule


@dataclass(frozen=True)
class ModelConfig:
    # The bounds: far past any model gptwiz trains, yet small enough that no product of them (tokens a step,
    # elements of a tensor, bytes of an estimate) leaves a 64-bit integer or a float.
    n_layer: int = field(metadata=rule(Bound(1, 1024)))
    n_head: int = field(metadata=rule(Bound(1, 1024)))
    n_embd: int = field(metadata=rule(Bound(1, 65536)))
    block_size: int = field(metadata=rule(Bound(1, 1_048_576)))
    # GPT-2's 50257 padded to a multiple of 64 for faster matmuls (padded_vocab); a run on data with a tokenizer
    # of its own takes that tokenizer's, padded the same way (gptwiz.training.resolve checks it holds every id).
    vocab_size: int = field(default=50304, metadata=rule(Bound(256, 1_048_576)))
    dropout: float = field(default=0.0, metadata=rule(Bound(0, 1, whole=False, high_open=True)))
    bias: bool = False


def padded_vocab(tokens: int) -> int:
    """The embedding table for a tokenizer of `tokens` ids: a multiple of 64, for faster matmuls."""
    return -(-tokens // 64) * 64


def count_params(model: ModelConfig) -> int:
    """Parameters of the GPT in gpt.py, computed by formula (the LM head is tied, so counted once)."""
    e, layers = model.n_embd, model.n_layer
    b = 1 if model.bias else 0
    embeddings = model.vocab_size * e + model.block_size * e
    per_layer = (
        2 * e * (1 + b)                      # two LayerNorms
        + 3 * e * e + 3 * e * b              # attention q, k, v
        + e * e + e * b                      # attention output projection
        + 4 * e * e + 4 * e * b              # MLP up
        + 4 * e * e + e * b                  # MLP down
    )
    return embeddings + layers * per_layer + e * (1 + b)  # final LayerNorm


def training_flops_per_token(model: ModelConfig) -> float:
    """Training FLOPs per token (forward and backward) at the model's block_size, as in the PaLM paper's
    appendix B: 6 per weight that multiplies (the position table only adds) and the attention's scores."""
    weights = count_params(model) - model.block_size * model.n_embd
    return 6 * weights + 12 * model.n_layer * model.n_embd * model.block_size
