"""The GPT's shape: the architecture half of a preset, and its parameter count.

Kept apart from the model (and from torch) so that planning can size a model without building one.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModelConfig:
    n_layer: int
    n_head: int
    n_embd: int
    block_size: int
    vocab_size: int = 50304  # GPT-2's 50257 padded to a multiple of 64 for faster matmuls
    dropout: float = 0.0
    bias: bool = False


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


# A forward pass costs about a third of a training micro-step (forward and backward: 2 of its 6 FLOPs a weight):
# what an evaluation batch costs against a training step.
FORWARD_SHARE = 1 / 3


def training_flops_per_token(model: ModelConfig) -> float:
    """Training FLOPs per token (forward and backward) at the model's block_size, as in the PaLM paper's
    appendix B: 6 per weight that multiplies (the position table only adds) and the attention's scores."""
    weights = count_params(model) - model.block_size * model.n_embd
    return 6 * weights + 12 * model.n_layer * model.n_embd * model.block_size
