"""A checkpoint's weights as GPT-2's full set, in gptwiz's own layout: what both export formats start from.

gptwiz's model keeps GPT-2's tensor names and stores its projections as nn.Linear (out, in). Other programs
expect every GPT-2 tensor: a preset without biases gets zero biases (llama.cpp's gpt2 graph and transformers'
GPT2LMHeadModel both add a bias after each norm and projection), and the vocabulary's padding rows past the
tokenizer's tokens (GPT-2's 50,257, or a run's own BPE's N) are dropped (no token has their ids). The LM head is
the embedding (tied), so it is left out.
"""

from __future__ import annotations

import torch

from gptwiz.common.errors import UsageError
from gptwiz.data.tokenizer import GPT2_VOCAB_SIZE
from gptwiz.model.config import ModelConfig


def full_tensors(config: ModelConfig, model_state: dict[str, torch.Tensor], n_vocab: int = GPT2_VOCAB_SIZE,
                 tokenizer: str = "GPT-2") -> dict[str, torch.Tensor]:
    """The checkpoint's tensors by GPT-2's names, float32 on the CPU, each its own storage, (out, in) layout, the
    embedding cut to the `n_vocab` tokens of the run's tokenizer (named `tokenizer` in the refusal)."""
    if config.vocab_size < n_vocab:
        raise UsageError(f"the model's vocab_size {config.vocab_size} is smaller than the {tokenizer} tokenizer's "
                         f"{n_vocab} tokens: it cannot be exported as a GPT-2 model")
    out: dict[str, torch.Tensor] = {}
    for name, tensor in model_state.items():
        if name == "lm_head.weight":  # the same tensor as transformer.wte.weight
            continue
        t = tensor.detach().to("cpu", torch.float32)
        if name == "transformer.wte.weight":
            t = t[:n_vocab]
        out[name] = t.contiguous().clone()  # its own storage: a slice or a view would write the whole parent
    e = config.n_embd
    if not config.bias:
        zeros = {"ln_1.bias": e, "ln_2.bias": e, "attn.c_attn.bias": 3 * e, "attn.c_proj.bias": e,
                 "mlp.c_fc.bias": 4 * e, "mlp.c_proj.bias": e}
        for i in range(config.n_layer):
            out.update({f"transformer.h.{i}.{k}": torch.zeros(n) for k, n in zeros.items()})
        out["transformer.ln_f.bias"] = torch.zeros(e)
    return out
