"""What a user meets at 80x24: command lines that paste as one command, long log lines wrapped, plain-mode lines
broken between words, a welcome footer that fits, a reasons pane that says it scrolls, and a closing line when the
wizard is left before a run started."""

from __future__ import annotations

import io
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from conftest import SHAKESPEARE, cli_env
from test_tui_dashboard import context, recorded_copy, wait_polls
from test_tui_keys import footer
from test_tui_wizard import RECORDED, preset_state, wizard_app
from tui_support import async_test, command_rows, flat, pasted, plain_text, pty_session, screen_text, wait_for

from gptwiz.tui.app import GptwizApp, farewell, step_screen

WIDTH = 80


def shell_argv(lines: list[str]) -> list[str]:
    """The arguments a POSIX shell reads from `lines` pasted as they are (continuations included)."""
    script = "\n".join(lines).replace("gptwiz", "printf '%s\\0'", 1)  # the shell prints each argument it got
    proc = subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=30, check=True)
    return ["gptwiz", *proc.stdout.split("\0")[:-1]]


# --- the launch screen's command -------------------------------------------------------------------------

@async_test
async def test_the_launch_command_folds_between_arguments_and_pastes_as_one_command(tmp_path: Path) -> None:
    app = wizard_app(tmp_path)
    async with app.run_test(size=(WIDTH, 24)) as pilot:
        preset_state(app, tmp_path)  # its paths are long: the command takes several lines at 80 columns, one
        # of them (a path longer than a line) goes on over two
        from gptwiz.tui.screens.launch import LaunchScreen

        await app.push_screen(LaunchScreen())
        await wait_for(pilot, lambda: app.screen.id == "launch")
        lines = command_rows(screen_text(app))
        expected = ["gptwiz", *app.wizard.train_args("prototype-small")]
    assert len(lines) > 1 and all(len(line) <= WIDTH - 2 for line in lines), lines
    assert shell_argv(lines) == expected
    assert shlex.split(pasted("\n".join(lines))) == expected  # joined as the shell joins them, then split


# --- the log view ------------------------------------------------------------------------------------------

@async_test
async def test_the_log_view_wraps_a_long_line_instead_of_cutting_it(tmp_path: Path) -> None:
    paths = recorded_copy(tmp_path)
    long_line = ("2026-11-24 05:00:00 training failed: RuntimeError: expected all tensors to be on the same device, "
                 "but found at least two devices, cuda:0 and cpu! (when checking argument for argument mat1 in "
                 "method wrapper_CUDA_addmm) in /home/user/projects/gptwiz/gptwiz/model/gpt.py, line 123")
    with open(paths.log, "a") as f:
        f.write(long_line + "\n")
    app = GptwizApp(context(tmp_path, poll_interval_s=0.05), watch=paths)
    async with app.run_test(size=(WIDTH, 24)) as pilot:
        await wait_polls(pilot)
        await pilot.press("l")
        await wait_for(pilot, lambda: app.screen.id == "log-view" and "line 123" in screen_text(app))
        assert flat(long_line) in flat(screen_text(app)), screen_text(app)  # every word of it, in order
        assert app.screen.query_one("#log-view-text").max_scroll_x == 0  # nothing off to the right
        await pilot.resize_terminal(120, 30)  # rewrapped to the new width: fewer, longer rows
        await wait_for(pilot, lambda: any("found at least" in row and len(row.rstrip()) > WIDTH
                                          for row in screen_text(app).splitlines()))
        assert flat(long_line) in flat(screen_text(app))


# --- plain mode ----------------------------------------------------------------------------------------------

def test_plain_mode_leaves_an_answered_question_broken_between_words(tmp_path: Path) -> None:
    # The first menu's first choice is longer than a line once the question is before it: answered, the line it
    # leaves must break between words ("... works or" / "check a pipeline"), not inside one ("chec" / "k a").
    code, out = pty_session(["wizard", "--plain"], tmp_path, [(b"What will the model be for?", b"\r"),
                                                              (b"Plan for a GPU", b"\x03")], cli_env())
    assert code == 130, plain_text(out)[-2000:]
    answered = plain_text(out).split("What will the model be for?")[-1]
    assert "check a pipeline" in " ".join(answered.split()), answered[:400]
    assert not re.search(r"chec\n", answered), answered[:400]


def test_the_numbered_questions_break_between_words(monkeypatch: pytest.MonkeyPatch) -> None:
    from gptwiz.plain import LinePrompter

    monkeypatch.setenv("COLUMNS", "40")
    out = io.StringIO()
    prompts: list[str] = []
    ask = LinePrompter(read=lambda prompt: prompts.append(prompt) or "1", out=out)
    title = "Testing/Learning: learn how training works or check a pipeline, fast"
    assert ask.select("What will the model be for? Choose one of these", [("t", title)]) == "t"
    lines = out.getvalue().splitlines() + prompts
    assert all(len(line.rstrip()) <= 40 for line in lines), lines
    words = " ".join(out.getvalue().split())
    assert "learn how training works or check a pipeline, fast" in words, out.getvalue()


# --- the welcome screen's footer -------------------------------------------------------------------------

@async_test
async def test_the_welcome_footer_names_each_key_once_and_fits_80_columns(tmp_path: Path) -> None:
    app = wizard_app(tmp_path)
    async with app.run_test(size=(WIDTH, 24)) as pilot:  # no runs yet: enter starts a new model
        await wait_for(pilot, lambda: app.screen.id == "welcome" and app.screen.loaded)
        await wait_for(pilot, lambda: "help" in footer(app))
        shown = footer(app)
        assert shown.count("new model") == 1 and "⏎ new model" in shown, shown
        await pilot.press("n")  # unlisted, n still starts one
        await wait_for(pilot, lambda: app.screen.id == "use-case")
    shutil.copytree(RECORDED, tmp_path / "runs" / "shakespeare")
    app = wizard_app(tmp_path)
    async with app.run_test(size=(WIDTH, 24)) as pilot:
        await wait_for(pilot, lambda: app.screen.id == "welcome" and app.screen.rows)
        await wait_for(pilot, lambda: "compare" in footer(app))
        shown = footer(app)
    assert shown.count("new model") == 1, shown
    for key in ("⏎ watch", "q quit", "? help", "n new model", "r resume", "c compare"):
        assert key in shown, (key, shown)
    assert re.search(r"c compare\s+▏\^p palette", shown), shown  # nothing cut before the palette's key


# --- the recommendation's reasons --------------------------------------------------------------------------

@async_test
async def test_the_reasons_pane_says_it_holds_more_and_pgdn_reads_it(tmp_path: Path) -> None:
    app = wizard_app(tmp_path)
    async with app.run_test(size=(WIDTH, 24)) as pilot:
        preset_state(app, tmp_path)
        from gptwiz.tui.screens.recommendation import RecommendationScreen

        await app.push_screen(RecommendationScreen())
        await wait_for(pilot, lambda: app.screen.id == "recommendation" and app.screen.rec is not None)
        await wait_for(pilot, lambda: "more line" in screen_text(app))
        assert re.search(r"▼ \d+ more lines? below: pgdn", screen_text(app)), screen_text(app)
        assert app.screen.rec.alternatives and "Alternatives (enter" not in screen_text(app)  # the pane's end
        assert app.screen.focused is not None and app.screen.focused.id == "knob-block"  # a knob's field has it
        for _ in range(6):
            await pilot.press("pagedown")
        await wait_for(pilot, lambda: "pgup scrolls back up" in screen_text(app))
        assert "Alternatives (enter switches to one):" in screen_text(app)


# --- leaving the wizard before a run started -------------------------------------------------------------

async def _leave_from(pilot: Any, app: Any) -> None:
    app.screen.set_focus(None)  # out of the knobs' fields, where q would be typed
    await pilot.pause()
    await pilot.press("q")
    await wait_for(pilot, lambda: app.return_code is not None)


@pytest.mark.parametrize("step", ["recommendation", "probe"])
@async_test
async def test_leaving_from_the_recommendation_or_the_probe_says_how_to_train(tmp_path: Path, step: str) -> None:
    app = wizard_app(tmp_path)
    async with app.run_test(size=(WIDTH, 24)) as pilot:
        preset_state(app, tmp_path)
        await app.push_screen(step_screen(step))
        if step == "probe":  # the stand-in probe ends at once
            await wait_for(pilot, lambda: app.screen.id == "probe" and app.screen.result is not None)
        else:
            await wait_for(pilot, lambda: app.screen.id == step and app.screen.rec is not None)
        expected = ["gptwiz", *app.wizard.train_args()]
        await _leave_from(pilot, app)
    line = farewell(app)
    assert line is not None and app.return_value is None
    said, *command = line.splitlines()
    where = "at the recommendation" if step == "recommendation" else "after the probe (verdict: warn)"
    assert f"left gptwiz {where}; no run was started" in line, line
    assert all(len(row) < WIDTH for row in line.splitlines()), line
    assert shell_argv([row.strip() for row in command]) == expected


@async_test
async def test_leaving_the_first_steps_says_nothing(tmp_path: Path) -> None:
    app = wizard_app(tmp_path)
    async with app.run_test(size=(WIDTH, 24)) as pilot:
        await wait_for(pilot, lambda: app.screen.id == "welcome")
        await _leave_from(pilot, app)
    assert farewell(app) is None


def test_gptwiz_left_at_the_recommendation_prints_the_command_to_train(tmp_path: Path) -> None:
    data = tmp_path / "shakespeare.txt"
    shutil.copy(SHAKESPEARE, data)
    code, out = pty_session([], tmp_path, [
        (b"step 1/7", b"n"), (b"step 2/7", b"\r"), (b"step 3/7", b"24\r"), (b"step 4/7", str(data).encode() + b"\r"),
        (b"recommended", b"\x11"),  # ctrl+q on the recommendation, once it is drawn
    ], cli_env(), timeout=180)
    text = plain_text(out)
    assert code == 0, text[-3000:]
    closing = text[text.index("left gptwiz"):]
    assert closing.startswith("left gptwiz at the recommendation; no run was started"), closing
    lines = [line.strip() for line in closing.splitlines() if line.strip()]
    argv = shell_argv(command_rows("\n".join(lines)))
    assert argv[:2] == ["gptwiz", "train"] and argv[argv.index("--input_file") + 1] == str(data)
