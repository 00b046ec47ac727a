"""The guide's decision tables as one pure function: use case, card and data in; preset, settings and reasons out.

`recommend` applies docs/model-selection-guide.md in a fixed order (use case, card, dataset, then the
smallest of their picks, its settings, and the phases), records each step as a reason, and checks the pick against the memory estimate (gptwiz.planning.memory), which replaces the
guide's rough VRAM column. It detects nothing itself: the caller passes the VRAM (0: train on CPU).
"""

from __future__ import annotations

import shlex
from dataclasses import asdict, dataclass, field
from typing import Any

from gptwiz.common import fmt
from gptwiz.common.errors import UsageError
from gptwiz.data.sizes import BYTES_PER_TOKEN
from gptwiz.planning.knobs import Knobs
from gptwiz.planning.memory import GiB, MemoryEstimate, fits
from gptwiz.planning.policy import COMPILE_MIN_ITERS, run_memory
from gptwiz.planning.presets import DOMAIN_ADAPT_PRESET, PRESET_ORDER, PRESETS_DIR, Preset, load_preset
from gptwiz.planning.timing import RunTime, Throughput, iters_within, predict_probe_time, predict_run_time, preset_plan

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
COMBINATIONS = {
    "tiny": (32, 64, 3e-4, 0.1), "small": (32, 64, 3e-4, 0.1),
    "150M": (24, 32, 3e-4, 0.1), "150M_1024": (24, 32, 3e-4, 0.1), "200M": (24, 32, 3e-4, 0.1),
    "350M_1024": (12, 16, 2e-4, 0.1), "750M_1024": (8, 12, 1.5e-4, 0.1),
}

# Domain Adaptation: Phase 2 learning rates and the base sizes' domain data (tokens).
DOMAIN_RATES = {"cautious": 3e-5, "balanced": 5e-5, "aggressive": 7e-5}
DOMAIN_TOKENS = {"150M": (10e6, 50e6), "150M_1024": (10e6, 50e6), "200M": (10e6, 50e6),
                 "350M_1024": (50e6, 200e6), "750M_1024": (100e6, 500e6)}

# Instruction tuning (Chat/Q&A's phase 2): the middle of the guide's Fine-tuning (SFT) row, 1e-5 to 3e-5, and
# iterations enough for a few passes over a typical instruction set of some ten thousand examples.
SFT_LEARNING_RATE = 2e-5
SFT_RATES = (1e-5, 3e-5)
SFT_MAX_ITERS = 1000
SFT_SOURCE = "chat:YOUR_EXAMPLES.jsonl"

HEADROOM = 0.9            # the estimate must fit in 90% of the card (other processes, estimate error)
BIG_CARD_GB = 40          # "40+ GB (A100): 750M_1024 with larger batch"
# Cards report a little under their nominal size (a "24 GB" RTX 4090: 23.99 GiB; a 16 GB card
# ~15.9), so the By Hardware brackets compare the VRAM with this much tolerance.
NOMINAL_TOLERANCE = 1.03


@dataclass(frozen=True)
class Phase:
    name: str
    preset: str
    learning_rate: float
    max_iters: int
    init_from: str | None
    note: str
    sft: bool = False  # trained on an instruction dataset, which `gptwiz prepare --sft` makes first


@dataclass(frozen=True)
class Recommendation:
    use_case: str
    vram_gb: float
    gpu_count: int
    device_type: str
    dtype: str
    knobs: Knobs               # the preset and its settings; read flat through the properties below
    params: int
    estimate_bytes: int
    memory_bytes: int | None   # what the estimate is checked against (90% of it); None: not checked
    fits: bool
    reasons: list[str]
    warnings: list[str]
    alternatives: list[tuple[str, str]]
    phases: list[Phase] = field(default_factory=list)
    estimate: MemoryEstimate | None = None
    run_time: RunTime | None = None     # the run's predicted time; None: no throughput given
    probe_time: RunTime | None = None   # its 100-iteration probe's

    @property
    def eta_s(self) -> float | None:
        return self.run_time.seconds if self.run_time else None

    @property
    def probe_eta_s(self) -> float | None:
        return self.probe_time.seconds if self.probe_time else None

    @property
    def preset(self) -> str:
        return self.knobs.preset

    @property
    def block_size(self) -> int:
        return self.knobs.block_size

    @property
    def batch_size(self) -> int:
        return self.knobs.batch_size

    @property
    def grad_accum(self) -> int:
        return self.knobs.grad_accum

    @property
    def learning_rate(self) -> float:
        return self.knobs.learning_rate

    @property
    def dropout(self) -> float | None:
        return self.knobs.dropout

    @property
    def max_iters(self) -> int:
        return self.knobs.max_iters

    @property
    def effective_batch(self) -> int:
        """Sequences per optimizer step, over accumulation and all cards."""
        return self.batch_size * self.grad_accum * self.gpu_count

    def command(self, model_name: str = "my_model", data_arg: str | None = None) -> str:
        """The `gptwiz train` line that trains this pick (data_arg: '--input_file X' or '--dataset_dir D')."""
        preset = load_preset(self.preset)
        parts = ["gptwiz", "train", "--config_file", self.preset, "--model_name", model_name]
        parts += shlex.split(data_arg) if data_arg else ["--input_file", "YOUR_TEXT.txt"]
        if self.gpu_count > 1:
            parts += ["--nproc", str(self.gpu_count)]
        overrides = [("batch_size", self.batch_size, preset.train.batch_size),
                     ("grad_accum", self.grad_accum, preset.train.grad_accum),
                     ("learning_rate", self.learning_rate, preset.train.learning_rate),
                     ("dropout", self.dropout, preset.model.dropout),
                     ("block_size", self.block_size, preset.model.block_size)]
        for name, value, default in overrides:
            if value != default:
                parts += [f"--{name}", f"{value:g}" if isinstance(value, float) else str(value)]
        parts += ["--max_iters", str(self.max_iters)]
        return " ".join(shlex.quote(p) for p in parts)

    def phase_commands(self, model_name: str = "my_model", data_arg: str | None = None,
                       domain_data_arg: str | None = None) -> list[str]:
        """For `domain`: the base run, then the Phase 2 domain-adaptation run started from it. For `chat`: the base
        run, then the instruction dataset's preparation and the tuning run started from the base."""
        if not self.phases:
            return [self.command(model_name, data_arg)]
        base_name = f"{model_name}_base"
        out = [self.command(base_name, data_arg)]
        for phase in self.phases[1:]:
            parts = ["gptwiz", "train", "--config_file", phase.preset, "--model_name", model_name]
            if phase.sft:
                sft_dir = f"data/{model_name}_sft"
                out.append(shlex.join(["gptwiz", "prepare", "--sft", "--source", SFT_SOURCE, "--out_dir", sft_dir,
                                       "--block_size", str(self.block_size)]))
                parts += shlex.split(domain_data_arg) if domain_data_arg else ["--dataset_dir", sft_dir]
                if self.block_size != load_preset(phase.preset).model.block_size:
                    parts += ["--block_size", str(self.block_size)]  # the base's own: it has no more positions
            else:
                parts += shlex.split(domain_data_arg) if domain_data_arg else ["--dataset_dir", "YOUR_DOMAIN_DATA"]
            parts += ["--init_from_model", base_name, "--learning_rate", f"{phase.learning_rate:g}",
                      "--max_iters", str(phase.max_iters)]
            if self.batch_size != load_preset(phase.preset).train.batch_size:
                parts += ["--batch_size", str(self.batch_size)]
            if self.grad_accum != 1:
                parts += ["--grad_accum", str(self.grad_accum)]
            out.append(" ".join(shlex.quote(p) for p in parts))
        return out

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        for key, value in asdict(self).items():
            if key == "knobs":  # flat, in the order the JSON has always had
                data.update((name, value[name]) for name in _KNOB_KEYS)
            else:
                data[key] = value
        data.pop("estimate")
        data["eta_s"] = round(self.eta_s, 1) if self.eta_s is not None else None
        data["probe_eta_s"] = round(self.probe_eta_s, 1) if self.probe_eta_s is not None else None
        data["run_time"] = self.run_time.to_json() if self.run_time else None
        data["probe_time"] = self.probe_time.to_json() if self.probe_time else None
        data["alternatives"] = [{"preset": p, "why": why} for p, why in self.alternatives]
        data["effective_batch"] = self.effective_batch
        data["command"] = self.command()
        data["estimate"] = self.estimate.to_json() if self.estimate else None
        return data


_KNOB_KEYS = ("preset", "block_size", "batch_size", "grad_accum", "learning_rate", "dropout", "max_iters")


# --- the steps ------------------------------------------------------------------------------------

def _smallest(*names: str) -> str:
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
        return "750M_1024", f"{card} (24 GB and more): allows 750M_1024; RAG keeps its 350M_1024 (the guide's Example 2)"
    return "750M_1024", f"{card} (24 GB and more): allows 750M_1024"


def dataset_row(dataset_bytes: int) -> tuple[str, str, str]:
    """(minimum, recommended, the row's label) of the By Dataset Size table."""
    for bound, minimum, recommended, label in DATASET_TABLE:
        if bound is None or dataset_bytes < bound:
            return minimum, recommended, label
    raise AssertionError("unreachable: the last row has no bound")


def _combination(preset: str, vram_gb: float) -> tuple[int, float, float, str]:
    low, high, lr, dropout = COMBINATIONS[preset]
    if vram_gb * NOMINAL_TOLERANCE >= BIG_CARD_GB:
        return high, lr, dropout, f"batch {high} (the upper end of {low}-{high}: a {vram_gb:g} GB card)"
    return low, lr, dropout, f"batch {low} (of the guide's {low}-{high})"


def _divisors_desc(n: int) -> list[int]:
    return [d for d in range(n, 0, -1) if n % d == 0]


@dataclass(frozen=True)
class _Fit:
    batch_size: int
    grad_accum: int
    estimate: MemoryEstimate
    fits: bool


def _fit_batch(preset: Preset, block_size: int, batch: int, device_type: str, dtype: str,
               memory_bytes: int | None, max_iters: int | None = None) -> _Fit:
    """The largest micro-batch dividing `batch` whose estimate fits, with gradient accumulation
    making up the rest (same sequences per step); batch 1 when none fits. The estimate is the run's
    (gptwiz.planning.policy.run_memory: compiled or not as the trainer will decide)."""
    est = None
    iters = max_iters or preset.train.max_iters
    for micro in _divisors_desc(batch):
        accum = batch // micro
        est = run_memory(preset.model, batch_size=micro, block_size=block_size, dtype=dtype, device_type=device_type,
                         grad_accum=accum, max_iters=iters)
        if memory_bytes is None or fits(est, memory_bytes, HEADROOM):
            return _Fit(micro, accum, est, True)
    assert est is not None
    return _Fit(1, batch, est, False)


def _check_inputs(use_case: str, vram_gb: float, dataset_bytes: int | None, gpu_count: int,
                  ram_gb: float | None) -> None:
    if use_case not in USE_CASES:
        raise UsageError(f"unknown use case {use_case!r} (valid: {', '.join(USE_CASES)})")
    for name, value in (("VRAM", vram_gb), ("RAM", ram_gb)):
        if value is None and name == "RAM":
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value or value < 0 \
                or value == float("inf"):
            raise UsageError(f"invalid {name} {value!r} GB: must be a number of GB, zero or more (0: no GPU)")
    if dataset_bytes is not None and (isinstance(dataset_bytes, bool) or not isinstance(dataset_bytes, int)
                                      or dataset_bytes < 0):
        raise UsageError(f"invalid dataset size {dataset_bytes!r}: must be a number of bytes, zero or more")
    if isinstance(gpu_count, bool) or not isinstance(gpu_count, int) or gpu_count < 1:
        raise UsageError(f"invalid GPU count {gpu_count!r}: must be a whole number, 1 or more")
    if vram_gb == 0 and gpu_count > 1:
        raise UsageError(f"invalid GPU count {gpu_count}: with 0 GB of VRAM there is no GPU to count")


def recommend(use_case: str, vram_gb: float, dataset_bytes: int | None, gpu_count: int = 1, *,
              dataset_tokens: int | None = None, ram_gb: float | None = None, dtype: str | None = None,
              presets_dir: Any = None, throughput: Throughput | None = None, hours: float | None = None,
              preset: str | None = None) -> Recommendation:
    """Apply the guide's tables, in the module's order, to one use case, card and dataset.

    vram_gb: memory of one card in GB (GiB, as NVML reports it); 0 means no GPU: CPU training, checked
    against ram_gb when given. dataset_bytes: the training text's size, or None when unknown;
    dataset_tokens: its exact token count where known (a prepared dataset), else bytes / 4. dtype: the
    training dtype (default bfloat16, which on a GPU costs the same memory as float16). throughput: this
    machine's measured matmul speed (gptwiz.training.throughput), for the times; without it no time is
    predicted and none fitted. hours: a time budget for the run (default: the guide's Training Time for the
    use case, see USE_CASE_TIME). preset: the user's own choice of preset instead of the guide's pick (the
    wizard's alternatives): the settings, warnings and alternatives are then those of that preset.
    """
    _check_inputs(use_case, vram_gb, dataset_bytes, gpu_count, ram_gb)
    check_hours(hours)
    choice = preset
    if hours is not None and throughput is None:
        raise UsageError("a time budget needs this machine's measured throughput to predict times with")
    presets_dir = presets_dir or PRESETS_DIR
    gpu = vram_gb > 0
    device_type = "cuda" if gpu else "cpu"
    dtype = dtype or "bfloat16"
    memory_bytes = int(vram_gb * GiB) if gpu else (int(ram_gb * GiB) if ram_gb is not None else None)
    reasons: list[str] = []
    warnings: list[str] = []
    name, _ = USE_CASES[use_case]

    # 1. The use case proposes.
    proposal = USE_CASE_PRESET[use_case]
    reasons.append(f"use case {name}: the guide proposes {proposal}")
    # 2. The hardware caps.
    hw_cap, why = hardware_cap(use_case, vram_gb)
    reasons.append(why)
    if not gpu:
        warnings.append("no GPU: CPU training is for learning and testing; it takes hours for what a GPU does in minutes")
    # 3. The dataset caps.
    caps = [proposal, hw_cap]
    tokens = None
    if dataset_bytes is not None:
        minimum, recommended, row = dataset_row(dataset_bytes)
        tokens = dataset_tokens if dataset_tokens is not None else int(dataset_bytes / BYTES_PER_TOKEN)
        reasons.append(f"dataset {fmt.bytes_(dataset_bytes)} ({row}): at most {recommended}, at least {minimum}")
        caps.append(recommended)
    else:
        minimum = None
        reasons.append("no dataset size given: the data does not cap the model")
    pick = _smallest(*caps)
    limiting = [label for label, cap in (("use case", proposal), ("hardware", hw_cap),
                                         ("dataset", caps[2] if len(caps) > 2 else None)) if cap == pick]
    reasons.append(f"the smallest of these: {pick} (set by the {_and(limiting)})")

    # 4. Long context: the 1024-token sibling of the same size, where it fits.
    presets = {n: load_preset(n, presets_dir) for n in ORDER}
    if use_case in LONG_CONTEXT and pick in LONG_SIBLING:
        sibling = LONG_SIBLING[pick]
        batch, *_ = _combination(sibling, vram_gb)
        trial = _fit_batch(presets[sibling], presets[sibling].model.block_size, batch, device_type, dtype, memory_bytes)
        if trial.fits:
            reasons.append(f"long-context use case: {pick} becomes its 1024-token sibling {sibling}")
            pick = sibling
        else:
            reasons.append(f"long-context use case, but {sibling} does not fit even at batch 1 "
                           f"({fmt.bytes_(trial.estimate.total, binary=True)}): keeping {pick}")

    if choice is not None:
        if choice not in presets:
            raise UsageError(f"unknown preset {choice!r} (valid: {', '.join(ORDER)})")
        if choice != pick:
            reasons.append(f"your choice: {choice} instead of {pick}")
            pick = choice
    # 5-6. Batch, learning rate and dropout; a smaller micro-batch with accumulation where needed;
    # a smaller preset where even batch 1 does not fit.
    while True:
        block = presets[pick].model.block_size
        batch, lr, dropout, batch_why = _combination(pick, vram_gb)
        fit = _fit_batch(presets[pick], block, batch, device_type, dtype, memory_bytes)
        ladder = _ladder(use_case, pick)
        if fit.fits or ladder.index(pick) == 0 or choice is not None:  # the user's choice stays, warned
            break
        smaller = ladder[ladder.index(pick) - 1]
        reasons.append(f"{pick} does not fit in {HEADROOM:.0%} of {_memory_label(gpu, memory_bytes)} even at batch 1 "
                       f"({fmt.bytes_(fit.estimate.total, binary=True)}): {smaller} instead")
        pick = smaller
    reasons.append(f"Recommended Combinations for {pick}: {batch_why}, learning rate {lr:g}, dropout {dropout:g}")
    max_iters = presets[pick].train.max_iters
    # 7. Time: the run and its probe within the budget, on this machine.
    times: _Timed | None = None
    if throughput is not None:
        names = [pick] if choice is not None else _ladder(use_case, pick)[_ladder(use_case, pick).index(pick)::-1]
        budget = hours * 3600 if hours is not None else USE_CASE_TIME[use_case][0]
        first = _timed(presets[pick], block, fit, device_type, dtype, gpu_count, throughput, budget)
        times = first if first.run.seconds <= budget and first.probe.seconds <= budget * PROBE_SHARE else \
            _time_fit(names, presets, fit.batch_size * fit.grad_accum, device_type, dtype, memory_bytes, gpu_count,
                      throughput, budget) or first
        reasons.append(_time_reason(use_case, hours, budget, first, times))
        if times is not first:
            pick, block, fit, max_iters = times.preset, times.block_size, times.fit, times.run.iters
            _, lr, dropout, _ = _combination(pick, vram_gb)
        if times.run.seconds > budget:
            warnings.append(f"even {pick} at batch {fit.batch_size * fit.grad_accum}, context {block} takes about "
                            f"{fmt.duration(times.run.seconds)}, more than {fmt.duration(budget)}")
    preset_obj = presets[pick]
    est = run_memory(preset_obj.with_overrides(block_size=block).model, batch_size=fit.batch_size, block_size=block,
                     dtype=dtype, device_type=device_type, grad_accum=fit.grad_accum, max_iters=max_iters)
    fit = _Fit(fit.batch_size, fit.grad_accum, est, fit.fits)
    if memory_bytes is not None:
        where = _memory_label(gpu, memory_bytes)
        if fit.grad_accum > 1 and fit.fits:
            reasons.append(f"batch {batch} needs more than {HEADROOM:.0%} of {where}: batch {fit.batch_size} x "
                           f"{fit.grad_accum} accumulation steps (the same {batch} sequences per step), "
                           f"estimated {fmt.bytes_(est.total, binary=True)}")
        elif fit.fits:
            reasons.append(f"estimated peak {fmt.bytes_(est.total, binary=True)} fits in {HEADROOM:.0%} of {where}")
        else:
            warnings.append(f"{pick} needs about {fmt.bytes_(est.total, binary=True)} even at batch 1, more than "
                            f"{HEADROOM:.0%} of {where}: expect out-of-memory")
    else:
        reasons.append(f"estimated peak {fmt.bytes_(est.total, binary=True)} of RAM (the RAM was not checked)")
    if preset_obj.model.block_size == 1024 and use_case not in LONG_CONTEXT:
        warnings.append(f"{pick} trains 1024-token contexts, which {name} does not need")
    if gpu_count > 1:
        reasons.append(f"{gpu_count} GPUs, data parallel: each card trains batch {fit.batch_size}; "
                       f"{fit.batch_size * fit.grad_accum * gpu_count} sequences per step in all")

    # Dataset warnings: the pick under the table's minimum; parameters far from 10-20% of tokens.
    if minimum is not None and ORDER.index(pick) < ORDER.index(minimum):
        warnings.append(f"{pick} is under the guide's minimum for this much data ({minimum}): "
                        "the data could feed a bigger model on a bigger card")
    if tokens:
        ratio = est.params / tokens
        low, high = RULE_OF_THUMB
        if ratio > high * RULE_SLACK:
            share = f"{ratio:.0f} times" if ratio >= 10 else f"{ratio:.0%} of"
            warnings.append(f"{est.params / 1e6:.0f}M parameters are {share} the data's ~{fmt.count(tokens)} tokens "
                            f"(the guide's rule of thumb: {low:.0%}-{high:.0%}): expect it to memorise the text; "
                            "more data, or fewer iterations")
        elif ratio < low / RULE_SLACK:
            warnings.append(f"{est.params / 1e6:.0f}M parameters are only {ratio:.1%} of the data's ~{fmt.count(tokens)} tokens "
                            f"(the guide's rule of thumb: {low:.0%}-{high:.0%}): the data could feed a bigger model")

    phases: list[Phase] = []
    if use_case == "domain":
        phases = _domain_phases(pick, lr, max_iters, presets_dir)
        reasons.append(f"Domain Expert: Phase 1 trains {pick} on general data; Phase 2 adapts it to the domain with "
                       f"{phases[1].preset} at learning rate {DOMAIN_RATES['balanced']:g} (balanced; "
                       f"cautious {DOMAIN_RATES['cautious']:g}, aggressive {DOMAIN_RATES['aggressive']:g})")
        if pick in DOMAIN_TOKENS:
            lo, hi = DOMAIN_TOKENS[pick]
            reasons.append(f"Phase 2 wants {fmt.count(lo)}-{fmt.count(hi)} tokens of domain data for a {pick} base "
                           "(the guide's Domain Adaptation table); the dataset above is Phase 1's general data")
    if use_case == "chat":
        phases = _sft_phases(pick, lr, max_iters)
        reasons.append(f"Chat/Q&A: phase 1 trains {pick} on general text; phase 2 tunes it on instruction examples "
                       f"(JSONL prompt/response pairs or conversations, `gptwiz prepare --sft`) at learning rate "
                       f"{SFT_LEARNING_RATE:g} (the guide's Fine-tuning (SFT) row: {SFT_RATES[0]:g} to "
                       f"{SFT_RATES[1]:g}), the loss over the answers only, so that it answers instead of "
                       "continuing the text")

    return Recommendation(
        use_case=use_case, vram_gb=float(vram_gb), gpu_count=gpu_count, device_type=device_type, dtype=dtype,
        knobs=Knobs(preset=pick, block_size=block, batch_size=fit.batch_size, grad_accum=fit.grad_accum,
                    learning_rate=lr, max_iters=max_iters, dropout=dropout), params=est.params, estimate_bytes=est.total, memory_bytes=memory_bytes,
        fits=fit.fits, reasons=reasons, warnings=warnings,
        alternatives=_alternatives(use_case, pick, proposal, caps, device_type, dtype, memory_bytes, vram_gb, presets),
        phases=phases, estimate=est, run_time=times.run if times else None, probe_time=times.probe if times else None,
    )


# --- time ---------------------------------------------------------------------------------------------

# The guide's Training Time column as the longest a use case's run should take (its preset's upper bound, for
# 10,000 iterations on an RTX 3090), and how the guide says it. Testing/Learning: tiny's "Minutes", as 20 min.
USE_CASE_TIME: dict[str, tuple[float, str]] = {
    "testing": (20 * 60, "tiny: minutes"), "prototype": (4 * 3600, "150M: 2-4 hours"),
    "chat": (6 * 3600, "200M: 4-6 hours"), "rag": (12 * 3600, "350M_1024: 8-12 hours"),
    "code": (48 * 3600, "750M_1024: 24-48 hours"), "domain": (48 * 3600, "750M_1024: 24-48 hours"),
}
PROBE_SHARE = 0.1          # the probe may take a tenth of the run's budget (Testing/Learning: 2 minutes)
MAX_HOURS = 24 * 365
# The least a time-fitted run keeps, so that it still learns something visible: tokens a step and iterations
# (tiny at 1,000 tokens a step falls from 10.8 to ~6 on Shakespeare in 500 iterations), and a context.
MIN_TOKENS_PER_ITER = 1024
MIN_ITERS = 500
MIN_BLOCK = 64


def check_hours(hours: float | None) -> None:
    if hours is None:
        return
    if isinstance(hours, bool) or not isinstance(hours, (int, float)) or not 0 < hours <= MAX_HOURS:
        raise UsageError(f"invalid --hours {hours!r}: must be a number of hours above 0, at most {MAX_HOURS}")


@dataclass(frozen=True)
class _Timed:
    preset: str
    block_size: int
    fit: _Fit
    run: RunTime
    probe: RunTime

    @property
    def tokens_per_iter(self) -> int:
        return self.fit.batch_size * self.fit.grad_accum * self.block_size


def _timed(preset: Preset, block: int, fit: _Fit, device_type: str, dtype: str, gpu_count: int,
           throughput: Throughput, budget: float, iters: int | None = None) -> _Timed:
    plan = preset_plan(preset, device_type=device_type, dtype=dtype, batch_size=fit.batch_size, block_size=block,
                       grad_accum=fit.grad_accum, max_iters=iters, gpu_count=gpu_count)
    return _Timed(preset.name, block, fit, predict_run_time(plan, throughput), predict_probe_time(plan, throughput))


def _halvings(n: int, low: int) -> list[int]:
    out = [n]
    while out[-1] // 2 >= low:
        out.append(out[-1] // 2)
    return out


def _round_down(n: int) -> int:
    """A round number of iterations at or below n (two significant digits)."""
    if n < 100:
        return max(1, n)
    scale = 10 ** (len(str(n)) - 2)
    return n // scale * scale


def _time_fit(names: list[str], presets: dict[str, Preset], batch: int, device_type: str, dtype: str,
              memory_bytes: int | None, gpu_count: int, throughput: Throughput, budget: float) -> _Timed | None:
    """The first setting, in order of preference, whose probe takes at most PROBE_SHARE of the budget and whose
    run fits the budget with enough iterations and tokens a step to learn something visible. Preference: the
    bigger preset, then more tokens a step (batch x context), then the longer context; iterations are cut
    last, to what the budget allows (at most the preset's)."""
    candidates: list[tuple[_Timed, int]] = []
    for name in names:
        p = presets[name]
        for block in _halvings(p.model.block_size, MIN_BLOCK):
            for effective in _halvings(batch, 1):
                fit = _fit_batch(p, block, effective, device_type, dtype, memory_bytes)
                plan = preset_plan(p, device_type=device_type, dtype=dtype, batch_size=fit.batch_size,
                                   block_size=block, grad_accum=fit.grad_accum, gpu_count=gpu_count)
                iters = iters_within(plan, throughput, budget)
                # Timed at the iterations kept: a run cut short may no longer compile, nor its probe. Where the
                # compile time alone spoils the probe, the same run just under the compile threshold is offered too.
                for n in {_round_down(iters), _round_down(min(iters, COMPILE_MIN_ITERS[device_type] - 1))} - {0}:
                    candidates.append((_timed(p, block, fit, device_type, dtype, gpu_count, throughput, budget,
                                              iters=n), n))
    rank = {n: i for i, n in enumerate(names)}
    candidates.sort(key=lambda c: (rank[c[0].preset], -c[0].tokens_per_iter, -c[0].block_size, -c[1]))
    def passes(timed: _Timed, iters: int, min_tokens: int, min_iters: int) -> bool:
        return (timed.fit.fits and timed.probe.seconds <= budget * PROBE_SHARE and timed.tokens_per_iter >= min_tokens
                and iters >= min(min_iters, presets[timed.preset].train.max_iters))

    for timed, iters in candidates:
        if passes(timed, iters, MIN_TOKENS_PER_ITER, MIN_ITERS):
            return timed
    # Nothing that big fits: the setting that trains the most tokens in the budget (a smaller model at a
    # sensible batch learns more than a bigger one at batch 1).
    rest = [(timed, iters) for timed, iters in candidates if passes(timed, iters, 1, 100)]
    return max(rest, key=lambda c: c[1] * c[0].tokens_per_iter)[0] if rest else None


def _time_reason(use_case: str, hours: float | None, budget: float, first: _Timed, chosen: _Timed) -> str:
    """What the time budget changed, or that it changed nothing."""
    if hours is not None:
        why = f"time budget {hours:g} h"
    else:
        name = USE_CASES[use_case][0]
        why = (f"the guide's Training Time for {name} ({USE_CASE_TIME[use_case][1]}: here at most "
               f"{fmt.duration(budget)}, a probe at most {fmt.duration(budget * PROBE_SHARE)})")
    times = (f"run about {fmt.duration(chosen.run.seconds)}, probe about {fmt.duration(chosen.probe.seconds)} on this "
             f"machine")
    if chosen is first and first.run.seconds <= budget:
        return f"{why}: {first.preset} as it is fits ({times})"
    if chosen is first:
        return f"{why}: no setting of {first.preset} or a smaller preset fits; keeping it ({times})"
    was = (f"{first.preset} at batch {first.fit.batch_size * first.fit.grad_accum}, context {first.block_size}, "
           f"{first.run.iters:,} iterations would take about {fmt.duration(first.run.seconds)} "
           f"(probe {fmt.duration(first.probe.seconds)})")
    now = (f"{chosen.preset} at batch {chosen.fit.batch_size * chosen.fit.grad_accum}, context {chosen.block_size}, "
           f"{chosen.run.iters:,} iterations")
    return f"{why}: {was}; {now} instead ({times})"


def _memory_label(gpu: bool, memory_bytes: int | None) -> str:
    if memory_bytes is None:
        return "RAM"
    return f"the {fmt.bytes_(memory_bytes, binary=True)} {'card' if gpu else 'of RAM'}"


def _and(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", the ".join(items[:-1]) + " and the " + items[-1]


def _domain_phases(base: str, lr: float, max_iters: int, presets_dir: Any) -> list[Phase]:
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


def _sft_phases(base: str, lr: float, max_iters: int) -> list[Phase]:
    """Phase 1 the base model; phase 2 its instruction tuning, with the same preset, from phase 1's weights."""
    return [
        Phase("phase 1: base model", base, lr, max_iters, None, "general text, from scratch"),
        Phase("phase 2: instruction tuning", base, SFT_LEARNING_RATE, SFT_MAX_ITERS, "phase 1",
              f"instruction examples (gptwiz prepare --sft), initialised from phase 1; learning rate "
              f"{SFT_RATES[0]:g} to {SFT_RATES[1]:g}", sft=True),
    ]


def _ladder(use_case: str, pick: str) -> list[str]:
    """The presets worth offering as a step up or down: long-context use cases step between
    1024-token presets, the others skip 150M_1024 (150M with a context they do not need)."""
    skip = {"150M", "200M"} if use_case in LONG_CONTEXT else {"150M_1024"}
    return [n for n in ORDER if n == pick or n not in skip]


def _alternatives(use_case: str, pick: str, proposal: str, caps: list[str], device_type: str, dtype: str,
                  memory_bytes: int | None, vram_gb: float, presets: dict[str, Preset]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    ladder = _ladder(use_case, pick)
    i = ladder.index(pick)
    if i > 0:
        smaller = ladder[i - 1]
        out.append((smaller, "smaller and faster: a first validation run, or a quicker result"))
    if i + 1 < len(ladder):
        bigger = ladder[i + 1]
        preset = presets[bigger]
        batch, *_ = _combination(bigger, vram_gb)
        fit = _fit_batch(preset, preset.model.block_size, batch, device_type, dtype, memory_bytes)
        size = fmt.bytes_(fit.estimate.total, binary=True)
        if not fit.fits:
            why = f"more capacity, but needs about {size} even at batch 1: does not fit"
        elif len(caps) > 2 and ORDER.index(bigger) > ORDER.index(caps[2]):
            why = f"more capacity ({size} at batch {fit.batch_size}), more than the dataset supports"
        elif ORDER.index(bigger) > ORDER.index(proposal):
            why = f"more capacity ({size} at batch {fit.batch_size}) than this use case needs"
        else:
            why = f"more capacity, {size} at batch {fit.batch_size}"
        out.append((bigger, why))
    if proposal != pick and all(p != proposal for p, _ in out):
        out.append((proposal, "what the use case calls for, beyond this machine or dataset"))
    return out


__all__ = ["USE_CASES", "Recommendation", "Phase", "recommend", "hardware_cap", "dataset_row", "ORDER", "USE_CASE_TIME",
           "check_hours"]
