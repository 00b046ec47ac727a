"""The use cases trained in two phases: Domain Expert (a base model, then its domain adaptation) and Chat/Q&A (a
base model, then its instruction tuning), with the guide's learning rates and data amounts for phase 2."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gptwiz.common import fmt
from gptwiz.planning.decision import Sized, Step
from gptwiz.planning.presets import DOMAIN_ADAPT_PRESET, PRESETS_DIR, load_preset

# Domain Adaptation: Phase 2 learning rates and the base sizes' domain data (tokens).
DOMAIN_RATES = {"cautious": 3e-5, "balanced": 5e-5, "aggressive": 7e-5}
DOMAIN_TOKENS = {"150M": (10e6, 50e6), "150M_1024": (10e6, 50e6), "200M": (10e6, 50e6),
                 "350M_1024": (50e6, 200e6), "750M_1024": (100e6, 500e6)}

# Instruction tuning (Chat/Q&A's phase 2): the middle of the guide's Fine-tuning (SFT) row, 1e-5 to 3e-5; its
# iterations are sized from the instruction dataset when it trains (gptwiz.planning.tuning).
SFT_LEARNING_RATE = 2e-5
SFT_RATES = (1e-5, 3e-5)


@dataclass(frozen=True)
class Phase:
    name: str
    preset: str
    learning_rate: float
    max_iters: int | None  # None: sized from its instruction dataset when it trains (gptwiz.planning.tuning)
    init_from: str | None
    note: str
    sft: bool = False  # trained on an instruction dataset, which `gptwiz prepare --sft` makes first


def domain_phases(base: str, lr: float, max_iters: int, presets_dir: Path = PRESETS_DIR) -> list[Phase]:
    """Phase 1 the base model; Phase 2 its domain adaptation. The guide's Phase 2 preset is the 750M
    one; a smaller base adapts with its own preset at the domain-adaptation learning rate."""
    adapt = DOMAIN_ADAPT_PRESET if base == "750M_1024" else base
    adapt_iters = load_preset(DOMAIN_ADAPT_PRESET, presets_dir).train.max_iters
    rates = ", ".join(f"{k} {v:g}" for k, v in DOMAIN_RATES.items())
    return [
        Phase("phase 1: base model", base, lr, max_iters, None, "general data, from scratch"),
        Phase("phase 2: domain adaptation", adapt, DOMAIN_RATES["balanced"], adapt_iters, "phase 1",
              f"domain data, initialised from phase 1; learning rate {rates}"),
    ]


def sft_phases(base: str, lr: float, max_iters: int) -> list[Phase]:
    """Phase 1 the base model; phase 2 its instruction tuning, with the same preset, from phase 1's weights."""
    return [
        Phase("phase 1: base model", base, lr, max_iters, None, "general text, from scratch"),
        Phase("phase 2: instruction tuning", base, SFT_LEARNING_RATE, None, "phase 1",
              f"instruction examples (gptwiz prepare --sft), initialised from phase 1; learning rate "
              f"{SFT_RATES[0]:g} to {SFT_RATES[1]:g}", sft=True),
    ]


def the_use_case_trains_in_phases(use_case: str, sized: Sized, presets_dir: Path = PRESETS_DIR) -> Step[list[Phase]]:
    """Domain Expert and Chat/Q&A: the base run and the phase 2 that starts from it; the others: one run."""
    pick = sized.preset
    if use_case == "domain":
        phases = domain_phases(pick, sized.learning_rate, sized.max_iters, presets_dir)
        reasons = [f"Domain Expert: Phase 1 trains {pick} on general data; Phase 2 adapts it to the domain with "
                   f"{phases[1].preset} at learning rate {DOMAIN_RATES['balanced']:g} (balanced; "
                   f"cautious {DOMAIN_RATES['cautious']:g}, aggressive {DOMAIN_RATES['aggressive']:g})"]
        if pick in DOMAIN_TOKENS:
            lo, hi = DOMAIN_TOKENS[pick]
            reasons.append(f"Phase 2 wants {fmt.count(lo)}-{fmt.count(hi)} tokens of domain data for a {pick} base "
                           "(the guide's Domain Adaptation table); the dataset above is Phase 1's general data")
        return Step(phases, tuple(reasons))
    if use_case == "chat":
        return Step(sft_phases(pick, sized.learning_rate, sized.max_iters),
                    (f"Chat/Q&A: phase 1 trains {pick} on general text; phase 2 tunes it on instruction examples "
                     f"(JSONL prompt/response pairs or conversations, `gptwiz prepare --sft`) at learning rate "
                     f"{SFT_LEARNING_RATE:g} (the guide's Fine-tuning (SFT) row: {SFT_RATES[0]:g} to "
                     f"{SFT_RATES[1]:g}), the loss over the answers only, so that it answers instead of "
                     "continuing the text",))
    return Step([])


__all__ = ["Phase", "DOMAIN_RATES", "DOMAIN_TOKENS", "SFT_LEARNING_RATE", "SFT_RATES",
           "domain_phases", "sft_phases", "the_use_case_trains_in_phases"]
