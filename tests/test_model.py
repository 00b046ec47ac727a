import math

import pytest
import torch
from torch.nn import functional as F

from gptwiz.model.config import ModelConfig
from gptwiz.model.gpt import GPT
from gptwiz.model.loss import dense_cross_entropy

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
    loss = model(x, x)
    logits = model.logits(x)
    assert logits.shape == (3, 16, 128)
    assert loss.shape == ()
    assert torch.equal(model(x), logits)  # without targets: the logits of every position
    assert abs(loss.item() - math.log(128)) < 1.0
    # Changing a later token must not change earlier positions' outputs.
    x2 = x.clone()
    x2[:, -1] = (x2[:, -1] + 1) % 128
    logits2 = model.logits(x2)
    assert torch.allclose(logits[:, :-1], logits2[:, :-1], atol=1e-5)


def test_greedy_generation_takes_the_last_positions_most_likely_token():
    torch.manual_seed(0)
    model = GPT(CFG).eval()
    x = torch.randint(0, 128, (2, 5))
    out = model.generate(x, max_new_tokens=1, temperature=0)
    assert torch.equal(out[:, -1], model.logits(x)[:, -1].argmax(dim=-1))


def test_generate_extends_beyond_block_size():
    model = GPT(CFG).eval()
    out = model.generate(torch.zeros((1, 1), dtype=torch.long), max_new_tokens=20, temperature=1.0, top_k=5)
    assert out.shape == (1, 21)


def test_the_textbook_loss_unless_the_model_is_built_with_another():
    torch.manual_seed(0)
    model = GPT(CFG).eval()
    x = torch.randint(0, 128, (2, 16))
    expected = F.cross_entropy(model.logits(x).view(-1, 128), x.view(-1))
    assert torch.allclose(model(x, x), expected, rtol=1e-6)
    doubled = GPT(CFG, loss_fn=lambda h, w, t: 2 * dense_cross_entropy(h, w, t)).eval()
    doubled.load_state_dict(model.state_dict())
    assert torch.allclose(doubled(x, x), 2 * expected, rtol=1e-6)


@pytest.mark.parametrize("fused", [True, False])
def test_configure_optimizer_fuses_only_when_asked(fused: bool):
    model = GPT(CFG)
    opt = model.configure_optimizer(0.1, 1e-3, (0.9, 0.95), fused=fused)
    assert all(group["fused"] is fused for group in opt.param_groups)
    decayed, plain = opt.param_groups
    assert decayed["weight_decay"] == 0.1 and plain["weight_decay"] == 0.0
    assert all(p.dim() >= 2 for p in decayed["params"]) and all(p.dim() < 2 for p in plain["params"])
