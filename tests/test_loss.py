"""The sliced vocabulary loss against the textbook one: same loss, same gradients."""

from __future__ import annotations

import contextlib

import pytest
import torch
from torch.nn import functional as F

from gptwiz.model.config import ModelConfig
from gptwiz.model.gpt import GPT
from gptwiz.model.loss import dense_cross_entropy, sliced_linear_cross_entropy, training_loss
from gptwiz.model.loss_plan import GLIBC_MMAP_MAX, slice_rows, uses_sliced_loss


def _textbook(x: torch.Tensor, w: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(F.linear(x, w).float(), t, ignore_index=-1)


def _grads(loss_fn, x: torch.Tensor, w: torch.Tensor, t: torch.Tensor, autocast: bool):
    x, w = x.clone().requires_grad_(), w.clone().requires_grad_()
    ctx = torch.autocast("cpu", dtype=torch.bfloat16) if autocast else contextlib.nullcontext()
    with ctx:
        loss = loss_fn(x, w, t)
    (3 * loss).backward()  # an incoming gradient other than one must scale both gradients
    return loss.detach(), x.grad, w.grad


@pytest.mark.parametrize("rows", [7, 16, 100])  # slices that do and do not divide the 50 rows
def test_same_loss_and_gradients_as_the_textbook_loss_in_float32(rows: int) -> None:
    torch.manual_seed(0)
    x, w = torch.randn(50, 24), torch.randn(300, 24) * 0.5
    t = torch.randint(0, 300, (50,))
    t[[3, 17]] = -1  # ignored positions
    ref = _grads(_textbook, x, w, t, autocast=False)
    got = _grads(lambda a, b, c: sliced_linear_cross_entropy(a, b, c, rows=rows), x, w, t, autocast=False)
    for r, g in zip(ref, got):
        assert torch.allclose(r, g, rtol=1e-5, atol=1e-6)
    assert got[1][3].abs().max() == 0  # an ignored row gets no gradient


def test_same_loss_and_gradients_under_bf16_autocast() -> None:
    torch.manual_seed(0)
    x, w = torch.randn(64, 32), torch.randn(500, 32) * 0.5
    t = torch.randint(0, 500, (64,))
    ref = _grads(_textbook, x, w, t, autocast=True)
    got = _grads(lambda a, b, c: sliced_linear_cross_entropy(a, b, c, rows=24), x, w, t, autocast=True)
    assert got[0].item() == pytest.approx(ref[0].item(), rel=1e-3)
    for r, g in zip(ref[1:], got[1:]):
        assert g.dtype == r.dtype == torch.float32
        assert (g - r).norm() <= 0.02 * r.norm()


def test_without_gradients_it_only_computes_the_loss() -> None:
    torch.manual_seed(0)
    x, w, t = torch.randn(40, 16), torch.randn(200, 16), torch.randint(0, 200, (40,))
    with torch.no_grad():
        got = sliced_linear_cross_entropy(x, w, t, rows=16)
    assert not got.requires_grad
    assert got.item() == pytest.approx(_textbook(x, w, t).item(), rel=1e-5)


def test_a_slice_of_gpt2_logits_stays_under_glibcs_mmap_threshold() -> None:
    rows = slice_rows(50304)
    assert rows % 8 == 0 and 4 * rows * 50304 < GLIBC_MMAP_MAX <= 4 * (rows + 8) * 50304  # the largest such


def _saved_widths(model: GPT, x: torch.Tensor) -> set[int]:
    """The last dimension of every tensor autograd saves for the backward of model(x, x)."""
    widths: set[int] = set()

    def pack(t: torch.Tensor) -> torch.Tensor:
        widths.add(t.size(-1) if t.dim() else 0)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(x, x)
    return widths


def test_training_uses_the_sliced_loss_for_eager_cpu_training_only() -> None:
    assert uses_sliced_loss("cpu", compiled=False)
    assert not uses_sliced_loss("cpu", compiled=True) and not uses_sliced_loss("cuda", compiled=False)
    assert training_loss("cpu", compiled=False) is sliced_linear_cross_entropy
    assert training_loss("cpu", compiled=True) is dense_cross_entropy
    assert training_loss("cuda", compiled=False) is dense_cross_entropy
    torch.manual_seed(0)
    vocab = 96  # unlike any other width of this model (n_embd 16, its MLP 64, heads 8), so its logits are told apart
    cfg = ModelConfig(n_layer=1, n_head=2, n_embd=16, block_size=8, vocab_size=vocab, dropout=0.0)
    model = GPT(cfg, loss_fn=training_loss("cpu", compiled=False))
    x = torch.randint(0, vocab, (2, 8))
    loss = model(x, x)
    expected = F.cross_entropy(model.logits(x).view(-1, vocab), x.view(-1))
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert vocab not in _saved_widths(model, x)  # no logits kept for the backward: never materialised whole
    textbook = GPT(cfg)
    textbook.load_state_dict(model.state_dict())
    assert textbook(x, x).item() == pytest.approx(expected.item(), rel=1e-5)
    assert vocab in _saved_widths(textbook, x)  # log_softmax keeps its output
