"""Generation with the key/value cache: the tokens of the uncached loop, before and after the context is full."""

from __future__ import annotations

import pytest
import test_train
import torch
from conftest import SHAKESPEARE

from gptwiz.model.config import ModelConfig
from gptwiz.model.gpt import GPT, KVCache
from gptwiz.training.checkpoint import check_model_state, load_checkpoint

tiny_run = test_train.tiny_run  # the session's one trained tiny run (block_size 64)

MICRO = ModelConfig(n_layer=2, n_head=2, n_embd=32, block_size=16)


@pytest.fixture(scope="module")
def trained(tiny_run) -> GPT:
    path = tiny_run.run / "ckpt_last.pt"
    state = load_checkpoint(path)
    model = GPT(check_model_state(path, state))
    model.load_state_dict(state["model"])
    return model.eval()


def _prompt(tokens: int) -> torch.Tensor:
    from gptwiz.data.tokenizer import get_encoding

    ids = get_encoding().encode_ordinary(SHAKESPEARE.read_text(encoding="utf-8")[:5000])
    return torch.tensor([ids[:tokens]])


def test_cached_greedy_tokens_equal_uncached_past_the_block_size():
    # The tiny preset's shape at a block of 64. Greedy decoding of a model trained briefly, or initialised as
    # training does, repeats one or two tokens; with larger random weights it picks a different token nearly every
    # step, so that a wrong position or a stale cache entry would show.
    from gptwiz.planning.presets import load_preset

    torch.manual_seed(3)
    model = GPT(load_preset("tiny").with_overrides(block_size=64, dropout=0.0).model).eval()
    with torch.no_grad():
        for weight in (p for p in model.parameters() if p.dim() == 2):
            weight.normal_(0.0, 0.2)
    block = model.config.block_size
    prompt = _prompt(block + 37)  # longer than the context: only its last window is seen
    cached = model.generate(prompt, 2 * block + 5, temperature=0)
    uncached = model.generate(prompt, 2 * block + 5, temperature=0, use_cache=False)
    assert cached.shape == (1, prompt.size(1) + 2 * block + 5)
    assert len(set(cached[0, prompt.size(1):].tolist())) > 20
    assert torch.equal(cached, uncached)


@pytest.mark.slow
def test_cached_sampling_draws_the_same_tokens_from_the_same_seed(trained):
    prompt = _prompt(10)  # short: the cache fills from position 10, then the window slides
    draws = []
    for use_cache in (True, False):
        generator = torch.Generator().manual_seed(1234)
        draws.append(trained.generate(prompt, 100, temperature=0.8, top_k=200, generator=generator,
                                      use_cache=use_cache))
    assert torch.equal(draws[0], draws[1])
    assert len(set(draws[0][0, 10:].tolist())) > 10


def test_cached_positions_give_the_logits_of_the_whole_sequence():
    torch.manual_seed(0)
    model = GPT(MICRO).eval()
    x = torch.randint(0, 50257, (2, MICRO.block_size))
    cache = KVCache.for_model(MICRO)
    with torch.no_grad():
        whole = model.logits(x)
        parts = [model.lm_head(model.hidden_states(x[:, a:b], cache)) for a, b in ((0, 5), (5, 11), (11, 12),
                                                                                    (12, 16))]
    assert cache.full and cache.length == MICRO.block_size
    assert (torch.cat(parts, dim=1) - whole).abs().max().item() < 1e-5
    with pytest.raises(ValueError, match="longer than block_size"):
        model.hidden_states(x[:, :1], cache)


def test_prompt_of_exactly_the_block_size_and_one_new_token():
    torch.manual_seed(1)
    model = GPT(MICRO).eval()
    for length in (1, MICRO.block_size - 1, MICRO.block_size, MICRO.block_size + 1):
        x = torch.randint(0, 50257, (1, length))
        for n in (1, 2, MICRO.block_size + 3):
            assert torch.equal(model.generate(x, n, temperature=0), model.generate(x, n, temperature=0,
                                                                                   use_cache=False)), (length, n)


def test_cache_holds_bfloat16_under_autocast():
    torch.manual_seed(2)
    model = GPT(MICRO).eval()
    cache = KVCache.for_model(MICRO)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        model.hidden_states(torch.randint(0, 50257, (1, 4)), cache)
        out = model.generate(torch.randint(0, 50257, (1, 4)), 30, temperature=0)
    assert cache.layers[0].k is not None and cache.layers[0].k.dtype == torch.bfloat16
    assert out.shape == (1, 34) and int(out.max()) < MICRO.vocab_size
