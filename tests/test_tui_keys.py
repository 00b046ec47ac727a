"""The keys every screen has (q, ?, ^c, ^p), the footers per state, the log view, the loss chart's smoothing, tab
completion, the leave question and the farewell line: what a user of k9s, lazygit or htop expects."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from test_tui_dashboard import CPU_READING, context, live_run, recorded_copy, wait_polls
from test_tui_wizard import preset_state, wizard_app
from textual.containers import VerticalScroll
from tui_support import async_test, flat, quiet_context, screen_text, wait_for, widget_text

from gptwiz.runs.lock import RunLock
from gptwiz.runs.paths import RunPaths
from gptwiz.tui.app import GptwizApp, step_screen
from gptwiz.tui.outcome import error_file, farewell_line
from gptwiz.tui.screens.base import AppScreen
from gptwiz.tui.widgets.charts import ema, even_ticks
from gptwiz.tui.widgets.device_panel import ProcessUsage, machine_cpu_fraction
from gptwiz.tui.widgets.panels import last_rows, loss_line

STEPS = ["welcome", "use_case", "hardware", "dataset", "recommendation", "probe", "launch"]


def footer(app: Any) -> str:
    return screen_text(app).rstrip("\n").splitlines()[-1]


async def show_step(pilot: Any, app: GptwizApp, tmp_path: Path, step: str) -> None:
    """`step`'s screen on top, with the answers it needs set directly (the walk itself is test_tui_wizard's)."""
    await wait_for(pilot, lambda: app.screen.id == "welcome")
    if step != "welcome":
        preset_state(app, tmp_path)
        await app.push_screen(step_screen(step))
        await pilot.pause(0.2)
    if step == "probe":  # the stand-in probe ends at once: nothing to cancel by leaving
        await wait_for(pilot, lambda: app.screen.result is not None)
    await wait_for(pilot, lambda: "help" in footer(app))  # the footer is drawn after the screen's first frame


# --- q and ? on every screen ----------------------------------------------------------------------------

@pytest.mark.parametrize("step", STEPS)
@async_test
async def test_question_mark_toggles_the_help_and_q_leaves_on_every_step(tmp_path: Path, step: str) -> None:
    app = wizard_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await show_step(pilot, app, tmp_path, step)
        shown = app.screen
        assert "quit" in footer(app) and "help" in footer(app)
        shown.set_focus(None)  # out of any text field, where q and ? would be typed
        await wait_for(pilot, lambda: "q quit" in footer(app) and "? help" in footer(app))
        await pilot.press("question_mark")
        await wait_for(pilot, lambda: app.screen.id == "help")
        body = widget_text(app.screen, "#message-body")
        assert "quit" in body and "help" in body
        if shown.HELP:
            assert " ".join(shown.HELP.split())[:40] in " ".join(body.split())
        await pilot.press("question_mark")
        await wait_for(pilot, lambda: app.screen is shown)
        shown.set_focus(None)  # back on the screen, Textual focuses its first field again
        await pilot.pause()
        await pilot.press("q")
        await wait_for(pilot, lambda: app.return_code is not None)
    assert app.return_code == 0 and app.return_value is None


@pytest.mark.parametrize("step", ["hardware", "dataset", "launch"])
@async_test
async def test_in_a_text_field_q_types_and_the_footer_offers_ctrl_q_and_f1(tmp_path: Path, step: str) -> None:
    app = wizard_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await show_step(pilot, app, tmp_path, step)
        field = app.screen.focused
        assert field is not None and field.check_consume_key("q", "q")
        before = field.value
        await pilot.press("q")
        assert field.value == before + "q" and app.return_code is None
        assert "^q quit" in footer(app) and "f1 help" in footer(app) and not re.search(r"(?<!\^)q quit", footer(app))
        await pilot.press("f1")
        await wait_for(pilot, lambda: app.screen.id == "help")
        await pilot.press("escape")
        await pilot.press("ctrl+q")
        await wait_for(pilot, lambda: app.return_code is not None)


@pytest.mark.parametrize("step", ["welcome", "use_case", "hardware", "dataset"])
@async_test
async def test_the_footer_says_what_enter_does(tmp_path: Path, step: str) -> None:
    app = wizard_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await show_step(pilot, app, tmp_path, step)
        words = {"welcome": "⏎ new model", "use_case": "⏎ choose", "hardware": "⏎ continue",
                 "dataset": "⏎ use this"}[step]
        assert words in footer(app)


@async_test
async def test_dashboard_help_fits_80x24_and_scrolls(tmp_path: Path) -> None:
    app = GptwizApp(context(tmp_path), watch=recorded_copy(tmp_path))
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_polls(pilot)
        await pilot.press("question_mark")
        await wait_for(pilot, lambda: app.screen.id == "help")
        await pilot.pause(0.1)
        text = screen_text(app)
        assert "escape / enter: close" in text  # the closing hint is on screen, under the scrolled text
        scroll = app.screen.query_one(VerticalScroll)
        assert scroll.max_scroll_y > 0
        await pilot.press("pagedown")
        await wait_for(pilot, lambda: scroll.scroll_y > 0)
        assert "quit" in flat(screen_text(app))
        await pilot.press("question_mark")
        await wait_for(pilot, lambda: app.screen.id == "dashboard")


# --- leaving: the question, ^c, the farewell ---------------------------------------------------------------

class BusyScreen(AppScreen):
    """A screen whose leave hook says leaving would cancel something, as the probe screen's does."""

    def __init__(self) -> None:
        super().__init__(id="busy")
        self.cancelled = 0

    def leave_warning(self) -> str | None:
        return "A probe is running: leaving cancels it."

    def before_leave(self) -> None:
        self.cancelled += 1


@pytest.mark.parametrize("key", ["q", "ctrl+c"])
@async_test
async def test_leaving_asks_first_when_a_screen_says_it_would_cancel_something(tmp_path: Path, key: str) -> None:
    app = wizard_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.screen.id == "welcome")
        busy = BusyScreen()
        await app.push_screen(busy)
        await pilot.press(key)
        await wait_for(pilot, lambda: "A probe is running: leaving cancels it." in screen_text(app))
        assert "Leave gptwiz anyway?" in flat(screen_text(app))
        await pilot.press("n")  # stay
        await wait_for(pilot, lambda: app.screen is busy)
        assert app.return_code is None and busy.cancelled == 0
        await pilot.press(key)
        await wait_for(pilot, lambda: "Leave gptwiz anyway?" in flat(screen_text(app)))
        await pilot.press("ctrl+c")  # a second ^c while asked: still one question
        await pilot.pause(0.1)
        assert sum(type(s).__name__ == "ConfirmScreen" for s in app.screen_stack) == 1
        await pilot.press("y")
        await wait_for(pilot, lambda: app.return_code is not None)
    assert busy.cancelled == 1


@async_test
async def test_ctrl_c_leaves_at_once_when_nothing_would_be_lost(tmp_path: Path) -> None:
    app = GptwizApp(context(tmp_path), watch=recorded_copy(tmp_path))
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_polls(pilot)
        await pilot.press("ctrl+c")
        await wait_for(pilot, lambda: app.return_code is not None)
    assert app.return_value == "demo-run"


def test_farewell_says_the_runs_real_state(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    finished = recorded_copy(tmp_path, "done")
    assert farewell_line("done", runs) == (f"left gptwiz; run done finished at iteration 60 of 60. "
                                           f"Look at it again: gptwiz watch done --runs_dir {runs}")
    stopped = recorded_copy(tmp_path, "halted")
    status = json.loads(stopped.status.read_text())
    status.update(state="stopped", iter=17)
    stopped.status.write_text(json.dumps(status))
    assert "run halted is stopped at iteration 17 of 60. Continue it: gptwiz train --model_name halted --resume" \
        in farewell_line("halted", runs)
    live = live_run(tmp_path, 5)
    lock = RunLock(live)
    lock.acquire()
    try:
        assert "run live is running at iteration 0 of 60 and goes on in the background" in farewell_line("live", runs)
    finally:
        lock.release()
    # The same folder, its trainer gone without a word: failed, and where to look.
    assert "run live failed at iteration 0 of 60" in farewell_line("live", runs)
    assert finished.root.exists()
    assert "has not written its status yet" in farewell_line("never", runs) or "is gone" in farewell_line("never", runs)


def test_a_failed_runs_error_is_in_train_log_or_console_log(tmp_path: Path) -> None:
    paths = recorded_copy(tmp_path, "broken")
    assert error_file(paths) == paths.log  # no traceback, no console.log: train.log is all there is
    (paths.root / "console.log").write_text("Traceback (most recent call last):\nImportError: no torch\n")
    assert error_file(paths) == paths.root / "console.log"  # the trainer died before logging anything
    with open(paths.log, "a") as f:
        f.write("2026-11-24 04:39:08 training failed:\nTraceback (most recent call last):\nRuntimeError: boom\n")
    assert error_file(paths) == paths.log


@async_test
async def test_a_failed_runs_dashboard_names_the_file_with_its_error(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # paths as a user sees them: runs/NAME/...
    recorded_copy(tmp_path, "broken")
    paths = RunPaths(Path("runs") / "broken")
    status = json.loads(paths.status.read_text())
    status.update(state="failed", error="RuntimeError: boom")
    paths.status.write_text(json.dumps(status))
    with open(paths.log, "a") as f:
        f.write("2026-11-24 04:39:08 training failed:\nTraceback (most recent call last):\nRuntimeError: boom\n")
    app = GptwizApp(quiet_context(Path("runs")), watch=paths)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: "the whole error:" in screen_text(app))
        assert "the whole error: runs/broken/train.log" in screen_text(app)
        assert "stop" not in footer(app)


# --- the dashboard's footer per state --------------------------------------------------------------------

@async_test
async def test_a_running_dashboard_offers_stop_and_a_finished_one_does_not(tmp_path: Path) -> None:
    paths = live_run(tmp_path, 10)
    lock = RunLock(paths)
    lock.acquire()
    try:
        app = GptwizApp(context(tmp_path, CPU_READING, poll_interval_s=0.05), watch=paths)
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_for(pilot, lambda: app.screen.snapshot is not None and app.screen.snapshot.state == "running")
            await pilot.pause(0.1)
            assert "s stop" in footer(app) and "q leave (run goes on)" in footer(app) and "e smooth" in footer(app)
            status = json.loads(paths.status.read_text())
            status.update(state="finished", iter=60)
            paths.status.write_text(json.dumps(status))  # it ends while watched
            await wait_for(pilot, lambda: app.screen.snapshot.state == "finished")
            await pilot.pause(0.1)
            assert "stop" not in footer(app) and "q quit" in footer(app) and "goes on" not in footer(app)
            await pilot.press("s")  # nothing to stop: no question
            await pilot.pause(0.1)
            assert app.screen.id == "dashboard"
    finally:
        lock.release()


# --- the log view ----------------------------------------------------------------------------------------

@async_test
async def test_the_log_view_follows_a_growing_log_unless_scrolled_up(tmp_path: Path) -> None:
    paths = recorded_copy(tmp_path)
    app = GptwizApp(context(tmp_path, poll_interval_s=0.05), watch=paths)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_polls(pilot)
        await pilot.press("l")
        await wait_for(pilot, lambda: app.screen.id == "log-view" and app.screen.lines_read > 0)
        view = app.screen
        first = view.lines_read
        assert "finished at iteration 60" in screen_text(app)
        with open(paths.log, "a") as f:
            f.writelines(f"2026-11-24 05:00:{i:02d} line {i} of a long log\n" for i in range(60))
        await wait_for(pilot, lambda: view.lines_read == first + 60)
        await pilot.pause(0.1)
        log = view.query_one("#log-view-text")
        assert "line 59 of a long log" in screen_text(app) and log.scroll_y == log.max_scroll_y  # at the end
        log.scroll_home(animate=False)
        await pilot.pause(0.1)
        with open(paths.log, "a") as f:
            f.write("2026-11-24 05:01:00 one more\n")
        await wait_for(pilot, lambda: view.lines_read == first + 61)
        await pilot.pause(0.1)
        assert log.scroll_y == 0 and "one more" not in screen_text(app)  # scrolled up: it stays put
        await pilot.press("end")
        await wait_for(pilot, lambda: "one more" in screen_text(app))
        await pilot.press("tab")  # console.log: not there in this folder
        await wait_for(pilot, lambda: "console.log" in screen_text(app) and "not there yet" in screen_text(app))
        (paths.root / "console.log").write_text("iter 1: loss 10.8\n")
        await wait_for(pilot, lambda: "iter 1: loss 10.8" in screen_text(app))
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen.id == "dashboard")


def test_the_log_panel_shows_the_newest_line_whole_when_lines_wrap() -> None:
    lines = ["old line " * 3, "x" * 10, "2026-11-24 04:39:07 finished at iteration 60, best val loss 8.1727"]
    rows = last_rows(lines, 40, 3)
    assert len(rows) == 3 and rows[0] == "x" * 10 and rows[-1].endswith("8.1727") and "finished" in rows[1]
    assert last_rows(["short", "new"], 40, 3) == ["short", "new"]
    assert last_rows(["a " * 100], 10, 3) == ["a a a a a", "a a a a a", "a a a a a"]  # alone and too tall: its start


# --- the loss chart ---------------------------------------------------------------------------------------

@async_test
async def test_e_smooths_the_train_loss_and_the_palette_finds_it(tmp_path: Path) -> None:
    app = GptwizApp(context(tmp_path), watch=recorded_copy(tmp_path))
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_polls(pilot)
        chart = app.screen.query_one("#loss-chart")
        assert "e smooth" in footer(app) and not chart.smoothing
        await pilot.press("e")
        assert chart.smoothing and "train (EMA)" in screen_text(app)
        await pilot.press("ctrl+p")
        await pilot.pause(0.3)
        await pilot.press(*"smooth")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await wait_for(pilot, lambda: not chart.smoothing)
        assert app.screen.id == "dashboard"


def test_ema_and_even_ticks() -> None:
    assert ema([10.0, 0.0, 0.0], 0.5) == [10.0, 5.0, 2.5]
    ticks, labels, low, high = even_ticks(8.17, 10.9)
    steps = {round(b - a, 9) for a, b in zip(ticks, ticks[1:])}
    assert len(steps) == 1 and low <= 8.17 and high >= 10.9 and labels == ["8", "9", "10", "11"]
    ticks, labels, _, _ = even_ticks(3.1, 3.9, n=6)
    assert labels == ["3.0", "3.2", "3.4", "3.6", "3.8", "4.0"]
    assert even_ticks(2.0, 2.0)[0]  # a flat loss still gets an axis
    # never more ticks than rows: two on one row would leave which label shows to chance
    assert even_ticks(7.972, 10.848, n=3)[1] == ["7.5", "10.0", "12.5"]
    for low, high in ((7.972, 10.848), (3.1, 3.9), (0.02, 11.0), (5.0, 5.0), (1e-4, 3e-4)):
        for n in range(2, 7):
            ticks, _, first, last = even_ticks(low, high, n)
            assert 2 <= len(ticks) <= n and first <= low and last >= high, (low, high, n, ticks)


def test_val_is_best_val_at_every_width() -> None:
    for width in range(18, 40):
        line = loss_line(10.8934, 10.9512, width)
        assert "best val" in line and (len(line) <= width or width < 23)
    assert loss_line(8.1295, 8.1727, 30) == "loss 8.1295 best val 8.1727"


def test_cpu_is_a_share_of_the_machine() -> None:
    usage = ProcessUsage(pid=1, cpu_pct=180.0, rss_bytes=0, ram_total_bytes=1, ram_available_bytes=1, cpu_count=2)
    assert machine_cpu_fraction(usage) == pytest.approx(0.9)


@async_test
async def test_a_command_on_screen_folds_between_arguments_and_pastes_as_one() -> None:
    from textual.app import App, ComposeResult

    from gptwiz.tui.widgets.command import CommandLine

    command = ("gptwiz train --config_file small --model_name prototype-small --input_file /data/blog.txt "
               "--max_iters 5000 --batch_size 32 --block_size 256 --learning_rate 0.0003 --runs_dir '/tmp/my runs'")

    class One(App[None]):
        def compose(self) -> ComposeResult:
            yield CommandLine(command, id="cmd")

    app = One()
    async with app.run_test(size=(50, 12)) as pilot:
        await pilot.pause(0.1)
        lines = widget_text(app.screen, "#cmd").splitlines()
    assert all(len(line) <= 50 for line in lines) and len(lines) > 2
    assert all(line.endswith(" \\") for line in lines[:-1])
    assert any("--block_size 256" in line for line in lines)  # a flag keeps its value
    # Pasted into a shell, the folded lines are the one command, each argument whole.
    echo = f"{shlex.quote(sys.executable)} -c 'import json, sys; print(json.dumps(sys.argv[1:]))' "
    out = subprocess.run(["bash", "-c", echo + "\n".join(lines)], capture_output=True, text=True, check=True).stdout
    assert json.loads(out) == shlex.split(command)


# --- the dataset step: tab completes ----------------------------------------------------------------------

@async_test
async def test_tab_completes_the_path_as_a_shell_does(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "corpus.txt").write_text("hello " * 100)
    (tmp_path / "corpus2.txt").write_text("hello " * 100)
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "only.md").write_text("# one")
    app = wizard_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        app.wizard.use_case = "testing"
        await app.push_screen(step_screen("dataset"))
        await wait_for(pilot, lambda: app.screen.id == "dataset")
        path = app.screen.query_one("#path")
        await pilot.press("c", "o", "tab")
        assert path.value == "corpus"  # what both names share
        await pilot.press("tab")
        await wait_for(pilot, lambda: "2 names start so: corpus.txt  corpus2.txt" in screen_text(app))
        await pilot.press("2", "tab")
        assert path.value == "corpus2.txt"
        path.value = "do"
        await pilot.press("tab")
        assert path.value == "docs/"
        await pilot.press("tab")
        assert path.value == "docs/only.md"
        await wait_for(pilot, lambda: app.screen.inspections > 0 and "1 file" in flat(screen_text(app)))


def test_screens_all_share_the_leave_hook() -> None:
    for step in STEPS:
        assert isinstance(step_screen(step), AppScreen)
    from gptwiz.tui.screens.dashboard import DashboardScreen

    assert issubclass(DashboardScreen, AppScreen)
