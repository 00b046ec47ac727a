"""Fitting and scoring gptwiz's quality model (gptwiz/planning/quality.py) on recorded runs.

Used by benchmarks/loss_curves.py (`fit`) and benchmarks/loss_prediction.py (`--score`); tests/test_quality.py
checks that the constants in quality.py reproduce the errors documented for them.

The areas S1 and S2 of every evaluation depend only on the run's schedule and data, not on the constants being
fitted, so the fit is a least-squares problem over a closed form (torch's L-BFGS on the log of each constant).
"""

from __future__ import annotations

import functools
import math
import statistics
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from gptwiz.data.dataset import TokenDataset
from gptwiz.data.difficulty import dataset_difficulty
from gptwiz.data.facts import DataFacts
from gptwiz.model.config import ModelConfig
from gptwiz.planning.quality import (
    BAND_Z,
    BATCH_UNIT,
    QUALITY_MODEL,
    SIZE_EXPONENT,
    QualityModel,
    RunShape,
    areas,
    predict_quality,
    refit_from_probe,
    run_shape,
)

FIRST_FITTED_ITER = 1   # every evaluation but the first (random weights: ln V, whatever the model)
FINAL_WEIGHT = 4.0      # the final evaluation is the prediction: it counts as this many points


@dataclass(frozen=True)
class Run:
    key: str
    shape: RunShape
    data: DataFacts
    evals: list[tuple[int, float]]      # (iteration, validation loss)
    probe: RunShape
    probe_losses: list[float]

    @property
    def final(self) -> float:
        return self.evals[-1][1]


@functools.cache
def corpus_facts(dataset_dir: str) -> DataFacts:
    ds = TokenDataset(dataset_dir)
    d = dataset_difficulty(ds)
    return DataFacts(unigram=d.unigram, bigram=d.bigram, train_tokens=ds.tokens("train"),
                     bytes_per_token=d.bytes / d.tokens,
                     measured=True)


def dataset_of(rec: dict[str, Any]) -> str:
    if rec["corpus"] == "demo":
        from gptwiz.data.demo import demo_dataset_dir

        return str(demo_dataset_dir(_work() / "data"))
    from gptwiz.data.cache import cache_text_file

    return str(cache_text_file(_shakespeare(), _work() / "data"))


def _work() -> Path:
    import loss_curves

    return loss_curves.WORK


def _shakespeare() -> Path:
    import loss_curves

    return loss_curves.SHAKESPEARE


def to_run(rec: dict[str, Any]) -> Run:
    cfg = rec["config"]
    model = ModelConfig(**cfg["model"])
    t = cfg["train"]
    tokens = t["batch_size"] * t["grad_accum"] * model.block_size
    shape = run_shape(model, tokens_per_iter=tokens, max_iters=t["max_iters"], learning_rate=t["learning_rate"],
                      min_lr=t["min_lr"], preset_warmup=t["warmup_iters"])
    probe = run_shape(model, tokens_per_iter=tokens, max_iters=rec["probe"]["iters"],
                      learning_rate=rec["probe"]["learning_rate"], min_lr=t["min_lr"],
                      preset_warmup=t["warmup_iters"])
    facts = DataFacts(**rec["data"]) if "data" in rec else corpus_facts(dataset_of(rec))
    return Run(rec["key"], shape, facts, [(e["iter"], e["val"]) for e in rec["evals"]], probe,
               list(rec["probe"]["losses"]))


def with_facts(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The records with their data's measured facts stored in them, so that scoring needs no corpus at hand."""
    return [{**r, "data": to_run(r).data.to_json()} for r in records]


# --- the fit ---------------------------------------------------------------------------------------------

NAMES = ("a", "b", "context_gain", "context", "tau0", "tau_exponent", "alpha", "anneal", "unigram_tau",
         "batch_exponent")


def _points(runs: list[Run], model: QualityModel) -> list[tuple[float, ...]]:
    """(val loss, weight, S1, S2, size in millions, bigram, context, ln V, unigram) for each fitted evaluation."""
    out = []
    for r in runs:
        last = r.evals[-1][0]
        for it, val in r.evals:
            if it < FIRST_FITTED_ITER:
                continue
            s1, s2 = areas(r.shape, it, model, r.data.train_tokens)
            out.append((val, FINAL_WEIGHT if it == last else 1.0, s1, s2, r.shape.params / 1e6, r.data.bigram,
                        float(r.shape.block_size), math.log(r.shape.vocab_size), r.data.unigram,
                        r.shape.tokens_per_iter / BATCH_UNIT))
    return out


# Each constant within a range that keeps the curve a learning curve (the fit on a few runs can otherwise trade
# a steep exponent against a long time scale without limit): (low, high).
BOUNDS = {"a": (0.3, 2.0), "b": (0.0, 10.0), "context_gain": (0.0, 2.0), "context": (0.0, 20.0), "tau0": (1e-4, 10.0),
          "tau_exponent": (0.0, 1.5), "alpha": (0.05, 3.0), "anneal": (0.0, 50.0), "unigram_tau": (1e-4, 1.0),
          "batch_exponent": (0.0, 1.5)}


# Where the fit starts, as each constant's place within its range: the objective is flat along some constants
# (a steep exponent against a long time scale), so one start would make the fit depend on where the previous fit
# ended. Every fit starts from each of these and keeps the best: the constants depend on the runs alone.
STARTS = (0.5, 0.2, 0.8)


def fit(runs: list[Run], start: QualityModel = QUALITY_MODEL) -> QualityModel:
    """The constants that fit `runs` best (least squares over their evaluations, the final ones weighted), from
    each of STARTS; `start` gives the fields that are not fitted."""
    best = min((_fit_from(runs, start, place) for place in STARTS), key=lambda found: found[0])
    return best[1]


def _fit_from(runs: list[Run], start: QualityModel, place: float) -> tuple[float, QualityModel]:
    import torch

    pts = torch.tensor(_points(runs, start), dtype=torch.float64)
    val, w, s1, s2, size, bigram, ctx, lnv, unigram, batch = pts.T
    s1_tokens = s1
    lows = torch.tensor([BOUNDS[n][0] for n in NAMES], dtype=torch.float64)
    highs = torch.tensor([BOUNDS[n][1] for n in NAMES], dtype=torch.float64)

    z = torch.full((len(NAMES),), math.log(place / (1 - place)), dtype=torch.float64, requires_grad=True)

    def constants(z: torch.Tensor) -> torch.Tensor:
        return lows + (highs - lows) * torch.sigmoid(z)

    def predicted(z: torch.Tensor) -> torch.Tensor:
        a, b, g, k, tau0, tk, alpha, c, tau_u, p = constants(z)
        s1 = s1_tokens * batch ** (p - 1)
        anneal = s2 * batch ** (p - 1)
        floor = a * bigram - g * (unigram - bigram).clamp(min=0) + b * size ** -SIZE_EXPONENT + k / ctx.sqrt()
        tau = tau0 * size ** -tk
        uni = torch.maximum(unigram, floor)
        return (floor + (uni - floor) * (1 + s1 / tau) ** -alpha * torch.exp(-c * anneal)
                + (lnv - uni).clamp(min=0) * torch.exp(-s1 / tau_u))

    opt = torch.optim.LBFGS([z], max_iter=500, line_search_fn="strong_wolfe", tolerance_grad=1e-10)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = (w * (predicted(z) - val) ** 2).sum()
        loss.backward()
        return loss

    for _ in range(5):
        opt.step(closure)
    with torch.no_grad():
        objective = float((w * (predicted(z) - val) ** 2).sum())
    if not math.isfinite(objective):
        objective = math.inf
    fitted = dict(zip(NAMES, (float(v) for v in constants(z.detach()))))
    return objective, replace(start, **fitted)


def fit_probe_weight(runs: list[Run], model: QualityModel) -> float:
    """The least-squares weight of the probe's miss on the final loss's miss, kept within [0, 1.5]."""
    num = den = 0.0
    for r in runs:
        before = predict_quality(r.shape, r.data, model).val_loss
        probed = refit_from_probe(r.shape, r.data, r.probe, r.probe_losses, replace(model, probe_weight=1.0))
        miss = probed.val_loss - before
        num += miss * (r.final - before)
        den += miss * miss
    return min(1.5, max(0.0, num / den)) if den else 0.0


@dataclass(frozen=True)
class Errors:
    before: list[float]       # predicted minus reached, final val loss, each run
    after: list[float]
    inside_before: int
    inside_after: int

    def summary(self) -> str:
        med_b = statistics.median(abs(e) for e in self.before)
        med_a = statistics.median(abs(e) for e in self.after)
        n = len(self.before)
        return (f"median |error| before a probe {med_b:.3f} nats, after {med_a:.3f}; inside the 80% band "
                f"{self.inside_before}/{n} before, {self.inside_after}/{n} after")


def errors(runs: list[Run], model: QualityModel) -> Errors:
    before, after, ib, ia = [], [], 0, 0
    for r in runs:
        b = predict_quality(r.shape, r.data, model)
        a = refit_from_probe(r.shape, r.data, r.probe, r.probe_losses, model)
        before.append(b.val_loss - r.final)
        after.append(a.val_loss - r.final)
        ib += b.low <= r.final <= b.high
        ia += a.low <= r.final <= a.high
    return Errors(before, after, ib, ia)


def sigma_of(errs: list[float]) -> float:
    """The band's sigma (its half-width over BAND_Z) from the errors left out of each run's fit: their 80th
    percentile, so that 80% of them fall inside whatever their distribution (the errors of a few runs have heavy
    tails: a normal band from their rms covered 12 of 16)."""
    if not errs:
        return 0.0
    if len(errs) == 1:
        return abs(errs[0]) / BAND_Z
    return statistics.quantiles([abs(e) for e in errs], n=10, method="inclusive")[7] / BAND_Z


def fit_all(runs: list[Run], start: QualityModel = QUALITY_MODEL) -> tuple[QualityModel, Errors]:
    """The constants, the probe's weight, and the bands from the errors left out of each run's own fit (each
    run predicted by a fit on the others)."""
    model = fit(runs, start)
    model = replace(model, probe_weight=fit_probe_weight(runs, model))
    loo_before, loo_after = [], []
    for i, r in enumerate(runs):
        rest = runs[:i] + runs[i + 1:]
        m = fit(rest, model)
        m = replace(m, probe_weight=fit_probe_weight(rest, m))
        e = errors([r], m)
        loo_before += e.before
        loo_after += e.after
    # A probe's weight near 0 makes the two predictions one, and their left-out errors differ only by refitting
    # the weight in each fold: the band after a probe is never the wider.
    sigma_before = sigma_of(loo_before)
    model = replace(model, sigma_before=sigma_before, sigma_after=min(sigma_before, sigma_of(loo_after)))
    return model, Errors(loo_before, loo_after,
                         sum(abs(e) <= BAND_Z * model.sigma_before for e in loo_before),
                         sum(abs(e) <= BAND_Z * model.sigma_after for e in loo_after))


def fit_and_report(records: list[dict[str, Any]]) -> None:
    runs = [to_run(r) for r in records]
    model, loo = fit_all(runs)
    print(f"{len(runs)} runs; {records[0]['machine'] if records else ''}")
    print("QualityModel(" + ", ".join(f"{n}={getattr(model, n):.4g}" for n in
                                       (*NAMES, "probe_weight", "sigma_before", "sigma_after")) + ")")
    inside = errors(runs, model)
    print(f"in the fit:           {inside.summary()}")
    print(f"FIT_ERRORS = {{\"runs\": {len(runs)}, \"median_before\": "
          f"{statistics.median(abs(e) for e in inside.before):.4f}, \"median_after\": "
          f"{statistics.median(abs(e) for e in inside.after):.4f}}}")
    print(f"each run left out:    {loo.summary()}")
    _table(runs, model)


def _table(runs: list[Run], model: QualityModel) -> None:
    print(f"{'run':40} {'reached':>8} {'before':>8} {'band':>15} {'after':>8} {'band':>15} {'bpb':>6} {'pred':>6}")
    for r in runs:
        b = predict_quality(r.shape, r.data, model)
        a = refit_from_probe(r.shape, r.data, r.probe, r.probe_losses, model)
        bpb = r.final / math.log(2) / (r.data.bytes_per_token or 1)
        print(f"{r.key:40} {r.final:8.3f} {b.val_loss:8.3f} {b.low:7.2f}-{b.high:<7.2f} {a.val_loss:8.3f} "
              f"{a.low:7.2f}-{a.high:<7.2f} {bpb:6.3f} {a.bits_per_byte or 0:6.3f}")


def score_report(records: list[dict[str, Any]], model: QualityModel = QUALITY_MODEL) -> Errors:
    runs = [to_run(r) for r in records]
    print(f"{len(runs)} runs not in the fit; {records[0]['machine'] if records else ''}")
    _table(runs, model)
    e = errors(runs, model)
    print(e.summary())
    print("goals: median |error| <= 0.25 before, <= 0.10 after; >= 80% inside the band")
    return e
