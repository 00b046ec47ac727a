"""The probe's time verdict against a budget (gptwiz.planning.time_budget): the plain reason and the runs that keep
the budget, each priced and with a quality; the budget on the command line and from the wizard's use case."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from conftest import assert_one_line_error, run_cli
from rich.console import Console
from tui_support import async_test, flat, wait_for, widget_text

from gptwiz.data.facts import assumed_data
from gptwiz.planning.knobs import Knobs
from gptwiz.planning.presets import load_preset
from gptwiz.planning.quality import preset_shape
from gptwiz.planning.quality_choice import short_quality
from gptwiz.planning.time_budget import Budget, ProbeCurve, budget_options, run_budget
from gptwiz.planning.timing import from_probe_rate, iters_at_rate, preset_plan, round_iters, with_iters
from gptwiz.planning.verdict import ProbeFacts, curve_stats, judge
from gptwiz.training.probe.result import judged_result
from gptwiz.tui.app import GptwizApp
from gptwiz.tui.context import AppContext
from gptwiz.wizard.advice import budget_line, probe_advice
from gptwiz.wizard.probe_panel import render
from gptwiz.wizard.state import DatasetChoice, WizardState

TESTING = run_budget(None, "testing")
LOSSES = list(6 + 4.8 * np.exp(-np.arange(100) / 30) + np.random.default_rng(0).normal(0, 0.05, 100))


def _run(sec_per_iter: float, max_iters: int = 5000):
    """small at batch 8 x 2, context 256, on a CPU, and the probe's measured rate at `sec_per_iter`."""
    preset = load_preset("small")
    run = preset_plan(preset, device_type="cpu", dtype="float32", batch_size=8, grad_accum=2, max_iters=max_iters,
                      compiled=False)
    return preset, run, run.tokens_per_iter / sec_per_iter


def _facts(sec_per_iter: float, budget: Budget | None):
    preset, run, tps = _run(sec_per_iter)
    curve = ProbeCurve(assumed_data(300_000), preset_shape(preset, block_size=256, tokens_per_iter=run.tokens_per_iter,
                                                           max_iters=100), LOSSES)
    options = budget_options(budget.seconds, run, tps, preset, load_preset("tiny"), curve) if budget else ()
    facts = ProbeFacts(learning_rate=3e-4, batch_size=8, grad_accum=2, block_size=256, stats=curve_stats(LOSSES, 10),
                       peak_memory_bytes=2 * 2**30, device_memory_total_bytes=16 * 2**30,
                       projected_full_run_s=from_probe_rate(run, tps).seconds, sec_per_iter=sec_per_iter,
                       budget=budget, budget_options=options)
    return facts, options


def test_the_guides_promise_and_the_users_hours_label_the_budget():
    assert TESTING == Budget(1200, "the guide's Training Time for Testing/Learning (20m00s)")
    assert run_budget(2, "testing") == Budget(7200, "your budget of 2 h")
    assert run_budget(None, None) is None


def test_a_run_over_the_budget_warns_plainly_with_three_runs_that_keep_it():
    facts, options = _facts(1.4, TESTING)
    j = judge(facts)
    assert j.verdict == "warn" and j.loss == "falls"
    assert ("the full run would take about 2h05m, more than the guide's Training Time for Testing/Learning "
            "(20m00s)") in j.reasons
    assert [o.kind for o in options] == ["fewer_iters", "smaller_batch", "smaller_preset"]
    assert [str(a) for a in j.advice] == [str(o.advice()) for o in options]
    for option in options:
        assert 0 < option.seconds <= 1200 and option.quality is not None
        assert f"{short_quality(option.quality)}" in str(option.advice()) and "about 19m" in str(option.advice())
    fewer, batch, smaller = options
    assert dict(fewer.changes) == {"max_iters": fewer.iters} and fewer.iters < 5000
    assert fewer.quality.basis == "probe" and batch.quality.basis == "probe"  # refitted on the probe's curve
    assert smaller.quality.basis == "fit"                                      # another model: predicted
    assert dict(batch.changes) == {"batch_size": 8, "grad_accum": 1, "max_iters": batch.iters}
    assert batch.iters > fewer.iters  # half the tokens a step: more steps in the same time
    assert dict(smaller.changes)["config_file"] == "tiny" and smaller.iters > fewer.iters
    # Each is the most round number of iterations that fits: one step more than the unrounded most does not.
    _, run, tps = _run(1.4)
    most = iters_at_rate(run, tps, 1200)
    assert fewer.iters == round_iters(most)
    assert from_probe_rate(with_iters(run, most + 1), tps).seconds > 1200
    assert json.loads(json.dumps(fewer.to_json()))["changes"] == {"max_iters": fewer.iters}


def test_a_run_within_the_budget_says_so_and_passes():
    facts, options = _facts(0.1, TESTING)  # about 9 minutes
    j = judge(facts)
    assert options == () and j.verdict == "pass" and j.advice == []
    assert not any("more than" in r for r in j.reasons)
    assert any(r.startswith("the full run would take about") and r.endswith("within the guide's Training Time for "
                                                                            "Testing/Learning (20m00s)")
               for r in j.reasons), j.reasons


def test_the_users_budget_replaces_the_long_run_rule():
    facts, _ = _facts(60.0, None)  # about 3.5 days, no budget: the old rule
    assert [a.changes[0][0] for a in judge(facts).advice] == ["max_iters"]
    facts, options = _facts(60.0, run_budget(200, None))  # 200 h: the run keeps it
    j = judge(facts)
    assert options == () and j.verdict == "pass" and any("within your budget of 200 h" in r for r in j.reasons)


def test_over_the_budget_with_nothing_that_fits_still_warns():
    facts, options = _facts(1.4, Budget(3.0, "your budget of 3 s"))  # less than the start-up alone
    j = judge(facts)
    assert options == () and j.verdict == "warn" and j.advice == []
    assert any("more than your budget of 3 s" in r for r in j.reasons)


@pytest.mark.parametrize("hours", ["0", "abc", "-2", "nan"])
def test_bad_hours_is_one_line_exit_2(tmp_path, shakespeare, hours):
    proc = run_cli(["probe", "--config_file", "tiny", "--input_file", str(shakespeare), "--hours", hours],
                   cwd=tmp_path)
    assert_one_line_error(proc, "--hours", hours)


def test_the_wizard_probes_against_the_use_cases_promise(tmp_path):
    state = WizardState(runs_dir=tmp_path / "runs", use_case="testing", knobs=Knobs("small", 256, 32, 1, 3e-4, 5000),
                        dataset=DatasetChoice("input_file", str(tmp_path / "x.txt"), 1, 600))
    opts = state.probe_options(100)
    assert (opts.budget_s, opts.budget_label) == (1200, "the guide's Training Time for Testing/Learning (20m00s)")
    state.use_case = "chat"
    assert state.probe_options(100).budget_s == 6 * 3600


@pytest.mark.slow
def test_probe_json_carries_the_budget_and_the_runs_that_keep_it(tmp_path, shakespeare):
    # tiny's 2,000 iterations take minutes here; 40 s holds the start-up and some hundreds of them.
    proc = run_cli(["probe", "--config_file", "tiny", "--batch_size", "2", "--block_size", "32", "--no-compile",
                    "--iters", "10", "--input_file", str(shakespeare), "--hours", "0.011", "--json"], cwd=tmp_path)
    assert "Traceback" not in proc.stderr, proc.stderr
    result = json.loads(proc.stdout)
    assert result["budget_s"] == pytest.approx(39.6) and result["budget_label"] == "your budget of 0.011 h"
    if result["projected_full_run_s"] <= result["budget_s"]:
        pytest.skip("this machine runs tiny's whole run within 40 s")
    assert result["verdict"] in ("warn", "fail")
    assert any("more than your budget of 0.011 h" in r for r in result["reasons"])
    kinds = [o["kind"] for o in result["budget_options"]]
    assert kinds and "smaller_preset" not in kinds  # tiny is the smallest preset
    for option in result["budget_options"]:
        assert option["seconds"] <= result["budget_s"] and option["quality"]["val_loss"] > 0
        assert option["changes"]["max_iters"] == option["iters"] and option["advice"] in result["advice"]


def _result(sec_per_iter: float):
    """A judged ProbeResult over the Testing/Learning budget, as the probe's measure step makes it."""
    facts, options = _facts(sec_per_iter, TESTING)
    j = judge(facts)
    base = dict(iters_requested=100, full_run_iters=5000, block_size=256, learning_rate=3e-4, preset="small",
                run_dir=None, memory_kind="cpu_rss")
    s = facts.stats
    return judged_result(j, 8, 2, [], base, iters=100, losses=LOSSES, projected_full_run_s=facts.projected_full_run_s,
                         loss_first=s.loss_first, loss_last=s.loss_last, loss_slope=s.slope,
                         relative_drop=s.relative_drop, loss_noise=s.noise, sec_per_iter=sec_per_iter,
                         tokens_per_sec=4096 / sec_per_iter, warmup_s=3.0, warmup_iters=10,
                         budget_s=TESTING.seconds, budget_label=TESTING.label,
                         budget_options=[o.to_json() for o in options])


def test_the_panel_and_the_wizard_show_the_budget_and_its_runs():
    result = _result(1.4)
    assert budget_line(result) == ("the guide's Training Time for Testing/Learning (20m00s): over it by about "
                                   "1h45m; the advice lists 3 runs that keep it")
    console = Console(width=200, record=True, file=io.StringIO())
    console.print(render(result))
    text = console.export_text()
    assert "budget" in text and "over it by about 1h45m" in text
    assert all(o["advice"] in text for o in result.budget_options)
    assert [str(a) for a in probe_advice(result, Knobs("small", 256, 8, 2, 3e-4, 5000))] == \
        [o["advice"] for o in result.budget_options]
    within = _result(0.1)
    assert budget_line(within).endswith("the full run keeps it") and within.budget_options == []


@async_test
async def test_the_probe_screen_probes_against_the_use_case_and_shows_the_runs_that_keep_it(tmp_path):
    from gptwiz.tui.screens.probe import ProbeScreen

    seen: list = []

    def probe(opts, on_progress, should_cancel):
        seen.append(opts)
        return _result(1.4)

    app = GptwizApp(AppContext(runs_dir=tmp_path / "runs", data_dir=tmp_path / "data", run_probe=probe,
                               probe_iters=20, detect_hardware=lambda: None, clock=lambda: 1795495000.0))
    async with app.run_test(size=(160, 50)) as pilot:
        data = tmp_path / "blog.txt"
        data.write_text("All the world's a stage. " * 400)
        app.wizard.use_case = "testing"
        app.wizard.dataset = DatasetChoice("input_file", str(data), 1, data.stat().st_size)
        app.wizard.knobs = Knobs("small", 256, 8, 2, 3e-4, 5000)
        await wait_for(pilot, lambda: app.screen.id == "welcome")
        await app.push_screen(ProbeScreen())
        await wait_for(pilot, lambda: app.screen.id == "probe" and app.screen.result is not None)
        await pilot.pause(0.1)
        text = flat(widget_text(app.screen, "#probe-reasons") + " " + widget_text(app.screen, "#probe-advice"))
    assert seen[0].budget_s == 1200 and seen[0].budget_label == TESTING.label
    assert "more than the guide's Training Time for Testing/Learning (20m00s)" in text
    assert "budget: the guide's Training Time for Testing/Learning (20m00s): over it by about 1h45m" in text
    assert "fewer iterations" in text and "a smaller batch" in text and "the next smaller preset, tiny" in text
