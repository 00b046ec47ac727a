import math

import torch

from gptwiz.model.gpt import GPT
from gptwiz.model.config import ModelConfig

CFG = ModelConfig(n_layer=2, n_head=2, n_embd=32, block_size=16, vocab_size=128, dropout=0.0)


def test_gpt2_tensor_layout_and_tied_head():
    model = GPT(CFG)
    names = set(model.state_dict())
    for expected in ("transformer.wte.weight", "transformer.wpe.weight", "transformer.h.0.ln_1.weight",
                     "transformer.h.0.attn.c_attn.weight", "transformer.h.0.attn.c_proj.weight",
                     "transformer.h.0.ln_2.weight", "transformer.h.1.mlp.c_fc.weight",
                     "transformer.h.1.mlp.c_proj.weight", "transformer.ln_f.weight", "lm_head.weight"):
        assert expected in names
    assert model.lm_head.weight is model.transformer.wte.weight
    assert model.transformer.h[0].attn.c_attn.weight.shape == (3 * 32, 32)


def test_residual_projections_get_scaled_init():
    torch.manual_seed(0)
    big = ModelConfig(n_layer=8, n_head=4, n_embd=256, block_size=16, vocab_size=128)
    model = GPT(big)
    std_proj = model.transformer.h[0].mlp.c_proj.weight.std().item()
    std_fc = model.transformer.h[0].mlp.c_fc.weight.std().item()
    assert abs(std_fc - 0.02) < 0.002
    assert abs(std_proj - 0.02 / math.sqrt(16)) < 0.001


def test_forward_loss_near_uniform_at_init_and_causal():
    torch.manual_seed(0)
    model = GPT(CFG).eval()
    x = torch.randint(0, 128, (3, 16))
    _, loss = model(x, x)
    logits = model.logits(x)
    assert logits.shape == (3, 16, 128)
    assert abs(loss.item() - math.log(128)) < 1.0
    # Changing a later token must not change earlier positions' outputs.
    x2 = x.clone()
    x2[:, -1] = (x2[:, -1] + 1) % 128
    logits2 = model.logits(x2)
    assert torch.allclose(logits[:, :-1], logits2[:, :-1], atol=1e-5)


def test_generate_extends_beyond_block_size():
    model = GPT(CFG).eval()
    out = model.generate(torch.zeros((1, 1), dtype=torch.long), max_new_tokens=20, temperature=1.0, top_k=5)
    assert out.shape == (1, 21)
