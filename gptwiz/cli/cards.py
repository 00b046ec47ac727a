"""`--gpu NAME` on `gptwiz estimate` and `recommend`, and `gptwiz hardware --gpus`: planning for a named card this
machine lacks, from gptwiz.planning.gpus (its data-sheet figures and the efficiency prior). No torch."""

from __future__ import annotations

import argparse
import json
from typing import Any

from gptwiz.cli.args import flag
from gptwiz.common.errors import UsageError
from gptwiz.common.inert import quote
from gptwiz.planning.batch_fit import HEADROOM
from gptwiz.planning.gpus import CARDS, EFFICIENCY_SOURCE, GpuCard, card_json, efficiency, find_card
from gptwiz.planning.memory import GiB, MemoryEstimate, fits
from gptwiz.planning.policy import check_dtype


def add_gpu_flag(p: argparse.ArgumentParser, extra: str = "") -> None:
    flag(p, "gpu", help="plan for a named card this machine lacks (3090, rtx-4090, a100-80gb, h100, ...; "
                        f"`gptwiz hardware --gpus` lists them): CUDA, its dtype, its memory{extra}, and a time from "
                        "its data-sheet peak x an efficiency prior")


def card_device_dtype(name: str, device: str, dtype: str) -> tuple[GpuCard, str, str]:
    """--gpu with --device and --dtype: the card, cuda, and the card's dtype for auto (bf16, or float16 on a card
    without it); UsageError for a CPU or a dtype the card cannot train in."""
    card = find_card(name)
    if device not in ("auto", "cuda"):
        raise UsageError(f"--gpu {quote(name)} plans for a CUDA card: drop --device {quote(device)}")
    dtype = card.dtype if dtype == "auto" else check_dtype(dtype)
    card.peak(dtype)  # the UsageError for bf16 on a card without it
    return card, "cuda", dtype


def card_block(card: GpuCard, dtype: str, width: int, estimate: MemoryEstimate | None = None) -> dict[str, Any]:
    """The card as `--json` carries it, and whether the estimate fits its memory (within HEADROOM, as recommend
    fits a batch)."""
    out = card_json(card, dtype, width)
    if estimate is not None:
        out["estimate_fits"] = fits(estimate, int(card.memory_gb * GiB), HEADROOM)
    return out


def card_line(card: GpuCard, dtype: str, width: int) -> str:
    """One line under a plan's time: what the card's figures are and where they come from."""
    return (f"planned for the {card.name}: {card.memory_gb:g} GB, {dtype} peak {card.peak(dtype) / 1e12:,.0f} "
            f"TFLOP/s ({card.source}); efficiency {efficiency(card, width):.0%} at width {width}, a prior from "
            f"{EFFICIENCY_SOURCE}; not measured")


def run_cards(as_json: bool) -> int:
    """`gptwiz hardware --gpus`: the cards --gpu knows."""
    if as_json:
        print(json.dumps([c.to_json() for c in CARDS], indent=2))
        return 0
    from rich import box  # lazy: rich stays off the --help path
    from rich.console import Console  # lazy: rich stays off the --help path
    from rich.table import Table  # lazy: rich stays off the --help path

    table = Table(title="cards --gpu plans for (dense tensor peaks, FP32 accumulate)", box=box.SIMPLE_HEAD,
                  show_edge=False, pad_edge=False)
    for col in ("name", "--gpu", "memory", "bf16", "fp16", "fp32", "bandwidth"):
        table.add_column(col, justify="left" if col in ("name", "--gpu") else "right", no_wrap=True)
    for c in CARDS:
        bf16 = f"{c.bf16_tflops:g}" if c.bf16_tflops is not None else "none"
        table.add_row(c.name, c.key, f"{c.memory_gb:g} GB", bf16, f"{c.fp16_tflops:g}", f"{c.fp32_tflops:g}",
                      f"{c.bandwidth_gbs:,.0f} GB/s")
    console = Console()
    console.print(table)
    console.print("TFLOP/s. Sources:", highlight=False)
    for c in CARDS:
        console.print(f"  {c.key}: {c.source}", highlight=False)
    console.print(f"Times for a card are a prior: its peak x the efficiency of {EFFICIENCY_SOURCE}. "
                  "See docs/planning.md, \"A named GPU\".", highlight=False)
    return 0


__all__ = ["add_gpu_flag", "card_device_dtype", "card_block", "card_line", "run_cards"]
