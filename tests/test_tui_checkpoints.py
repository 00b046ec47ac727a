"""Pilots of what the app says about checkpoints, on copies of one real run stopped before its second evaluation
(tests/checkpoint_support.py): the dashboard's g samples from the last checkpoint, not the best of iteration 0, and
says so in its title; the resume dialog names the checkpoint's iteration and the iterations a resume redoes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from checkpoint_support import MAX_ITERS, NAME, run_copy
from tui_support import async_test, flat, quiet_context, screen_text, wait_for

from gptwiz.runs.paths import RunPaths
from gptwiz.tui.app import GptwizApp


def _stopped_at(run: Path) -> int:
    return int(json.loads((run / "status.json").read_text())["iter"])


@async_test
async def test_g_samples_the_last_checkpoint_when_the_best_is_iteration_0(
        tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> None:
    runs = run_copy(tmp_path_factory, tmp_path) / "runs"
    paths = RunPaths(runs / NAME)
    app = GptwizApp(quiet_context(runs), watch=paths)  # the real sampling, from the real checkpoint, on the CPU
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.screen.id == "dashboard" and app.screen.polls > 0)
        await pilot.press("g")
        await wait_for(pilot, lambda: app.screen.id == "sample-view")
        text = flat(screen_text(app))
        assert f"sampling from ckpt_last.pt, iteration {_stopped_at(paths.root)}" in text, text
        assert "not ckpt_best.pt: it is iteration 0, the untrained initial weights" in text, text
        await wait_for(pilot, lambda: "generating" not in screen_text(app), timeout=180)
        body = str(app.screen.body)
        assert "could not sample" not in body and body.strip(), body


@async_test
async def test_g_says_plainly_that_a_best_of_iteration_0_is_untrained(tmp_path_factory: pytest.TempPathFactory,
                                                                      tmp_path: Path) -> None:
    runs = run_copy(tmp_path_factory, tmp_path) / "runs"
    paths = RunPaths(runs / NAME)
    paths.ckpt_last.unlink()  # only the evaluation of iteration 0 is left
    asked: list[str] = []

    def fake_sample(p: RunPaths, checkpoint: str, feed: object) -> list[str]:
        asked.append(checkpoint)
        return ["a sampled line"]

    context = quiet_context(runs)
    context.sample_text = fake_sample
    app = GptwizApp(context, watch=paths)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.screen.id == "dashboard" and app.screen.polls > 0)
        await pilot.press("g")
        await wait_for(pilot, lambda: "a sampled line" in screen_text(app))
        assert "sampling from ckpt_best.pt, iteration 0 (the untrained initial" in flat(screen_text(app))
        assert app.screen.title_text == "sampling from ckpt_best.pt, iteration 0 (the untrained initial weights)"
    assert asked == ["best"]


async def _resume_question(runs: Path) -> str:
    """The resume dialog's question, once it is on the screen."""
    app = GptwizApp(quiet_context(runs))
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.screen.id == "welcome" and app.screen.loaded)
        await pilot.press("r")
        await wait_for(pilot, lambda: "Resume run" in screen_text(app))
        question = app.screen.question
        assert question.split("\n")[0][:40] in screen_text(app)
        await pilot.press("n")  # nothing is started
    return question


@async_test
async def test_the_resume_dialog_names_the_checkpoint_and_the_iterations_redone(
        tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> None:
    runs = run_copy(tmp_path_factory, tmp_path) / "runs"
    run = runs / NAME
    stopped_at = _stopped_at(run)
    assert (await _resume_question(runs)).startswith(
        f"Resume run {NAME} from its checkpoint at iteration {stopped_at} of {MAX_ITERS}?\n")
    # as a kill -9 after later heartbeats and before the next checkpoint leaves it: status.json is ahead of it
    shutil.copyfile(run / "ckpt_best.pt", run / "ckpt_last.pt")
    redo = "iteration 1" if stopped_at == 1 else f"iterations 1-{stopped_at}"
    assert (await _resume_question(runs)).startswith(
        f"Resume run {NAME} from its checkpoint at iteration 0 of {MAX_ITERS} ({redo} will be redone)?\n")
    assert not (run / "console.log").exists()  # no trainer was started
