"""Named GPUs to plan for from a machine that lacks them: each card's memory and data-sheet peaks, and a prior
for how much of that peak a small GPT's training step reaches (model FLOPs utilisation, MFU). Pure: no torch.

A card's speed here is a prior, not a measurement: the dense tensor peak of its vendor data sheet times an
efficiency taken from published runs of nanoGPT (the trainer gptwiz's loop follows) on an A100, by model width.
The times it gives are labelled as a prior wherever they are shown (gptwiz.planning.timing's basis).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from gptwiz.common.errors import UsageError
from gptwiz.common.inert import quote
from gptwiz.planning.timing import Throughput

TFLOPS = 1e12


@dataclass(frozen=True)
class GpuCard:
    """One card as sold. Peaks are dense (no 2:4 sparsity) tensor-core FLOP/s with FP32 accumulation, what
    mixed-precision training runs at; GeForce cards do FP16 with FP16 accumulation at twice that, which autocast
    does not use. bf16_tflops None: no bf16 in hardware (Turing): the card trains in float16."""
    key: str                   # the canonical name: rtx-3090, a100-80gb
    name: str                  # as the vendor writes it
    memory_gb: float           # as sold (GB); NVML may report a little less
    bf16_tflops: float | None
    fp16_tflops: float
    fp32_tflops: float         # plain FP32 (no tensor cores): a float32 run's peak
    bandwidth_gbs: float       # memory bandwidth, GB/s
    hopper: bool               # H100 and H200: their own efficiency factor (HOPPER_FACTOR)
    source: str                # the data sheet the figures come from
    aliases: tuple[str, ...] = ()

    @property
    def bf16(self) -> bool:
        return self.bf16_tflops is not None

    @property
    def dtype(self) -> str:
        """What `gptwiz train --dtype auto` picks on this card: bf16 where the hardware has it, else float16."""
        return "bfloat16" if self.bf16 else "float16"

    def peak(self, dtype: str) -> float:
        """The data sheet's dense peak in FLOP/s for training in `dtype`; UsageError where the card cannot."""
        if dtype == "bfloat16":
            if self.bf16_tflops is None:
                raise UsageError(f"the {self.name} has no bf16: plan with --dtype float16 (or auto)")
            return self.bf16_tflops * TFLOPS
        if dtype == "float16":
            return self.fp16_tflops * TFLOPS
        return self.fp32_tflops * TFLOPS

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "name": self.name, "memory_gb": self.memory_gb, "bf16": self.bf16,
                "bf16_tflops": self.bf16_tflops, "fp16_tflops": self.fp16_tflops, "fp32_tflops": self.fp32_tflops,
                "bandwidth_gbs": self.bandwidth_gbs, "source": self.source}


_GA102 = "NVIDIA Ampere GA102 GPU Architecture whitepaper, appendix table (GeForce RTX 3090)"
_ADA = "NVIDIA Ada Lovelace GPU Architecture whitepaper, appendix table (GeForce RTX 4090)"
_A100 = "NVIDIA A100 Tensor Core GPU data sheet (dense figures; the sheet's * marks sparsity)"
_H100 = "NVIDIA H100 Tensor Core GPU data sheet (the sheet's figures are with sparsity: halved here)"

# Smallest first. Figures from the named data sheets; where a sheet gives only the sparse figure it is halved.
CARDS: tuple[GpuCard, ...] = (
    GpuCard("t4", "T4", 16, None, 65, 8.1, 320, False,
            "NVIDIA T4 data sheet: mixed precision (FP16/FP32) 65 TFLOPS, no bf16 (Turing)"),
    GpuCard("rtx-3060", "RTX 3060 12GB", 12, 25.5, 25.5, 12.7, 360, False,
            "derived: NVIDIA RTX 3060 spec page (28 SMs at 1.78 GHz boost) x the GA102 whitepaper's GA10x "
            "rate per SM (512 dense FP16/BF16 FLOP a clock with FP32 accumulate); no data sheet gives it",
            ("3060",)),
    GpuCard("rtx-3090", "RTX 3090", 24, 71, 71, 35.6, 936, False, _GA102, ("3090",)),
    GpuCard("rtx-4090", "RTX 4090", 24, 165.2, 165.2, 82.6, 1008, False, _ADA, ("4090",)),
    GpuCard("a10", "A10", 24, 125, 125, 31.2, 600, False, "NVIDIA A10 Tensor Core GPU data sheet"),
    GpuCard("l4", "L4", 24, 121, 121, 30.3, 300, False,
            "NVIDIA L4 Tensor Core GPU data sheet (242 TFLOPS bf16/fp16 with sparsity: halved)"),
    GpuCard("a100-40gb", "A100 40GB", 40, 312, 312, 19.5, 1555, False, _A100, ("a100-40",)),
    GpuCard("a100-80gb", "A100 80GB", 80, 312, 312, 19.5, 2039, False, _A100 + ", SXM", ("a100-80",)),
    GpuCard("h100-pcie", "H100 PCIe 80GB", 80, 756, 756, 51, 2000, True, _H100 + ", PCIe (1,513 sparse)"),
    GpuCard("h100", "H100 SXM 80GB", 80, 989.5, 989.5, 67, 3350, True, _H100 + ", SXM (1,979 sparse)",
            ("h100-sxm", "h100-80gb", "h100-sxm-80gb")),
    GpuCard("h200", "H200 SXM 141GB", 141, 989.5, 989.5, 67, 4800, True,
            "NVIDIA H200 Tensor Core GPU data sheet, SXM (1,979 TFLOPS bf16 with sparsity: halved)",
            ("h200-sxm", "h200-141gb")),
)

# Model FLOPs utilisation of a nanoGPT training step on an A100 (bf16, torch.compile), by model width (n_embd),
# worked out from nanoGPT's README: the baby GPT (6 layers, width 384, 10.65M parameters, context 256, batch 64,
# 5,000 iterations and 21 evaluations of 200 batches a split) "takes about 3 minutes" on one A100: 9.1e15 FLOP
# (5.8e15 training, 3.3e15 evaluation forward) in 180 s is 50 TFLOP/s, 16% of 312 (a floor: the 3 minutes hold
# start and compilation too); GPT-2 124M (width 768, 600,000 iterations of 491,520 tokens at 855 MFLOP a token)
# on 8 A100 40GB "in about 4 days": 2.5e20 FLOP over 8 x 345,600 s is 91 TFLOP/s a card, 29%. Interpolated in
# log-width between the two, the end values beyond them (gptwiz.planning.timing._at_width). A tuned stack reaches
# more (MosaicML llm-foundry's benchmarks, A100 80GB bf16, context 1024: 43% at 125M, 51% at 350M, 48% at 760M):
# nanoGPT's figures are kept, being the trainer gptwiz's follows.
EFFICIENCY: tuple[tuple[int, float], ...] = ((384, 0.16), (768, 0.29))
# The same models reach less of an H100's peak than of an A100's: MosaicML's benchmarks at context 1024 give
# 39.8% against 47.8% (760M) and 42.0% against 60.2% (1B), a mean ratio of 0.77.
HOPPER_FACTOR = 0.77
EFFICIENCY_SOURCE = ("nanoGPT README's A100 runs (baby GPT 3 min: 16% at width 384; GPT-2 124M 4 days on 8 cards: "
                     "29% at width 768), x0.77 on Hopper (MosaicML llm-foundry benchmarks)")


def _canonical(text: str) -> str:
    """'RTX 3090', 'rtx_3090', 'Rtx-3090 ' -> 'rtx-3090'; 'A100 80GB' -> 'a100-80gb'."""
    return re.sub(r"[^a-z0-9]+", "-", text.strip().lower()).strip("-")


def _names(card: GpuCard) -> set[str]:
    names = {card.key, _canonical(card.name), *card.aliases}
    return names | {n.removeprefix("rtx-") for n in names} | {n.replace("-", "") for n in names}


def valid_names() -> str:
    return ", ".join(c.key for c in CARDS)


def find_card(name: str) -> GpuCard:
    """The card `name` means, matched case-insensitively with spaces, dashes and underscores alike ('3090',
    'rtx-3090', 'A100 80GB', 'h100'), else the one card whose name starts so ('h100-pc'); UsageError naming the
    value otherwise: the cards it could mean ('a100'), or the valid names."""
    wanted = _canonical(name)
    squeezed = wanted.replace("-", "")
    exact = [c for c in CARDS if wanted and (wanted in _names(c) or squeezed in _names(c))]
    if exact:
        return exact[0]
    prefixed = [c for c in CARDS if squeezed and any(n.replace("-", "").startswith(squeezed) for n in _names(c))]
    if len(prefixed) == 1:
        return prefixed[0]
    if prefixed:
        raise UsageError(f"GPU {quote(name)} names several cards: {', '.join(c.key for c in prefixed)}")
    raise UsageError(f"unknown GPU {quote(name)} (valid: {valid_names()})")


def efficiency(card: GpuCard, width: int) -> float:
    """The prior's fraction of the card's dense peak at a model width (n_embd): EFFICIENCY interpolated in
    log-width (the end values beyond it), as gptwiz.planning.timing interpolates a Throughput's rates."""
    (w0, e0), (w1, e1) = EFFICIENCY
    f = min(1.0, max(0.0, math.log(width / w0) / math.log(w1 / w0))) if width > 0 else 0.0
    return (e0 + f * (e1 - e0)) * (HOPPER_FACTOR if card.hopper else 1.0)


def card_throughput(card: GpuCard, dtype: str | None = None) -> Throughput:
    """A Throughput for the card as a prior: at each width of EFFICIENCY, the data-sheet peak for `dtype` (the
    card's own by default) times the efficiency there. Its rates are the whole step's model FLOP/s
    (gptwiz.planning.timing counts no other cost for a prior)."""
    dtype = dtype or card.dtype
    peak = card.peak(dtype)
    rates = tuple((w, peak * efficiency(card, w)) for w, _ in EFFICIENCY)
    hopper = f" x{HOPPER_FACTOR:g} for Hopper" if card.hopper else ""
    source = (f"{card.name} data-sheet {dtype} peak {peak / TFLOPS:,.0f} TFLOP/s x an efficiency from nanoGPT's A100 "
              f"runs{hopper}")
    return Throughput("cuda", dtype, head=rates, layer=rates, vocab_s=0.0, elementwise_s=0.0, source=source,
                      prior=card.name, peak_flops=peak)


def card_json(card: GpuCard, dtype: str, width: int | None = None) -> dict[str, Any]:
    """The card as a plan shows it: its figures, the dtype planned, the peak, the efficiency (at `width`) and
    where both come from."""
    out = card.to_json()
    out.update(dtype=dtype, peak_tflops=round(card.peak(dtype) / TFLOPS, 1), efficiency_source=EFFICIENCY_SOURCE,
               basis="prior (data-sheet peak x efficiency), not measured")
    if width is not None:
        out["efficiency"] = round(efficiency(card, width), 3)
    return out


__all__ = ["GpuCard", "CARDS", "EFFICIENCY", "HOPPER_FACTOR", "EFFICIENCY_SOURCE", "find_card", "valid_names",
           "efficiency", "card_throughput", "card_json"]
