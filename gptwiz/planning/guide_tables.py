"""docs/model-selection-guide.md's tables as data: use cases, the By Hardware and By Dataset Size tables, the
Recommended Combinations, and the order of the presets they pick from. Pure lookups; no decision is made here."""

from __future__ import annotations

from dataclasses import dataclass

from gptwiz.planning.presets import DOMAIN_ADAPT_PRESET, PRESET_ORDER

# The guide's use cases, in its order: key -> (name for humans, one-line explanation).
USE_CASES: dict[str, tuple[str, str]] = {
    "testing": ("Testing/Learning", "learn how training works or check a pipeline, fast, on any hardware"),
    "prototype": ("Prototype", "a first useful model at reasonable speed"),
    "chat": ("Chat/Q&A", "short conversations and answers (256-token context)"),
    "rag": ("Document RAG", "long context for working with documents"),
    "code": ("Code Generation", "best coherence over long code files"),
    "domain": ("Domain Expert", "capacity for specialised knowledge: a base model, then domain adaptation"),
}

# By Use Case table.
USE_CASE_PRESET = {"testing": "small", "prototype": "150M", "chat": "200M", "rag": "350M_1024",
                   "code": "750M_1024", "domain": "750M_1024"}
LONG_CONTEXT = ("rag", "code", "domain")

# The guide's VRAM column order, smallest first: "the smallest of these" is the earliest in it. The domain
# adaptation preset is a second phase, never a pick.
ORDER = [n for n in PRESET_ORDER if n != DOMAIN_ADAPT_PRESET]
# 256-token presets with a 1024-token sibling of the same size.
LONG_SIBLING = {"150M": "150M_1024"}

# By Dataset Size table: (upper bound in bytes, minimum model, recommended model). The guide's MB
# and GB are decimal.
DATASET_TABLE = [
    (10 * 10**6, "tiny", "small", "< 10 MB"),
    (100 * 10**6, "small", "150M", "10-100 MB"),
    (10**9, "150M", "350M_1024", "100 MB - 1 GB"),
    (10 * 10**9, "350M_1024", "750M_1024", "1-10 GB"),
    (None, "750M_1024", "750M_1024", "10+ GB"),
]
# "Model parameters should be roughly 10-20% of your token count"; warn when a factor of two outside.
RULE_OF_THUMB = (0.10, 0.20)
RULE_SLACK = 2.0

# Recommended Combinations: (batch low, batch high, learning rate, dropout). 200M is not in the table:
# it takes the 150M row (the guide's "Medium (150-200M)" class). For 750M the guide gives 1e-4 to
# 3e-4; the preset's 1.5e-4 lies in that range and is kept.
# tiny and small train at the rate their presets hold, measured faster than the guide's (GUIDE_RATE_REPLACED).
COMBINATIONS = {
    "tiny": (32, 64, 1e-3, 0.1), "small": (32, 64, 1e-3, 0.1),
    "150M": (24, 32, 3e-4, 0.1), "150M_1024": (24, 32, 3e-4, 0.1), "200M": (24, 32, 3e-4, 0.1),
    "350M_1024": (12, 16, 2e-4, 0.1), "750M_1024": (8, 12, 1.5e-4, 0.1),
}

GUIDE_RATE_REPLACED = {"tiny": 3e-4, "small": 3e-4}

BIG_CARD_GB = 40          # "40+ GB (A100): 750M_1024 with larger batch"
# Cards report a little under their nominal size (a "24 GB" RTX 4090: 23.99 GiB; a 16 GB card
# ~15.9), so the By Hardware brackets compare the VRAM with this much tolerance.
NOMINAL_TOLERANCE = 1.03


@dataclass(frozen=True)
class Combination:
    """A preset's row of the Recommended Combinations, at the batch this card takes, and how it was read."""
    batch_size: int
    learning_rate: float
    dropout: float
    why: str

    def rate_words(self, preset: str) -> str:
        """The learning rate, and where it differs from the guide's, that it was measured."""
        guide = GUIDE_RATE_REPLACED.get(preset)
        note = f" (measured faster than the guide's {guide:g})" if guide else ""
        return f"learning rate {self.learning_rate:g}{note}"


def smallest(*names: str) -> str:
    """The earliest of the presets in the guide's order."""
    return min(names, key=ORDER.index)


def hardware_cap(use_case: str, vram_gb: float) -> tuple[str, str]:
    """The By Hardware table with its gaps settled: (cap, why). The table's gaps and overlaps are decided
    here: brackets are half-open, [4, 8) is small (the table's 4-6 GB row, extended to the 8 GB where the next starts;
    the Summary Decision Matrix: under 8 GB only small), [8, 12) is 150M, [12, 16) is 150M_1024 for
    the long-context use cases and 200M otherwise, [16, 24) is 350M_1024, 24 and more 750M_1024."""
    if vram_gb <= 0:
        return "small", "no GPU: CPU training, at most small"
    v = vram_gb * NOMINAL_TOLERANCE
    card = f"{vram_gb:g} GB card"
    if v < 4:
        return "tiny", f"{card} (under 4 GB): at most tiny"
    if v < 8:
        return "small", f"{card} (under 8 GB): at most small"
    if v < 12:
        return "150M", f"{card} (8-12 GB): at most 150M"
    if v < 16:
        if use_case in LONG_CONTEXT:
            return "150M_1024", f"{card} (12-16 GB), long-context use case: at most 150M_1024"
        return "200M", f"{card} (12-16 GB): at most 200M"
    if v < 24:
        return "350M_1024", f"{card} (16-24 GB): at most 350M_1024"
    if use_case == "rag":
        # The guide's Example 2 (RTX 3090, 24 GB, company RAG) stays at the use case's 350M_1024.
        return "750M_1024", (f"{card} (24 GB and more): allows 750M_1024; RAG keeps its 350M_1024 "
                             "(the guide's Example 2)")
    return "750M_1024", f"{card} (24 GB and more): allows 750M_1024"


def dataset_row(dataset_bytes: int) -> tuple[str, str, str]:
    """(minimum, recommended, the row's label) of the By Dataset Size table."""
    for bound, minimum, recommended, label in DATASET_TABLE:
        if bound is None or dataset_bytes < bound:
            return minimum, recommended, label
    raise AssertionError("unreachable: the last row has no bound")


def combination(preset: str, vram_gb: float) -> Combination:
    """The preset's Recommended Combination: the upper end of its batch range on a big card, else the lower."""
    low, high, lr, dropout = COMBINATIONS[preset]
    if vram_gb * NOMINAL_TOLERANCE >= BIG_CARD_GB:
        return Combination(high, lr, dropout, f"batch {high} (the upper end of {low}-{high}: a {vram_gb:g} GB card)")
    return Combination(low, lr, dropout, f"batch {low} (of the guide's {low}-{high})")


def ladder(use_case: str, pick: str) -> list[str]:
    """The presets worth offering as a step up or down: long-context use cases step between
    1024-token presets, the others skip 150M_1024 (150M with a context they do not need)."""
    skip = {"150M", "200M"} if use_case in LONG_CONTEXT else {"150M_1024"}
    return [n for n in ORDER if n == pick or n not in skip]


__all__ = ["USE_CASES", "USE_CASE_PRESET", "LONG_CONTEXT", "ORDER", "LONG_SIBLING", "DATASET_TABLE", "RULE_OF_THUMB",
           "RULE_SLACK", "COMBINATIONS", "Combination", "smallest", "hardware_cap", "dataset_row", "combination",
           "ladder"]
