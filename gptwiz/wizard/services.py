"""The wizard's calls into the modules that decide and measure (recommend, memory, hardware, prepare).

Thin by design: each function calls the module that owns the logic and turns its answer into the
plain values the screens draw. The planning modules are pure Python and light; torch is imported only by the
function that measures with it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from gptwiz.common import fmt
from gptwiz.common.errors import UsageError
from gptwiz.data.facts import DataFacts, assumed_data, measured_data
from gptwiz.planning.gpus import CARDS, card_throughput, find_card
from gptwiz.planning.guide_tables import USE_CASES
from gptwiz.planning.hardware import HardwareReport
from gptwiz.planning.knobs import Knobs
from gptwiz.planning.policy import knobs_memory, run_dropout, training_dtype
from gptwiz.planning.presets import load_preset
from gptwiz.planning.quality import QUALITY_MODEL, Quality, QualityModel, predict_quality, preset_shape
from gptwiz.planning.quality_choice import short_quality
from gptwiz.planning.recommend import recommend
from gptwiz.planning.timing import knobs_plan, predict_probe_time, predict_run_time
from gptwiz.planning.tuning import TUNING_EPOCHS
from gptwiz.runs.calibration import calibration
from gptwiz.wizard.state import WizardState, parse_vram


def use_cases() -> list[tuple[str, str, str]]:
    """(key, human name, one-line explanation) in the guide's order."""
    return [(key, value[0], value[1]) for key, value in USE_CASES.items()]


@dataclass(frozen=True)
class Alternative:
    preset: str
    why: str


@dataclass(frozen=True)
class RecView:
    """A Recommendation as the screen shows it."""
    knobs: Knobs
    estimate_bytes: int | None
    fits: bool | None
    reasons: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    alternatives: list[Alternative] = field(default_factory=list)
    dtype: str = "bfloat16"
    device_type: str = "cuda"
    phases: list[str] = field(default_factory=list)   # domain: the base run, then the adaptation, one line each
    eta_s: float | None = None                        # the run's predicted time; None: no throughput measured
    probe_eta_s: float | None = None


def view(rec: Any) -> RecView:
    """A gptwiz.planning.recommendation.Recommendation as the screen shows it."""
    return RecView(
        knobs=rec.knobs, estimate_bytes=rec.estimate_bytes, fits=rec.fits,
        reasons=list(rec.reasons), warnings=list(rec.warnings),
        alternatives=[Alternative(preset, _with_quality(why, rec.alternative_quality.get(preset)))
                      for preset, why in rec.alternatives],
        dtype=rec.dtype, device_type=rec.device_type,
        phases=[f"{p.name}: {p.preset}, learning rate {p.learning_rate:g}, "
                + (f"{p.max_iters:,} iterations" if p.max_iters else f"{TUNING_EPOCHS} passes over its examples")
                + (f" ({p.note})" if p.note else "") for p in rec.phases],
        eta_s=rec.eta_s, probe_eta_s=rec.probe_eta_s,
    )


def _with_quality(why: str, q: Quality | None) -> str:
    """An alternative's reason with what it would give in the same budget."""
    return f"{why} (predicted {short_quality(q)})" if q is not None else why


THIS_MACHINE = "this-machine"   # the hardware step's choice of no named card


def gpu_choices() -> list[tuple[str, str]]:
    """The named cards the hardware step offers, (key, label), after planning for this machine (THIS_MACHINE)."""
    return [(THIS_MACHINE, "this machine (as detected)")] + [
        (c.key, f"{c.name}: {c.memory_gb:g} GB, {c.dtype.replace('bfloat16', 'bf16')} "
                f"{c.peak(c.dtype) / 1e12:,.0f} TFLOP/s") for c in CARDS]


def choose_gpu(state: WizardState, key: str | None) -> None:
    """Plan for the named card `key` (its memory, dtype and time prior), or for this machine (THIS_MACHINE, '' or
    None); a VRAM figure typed before is dropped, the card's memory replacing it."""
    state.planned_gpu = find_card(key).key if key and key != THIS_MACHINE else None
    state.vram_override_gb = None


def parse_hardware_answer(text: str) -> tuple[float | None, str | None]:
    """What the hardware step's answer asks for: (a VRAM figure, None), (None, a card's key), or (None, None) for
    this machine as detected; ValueError for anything else."""
    if not text.strip() or text.strip() == THIS_MACHINE:
        return None, None
    try:
        return parse_vram(text), None
    except ValueError:
        pass
    try:
        return None, find_card(text).key
    except UsageError:
        raise ValueError(text) from None


def apply_hardware_answer(state: WizardState, text: str) -> None:
    """The hardware step's answer into the state: a card (choose_gpu), a VRAM figure, or this machine."""
    vram, card = parse_hardware_answer(text)
    choose_gpu(state, card)
    state.vram_override_gb = vram


def device_and_dtype(state: WizardState) -> tuple[str, str]:
    """The device kind the wizard plans for and the dtype `gptwiz train --dtype auto` will pick there."""
    device_type = "cuda" if state.on_gpu else "cpu"
    card = state.card
    if card is not None and device_type == "cuda":
        return device_type, card.dtype
    if isinstance(state.hardware, HardwareReport):
        return device_type, training_dtype(state.hardware, device_type)
    return device_type, "bfloat16"


def measure_throughput(device_type: str, dtype: str) -> Any:
    """This machine's matmul speed (gptwiz.training.throughput: seconds the first time, then cached), or None where
    the device is not here (planning for a card this machine lacks). Imports torch: call it from a worker."""
    import torch  # lazy: torch only once a worker measures, not when the app starts

    from gptwiz.training.throughput import machine_throughput  # lazy: imports torch

    if device_type == "cuda" and not torch.cuda.is_available():
        return None
    return machine_throughput(device_type, dtype)


def throughput_for(state: WizardState, measure: Callable[[str, str], Any] | None) -> Any:
    """The speed the wizard's times come from: a named card's prior (gptwiz.planning.gpus), else what `measure`
    (device type, dtype) gives for this machine (None without it)."""
    device_type, dtype = device_and_dtype(state)
    card = state.card
    if card is not None and device_type == "cuda":
        return card_throughput(card, dtype)
    return measure(device_type, dtype) if measure is not None else None


def recommend_for(state: WizardState, throughput: Any = None, preset: str | None = None,
                  facts: DataFacts | None = None) -> Any:
    """The recommendation for the wizard's answers; with `preset`, for that preset instead of the guide's pick
    (its settings, warnings and alternatives). `facts`: the data measured (data_facts_for)."""
    if state.use_case is None:
        raise UsageError("no use case chosen yet")
    d = state.dataset
    ram = state.device_memory_bytes() if not state.on_gpu else 0  # the one RAM figure, as the memory bar's
    device_type, dtype = device_and_dtype(state)
    if throughput is not None and throughput.device_type != device_type:
        throughput = None  # measured for the other device (the VRAM was changed since)
    return recommend(state.use_case, state.vram_gb, d.bytes if d is not None else None,
                     gpu_count=state.gpu_count if state.on_gpu else 1,
                     dataset_tokens=d.est_tokens if d is not None else None,
                     ram_gb=ram / 2**30 if ram else None, dtype=dtype,
                     throughput=throughput, preset=preset, facts=facts,
                     quality_model=local_quality_model(state.runs_dir))


def data_facts_for(state: WizardState) -> DataFacts:
    """The chosen data measured for the quality model (a sample tokenized, a second or two: call it from a
    worker); typical English prose of its size where it cannot be measured yet (the demo corpus before it is
    built) or at all."""
    d = state.dataset
    if d is None:
        return assumed_data(None)
    path = d.prepared_dir or (None if d.kind == "demo" else d.path)
    try:
        return measured_data(path) if path else assumed_data(d.est_tokens * 9 // 10)
    except (UsageError, OSError, ValueError):  # unreadable since chosen: the prediction assumes, and says so
        return assumed_data(d.est_tokens * 9 // 10)


def local_quality_model(runs_dir: Path | str) -> QualityModel:
    """The quality model with the local correction the finished runs in `runs_dir` give it
    (gptwiz.runs.calibration)."""
    try:
        shift = calibration(runs_dir).shift
    except OSError:  # an unreadable runs folder: no correction
        shift = 0.0
    return replace(QUALITY_MODEL, local_shift=shift)


def quality_for(knobs: Knobs, state: WizardState, facts: DataFacts | None, model: QualityModel) -> Quality | None:
    """The predicted final validation loss of a run at these knobs (gptwiz.planning.quality) by `model` (the
    runs folder's, local_quality_model: read once, off the UI's loop); None for a preset that cannot be read."""
    try:
        preset = load_preset(knobs.preset)
    except UsageError:
        return None
    gpus = state.gpu_count if state.on_gpu else 1
    if state.vocab_size is not None:
        preset = preset.with_overrides(vocab_size=state.vocab_size)
    shape = preset_shape(preset, block_size=knobs.block_size, max_iters=knobs.max_iters,
                         tokens_per_iter=knobs.batch_size * knobs.grad_accum * gpus * knobs.block_size,
                         learning_rate=knobs.learning_rate)
    return predict_quality(shape, facts or assumed_data(None), model)


def with_run_dropout(knobs: Knobs, state: WizardState, facts: DataFacts | None) -> Knobs:
    """Typed knobs with the dropout the trainer decides for their run (policy.run_dropout): none for a single
    pass over the data (`facts`: its training tokens), the preset's for a run that repeats it."""
    try:
        preset = load_preset(knobs.preset)
    except UsageError:
        return knobs
    gpus = state.gpu_count if state.on_gpu else 1
    run_tokens = knobs.max_iters * knobs.batch_size * knobs.grad_accum * knobs.block_size * gpus
    return replace(knobs, dropout=run_dropout(preset.model.dropout, run_tokens, facts.train_tokens if facts else None))


def knobs_for_preset(preset: str, current: Knobs | None = None) -> Knobs:
    """Switching to an alternative: that preset's own settings, keeping the run length chosen so far."""
    p = load_preset(preset)
    return Knobs(p.name, p.model.block_size, p.train.batch_size, p.train.grad_accum, p.train.learning_rate,
                 current.max_iters if current is not None else p.train.max_iters, p.model.dropout)


def estimate_bytes(knobs: Knobs, state: WizardState) -> int | None:
    """The run's peak memory for these knobs on the planned device (gptwiz.planning.policy.knobs_memory: the
    one figure recommend, `estimate` and plain mode show too)."""
    rec = state.recommendation
    # The same device and dtype the recommendation estimated with, so the bar starts where it did.
    device_type, dtype = (rec.device_type, rec.dtype) if isinstance(rec, RecView) else device_and_dtype(state)
    return int(knobs_memory(knobs, device_type, dtype, vocab_size=state.vocab_size).total)


@dataclass(frozen=True)
class Times:
    """The predicted wall times of a probe and of the run, for a set of knobs."""
    probe_s: float
    run_s: float
    basis: str
    prior: str = ""      # the named card the times are a prior for (its data-sheet peak x efficiency), not measured
    vocab: int | None = None  # the data's own tokenizer's vocabulary the times are for (None: GPT-2's)

    @property
    def label(self) -> str:
        """'' for a measured speed at GPT-2's vocabulary; else what the times stand on, for a line under them (the
        recommendation's reasons are priced at GPT-2's vocabulary whatever the data's)."""
        parts = [f"a prior for the {self.prior}: data-sheet peak x efficiency, not measured"] if self.prior else []
        if self.vocab:
            parts.append(f"at the data's {self.vocab:,}-entry vocabulary (the reasons: GPT-2's)")
        return "; ".join(parts)


def times_for(knobs: Knobs, state: WizardState, throughput: Any) -> Times | None:
    """gptwiz.planning.timing's prediction for these knobs; None without a throughput (not measured yet, or
    no such device here)."""
    if throughput is None:
        return None
    rec = state.recommendation
    device_type, dtype = (rec.device_type, rec.dtype) if isinstance(rec, RecView) else device_and_dtype(state)
    if throughput.device_type != device_type:
        return None
    plan = knobs_plan(knobs, device_type=device_type, dtype=dtype, gpu_count=state.gpu_count if state.on_gpu else 1,
                      vocab_size=state.vocab_size)
    run = predict_run_time(plan, throughput)
    return Times(probe_s=predict_probe_time(plan, throughput).seconds, run_s=run.seconds, basis=run.basis,
                 prior=throughput.prior, vocab=state.vocab_size)


def hardware_lines(report: Any) -> list[str]:
    """What gptwiz.planning.hardware detected, a line each."""
    lines = [f"GPU {g.index}: {g.name}, {fmt.gib(g.memory_total_bytes)}, {fmt.gib(g.memory_free_bytes)} free"
             for g in report.gpus]
    lines.append(f"CPU: {report.cpu_count} cores, {fmt.gib(report.ram_total_bytes)} RAM "
                 f"({fmt.gib(report.ram_available_bytes)} available)")
    lines.extend(f"note: {w}" for w in report.warnings)
    return lines
