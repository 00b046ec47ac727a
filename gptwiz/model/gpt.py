"""A GPT-2 style language model.

The layout of every tensor matches Hugging Face's GPT-2 (transformer.wte, transformer.h.N.attn.c_attn, ...),
only stored as nn.Linear (out, in) instead of Conv1D (in, out), so exporting is a renaming plus a transpose.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch
import torch.nn as nn
from torch.nn import functional as F

from gptwiz.model.config import ModelConfig, training_flops_per_token
from gptwiz.model.loss import LossFn, dense_cross_entropy


@dataclass
class LayerKV:
    """One layer's keys and values, (B, n_head, block_size, head_size) each, allocated at the first write in the
    dtype the layer computes in (bfloat16 under autocast)."""
    capacity: int
    k: torch.Tensor | None = None
    v: torch.Tensor | None = None


@dataclass
class KVCache:
    """The keys and values of the positions generation has run so far, for every layer: a new token then costs
    one position's work instead of the whole window's. `length` positions are filled, from position 0."""
    capacity: int
    layers: list[LayerKV] = field(default_factory=list)
    length: int = 0

    @classmethod
    def for_model(cls, config: ModelConfig) -> KVCache:
        return cls(config.block_size, [LayerKV(config.block_size) for _ in range(config.n_layer)])

    @property
    def full(self) -> bool:
        return self.length >= self.capacity

    def clear(self) -> None:
        self.length = 0  # the tensors are kept: they are overwritten from position 0


class CausalSelfAttention(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        assert config.n_embd % config.n_head == 0
        # q, k and v for all heads in one matmul: one large GEMM is faster than three small ones
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.c_proj.RESIDUAL_SCALE = True  # see GPT._init_weights
        self.resid_dropout = nn.Dropout(config.dropout)
        self.n_head = config.n_head
        self.dropout = config.dropout

    def forward(self, x: torch.Tensor, kv: LayerKV | None = None, start: int = 0) -> torch.Tensor:
        """`kv`: the layer's cache, which holds positions 0..start-1; x's positions are stored after them and
        attend to all of them (generation only)."""
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(C, dim=2)
        # (B, T, C) -> (B, n_head, T, head_size): each head attends independently
        q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        if kv is None or start == 0:
            if kv is not None:
                _store(kv, k, v, 0)
            # The fused kernel never materialises the (T, T) attention matrix where flash or
            # memory-efficient attention is available, which is what keeps long contexts affordable.
            y = F.scaled_dot_product_attention(
                q, k, v, dropout_p=self.dropout if self.training else 0.0, is_causal=True
            )
        else:
            keys, values = _store(kv, k, v, start)
            # One new position sees every cached one, so it needs no mask; several need the causal one, shifted.
            mask = None if T == 1 else torch.ones(T, start + T, dtype=torch.bool, device=x.device).tril(start)
            y = F.scaled_dot_product_attention(q, keys, values, attn_mask=mask)
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.resid_dropout(self.c_proj(y))


def _store(kv: LayerKV, k: torch.Tensor, v: torch.Tensor, start: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Write k and v at positions start.. of the layer's cache; the keys and values of positions 0..end."""
    end = start + k.size(2)
    if end > kv.capacity:
        raise ValueError(f"the cache holds {kv.capacity} positions; position {end - 1} is past it")
    if kv.k is None or kv.v is None or kv.k.dtype != k.dtype or kv.k.shape[0] != k.shape[0]:
        B, n_head, _, head_size = k.shape
        kv.k = k.new_empty(B, n_head, kv.capacity, head_size)
        kv.v = v.new_empty(B, n_head, kv.capacity, head_size)
    kv.k[:, :, start:end] = k
    kv.v[:, :, start:end] = v
    return kv.k[:, :, :end], kv.v[:, :, :end]


class MLP(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.gelu = nn.GELU(approximate="tanh")  # GPT-2 was trained with the tanh approximation
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.c_proj.RESIDUAL_SCALE = True
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))


class Block(nn.Module):
    """Pre-LayerNorm: normalising the input of each sublayer keeps the residual stream clean,
    which is what lets deep stacks train without careful warm-up tricks."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x: torch.Tensor, kv: LayerKV | None = None, start: int = 0) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x), kv, start)
        x = x + self.mlp(self.ln_2(x))
        return x


def adamw_over(params: list[torch.Tensor], weight_decay: float, learning_rate: float, betas: tuple[float, float],
               fused: bool) -> torch.optim.AdamW:
    """AdamW, decaying matrices only: shrinking biases and LayerNorm gains towards zero only hurts. fused: the
    fused kernel (one launch for the whole update instead of several per tensor), or torch's default (for-each)
    where this torch has none for the parameters; not fused: the per-tensor loop (an explicit fused=False leaves
    torch no default to pick)."""
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    try:
        return torch.optim.AdamW(groups, lr=learning_rate, betas=betas, fused=fused)
    except (RuntimeError, ValueError):
        return torch.optim.AdamW(groups, lr=learning_rate, betas=betas)


class GPT(nn.Module):
    """`loss_fn` is the loss `forward` computes with targets (gptwiz.model.loss): the textbook cross-entropy
    unless the caller chooses another; the trainer chooses by device (gptwiz.model.loss.training_loss)."""

    def __init__(self, config: ModelConfig, loss_fn: LossFn = dense_cross_entropy):
        super().__init__()
        self.config = config
        self.loss_fn = loss_fn
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(config.vocab_size, config.n_embd),
            wpe=nn.Embedding(config.block_size, config.n_embd),
            drop=nn.Dropout(config.dropout),
            h=nn.ModuleList([Block(config) for _ in range(config.n_layer)]),
            ln_f=nn.LayerNorm(config.n_embd, bias=config.bias),
        ))
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        # Weight tying: the same matrix reads tokens in and scores them out. It saves
        # vocab_size * n_embd parameters, a third of the tiny model, and helps small models.
        self.transformer.wte.weight = self.lm_head.weight
        self.apply(self._init_weights)

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            std = 0.02
            if getattr(module, "RESIDUAL_SCALE", False):
                # Each block adds two projections to the residual stream; scaling them by
                # 1/sqrt(2 * n_layer) keeps the stream's variance independent of depth (GPT-2).
                std = 0.02 / math.sqrt(2 * self.config.n_layer)
            torch.nn.init.normal_(module.weight, mean=0.0, std=std)
            if module.bias is not None:
                torch.nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def num_params(self) -> int:
        """Parameters counted once each (the tied embedding is one tensor)."""
        return sum(p.numel() for p in self.parameters())

    def hidden_states(self, idx: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
        """The final LayerNorm's output for every position: what the LM head turns into logits. With `cache`,
        idx continues the positions the cache holds, and its keys and values are added to it."""
        B, T = idx.size()
        start = cache.length if cache is not None else 0
        if start + T > self.config.block_size:
            raise ValueError(f"sequence of length {start + T} is longer than block_size {self.config.block_size}")
        pos = torch.arange(start, start + T, dtype=torch.long, device=idx.device)
        x = self.transformer.drop(self.transformer.wte(idx) + self.transformer.wpe(pos))
        for i, block in enumerate(self.transformer.h):
            x = block(x, cache.layers[i] if cache is not None else None, start)
        if cache is not None:
            cache.length = start + T
        return self.transformer.ln_f(x)

    def logits(self, idx: torch.Tensor) -> torch.Tensor:
        """Logits of every position, (B, T, vocab_size)."""
        return self.lm_head(self.hidden_states(idx))

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None) -> torch.Tensor:
        """With targets: the mean loss (a scalar) by `loss_fn`. Without: the logits of every position, as `logits`.

        The one entry point of training and evaluation, because it is the method DDP, FSDP and torch.compile
        wrap; the result is the same on every device, whichever loss computes it.
        """
        x = self.hidden_states(idx)
        if targets is None:
            return self.lm_head(x)
        return self.loss_fn(x.reshape(-1, x.size(-1)), self.lm_head.weight, targets.reshape(-1))

    def configure_optimizer(self, weight_decay: float, learning_rate: float, betas: tuple[float, float],
                            fused: bool) -> torch.optim.AdamW:
        """AdamW over all the trainable parameters (adamw_over)."""
        return adamw_over([p for p in self.parameters() if p.requires_grad], weight_decay, learning_rate, betas,
                          fused)

    def flops_per_token(self) -> float:
        """Training FLOPs per token (forward and backward): gptwiz.model.config's count, which planning uses too."""
        return training_flops_per_token(self.config)

    @torch.no_grad()
    def generate(self, idx: torch.Tensor, max_new_tokens: int, temperature: float = 1.0,
                 top_k: int | None = None, generator: torch.Generator | None = None,
                 use_cache: bool = True) -> torch.Tensor:
        """idx continued by max_new_tokens tokens (`stream`'s, collected). use_cache=False runs the whole latest
        window at every step: the reference the cached loop is checked against."""
        if not use_cache:
            return self._generate_uncached(idx, max_new_tokens, temperature, top_k, generator)
        return torch.cat([idx, *self.stream(idx, max_new_tokens, temperature, top_k, generator)], dim=1)

    def stream(self, idx: torch.Tensor, max_new_tokens: int, temperature: float = 1.0, top_k: int | None = None,
               generator: torch.Generator | None = None, vocab: int | None = None) -> Iterator[torch.Tensor]:
        """The tokens that continue idx, one (batch x 1) tensor as each is chosen; with `vocab`, chosen among the
        first `vocab` entries only (the padded rows of the vocabulary are no tokens). The model has no positions
        beyond block_size, so each token is chosen from the latest block_size tokens at most: the prompt's window
        runs once and each new token costs one position; once the window is full, each step runs the latest
        window again (its tokens all move one position down), so the tokens are those of the uncached loop."""
        window = self.config.block_size
        cache = KVCache.for_model(self.config)
        logits = self._last_logits(idx[:, -window:], cache)
        for step in range(max_new_tokens):
            idx_next = _choose(logits[:, :vocab] if vocab else logits, temperature, top_k, generator)
            yield idx_next
            if step == max_new_tokens - 1:
                return
            idx = torch.cat((idx, idx_next), dim=1)
            if cache.full:
                cache.clear()
                logits = self._last_logits(idx[:, -window:], cache)
            else:
                logits = self._last_logits(idx_next, cache)

    def _last_logits(self, idx: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
        # Only the next token is needed: the vocabulary projection of the last position alone.
        return self.lm_head(self.hidden_states(idx, cache)[:, -1, :]).float()

    def _generate_uncached(self, idx: torch.Tensor, max_new_tokens: int, temperature: float, top_k: int | None,
                           generator: torch.Generator | None) -> torch.Tensor:
        """Every step runs the whole latest window: the reference the cached loop is checked against."""
        for _ in range(max_new_tokens):
            idx_cond = idx if idx.size(1) <= self.config.block_size else idx[:, -self.config.block_size:]
            idx_next = _choose(self._last_logits(idx_cond), temperature, top_k, generator)
            idx = torch.cat((idx, idx_next), dim=1)
        return idx


def _choose(logits: torch.Tensor, temperature: float, top_k: int | None,
            generator: torch.Generator | None) -> torch.Tensor:
    """The next token of each row: the likeliest at temperature 0, else drawn from the top_k at that temperature."""
    if temperature <= 0:
        return torch.argmax(logits, dim=-1, keepdim=True)
    logits = logits / temperature
    if top_k is not None:
        v, _ = torch.topk(logits, min(top_k, logits.size(-1)))
        logits[logits < v[:, [-1]]] = -float("inf")
    probs = F.softmax(logits, dim=-1)
    return torch.multinomial(probs, num_samples=1, generator=generator)
