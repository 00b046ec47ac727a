"""A GPT-2 style language model.

The layout of every tensor matches Hugging Face's GPT-2 (transformer.wte, transformer.h.N.attn.c_attn, ...),
only stored as nn.Linear (out, in) instead of Conv1D (in, out), so exporting is a renaming plus a transpose.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
from torch.nn import functional as F

from gptwiz.model.config import ModelConfig
from gptwiz.model.loss import LossFn, dense_cross_entropy


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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(C, dim=2)
        # (B, T, C) -> (B, n_head, T, head_size): each head attends independently
        q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        # The fused kernel never materialises the (T, T) attention matrix where flash or
        # memory-efficient attention is available, which is what keeps long contexts affordable.
        y = F.scaled_dot_product_attention(
            q, k, v, dropout_p=self.dropout if self.training else 0.0, is_causal=True
        )
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.resid_dropout(self.c_proj(y))


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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        x = x + self.mlp(self.ln_2(x))
        return x


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

    def hidden_states(self, idx: torch.Tensor) -> torch.Tensor:
        """The final LayerNorm's output for every position: what the LM head turns into logits."""
        B, T = idx.size()
        if T > self.config.block_size:
            raise ValueError(f"sequence of length {T} is longer than block_size {self.config.block_size}")
        pos = torch.arange(0, T, dtype=torch.long, device=idx.device)
        x = self.transformer.drop(self.transformer.wte(idx) + self.transformer.wpe(pos))
        for block in self.transformer.h:
            x = block(x)
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
        """AdamW. fused: the fused kernel (one launch for the whole update instead of several per tensor), or
        torch's default (for-each) where this torch has none for the parameters; not fused: the per-tensor loop
        (an explicit fused=False leaves torch no default to pick)."""
        # Decay matrices only: shrinking biases and LayerNorm gains towards zero only hurts.
        params = [p for p in self.parameters() if p.requires_grad]
        groups = [
            {"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
            {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
        ]
        try:
            return torch.optim.AdamW(groups, lr=learning_rate, betas=betas, fused=fused)
        except (RuntimeError, ValueError):
            return torch.optim.AdamW(groups, lr=learning_rate, betas=betas)

    def flops_per_token(self) -> float:
        """Training FLOPs per token (forward and backward), as in the PaLM paper's appendix B."""
        cfg = self.config
        n = self.num_params() - self.transformer.wpe.weight.numel()
        return 6 * n + 12 * cfg.n_layer * cfg.n_embd * cfg.block_size

    @torch.no_grad()
    def generate(self, idx: torch.Tensor, max_new_tokens: int, temperature: float = 1.0,
                 top_k: int | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
        for _ in range(max_new_tokens):
            # The model has no positions beyond block_size, so it sees only the latest window.
            idx_cond = idx if idx.size(1) <= self.config.block_size else idx[:, -self.config.block_size:]
            # Only the next token is needed: the vocabulary projection of the last position alone.
            logits = self.lm_head(self.hidden_states(idx_cond)[:, -1, :]).float()
            if temperature <= 0:
                idx_next = torch.argmax(logits, dim=-1, keepdim=True)
            else:
                logits = logits / temperature
                if top_k is not None:
                    v, _ = torch.topk(logits, min(top_k, logits.size(-1)))
                    logits[logits < v[:, [-1]]] = -float("inf")
                probs = F.softmax(logits, dim=-1)
                idx_next = torch.multinomial(probs, num_samples=1, generator=generator)
            idx = torch.cat((idx, idx_next), dim=1)
        return idx
