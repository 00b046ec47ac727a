"""The run's predicted quality, before the probe and refitted on the probe's own loss curve
(gptwiz.planning.quality), on the data the probe trained on; and the runs that keep a time budget
(gptwiz.planning.time_budget), priced at the probe's rate, with their quality on the same data."""

from __future__ import annotations

from gptwiz.data.dataset import TokenDataset, open_dataset
from gptwiz.data.difficulty import dataset_difficulty
from gptwiz.data.facts import DataFacts, data_facts
from gptwiz.planning.presets import load_preset
from gptwiz.planning.quality import Quality, RunShape, predict_quality, preset_shape, refit_from_probe
from gptwiz.planning.time_budget import BudgetOption, ProbeCurve, budget_options
from gptwiz.planning.timing import RunPlan
from gptwiz.training.probe.options import Attempt
from gptwiz.training.probe.plan import ProbePlan, smaller_preset


def probe_data(plan: ProbePlan) -> DataFacts | None:
    """The probed data's facts; None for an instruction dataset, whose answers the quality model does not cover."""
    dataset = open_dataset(plan.dataset_dir)
    if not isinstance(dataset, TokenDataset):
        return None
    return data_facts(dataset_difficulty(dataset), dataset.tokens("train"))


def _probe_shape(plan: ProbePlan, attempt: Attempt, iters: int) -> RunShape:
    p = plan.preset
    tokens = attempt.batch_size * attempt.grad_accum * p.model.block_size
    return preset_shape(p, block_size=p.model.block_size, tokens_per_iter=tokens, max_iters=iters)


def probe_quality(plan: ProbePlan, attempt: Attempt, losses: list[float], probe_iters: int,
                  data: DataFacts | None) -> tuple[Quality | None, Quality | None]:
    """(before the probe, after it) for the full run at the probe's settled batch; (None, None) without `data`."""
    if data is None:
        return None, None
    run = _probe_shape(plan, attempt, plan.full_iters)
    probe = _probe_shape(plan, attempt, probe_iters)
    before = predict_quality(run, data)
    return before, (refit_from_probe(run, data, probe, losses) if losses else None)


def probe_budget_options(plan: ProbePlan, attempt: Attempt, losses: list[float], probe_iters: int,
                         data: DataFacts | None, run: RunPlan, tokens_per_sec: float,
                         budget_s: float, import_s: float) -> tuple[BudgetOption, ...]:
    """The runs that keep `budget_s` when the full run `run` at the probe's `tokens_per_sec` does not."""
    smaller = smaller_preset(plan.preset.name)
    curve = ProbeCurve(data, _probe_shape(plan, attempt, probe_iters), losses) if data is not None else None
    return budget_options(budget_s, run, tokens_per_sec, plan.preset, load_preset(smaller) if smaller else None,
                          curve, import_s)
