"""How good a run's model will be: its final validation loss (nats per token) and bits per byte, with an 80% band,
predicted before anything runs and refitted from a probe's or the run's own curve. Pure: no torch, no files.

The form (docs/planning.md, "Quality, predicted"): a loss curve in the learning rate's area, after the
learning-rate annealing scaling law (Tissue et al. 2024, L(s) = L0 + A*S1^-alpha - C*S2), with the
asymptote and the learning speed depending on the model's size and the data's measured difficulty:

    L(s) = F + (U - F) * (1 + S1(s)/tau)^-alpha * exp(-C*S2(s)) + (ln V - U) * exp(-S1(s)/tau_u)
    F    = a * bigram - g * (unigram - bigram) + b * (N / 1e6)^-0.34 + K/sqrt(context)
    tau  = tau0 * (N / 1e6)^-k

S1 is the forward area (the learning rate over 1e-3, times the step's tokens in millions, summed over the
steps), each token discounted as it repeats (Muennighoff et al. 2023's data-constrained decay, R* = 15.4);
S2 the annealing area (the learning rate's drops, carried with momentum 0.999, times the step's tokens); both
in one unit (a step of T tokens counted as T^p). The annealing gain takes a share of what is left above the
floor, where the paper subtracts C*S2: subtracted, it grows with the tokens without bound and predicts losses
below zero for runs hundreds of times longer than the fit's.
Two phases: the first steps learn the tokens' frequencies (from ln V down to U, the data's held-out unigram
cross-entropy, quickly: tau_u), then the slow power law down towards F. `bigram` is the data's held-out
bigram cross-entropy (gptwiz.data.difficulty); what one token of context gains over none (unigram - bigram)
says how much further a model with a whole context goes below the bigram. N: the parameters outside the
embeddings. a, g, b, K, tau0, k, alpha, tau_u and C are fitted on real runs of the trainer (benchmarks/loss_curves.py);
the size exponent 0.34 and R* are published fits carried for what cannot be run here.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Any

from gptwiz.common.schedule import effective_warmup, lr_at
from gptwiz.data.facts import DataFacts
from gptwiz.data.sizes import bits_per_byte
from gptwiz.model.config import ModelConfig, count_params
from gptwiz.planning.presets import Preset

LR_UNIT = 1e-3
BATCH_UNIT = 1024        # tokens a step at which a step's forward area is its tokens, whatever batch_exponent
TOKEN_UNIT = 1e6
SIZE_EXPONENT = 0.34     # Hoffmann et al. 2022 (Chinchilla), approach 3: L(N, D) = E + A/N^0.34 + B/D^0.28
REPEAT_DECAY = 15.4      # Muennighoff et al. 2023: R*_D, how many repetitions of the data keep half their value
ANNEAL_MOMENTUM = 0.999  # Tissue et al. 2024's lambda for the annealing area
BAND_Z = 1.2816          # an 80% band: the normal distribution's 10% and 90% points
MAX_STEPS_SUMMED = 4000  # longer schedules are summed on a stride (the areas change by well under 0.1%)
# The presets the fit saw: anything bigger is predicted through the published size exponent, in a wider band.
FITTED_PARAMS = (1_000_000, 30_000_000)
EXTRAPOLATED_BAND = 2.0


@dataclass(frozen=True)
class RunShape:
    """A run as the quality model sees it."""
    params: int              # parameters outside the embeddings
    vocab_size: int
    block_size: int
    tokens_per_iter: int     # batch x grad_accum x block (x GPUs)
    max_iters: int
    learning_rate: float
    min_lr: float
    warmup_iters: int        # as the trainer runs it (gptwiz.common.schedule.effective_warmup)


def run_shape(model: ModelConfig, *, tokens_per_iter: int, max_iters: int, learning_rate: float, min_lr: float,
              preset_warmup: int) -> RunShape:
    embeddings = model.vocab_size * model.n_embd + model.block_size * model.n_embd
    return RunShape(params=count_params(model) - embeddings, vocab_size=model.vocab_size,
                    block_size=model.block_size, tokens_per_iter=tokens_per_iter, max_iters=max_iters,
                    learning_rate=learning_rate, min_lr=min_lr,
                    warmup_iters=effective_warmup(preset_warmup, max_iters))


def preset_shape(preset: Preset, *, block_size: int, tokens_per_iter: int, max_iters: int,
                 learning_rate: float | None = None) -> RunShape:
    """A preset run at these settings, its minimum learning rate following a given peak as the trainer's does."""
    lr = learning_rate if learning_rate is not None else preset.train.learning_rate
    min_lr = preset.train.min_lr if preset.train.min_lr <= lr else lr / 10
    return run_shape(replace(preset.model, block_size=block_size), tokens_per_iter=tokens_per_iter,
                     max_iters=max_iters, learning_rate=lr, min_lr=min_lr, preset_warmup=preset.train.warmup_iters)


@dataclass(frozen=True)
class QualityModel:
    a: float
    b: float
    context_gain: float      # g: how far below the bigram a model goes, per nat the first token of context gains
    context: float
    tau0: float
    tau_exponent: float
    alpha: float
    anneal: float
    unigram_tau: float       # the frequencies' phase, in the forward area's units
    batch_exponent: float    # p: a step of T tokens counts as T^p, not T (small batches learn more a token)
    probe_weight: float      # how much of a probe's miss, end of probe, carries to the run's end
    sigma_before: float      # the final loss's error, one standard deviation, before a probe / after one
    sigma_after: float
    fitted_on: str
    local_shift: float = 0.0  # this folder's runs' correction (gptwiz.runs.calibration), before a probe


# Fitted by `python benchmarks/loss_curves.py fit` on benchmarks/data/loss_curves.json (see docs/planning.md), with
# the errors it leaves on those runs (FIT_ERRORS, in nats: tests/test_quality.py checks that they reproduce).
QUALITY_MODEL = QualityModel(a=1.073, b=0.08034, context_gain=1.686, context=19.39, tau0=0.3707,
                             tau_exponent=0.0008441, alpha=2.897, anneal=1.016, unigram_tau=0.005587,
                             batch_exponent=7.359e-07, probe_weight=0.001493, sigma_before=0.1982, sigma_after=0.1982,
                             fitted_on="16 runs of tiny and small on tinyshakespeare and the demo corpus (a grid of 8 "
                                       "and the 8 held out by the benchmark's seed 7), 2026-12-07")


FIT_ERRORS = {"runs": 16, "median_before": 0.0771, "median_after": 0.0778}


@dataclass(frozen=True)
class Quality:
    """A predicted final validation loss with its 80% band, and the same in bits per byte where the data's
    bytes a token are known."""
    val_loss: float
    low: float
    high: float
    bits_per_byte: float | None
    bpb_low: float | None
    bpb_high: float | None
    basis: str               # "fit", "probe" or "run": what the prediction was last refitted on
    extrapolated: bool       # the model is outside the sizes the fit saw
    assumed_data: bool       # no data measured: typical English prose assumed

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def areas(shape: RunShape, upto: int, model: QualityModel = QUALITY_MODEL,
          train_tokens: int | None = None) -> tuple[float, float]:
    """(S1, S2) after `upto` iterations of the run's schedule."""
    steps = max(0, min(upto, shape.max_iters))
    stride = max(1, math.ceil(steps / MAX_STEPS_SUMMED))
    tokens = shape.tokens_per_iter * stride / TOKEN_UNIT
    s1 = s2 = momentum = 0.0
    previous = None
    for it in range(0, steps, stride):
        lr = lr_at(it, learning_rate=shape.learning_rate, min_lr=shape.min_lr, warmup_iters=shape.warmup_iters,
                   decay_iters=shape.max_iters) / LR_UNIT
        seen = it * shape.tokens_per_iter
        repeats = max(0.0, seen / train_tokens - 1) if train_tokens else 0.0
        s1 += lr * tokens * math.exp(-repeats / REPEAT_DECAY)
        if previous is not None:
            momentum = ANNEAL_MOMENTUM ** stride * momentum + max(0.0, previous - lr)
        s2 += momentum * tokens
        previous = lr
    return s1, s2


def asymptote(shape: RunShape, data: DataFacts, model: QualityModel = QUALITY_MODEL) -> float:
    """E + K/sqrt(context): the loss this model approaches with unlimited steps at this context."""
    size = max(shape.params, 1) / 1e6
    gain = model.context_gain * max(0.0, data.unigram - data.bigram)
    return (model.a * data.bigram - gain + model.b * size ** -SIZE_EXPONENT
            + model.context / math.sqrt(shape.block_size))


def loss_at(shape: RunShape, data: DataFacts, upto: int, model: QualityModel = QUALITY_MODEL) -> float:
    """The predicted validation loss after `upto` iterations."""
    s1, s2 = areas(shape, upto, model, data.train_tokens)
    scale = (shape.tokens_per_iter / BATCH_UNIT) ** (model.batch_exponent - 1)
    s1, s2 = s1 * scale, s2 * scale
    floor = asymptote(shape, data, model)
    tau = model.tau0 * (max(shape.params, 1) / 1e6) ** -model.tau_exponent
    unigram = max(data.unigram, floor)
    frequencies = max(0.0, math.log(shape.vocab_size) - unigram) * math.exp(-s1 / model.unigram_tau)
    learning = (unigram - floor) * (1 + s1 / tau) ** -model.alpha * math.exp(-model.anneal * s2)
    return floor + learning + frequencies


def predict_quality(shape: RunShape, data: DataFacts, model: QualityModel = QUALITY_MODEL) -> Quality:
    """The run's final validation loss, before anything runs."""
    extrapolated = not FITTED_PARAMS[0] <= shape.params <= FITTED_PARAMS[1]
    sigma = model.sigma_before * (EXTRAPOLATED_BAND if extrapolated else 1.0)
    return _quality(loss_at(shape, data, shape.max_iters, model) + model.local_shift, sigma, data, "fit",
                    extrapolated)


def refit_from_probe(shape: RunShape, data: DataFacts, probe: RunShape, probe_losses: list[float],
                     model: QualityModel = QUALITY_MODEL) -> Quality:
    """The prediction after a probe: the probe's miss at its end (its last third's mean training loss against
    the model's curve for the probe's own schedule) carries to the run's end by the fitted weight, and the band
    narrows to the error left after that on the fit's runs. The local correction is not added: the probe
    measures this run's miss itself."""
    before = predict_quality(shape, data, replace(model, local_shift=0.0))
    tail = [x for x in probe_losses[len(probe_losses) * 2 // 3:] if math.isfinite(x)]
    if len(tail) < 3:
        return before
    at = len(probe_losses) * 5 // 6  # the tail's middle iteration
    miss = sum(tail) / len(tail) - loss_at(probe, data, at, model)
    sigma = model.sigma_after * (EXTRAPOLATED_BAND if before.extrapolated else 1.0)
    return _quality(before.val_loss + model.probe_weight * miss, sigma, data, "probe", before.extrapolated)


def refit_from_run(prior: Quality, shape: RunShape, data: DataFacts, evals: list[tuple[int, float]],
                   model: QualityModel = QUALITY_MODEL) -> Quality:
    """While a run trains, the prediction refitted on its own validation losses so far.

    The run's recent miss is the mean of its last three evaluations' misses (each evaluation's loss
    minus the model's curve at its iteration), each weighted by its iteration so that the latest counts most;
    the evaluation at iteration 0 (random weights) tells nothing of the curve and is left out. With `done` the
    share of the run behind the latest evaluation, the final loss is the model's curve at the end plus
    `done` x the run's miss + (1 - done) x the prior's own offset from that curve (a probe's miss, the local
    correction): the prior early on, the run's own curve by its end. The band's half-width shrinks with
    what is left, to a fifth of the prior's at the end (the evaluations' own noise)."""
    recent = 3  # the last evaluations', not one noisy estimate (a few batches each)
    late = [(it, loss) for it, loss in evals if it > 0 and math.isfinite(loss)][-recent:]
    if not late:
        return prior
    weight = sum(it for it, _ in late)
    miss = sum(it * (loss - loss_at(shape, data, it, model)) for it, loss in late) / weight
    done = min(1.0, late[-1][0] / max(1, shape.max_iters))
    end = loss_at(shape, data, shape.max_iters, model)
    centre = end + done * miss + (1 - done) * (prior.val_loss - end)
    half = (prior.high - prior.low) / 2 * (1 - 0.8 * done)
    return _quality(centre, half / BAND_Z, data, "run", prior.extrapolated)


def loss_bits_per_byte(loss: float, bytes_per_token: float | None) -> float | None:
    """A loss in nats per token as bits per byte of text with `bytes_per_token` UTF-8 bytes a token."""
    if not bytes_per_token:
        return None
    return bits_per_byte(loss, 1_000_000, round(1_000_000 * bytes_per_token))


def _quality(loss: float, sigma: float, data: DataFacts, basis: str, extrapolated: bool) -> Quality:
    low, high = loss - BAND_Z * sigma, loss + BAND_Z * sigma

    def bpb(x: float) -> float | None:
        return loss_bits_per_byte(x, data.bytes_per_token)

    return Quality(val_loss=loss, low=low, high=high, bits_per_byte=bpb(loss), bpb_low=bpb(low), bpb_high=bpb(high),
                   basis=basis, extrapolated=extrapolated, assumed_data=not data.measured)


__all__ = ["FIT_ERRORS", "RunShape", "run_shape", "preset_shape", "QualityModel", "QUALITY_MODEL", "Quality", "areas",
           "asymptote", "loss_at", "loss_bits_per_byte", "predict_quality", "refit_from_probe", "refit_from_run"]
