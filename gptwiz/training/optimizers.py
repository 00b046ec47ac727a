"""The optimizer a run trains with: AdamW (the bigger presets'), or Muon (tiny's and small's) for the blocks'
weight matrices with AdamW for everything else (embeddings, the tied head, LayerNorm gains, biases), as
modded-nanogpt and nanochat train. Muon orthogonalises each matrix's momentum (a few Newton-Schulz steps); with
torch's "match_rms_adamw" scaling its update has AdamW's size, so the run's learning rate and weight decay serve
both halves."""

from __future__ import annotations

from typing import Any

import torch

from gptwiz.common.errors import UsageError
from gptwiz.model.gpt import adamw_over
from gptwiz.planning.presets import OPTIMIZERS
from gptwiz.training.device import cpu_has_fast_bf16


def muon_available() -> bool:
    """torch.optim.Muon arrived in PyTorch 2.9."""
    return hasattr(torch.optim, "Muon")


def preset_optimizer(preset_choice: str, given: str | None, fsdp: bool, device: str) -> str:
    """The optimizer a run uses: the one given (checked as given), else the preset's, where Muon (the small
    presets' default) falls back to AdamW where it cannot run (a torch without it, a sharded run) or would be
    slow: its Newton-Schulz iterations are bf16 matmuls, whatever the run's dtype, and a CPU without AVX-512 BF16
    or AMX computes those many times slower than float32 (benchmarks/muon_step_cost.py: limited to AVX2, Muon's
    step of small took as long as 18 training steps)."""
    if given is not None or preset_choice != "muon":
        return given or preset_choice
    fast_bf16 = device.startswith("cuda") or cpu_has_fast_bf16()
    return "muon" if muon_available() and not fsdp and fast_bf16 else "adamw"


def check_optimizer(name: str, fsdp: bool) -> None:
    """A one-line refusal of an optimizer this torch or this run cannot use."""
    if name not in OPTIMIZERS:
        raise UsageError(f"invalid optimizer {name!r} (valid: {', '.join(OPTIMIZERS)})")
    if name == "muon" and not muon_available():
        raise UsageError(f"--optimizer muon needs PyTorch 2.9 or newer (this is {torch.__version__}); "
                         "upgrade torch, or train with --optimizer adamw")
    if name == "muon" and fsdp:
        raise UsageError("--optimizer muon cannot shard with --fsdp (it needs each matrix whole); "
                         "train with DDP (drop --fsdp) or with --optimizer adamw")


def is_muon_matrix(name: str, param: torch.Tensor) -> bool:
    """A transformer block's weight matrix: Muon's. The embeddings and the head they share are not (Muon is for
    hidden layers), nor anything of fewer dimensions."""
    return param.dim() == 2 and ".h." in f".{name}"


class MuonAdamW:
    """Muon and AdamW stepping as one optimizer: the trainer sets the learning rate of every group, steps and
    clears them together; a checkpoint holds both states through `parts` (optimizer_parts), which torch's
    distributed state helpers save and load keyed by parameter name."""

    def __init__(self, model: torch.nn.Module, weight_decay: float, learning_rate: float,
                 betas: tuple[float, float], fused: bool):
        named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        matrices = [p for n, p in named if is_muon_matrix(n, p)]
        others = [p for n, p in named if not is_muon_matrix(n, p)]
        self.muon = torch.optim.Muon(matrices, lr=learning_rate, weight_decay=weight_decay,  # type: ignore[attr-defined]
                                     adjust_lr_fn="match_rms_adamw")
        self.adamw = adamw_over(others, weight_decay, learning_rate, betas, fused)
        self.parts: tuple[torch.optim.Optimizer, ...] = (self.muon, self.adamw)

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        return [g for part in self.parts for g in part.param_groups]

    def zero_grad(self, set_to_none: bool = True) -> None:
        for part in self.parts:
            part.zero_grad(set_to_none=set_to_none)

    def step(self) -> None:
        for part in self.parts:
            part.step()



def build_optimizer(model: Any, name: str, weight_decay: float, learning_rate: float, betas: tuple[float, float],
                    fused: bool) -> Any:
    """The run's optimizer over `model`'s parameters (the model that owns the state: the FSDP wrapper, else the
    plain model)."""
    if name == "muon":
        return MuonAdamW(model, weight_decay, learning_rate, betas, fused)
    return model.configure_optimizer(weight_decay, learning_rate, betas, fused=fused)


def optimizer_parts(optimizer: Any) -> Any:
    """What torch's distributed state helpers take: the optimizers a MuonAdamW steps, else the optimizer."""
    return list(optimizer.parts) if isinstance(optimizer, MuonAdamW) else optimizer
