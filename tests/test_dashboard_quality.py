"""The dashboard's predicted band: quality.json read into the snapshot (re-read only when it changes), turned
into the current prediction refitted on the run's own evaluations, and drawn on the loss chart with its line in
the throughput panel. No training: the run folders are written by hand."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest
from tui_support import async_test, screen_text, wait_for

from gptwiz.data.facts import DataFacts
from gptwiz.planning.quality import RunShape, loss_at, predict_quality
from gptwiz.runs.monitor import RunMonitor
from gptwiz.runs.paths import RunPaths
from gptwiz.tui.app import GptwizApp
from gptwiz.tui.context import AppContext
from gptwiz.tui.devicestats import DeviceSampler
from gptwiz.tui.widgets.charts import LossChart, predicted_curve, predicted_range
from gptwiz.wizard.run_quality import RunPredictor, prediction_lines, read_quality_record

RECORDED = Path(__file__).parent / "tui_data" / "recorded_run"  # a finished run of 60 iterations, evals every 20
SHAPE = RunShape(params=1_771_200, vocab_size=50304, block_size=64, tokens_per_iter=512, max_iters=60,
                 learning_rate=3e-4, min_lr=3e-5, warmup_iters=6)
DATA = DataFacts(unigram=6.47, bigram=5.04, train_tokens=304224, bytes_per_token=3.3, measured=True)


def record(**changes: Any) -> dict[str, Any]:
    """quality.json as the trainer writes it at the start of SHAPE's run."""
    rec = {"version": 1, "model": "not yet fitted", "shape": asdict(SHAPE), "data": DATA.to_json(),
           "before": predict_quality(SHAPE, DATA).to_json(), "after_probe": None, "reached": None}
    return {**rec, **changes}


def run_folder(tmp_path: Path, quality: str | None) -> RunPaths:
    """The recorded run, with `quality` as its quality.json (None: none)."""
    paths = RunPaths(tmp_path / "runs" / "demo")
    shutil.copytree(RECORDED, paths.root)
    if quality is not None:
        paths.quality.write_text(quality)
    return paths


def context(tmp_path: Path) -> AppContext:
    return AppContext(runs_dir=tmp_path / "runs", clock=lambda: 1795495000.0, poll_interval_s=0.05,
                      device_sampler=lambda: DeviceSampler(gpu_stats=lambda: []))


# --- the run folder's reader ------------------------------------------------------------------------------

def test_the_snapshot_carries_the_record_and_reads_it_again_only_when_it_changes(tmp_path: Path) -> None:
    paths = run_folder(tmp_path, json.dumps(record()))
    monitor = RunMonitor(paths)
    first = monitor.poll()
    assert first.quality_record == record()
    again = monitor.poll()
    assert again.quality_record is first.quality_record and again.version == first.version  # not read again
    reached = record(reached={"iter": 60, "val_loss": 8.17, "bits_per_byte": 3.57})
    paths.quality.write_text(json.dumps(reached))
    st = paths.quality.stat()
    os.utime(paths.quality, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # a new mtime even on a coarse clock
    later = monitor.poll()
    assert later.quality_record == reached and later.version > first.version
    paths.quality.unlink()
    assert monitor.poll().quality_record is None


@pytest.mark.parametrize("text", ["{not json", "[1, 2]", json.dumps(record(version=2)),
                                  json.dumps(record(shape={**asdict(SHAPE), "block_size": 0})),
                                  json.dumps(record(before={"val_loss": "low"})),
                                  json.dumps(record(data=None))])
def test_a_malformed_record_is_no_prediction(tmp_path: Path, text: str) -> None:
    snap = RunMonitor(run_folder(tmp_path, text)).poll()
    assert snap.state == "finished"  # the rest of the run reads as ever
    assert RunPredictor().predict(snap.quality_record, snap.eval_iters, snap.eval_val_loss) is None


# --- the prediction ---------------------------------------------------------------------------------------

def test_the_prediction_moves_towards_the_run_s_own_evaluations() -> None:
    predictor = RunPredictor()
    rec = record()
    prior = predictor.predict(rec, [], [])
    assert prior is not None and prior.quality == prior.prior and prior.quality.basis == "fit"
    # The run's losses 0.5 above the model's curve: the prediction follows them, more as the run goes on.
    iters = [0.0, 20.0, 40.0, 60.0]
    losses = [10.8] + [loss_at(SHAPE, DATA, int(it)) + 0.5 for it in iters[1:]]
    early = predictor.predict(rec, iters[:2], losses[:2])
    late = predictor.predict(rec, iters[:3], losses[:3])
    end = predictor.predict(rec, iters, losses)
    assert early is not None and late is not None and end is not None
    assert prior.quality.val_loss < early.quality.val_loss < late.quality.val_loss < end.quality.val_loss
    assert end.quality.val_loss == pytest.approx(prior.quality.val_loss + 0.5, abs=0.01)
    assert end.quality.basis == "run"
    width = [p.quality.high - p.quality.low for p in (prior, early, late, end)]
    assert width == sorted(width, reverse=True)
    # The curve drawn is the model's, shifted to end at the prediction.
    assert end.curve_x[0] == 0 and end.curve_x[-1] == 60 and end.curve_y[-1] == pytest.approx(end.quality.val_loss)
    assert end.band == (60.0, end.quality.low, end.quality.high)


def test_a_probe_s_prediction_is_the_prior_where_there_is_one() -> None:
    probe = {**predict_quality(SHAPE, DATA).to_json(), "val_loss": 7.0, "low": 6.8, "high": 7.2, "basis": "probe"}
    pred = RunPredictor().predict(record(after_probe=probe), [], [])
    assert pred is not None and pred.quality.val_loss == 7.0
    assert "from the probe" in " ".join(prediction_lines(pred, 200))


def test_the_line_says_the_prediction_or_what_was_reached() -> None:
    pred = RunPredictor().predict(record(), [0.0, 20.0], [10.8, 9.4])
    assert pred is not None
    q = pred.quality
    assert prediction_lines(pred, 200) == [f"predicted final val loss {q.val_loss:.2f} ({q.low:.2f}-{q.high:.2f}) · "
                                           f"{q.bits_per_byte:.2f} bits/byte, from the run's curve"]
    assert all(len(line) <= 23 for line in prediction_lines(pred, 23))
    done = RunPredictor().predict(record(reached={"iter": 60, "val_loss": 8.17, "bits_per_byte": 3.57}), [], [])
    assert done is not None
    assert prediction_lines(done, 40)[0] == f"reached 8.17 (predicted {done.prior.val_loss:.2f})"
    assert read_quality_record(record(extra="a later key")) is not None  # a newer writer's keys are no damage


def test_the_predicted_curve_never_stretches_the_loss_axis() -> None:
    pred = RunPredictor().predict(record(), [], [])
    assert pred is not None
    real = [9.0, 8.5, 8.2]  # the run's losses so far, below the model's curve's start (ln 50304 = 10.8)
    low, high = predicted_range(real, pred)
    assert low == min(8.2, pred.quality.low) and high == max(9.0, pred.quality.high)
    xs, ys = predicted_curve(pred, low, high)
    assert ys and all(low <= y <= high for y in ys) and xs[0] > 0  # the early part is left out


# --- the screen -------------------------------------------------------------------------------------------

@async_test
async def test_the_chart_draws_the_band_where_the_run_has_a_record(tmp_path: Path) -> None:
    paths = run_folder(tmp_path, json.dumps(record(reached={"iter": 60, "val_loss": 8.17, "bits_per_byte": 3.57})))
    app = GptwizApp(context(tmp_path), watch=paths)
    async with app.run_test(size=(120, 40)) as pilot:
        chart = app.screen.query_one(LossChart)
        await wait_for(pilot, lambda: chart.predicted is not None)
        assert chart.predicted.band[0] == 60.0
        assert chart.predicted.quality.basis == "run"  # refitted on the recorded run's evaluations
        text = screen_text(app)
        assert "predicted ┄" in text and "┬" in text and "reached 8.17 (predicted" in text


@pytest.mark.parametrize("quality", [None, "{not json"])
@async_test
async def test_without_a_usable_record_there_is_no_band(tmp_path: Path, quality: str | None) -> None:
    app = GptwizApp(context(tmp_path), watch=run_folder(tmp_path, quality))
    async with app.run_test(size=(120, 40)) as pilot:
        screen = app.screen
        await wait_for(pilot, lambda: screen.polls >= 2)
        assert screen.query_one(LossChart).predicted is None
        assert not screen.query_one("#quality-text").display
        text = screen_text(app)
        assert "predicted" not in text and "val ●" in text
