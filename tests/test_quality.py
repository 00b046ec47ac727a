"""The quality model (gptwiz.planning.quality): its areas and curve, its band, its refits, the fit it carries, the
recommendation choosing by it within a budget, and the calibration record of finished runs."""

from __future__ import annotations

import json
import math
import statistics
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import test_train
from conftest import SHAKESPEARE as SHAKESPEARE_TEXT
from conftest import run_cli

from gptwiz.data.facts import ASSUMED_DATA, DataFacts
from gptwiz.planning.presets import load_preset
from gptwiz.planning.quality import (
    FIT_ERRORS,
    QUALITY_MODEL,
    RunShape,
    areas,
    asymptote,
    loss_at,
    predict_quality,
    preset_shape,
    refit_from_probe,
    refit_from_run,
)
from gptwiz.planning.recommend import recommend
from gptwiz.runs.calibration import MAX_SHIFT, calibration

ROOT = Path(__file__).resolve().parent.parent
SHAKESPEARE = DataFacts(unigram=6.47, bigram=5.04, train_tokens=304_224, bytes_per_token=3.30, measured=True)


def tiny(iters: int = 1000, tokens: int = 512, block: int = 128) -> RunShape:
    return preset_shape(load_preset("tiny"), block_size=block, tokens_per_iter=tokens, max_iters=iters)


def test_a_constant_rate_adds_up_to_the_forward_area_and_no_annealing() -> None:
    shape = RunShape(params=1_000_000, vocab_size=50304, block_size=64, tokens_per_iter=1000, max_iters=100,
                     learning_rate=1e-3, min_lr=1e-3, warmup_iters=0)
    s1, s2 = areas(shape, 100)
    assert s1 == pytest.approx(100 * 1000 / 1e6) and s2 == 0


def test_repeating_the_data_is_worth_less_than_new_data() -> None:
    shape = tiny(iters=3000)
    fresh, _ = areas(shape, 3000, train_tokens=None)
    repeated, _ = areas(shape, 3000, train_tokens=100_000)  # 15 epochs
    assert repeated < 0.8 * fresh


def test_longer_runs_bigger_models_and_easier_data_predict_lower_losses() -> None:
    short, long = predict_quality(tiny(300), SHAKESPEARE), predict_quality(tiny(3000), SHAKESPEARE)
    assert long.val_loss < short.val_loss < math.log(50304)
    small = preset_shape(load_preset("small"), block_size=128, tokens_per_iter=512, max_iters=3000)
    # The fitted runs (a few hundred steps each) show no size effect yet: a bigger model is never predicted worse.
    assert predict_quality(small, SHAKESPEARE).val_loss <= long.val_loss + 0.01
    easier = replace(SHAKESPEARE, bigram=4.0)
    assert predict_quality(tiny(3000), easier).val_loss < long.val_loss


def test_the_band_holds_the_centre_and_bits_per_byte_follow_the_loss() -> None:
    q = predict_quality(tiny(), SHAKESPEARE)
    assert q.low < q.val_loss < q.high and q.basis == "fit" and not q.assumed_data
    assert q.bits_per_byte == pytest.approx(q.val_loss / math.log(2) / SHAKESPEARE.bytes_per_token)
    assert q.bpb_low is not None and q.bpb_high is not None and q.bpb_low < q.bits_per_byte < q.bpb_high
    assert predict_quality(tiny(), ASSUMED_DATA).assumed_data


def test_long_runs_and_big_batches_approach_the_floor_and_never_pass_it() -> None:
    """Far outside the fit's runs (hundreds of times their tokens) the curve still ends above its asymptote and
    still falls with more steps: an annealing gain that grew with the tokens once predicted negative losses."""
    for name, block, batch in (("tiny", 256, 64), ("small", 256, 32), ("150M_1024", 1024, 16)):
        preset = load_preset(name)
        finals = []
        for iters in (1_000, 10_000, 100_000):
            shape = preset_shape(preset, block_size=block, tokens_per_iter=batch * block, max_iters=iters)
            q = predict_quality(shape, ASSUMED_DATA)
            assert q.val_loss >= asymptote(shape, ASSUMED_DATA) > 0, (name, iters)
            finals.append(q.val_loss)
        assert finals[0] > finals[1] >= finals[2], name



def test_no_preset_is_predicted_below_what_gpt2_xl_reaches_on_prose() -> None:
    """A refit on a few short runs can put the floor anywhere (one on 24 runs put English prose at 0.45 bits a
    byte after 20,000 steps of tiny): the carried constants keep every preset, however long it trains, above
    GPT-2 XL's (1.5B) 2.54 nats on OpenWebText (nanoGPT's README) on typical prose."""
    for name in ("tiny", "small", "150M_1024", "350M_1024"):
        preset = load_preset(name)
        shape = preset_shape(preset, block_size=preset.model.block_size, max_iters=200_000,
                             tokens_per_iter=32 * preset.model.block_size)
        assert predict_quality(shape, ASSUMED_DATA).val_loss > 2.54, name


def test_a_model_beyond_the_fitted_sizes_is_extrapolated_in_a_wider_band() -> None:
    big = preset_shape(load_preset("350M_1024"), block_size=1024, tokens_per_iter=16 * 1024, max_iters=10_000)
    inside, outside = predict_quality(tiny(), SHAKESPEARE), predict_quality(big, SHAKESPEARE)
    assert outside.extrapolated and not inside.extrapolated
    assert outside.high - outside.low > 1.5 * (inside.high - inside.low)


def test_a_probe_that_lands_above_the_curve_raises_the_prediction_and_never_widens_the_band() -> None:
    run, probe = tiny(1000), tiny(100)
    curve = [loss_at(probe, SHAKESPEARE, i) for i in range(1, 101)]
    level = refit_from_probe(run, SHAKESPEARE, probe, curve)
    higher = refit_from_probe(run, SHAKESPEARE, probe, [x + 0.5 for x in curve])
    before = predict_quality(run, SHAKESPEARE)
    assert level.val_loss == pytest.approx(before.val_loss, abs=0.05)
    assert higher.val_loss > level.val_loss or QUALITY_MODEL.probe_weight == 0
    assert higher.basis == "probe" and higher.high - higher.low <= before.high - before.low


def test_the_run_s_own_curve_moves_the_prediction_more_as_it_goes() -> None:
    run = tiny(1000)
    prior = predict_quality(run, SHAKESPEARE)
    early = refit_from_run(prior, run, SHAKESPEARE, [(100, loss_at(run, SHAKESPEARE, 100) + 0.4)])
    late = refit_from_run(prior, run, SHAKESPEARE, [(900, loss_at(run, SHAKESPEARE, 900) + 0.4)])
    assert prior.val_loss < early.val_loss < late.val_loss <= prior.val_loss + 0.41
    assert late.high - late.low < early.high - early.low
    assert refit_from_run(prior, run, SHAKESPEARE, []) == prior


def test_the_local_correction_shifts_predictions_before_a_probe_only() -> None:
    run, probe = tiny(1000), tiny(100)
    shifted = replace(QUALITY_MODEL, local_shift=0.2)
    assert predict_quality(run, SHAKESPEARE, shifted).val_loss == pytest.approx(
        predict_quality(run, SHAKESPEARE).val_loss + 0.2)
    curve = [loss_at(probe, SHAKESPEARE, i) for i in range(1, 101)]
    assert refit_from_probe(run, SHAKESPEARE, probe, curve, shifted).val_loss == pytest.approx(
        refit_from_probe(run, SHAKESPEARE, probe, curve).val_loss)


# --- the fit it carries ------------------------------------------------------------------------------------

def test_the_carried_constants_reproduce_their_documented_errors_on_the_recorded_runs() -> None:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from loss_fit import errors, to_run  # benchmarks/loss_fit.py: the same scoring the benchmark prints

    records = json.loads((ROOT / "benchmarks" / "data" / "loss_curves.json").read_text())
    runs = [to_run(r) for r in records]
    e = errors(runs, QUALITY_MODEL)
    documented = FIT_ERRORS
    assert len(runs) == documented["runs"]
    assert statistics.median(abs(x) for x in e.before) == pytest.approx(documented["median_before"], abs=0.002)
    assert statistics.median(abs(x) for x in e.after) == pytest.approx(documented["median_after"], abs=0.002)


# --- the recommendation chooses by it ----------------------------------------------------------------------

def fixed_throughput(scale: float = 1.0) -> Any:
    from gptwiz.planning.timing import Throughput

    widths = (192, 384, 768, 1024, 1280)
    return Throughput(device_type="cpu", dtype="float32", head=tuple((w, 280e9 * scale) for w in widths),
                      layer=tuple((w, 320e9 * scale) for w in widths), vocab_s=1.5e-9 / scale,
                      elementwise_s=2.2e-9 / scale, threads=2, source="test")


def test_a_bigger_budget_buys_a_better_predicted_model_and_the_reasons_say_what() -> None:
    hours = (0.25, 1.0, 4.0)  # all short of the guide's small as it is (days on this machine): fitted by quality
    recs = [recommend("testing", 0, 1_100_000, ram_gb=8, dtype="float32", throughput=fixed_throughput(), hours=h)
            for h in hours]
    losses = [r.quality.val_loss for r in recs if r.quality is not None]
    # Never worse with more time, and better once the time buys a bigger setting (tiny's iterations stop at the
    # preset's).
    assert len(losses) == 3 and losses[0] >= losses[1] > losses[2]
    assert all(r.eta_s is not None and r.eta_s <= h * 3600 * 1.001 for r, h in zip(recs, hours))
    trade = [line for line in recs[0].reasons if line.startswith("predicted: ")]
    assert trade and "bits/byte" in trade[0]
    assert all(q is not None for q in recs[0].alternative_quality.values())


def test_recommend_json_carries_quality_for_the_pick_and_every_alternative(tmp_path: Path) -> None:
    (tmp_path / "t.txt").write_text(Path(SHAKESPEARE_TEXT).read_text()[:200_000])
    out = run_cli(["recommend", "--use-case", "prototype", "--vram-gb", "24", "--dataset", str(tmp_path / "t.txt"),
                   "--json"], cwd=tmp_path, check=True)
    data = json.loads(out.stdout)
    assert data["quality"]["low"] < data["quality"]["val_loss"] < data["quality"]["high"]
    assert data["quality"]["assumed_data"] is False
    assert data["alternatives"] and all(a["quality"] is not None for a in data["alternatives"])


# --- keeping score -----------------------------------------------------------------------------------------

tiny_run = test_train.tiny_run  # the session's one trained tiny run (50 iterations on Shakespeare)


def test_a_finished_run_records_what_was_predicted_and_what_it_reached(tiny_run: Any) -> None:
    record = json.loads((tiny_run.run / "quality.json").read_text())
    metrics = [json.loads(line) for line in (tiny_run.run / "metrics.jsonl").read_text().splitlines()]
    final = [r for r in metrics if r["type"] == "eval"][-1]
    assert record["reached"] == {"iter": 50, "val_loss": final["val_loss"],
                                 "bits_per_byte": pytest.approx(final["val_loss"] / math.log(2) / record["data"]
                                                                ["bytes_per_token"])}
    assert record["data"]["measured"] and record["shape"]["max_iters"] == 50 and record["after_probe"] is None
    before = record["before"]
    assert before["low"] < before["val_loss"] < before["high"]
    [scored] = calibration(tiny_run.run.parent).runs
    assert scored.reached == final["val_loss"] and scored.predicted == before["val_loss"]


def write_record(runs: Path, name: str, predicted: float, reached: float | None, *, version: int = 1) -> None:
    folder = runs / name
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    band = {"val_loss": predicted, "low": predicted - 0.2, "high": predicted + 0.2}
    (folder / "quality.json").write_text(json.dumps({
        "version": version, "before": band, "after_probe": None,
        "reached": {"iter": 100, "val_loss": reached, "bits_per_byte": None} if reached is not None else None}))


def test_calibration_scores_finished_runs_and_bounds_its_correction(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    write_record(runs, "a", 5.0, 5.1)
    write_record(runs, "b", 5.0, 5.5)
    write_record(runs, "running", 5.0, None)
    (runs / "broken").mkdir()
    (runs / "broken" / "config.json").write_text("{}")
    (runs / "broken" / "quality.json").write_text("{not json")
    cal = calibration(runs)
    assert [r.name for r in cal.runs] == ["a", "b"]
    assert [r.inside for r in cal.runs] == [True, False]
    assert cal.shift == pytest.approx(0.3 * 2 / 6)
    for i in range(20):
        write_record(runs, f"far{i}", 5.0, 7.0)
    assert calibration(runs).shift == MAX_SHIFT


def test_runs_calibration_prints_the_table_and_its_json(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    write_record(runs, "a", 5.0, 5.1)
    table = run_cli(["runs", "--runs_dir", str(runs), "--calibration"], cwd=tmp_path)
    assert table.returncode == 0 and "median |error| 0.100" in table.stdout and "local correction" in table.stdout
    data = json.loads(run_cli(["runs", "--runs_dir", str(runs), "--calibration", "--json"], cwd=tmp_path).stdout)
    assert data["runs"][0]["error"] == pytest.approx(-0.1) and data["inside_band"] == 1
