"""The training loss over the vocabulary: cross-entropy of the LM head's logits, with or without keeping the logits.

With GPT-2's 50,304-entry vocabulary the logits are the largest tensors of a small model's step: at batch
8 x 256 tokens, 412 MB in float32, and the textbook loss (`dense_cross_entropy`: `F.cross_entropy(lm_head(x),
targets)`) makes four of them (the logits, log_softmax's output, and two gradients in the backward). On a CPU
that costs more than the matmuls around it: each pass over them is memory-bound, and glibc serves every
allocation over 32 MiB with a fresh mapping that the kernel must zero and fault in page by page, at every step.

`sliced_linear_cross_entropy` computes the same loss a slice of rows at a time, and computes the gradients
of the hidden states and of the head's weight in the same pass, while each slice's logits are still in
cache. No slice is over 32 MiB, so its buffers come from the heap and are reused; nothing vocabulary-sized
outlives the slice.

Both are a `LossFn`. The model computes whichever it was built with (gptwiz.model.gpt.GPT's `loss_fn`); the
trainer builds it with `training_loss`, which follows gptwiz.model.loss_plan's rule (the sliced loss for eager
training on a CPU), as the memory estimate does.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.nn import functional as F

from gptwiz.model.loss_plan import slice_rows, uses_sliced_loss

IGNORE_INDEX = -1

# (hidden states: tokens x n_embd, the LM head's weight: vocab x n_embd, targets: tokens) -> the mean loss
# over the targets that are not IGNORE_INDEX.
LossFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def dense_cross_entropy(x: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The textbook loss: every logit `x @ weight.T` at once, then cross-entropy. The loss in float32 whatever
    the compute dtype: a bf16 log-softmax over 50k entries loses too much."""
    return F.cross_entropy(F.linear(x, weight).float(), targets, ignore_index=IGNORE_INDEX)


def training_loss(device_type: str, compiled: bool) -> LossFn:
    """The loss a training run on `device_type` computes: gptwiz.model.loss_plan decides."""
    return sliced_linear_cross_entropy if uses_sliced_loss(device_type, compiled) else dense_cross_entropy


def _compute_dtype(x: torch.Tensor) -> torch.dtype:
    device_type = x.device.type
    return torch.get_autocast_dtype(device_type) if torch.is_autocast_enabled(device_type) else x.dtype


def sliced_linear_cross_entropy(x: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor,
                                rows: int | None = None) -> torch.Tensor:
    """The mean cross-entropy of `x @ weight.T` (x: tokens x n_embd, weight: vocab x n_embd), slice by slice.

    The matmuls run in the autocast dtype when autocast is on (as nn.Linear's would); the softmax and the
    loss in float32.
    """
    keep = targets != IGNORE_INDEX
    if not bool(keep.all()) and bool(keep.any()):
        # Rows with nothing to predict (an instruction's prompt, padding) need no logits: the head over the
        # vocabulary is most of a small model's step, and a tuning batch is often mostly such rows.
        x, targets = x[keep], targets[keep]
    rows = rows or slice_rows(weight.size(0))
    dtype = _compute_dtype(x)
    if torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad):
        return _SlicedLinearCrossEntropy.apply(x, weight, targets, rows, dtype)
    with torch.autocast(x.device.type, enabled=False):
        xc, wc = x.to(dtype), weight.to(dtype)
        total = torch.zeros((), dtype=torch.float32, device=x.device)
        for start in range(0, x.size(0), rows):
            t_s = targets[start:start + rows]
            total += _slice_softmax(torch.mm(xc[start:start + rows], wc.t()).float(), t_s, t_s != IGNORE_INDEX)[0]
        return total / (targets != IGNORE_INDEX).sum().clamp(min=1)


def _slice_softmax(logits: torch.Tensor, targets: torch.Tensor, keep: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(summed loss of one slice's kept rows, the slice's softmax).

    The loss needs each row's log-sum-exp, which softmax computes but does not return. It follows from
    the softmax at the row's largest logit m: p_max = exp(m - lse), so lse = m - log(p_max). p_max is at
    least 1 / vocab_size, so unlike the target's own probability it cannot underflow. That is one pass
    for the maximum and one for the softmax, against log_softmax plus exp's two slower ones.
    """
    top, where = logits.max(dim=1)
    probs = torch.softmax(logits, dim=1)
    lse = top - probs.gather(1, where[:, None]).squeeze(1).log()
    picked = logits.gather(1, targets.clamp(min=0)[:, None]).squeeze(1)
    return ((lse - picked) * keep).sum(), probs


class _SlicedLinearCrossEntropy(torch.autograd.Function):
    """Forward computes the loss and both gradients; backward only scales them by the incoming gradient.

    d loss / d logits = (softmax(logits) - onehot(target)) / n for each kept row, so each slice's gradient
    is known as soon as its logits are, and is folded into d x (its rows) and d weight (accumulated) at once.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, rows: int,
                dtype: torch.dtype) -> torch.Tensor:
        keep = targets != IGNORE_INDEX
        kept = int(keep.sum())
        scale = 1.0 / max(kept, 1)
        xc, wc = x.to(dtype), weight.to(dtype)
        grad_x = torch.empty(x.shape, dtype=torch.float32, device=x.device)
        grad_w = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device)
        total = torch.zeros((), dtype=torch.float32, device=x.device)
        for start in range(0, x.size(0), rows):
            x_s, t_s, keep_s = xc[start:start + rows], targets[start:start + rows], keep[start:start + rows]
            loss, grad = _slice_softmax(torch.mm(x_s, wc.t()).float(), t_s, keep_s)
            total += loss
            grad[torch.arange(grad.size(0), device=grad.device), t_s.clamp(min=0)] -= 1
            if kept < targets.numel():
                grad[~keep_s] = 0  # ignored rows contribute nothing
            grad = grad.to(dtype)
            grad_x[start:start + rows] = torch.mm(grad, wc)
            if dtype == torch.float32:
                grad_w.addmm_(grad.t(), x_s)
            else:
                # Rounded to bf16 before it is summed in float32, as nn.Linear's weight gradient under
                # autocast is (addmm_ cannot mix the dtypes).
                grad_w.add_(torch.mm(grad.t(), x_s))
        grad_x.mul_(scale)
        grad_w.mul_(scale)
        ctx.save_for_backward(grad_x, grad_w)
        ctx.dtypes = (x.dtype, weight.dtype)
        return total * scale

    @staticmethod
    def backward(ctx, grad_loss: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        grad_x, grad_w = ctx.saved_tensors
        # The loss is the graph's root almost always: a gradient of exactly one needs no extra copy of
        # the (vocab x n_embd) weight gradient.
        if not torch.equal(grad_loss, torch.ones_like(grad_loss)):
            grad_x, grad_w = grad_x * grad_loss, grad_w * grad_loss
        return grad_x.to(ctx.dtypes[0]), grad_w.to(ctx.dtypes[1]), None, None, None
