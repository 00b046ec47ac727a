"""The wizard model both front-ends drive: the flow of its steps, the knob table, the advice offered after a
probe, and the progress of preparing a dataset. Pure functions and plain values; no Textual, no prompts."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from gptwiz.common.errors import UsageError
from gptwiz.planning.knobs import Advice, Knobs
from gptwiz.wizard.advice import FITTING_BATCH_WHY, apply_advice, probe_advice
from gptwiz.wizard.flow import MOVES, STEPS, TITLES, FlowError, back_step, missing_for, next_step, step_number
from gptwiz.wizard.knob_fields import KNOB_FIELDS, knobs_from_texts
from gptwiz.wizard.state import DatasetChoice, WizardState

KNOBS = Knobs("small", 256, 32, 1, 3e-4, 5000)


def answered(tmp_path: Path, upto: str) -> WizardState:
    """A state with the answers every step before `upto` gives."""
    s = WizardState(runs_dir=tmp_path / "runs", data_dir=tmp_path / "data")
    order = STEPS.index(upto)
    if order > STEPS.index("use_case"):
        s.use_case = "testing"
    if order > STEPS.index("dataset"):
        s.dataset = DatasetChoice("input_file", "blog.txt", 1, 1000)
    if order > STEPS.index("recommendation"):
        s.knobs = KNOBS
    return s


# --- the flow --------------------------------------------------------------------------------------------

def test_next_step_walks_the_steps_in_order(tmp_path: Path) -> None:
    s = answered(tmp_path, "launch")
    walked = ["welcome"]
    while walked[-1] != "launch":
        walked.append(next_step(walked[-1], s))
    assert tuple(walked) == STEPS
    assert next_step("recommendation", s, "launch") == "launch"  # the probe may be skipped
    assert [step_number(step) for step in STEPS] == list(range(1, 8)) and set(TITLES) == set(STEPS) == set(MOVES)


def test_a_step_is_not_reached_without_the_answers_it_needs(tmp_path: Path) -> None:
    s = answered(tmp_path, "welcome")
    with pytest.raises(FlowError, match="choose a use case first"):
        next_step("use_case", s)
    s.use_case = "chat"
    assert next_step("use_case", s) == "hardware" and next_step("hardware", s) == "dataset"
    with pytest.raises(FlowError, match="no dataset chosen yet"):
        next_step("dataset", s)
    s.dataset = DatasetChoice("sources", "docs/", 3, 1000)
    assert missing_for("recommendation", s) == "docs/ is not prepared yet"
    s.dataset = DatasetChoice("sources", "docs/", 3, 1000, tokens=250, prepared_dir="data/docs-prepared")
    assert next_step("dataset", s) == "recommendation"
    for move in ("next", "launch"):
        with pytest.raises(FlowError, match="no recommendation yet"):
            next_step("recommendation", s, move)
    with pytest.raises(FlowError, match="no way to launch from the Probe step"):
        next_step("probe", answered(tmp_path, "launch"), "launch")
    assert isinstance(FlowError("x"), UsageError)


def test_back_returns_to_the_step_shown_before() -> None:
    assert back_step(["welcome", "use_case", "hardware"]) == "use_case"
    assert back_step(["welcome", "recommendation", "launch"]) == "recommendation"  # the probe was skipped
    assert back_step(["welcome"]) is None and back_step([]) is None


# --- the knobs the user types ------------------------------------------------------------------------------

def test_knob_fields_check_and_apply_typed_values() -> None:
    assert [f.label for f in KNOB_FIELDS] == ["context length", "batch size", "learning rate", "max iterations"]
    assert [f.text(KNOBS) for f in KNOB_FIELDS] == ["256", "32", "0.0003", "5000"]
    lr = next(f for f in KNOB_FIELDS if f.name == "learning_rate")
    assert lr.check("1e-4") is None and lr.parse(" 1e-4 ") == 1e-4
    assert lr.check("2") == "learning rate: 2 is outside 1e-07..0.99"
    assert lr.check("fast") == "learning rate: 'fast' is not a number"
    block = KNOB_FIELDS[0]
    assert block.check("8") == "context length: 8 is outside 16..8192" and block.check("64.5") is not None
    changed = knobs_from_texts(KNOBS, {"block_size": "64", "learning_rate": "1e-3"})
    assert (changed.block_size, changed.learning_rate, changed.batch_size, changed.preset) == (64, 1e-3, 32, "small")
    with pytest.raises(UsageError, match="max iterations: 0 is outside 1..10000000"):
        knobs_from_texts(KNOBS, {"max_iters": "0"})


# --- the advice after a probe ---------------------------------------------------------------------------

def probe(verdict: str, batch_size: int, grad_accum: int, *advice: Advice) -> SimpleNamespace:
    return SimpleNamespace(verdict=verdict, batch_size=batch_size, grad_accum=grad_accum, advice=list(advice))


def test_probe_advice_offers_the_batch_that_fit_first() -> None:
    lower = Advice((("learning_rate", 1e-4),), "3x lower: smaller, steadier steps")
    assert probe_advice(probe("warn", 32, 1, lower), KNOBS) == [lower]
    fitted = probe_advice(probe("warn", 8, 4, lower), KNOBS)  # out of memory at 32: it fell back to 8 x 4
    assert fitted[1:] == [lower] and fitted[0].changes == (("batch_size", 8), ("grad_accum", 4))
    assert str(fitted[0]) == f"--batch_size 8 --grad_accum 4 ({FITTING_BATCH_WHY})"
    assert probe_advice(probe("cancelled", 8, 4), KNOBS) == [] and probe_advice(probe("pass", 8, 4), None) == []


def test_apply_advice_changes_the_knobs_and_keeps_the_history(tmp_path: Path) -> None:
    s = answered(tmp_path, "probe")
    fitted = probe_advice(probe("warn", 8, 4), s.knobs)[0]
    apply_advice(s, fitted)
    assert (s.knobs.batch_size, s.knobs.grad_accum) == (8, 4) and s.history == [fitted]
    with pytest.raises(UsageError, match="nothing the wizard can apply"):
        apply_advice(s, Advice((), "more text: use a bigger --input_file or --dataset_dir"))
    assert s.history == [fitted]
    s.knobs = None
    with pytest.raises(UsageError, match="no recommendation yet"):
        apply_advice(s, fitted)


def test_the_recommendation_carries_the_one_knob_set() -> None:
    from gptwiz.planning.recommend import recommend
    from gptwiz.wizard.services import view

    rec = recommend("testing", 6, 5_000_000)
    assert isinstance(rec.knobs, Knobs) and (rec.preset, rec.batch_size, rec.max_iters) == (
        rec.knobs.preset, rec.knobs.batch_size, rec.knobs.max_iters)
    data = rec.to_json()
    assert "knobs" not in data and [k for k in data if k in ("preset", "block_size", "batch_size", "grad_accum",
                                                              "learning_rate", "dropout", "max_iters")] == [
        "preset", "block_size", "batch_size", "grad_accum", "learning_rate", "dropout", "max_iters"]
    assert view(rec).knobs is rec.knobs


# --- preparing ----------------------------------------------------------------------------------------------

def test_prepare_tracker_turns_progress_into_values() -> None:
    from gptwiz.wizard.preparing import PrepareTracker

    shown: list = []
    tracker = PrepareTracker(shown.append)
    tracker.stage("collecting docstrings")
    assert shown[-1].text == "collecting docstrings" and shown[-1].fraction is None
    tracker.start(6, 1000)
    tracker.advance(2, 250, 60)
    tracker.advance(1, 250, 60)
    assert shown[-1].text == "tokenizing 6 files" and shown[-1].done_bytes == 500 and shown[-1].fraction == 0.5
    tracker.start(0, 0)
    assert shown[-1].total_bytes == 1  # an empty corpus still has a bar to fill


def test_prepare_choice_prepares_a_folder_and_cancels_cleanly(tmp_path: Path) -> None:
    from gptwiz.wizard.preparing import PrepareCancelled, PrepareTracker, demo_choice, prepare_choice

    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(4):
        (docs / f"{i}.txt").write_text(f"Chapter {i}. " + "It was the best of times, it was the worst of times. " * 200)
    choice = DatasetChoice("sources", str(docs), 4, sum(p.stat().st_size for p in docs.iterdir()))
    data = tmp_path / "data"
    with pytest.raises(PrepareCancelled):
        prepare_choice(choice, data, should_cancel=lambda: True)
    assert not (data / "docs-prepared").exists()
    shown: list = []
    done = prepare_choice(choice, data, PrepareTracker(shown.append))
    assert done.prepared_dir == str(data / "docs-prepared") and not done.needs_prepare and done.tokens > 1000
    assert shown[-1].fraction == 1.0 and prepare_choice(done, data) is done
    demo = demo_choice(tmp_path / "empty")
    assert demo.kind == "demo" and demo.needs_prepare
