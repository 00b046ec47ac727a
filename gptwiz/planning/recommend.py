"""The guide's decision tables as one pure function: use case, card and data in; preset, settings and reasons out.

`recommend` applies docs/model-selection-guide.md as a sequence of named steps (the use case proposes, the
hardware and the dataset cap, the smallest wins, then its settings, its fit in memory and in time, and its
phases); each returns its pick and the reason it adds to the decision path. The pick is checked against the
memory estimate (gptwiz.planning.memory), which replaces the guide's rough VRAM column. It detects nothing
itself: the caller passes the VRAM (0: train on CPU).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from gptwiz.common import fmt
from gptwiz.common.errors import UsageError
from gptwiz.common.inert import quote
from gptwiz.data.facts import DataFacts, assumed_data
from gptwiz.data.sizes import BYTES_PER_TOKEN
from gptwiz.planning.alternatives import alternatives
from gptwiz.planning.batch_fit import HEADROOM, Fit, fit_batch
from gptwiz.planning.decision import Ask, DecisionPath, Sized, Step
from gptwiz.planning.guide_tables import (
    LONG_CONTEXT,
    LONG_SIBLING,
    ORDER,
    RULE_OF_THUMB,
    RULE_SLACK,
    USE_CASE_PRESET,
    USE_CASES,
    combination,
    dataset_row,
    hardware_cap,
    ladder,
    smallest,
)
from gptwiz.planning.knobs import Knobs
from gptwiz.planning.memory import GiB
from gptwiz.planning.phases import Phase, the_use_case_trains_in_phases
from gptwiz.planning.policy import run_dropout, run_memory
from gptwiz.planning.presets import PRESETS_DIR, load_preset
from gptwiz.planning.quality import QUALITY_MODEL, QualityModel
from gptwiz.planning.quality_choice import alternative_quality, setting_quality
from gptwiz.planning.recommend_time import USE_CASE_TIME, Timed, check_hours, the_run_fits_the_time_budget
from gptwiz.planning.recommendation import Recommendation
from gptwiz.planning.timing import Throughput

NO_GPU_WARNING = "no GPU: CPU training is for learning and testing; it takes hours for what a GPU does in minutes"


@dataclass(frozen=True)
class DataCap:
    """The dataset's row of the By Dataset Size table, and its tokens (exact, estimated from a sample, or from its
    bytes where there is only a size)."""
    minimum: str
    recommended: str
    tokens: int


# --- the steps, in the order they are taken ------------------------------------------------------------

def the_use_case_proposes(ask: Ask) -> Step[str]:
    proposal = USE_CASE_PRESET[ask.use_case]
    return Step(proposal, (f"use case {ask.name}: the guide proposes {proposal}",))


def the_hardware_caps(ask: Ask) -> Step[str]:
    cap, why = hardware_cap(ask.use_case, ask.vram_gb)
    return Step(cap, (why,), () if ask.gpu else (NO_GPU_WARNING,))


def the_dataset_caps(dataset_bytes: int | None, dataset_tokens: int | None) -> Step[DataCap | None]:
    if dataset_bytes is None:
        return Step(None, ("no dataset size given: the data does not cap the model",))
    minimum, recommended, row = dataset_row(dataset_bytes)
    tokens = dataset_tokens if dataset_tokens is not None else int(dataset_bytes / BYTES_PER_TOKEN)
    return Step(DataCap(minimum, recommended, tokens),
                (f"dataset {fmt.bytes_(dataset_bytes)} ({row}): at most {recommended}, at least {minimum}",))


def the_smallest_cap_wins(proposal: str, hardware: str, data: DataCap | None) -> Step[str]:
    data_cap = data.recommended if data is not None else None
    pick = smallest(proposal, hardware, *([data_cap] if data_cap is not None else []))
    limiting = [label for label, cap in (("use case", proposal), ("hardware", hardware), ("dataset", data_cap))
                if cap == pick]
    return Step(pick, (f"the smallest of these: {pick} (set by the {_and(limiting)})",))


def long_context_takes_the_1024_token_sibling(ask: Ask, pick: str) -> Step[str]:
    """A long-context use case trains the 1024-token sibling of the same size, where it fits."""
    if ask.use_case not in LONG_CONTEXT or pick not in LONG_SIBLING:
        return Step(pick)
    sibling = LONG_SIBLING[pick]
    trial = _fit_guide_batch(ask, sibling)
    if trial.fits:
        return Step(sibling, (f"long-context use case: {pick} becomes its 1024-token sibling {sibling}",))
    return Step(pick, (f"long-context use case, but {sibling} does not fit even at batch 1 "
                       f"({fmt.bytes_(trial.estimate.total, binary=True)}): keeping {pick}",))


def your_choice_replaces_the_pick(ask: Ask, pick: str) -> Step[str]:
    """The user's own preset (the wizard's alternatives) instead of the guide's pick."""
    choice = ask.choice
    if choice is None:
        return Step(pick)
    if choice not in ask.presets:
        raise UsageError(f"unknown preset {quote(choice)} (valid: {', '.join(ORDER)})")
    if choice == pick:
        return Step(pick)
    return Step(choice, (f"your choice: {choice} instead of {pick}",))


def step_down_until_it_fits(ask: Ask, pick: str) -> Step[tuple[str, Fit]]:
    """The guide's batch, as a smaller micro-batch with accumulation where needed; a smaller preset where even
    batch 1 does not fit (a line for each step down). The user's own choice stays, warned later."""
    reasons: list[str] = []
    while True:
        fit = _fit_guide_batch(ask, pick)
        steps = ladder(ask.use_case, pick)
        if fit.fits or steps.index(pick) == 0 or ask.choice is not None:
            return Step((pick, fit), tuple(reasons))
        smaller = steps[steps.index(pick) - 1]
        reasons.append(f"{pick} does not fit in {HEADROOM:.0%} of {ask.memory} even at batch 1 "
                       f"({fmt.bytes_(fit.estimate.total, binary=True)}): {smaller} instead")
        pick = smaller


def the_recommended_combination(ask: Ask, pick: str, fit: Fit) -> Step[Sized]:
    combo = combination(pick, ask.vram_gb)
    preset = ask.presets[pick]
    return Step(Sized(pick, preset.model.block_size, fit, combo.learning_rate, combo.dropout, preset.train.max_iters),
                (f"Recommended Combinations for {pick}: {combo.why}, {combo.rate_words(pick)}, "
                 f"dropout {combo.dropout:g}",))


def one_pass_needs_no_dropout(ask: Ask, sized: Sized) -> Step[Sized]:
    """No dropout for a run that sees each training token at most once (policy.run_dropout)."""
    run_tokens = sized.max_iters * sized.fit.batch_size * sized.fit.grad_accum * sized.block_size * ask.gpu_count
    dropout = run_dropout(sized.dropout, run_tokens, ask.data.train_tokens)
    if dropout == sized.dropout:
        return Step(sized)
    share = run_tokens / ask.data.train_tokens if ask.data.train_tokens else 0.0
    return Step(replace(sized, dropout=dropout),
                (f"the run sees {share:.0%} of the data's tokens, each at most once: dropout {dropout:g}, not "
                 f"{sized.dropout:g} (it cannot overfit, and dropout would slow it)",))


def the_estimate_fits_the_memory(ask: Ask, sized: Sized) -> Step[Fit]:
    """The run's estimate at the settings chosen, checked against the card (or RAM)."""
    fit, block, preset = sized.fit, sized.block_size, ask.presets[sized.preset]
    est = run_memory(preset.with_overrides(block_size=block, dropout=sized.dropout).model, batch_size=fit.batch_size,
                     block_size=block, dtype=ask.dtype, device_type=ask.device_type, grad_accum=fit.grad_accum,
                     max_iters=sized.max_iters, optimizer=preset.train.optimizer)
    fit = Fit(fit.batch_size, fit.grad_accum, est, fit.fits)
    size = fmt.bytes_(est.total, binary=True)
    if ask.memory_bytes is None:
        return Step(fit, (f"estimated peak {size} of RAM (the RAM was not checked)",))
    if not fit.fits:
        return Step(fit, warnings=(f"{sized.preset} needs about {size} even at batch 1, more than {HEADROOM:.0%} of "
                                   f"{ask.memory}: expect out-of-memory",))
    if fit.grad_accum > 1:
        batch = fit.batch_size * fit.grad_accum
        return Step(fit, (f"batch {batch} needs more than {HEADROOM:.0%} of {ask.memory}: batch {fit.batch_size} x "
                          f"{fit.grad_accum} accumulation steps (the same {batch} sequences per step), "
                          f"estimated {size}",))
    return Step(fit, (f"estimated peak {size} fits in {HEADROOM:.0%} of {ask.memory}",))


def a_long_context_it_does_not_need(ask: Ask, pick: str) -> Step[None]:
    if ask.presets[pick].model.block_size == 1024 and ask.use_case not in LONG_CONTEXT:
        return Step(None, warnings=(f"{pick} trains 1024-token contexts, which {ask.name} does not need",))
    return Step(None)


def several_gpus_share_the_batch(ask: Ask, fit: Fit) -> Step[None]:
    if ask.gpu_count == 1:
        return Step(None)
    return Step(None, (f"{ask.gpu_count} GPUs, data parallel: each card trains batch {fit.batch_size}; "
                       f"{fit.batch_size * fit.grad_accum * ask.gpu_count} sequences per step in all",))


def the_data_suits_the_model(pick: str, data: DataCap | None, params: int) -> Step[None]:
    """Warnings only: the pick under the table's minimum; parameters far from 10-20% of the tokens."""
    if data is None:
        return Step(None)
    warnings: list[str] = []
    if ORDER.index(pick) < ORDER.index(data.minimum):
        warnings.append(f"{pick} is under the guide's minimum for this much data ({data.minimum}): "
                        "the data could feed a bigger model on a bigger card")
    if data.tokens:
        ratio, tokens = params / data.tokens, fmt.count(data.tokens)
        low, high = RULE_OF_THUMB
        rule = f"(the guide's rule of thumb: {low:.0%}-{high:.0%})"
        if ratio > high * RULE_SLACK:
            share = f"{ratio:.0f} times" if ratio >= 10 else f"{ratio:.0%} of"
            warnings.append(f"{params / 1e6:.0f}M parameters are {share} the data's ~{tokens} tokens {rule}: "
                            "expect it to memorise the text; more data, or fewer iterations")
        elif ratio < low / RULE_SLACK:
            warnings.append(f"{params / 1e6:.0f}M parameters are only {ratio:.1%} of the data's ~{tokens} tokens "
                            f"{rule}: the data could feed a bigger model")
    return Step(None, warnings=tuple(warnings))


# --- the whole ------------------------------------------------------------------------------------------

def recommend(use_case: str, vram_gb: float, dataset_bytes: int | None, gpu_count: int = 1, *,
              dataset_tokens: int | None = None, ram_gb: float | None = None, dtype: str | None = None,
              presets_dir: Path | None = None, throughput: Throughput | None = None, hours: float | None = None,
              preset: str | None = None, facts: DataFacts | None = None,
              quality_model: QualityModel = QUALITY_MODEL) -> Recommendation:
    """Apply the guide's tables, step by step, to one use case, card and dataset.

    vram_gb: memory of one card in GB (GiB, as NVML reports it); 0 means no GPU: CPU training, checked
    against ram_gb when given (gptwiz.planning.hardware.training_ram_bytes: the RAM available). dataset_bytes: the
    training text's size, or None when unknown; dataset_tokens: its token count, exact for a prepared dataset and
    estimated from a tokenized sample for raw text (gptwiz.data.sizes), else None: bytes / 4. dtype: the
    training dtype (default bfloat16, which on a GPU costs the same memory as float16). throughput: this
    machine's measured matmul speed (gptwiz.training.throughput), for the times; without it no time is
    predicted and none fitted. hours: a time budget for the run (default: the guide's Training Time for the
    use case, see USE_CASE_TIME). preset: the user's own choice of preset instead of the guide's pick (the
    wizard's alternatives): the settings, warnings and alternatives are then those of that preset. facts: the
    data's measured difficulty (gptwiz.data.difficulty), for the predicted quality; without it typical English
    prose of the given size. quality_model: the quality model with this folder's local correction.
    """
    _check_inputs(use_case, vram_gb, dataset_bytes, gpu_count, ram_gb)
    check_hours(hours)
    if hours is not None and throughput is None:
        raise UsageError("a time budget needs this machine's measured throughput to predict times with")
    presets_dir = presets_dir or PRESETS_DIR
    memory_bytes = int(vram_gb * GiB) if vram_gb > 0 else (int(ram_gb * GiB) if ram_gb is not None else None)
    ask = Ask(use_case, float(vram_gb), gpu_count, dtype or "bfloat16", memory_bytes,
              {n: load_preset(n, presets_dir) for n in ORDER}, preset,
              facts or assumed_data(dataset_tokens or (int(dataset_bytes / BYTES_PER_TOKEN) if dataset_bytes else None)),
              quality_model)
    path = DecisionPath()
    proposal = path.take(the_use_case_proposes(ask))
    hardware = path.take(the_hardware_caps(ask))
    data = path.take(the_dataset_caps(dataset_bytes, dataset_tokens))
    pick = path.take(the_smallest_cap_wins(proposal, hardware, data))
    pick = path.take(long_context_takes_the_1024_token_sibling(ask, pick))
    pick = path.take(your_choice_replaces_the_pick(ask, pick))
    pick, fit = path.take(step_down_until_it_fits(ask, pick))
    sized = path.take(the_recommended_combination(ask, pick, fit))
    times: Timed | None = None
    if throughput is not None:
        sized, times = path.take(the_run_fits_the_time_budget(ask, sized, throughput, hours))
    sized = path.take(one_pass_needs_no_dropout(ask, sized))
    fit = path.take(the_estimate_fits_the_memory(ask, sized))
    path.take(a_long_context_it_does_not_need(ask, sized.preset))
    path.take(several_gpus_share_the_batch(ask, fit))
    path.take(the_data_suits_the_model(sized.preset, data, fit.estimate.params))
    phases = path.take(the_use_case_trains_in_phases(use_case, sized, presets_dir))
    others = alternatives(ask, sized.preset, proposal, data.recommended if data is not None else None)
    budget = (hours * 3600 if hours is not None else USE_CASE_TIME[use_case][0]) if throughput is not None else None
    return Recommendation(
        use_case=use_case, vram_gb=ask.vram_gb, gpu_count=gpu_count, device_type=ask.device_type, dtype=ask.dtype,
        knobs=Knobs(preset=sized.preset, block_size=sized.block_size, batch_size=fit.batch_size,
                    grad_accum=fit.grad_accum, learning_rate=sized.learning_rate, max_iters=sized.max_iters,
                    dropout=sized.dropout),
        params=fit.estimate.params, estimate_bytes=fit.estimate.total, memory_bytes=memory_bytes, fits=fit.fits,
        reasons=path.reasons, warnings=path.warnings,
        alternatives=others, phases=phases, estimate=fit.estimate, run_time=times.run if times else None,
        probe_time=times.probe if times else None,
        quality=setting_quality(ask, sized.preset, block_size=sized.block_size, iters=sized.max_iters,
                                sequences=fit.batch_size * fit.grad_accum * gpu_count,
                                learning_rate=sized.learning_rate),
        alternative_quality={p: alternative_quality(ask, p, throughput, budget) for p, _ in others},
    )


def _fit_guide_batch(ask: Ask, name: str) -> Fit:
    """The preset at its own context and the guide's batch for this card, fitted into memory."""
    preset = ask.presets[name]
    return fit_batch(preset, preset.model.block_size, combination(name, ask.vram_gb).batch_size, ask.device_type,
                     ask.dtype, ask.memory_bytes)


def _and(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", the ".join(items[:-1]) + " and the " + items[-1]


def _check_inputs(use_case: str, vram_gb: float, dataset_bytes: int | None, gpu_count: int,
                  ram_gb: float | None) -> None:
    if use_case not in USE_CASES:
        raise UsageError(f"unknown use case {quote(use_case)} (valid: {', '.join(USE_CASES)})")
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


# The module's public face: the tables and types callers read with the recommendation.
__all__ = ["USE_CASES", "Recommendation", "Phase", "recommend", "hardware_cap", "dataset_row", "ORDER", "USE_CASE_TIME",
           "check_hours", "HEADROOM"]
