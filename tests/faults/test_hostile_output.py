"""A model whose output is terminal control sequences (tests/faults/hostile_checkpoint.py: OSC 52 writing the
clipboard, CSI 2J clearing the screen, BEL, the C1 character U+009B): `gptwiz sample` and `gptwiz chat` on a
terminal show its text with the controls dropped, `--raw` gives it exactly, a pipe and `--json` keep their forms;
the dashboard (its header, its `g` sample, its exit line) draws a hostile run folder and that model's text inert."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import run_cli
from tui_support import async_test, quiet_context, screen_text, wait_for

from faults.hostile import hostile_run, on_terminal, raw_controls
from faults.hostile_checkpoint import make_control_emitting_checkpoint
from faults.support import TEMPLATE_RUN, fault_env

# What gptwiz itself may write to a terminal: SGR styling (ESC [ ... m) and, from Textual's renderer, cursor moves.
OWN_SEQUENCES = re.compile(r"\x1b\[[0-9;]*[mH]|\x1b\[\?2004[hl]")


def _foreign_controls(output: bytes) -> list[str]:
    """The control characters in `output` that are not part of gptwiz's own styling."""
    return raw_controls(OWN_SEQUENCES.sub("", output.decode("utf-8", "replace")))


@pytest.fixture
def hostile_model(trained_copy: Path) -> Path:
    """The trained copy, its model rewritten to emit CONTROL_SEQUENCE round and round."""
    make_control_emitting_checkpoint(trained_copy / "runs" / TEMPLATE_RUN)
    return trained_copy


SAMPLE = ["sample", "--model_name", TEMPLATE_RUN, "--max_new_tokens", "30", "--seed", "1"]


def test_sample_on_a_terminal_drops_the_controls_and_raw_keeps_them(hostile_model: Path, report) -> None:
    shown, _ = on_terminal(SAMPLE, hostile_model)
    raw, _ = on_terminal([*SAMPLE, "--raw"], hostile_model)
    assert b"\x1b]52;c;aGk=\x07" in raw and b"\x1b[2J" in raw and "\x9b".encode() in raw, raw  # the model's own
    assert _foreign_controls(shown) == [], shown
    assert b"]52;c;aGk=" in shown and b"[2J" in shown, shown  # only the control characters were dropped
    report("a checkpoint whose model writes OSC 52, CSI 2J, BEL and U+009B, sampled on a terminal "
           "(`sample`, and `sample --raw`)", 2,
           "on a terminal the controls are dropped and the rest of the text shown; --raw writes them as generated")


def test_sample_through_a_pipe_and_as_json_keeps_its_forms(hostile_model: Path, report) -> None:
    piped = subprocess.run([sys.executable, "-m", "gptwiz", *SAMPLE], cwd=hostile_model, env=fault_env(),
                           capture_output=True, timeout=120)
    assert piped.returncode == 0, piped.stderr
    assert b"\x1b]52;c;aGk=\x07" in piped.stdout, piped.stdout  # a pipe gets the text as generated, as before
    proc = run_cli([*SAMPLE, "--json"], cwd=hostile_model, env=fault_env())
    assert proc.returncode == 0, proc.stderr
    assert raw_controls(proc.stdout) == [], proc.stdout  # JSON escapes every control character
    text = json.loads(proc.stdout)["text"]
    assert "\x1b]52;c;aGk=\x07" in text and "\x9b" in text, text  # ... and loses none of them
    report("the control-emitting model sampled through a pipe and with --json", 2,
           "a pipe gets the text as generated (unchanged); --json escapes every control character, the text intact")


CHAT = ["chat", TEMPLATE_RUN, "--max_new_tokens", "30", "--seed", "1"]


def test_chat_on_a_terminal_drops_the_controls_and_raw_keeps_them(hostile_model: Path, report) -> None:
    shown, _ = on_terminal(CHAT, hostile_model, [b"hi\n"])
    assert b"tokens/s" in shown and b"]52;c;aGk=" in shown, shown
    assert _foreign_controls(shown) == [], shown
    raw, _ = on_terminal([*CHAT, "--raw"], hostile_model, [b"hi\n"])
    assert b"\x1b]52;c;aGk=\x07" in raw and b"\x1b[2J" in raw, raw
    report("the control-emitting model in an interactive `chat` on a terminal (and with --raw)", 2,
           "the streamed answer has its controls dropped; --raw streams them as generated")


def test_chat_through_a_pipe_and_as_json_stays_escaped(hostile_model: Path, report) -> None:
    proc = subprocess.run([sys.executable, "-m", "gptwiz", *CHAT], cwd=hostile_model, env=fault_env(),
                          input=b"hi\n", capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert raw_controls(proc.stdout) == [] and b"\\x1b]52;c;aGk=\\x07" in proc.stdout, proc.stdout
    as_json = subprocess.run([sys.executable, "-m", "gptwiz", *CHAT, "--json"], cwd=hostile_model, env=fault_env(),
                             input=b"hi\n", capture_output=True, timeout=120)
    assert as_json.returncode == 0 and raw_controls(as_json.stdout) == [], as_json.stdout
    assert "\x1b]52;c;aGk=\x07" in json.loads(as_json.stdout)["response"]
    report("the control-emitting model in `chat` through a pipe and with --json", 2,
           "one line an answer with the controls escaped (\\x1b), as before; --json escapes them, the text intact")


def _terminal_output(app: object) -> bytes:
    """What the app's screen would write to a terminal: the compositor's full update, rendered with styling."""
    import io

    from rich.console import Console

    width, height = app.size  # type: ignore[attr-defined]
    out = io.StringIO()
    console = Console(width=width, height=height, file=out, force_terminal=True, color_system="truecolor",
                      legacy_windows=False, safe_box=False)
    console.print(app.screen._compositor.render_update(full=True,  # type: ignore[attr-defined]
                                                       screen_stack=app._background_screens))  # type: ignore
    return out.getvalue().encode("utf-8")


@async_test
async def test_the_dashboard_draws_a_hostile_run_and_its_samples_inert(trained_copy: Path, report) -> None:
    from gptwiz.runs.paths import RunPaths
    from gptwiz.tui.app import GptwizApp
    from gptwiz.tui.outcome import farewell_line

    run = hostile_run(trained_copy)
    make_control_emitting_checkpoint(run)
    paths = RunPaths(run)
    app = GptwizApp(quiet_context(run.parent), watch=paths)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: app.screen.id == "dashboard" and app.screen.polls > 0)
        header = _terminal_output(app)
        assert _foreign_controls(header) == [], header
        assert "boom" in screen_text(app), screen_text(app)
        await pilot.press("g")
        await wait_for(pilot, lambda: app.screen.id == "sample-view")
        await wait_for(pilot, lambda: "generating" not in screen_text(app), timeout=120)
        sampled = _terminal_output(app)
        assert "could not sample" not in screen_text(app), screen_text(app)
        assert "52;c;aGk=" in screen_text(app), screen_text(app)  # the model's text is there, its controls not
        assert _foreign_controls(sampled) == [], sampled
    farewell = farewell_line(run.name, run.parent)
    assert raw_controls(farewell) == [] and "boom" in farewell, farewell
    report("a run folder whose name, status error and preset hold OSC 52/OSC 0/CSI 2J/BEL/C1, with the "
           "control-emitting model, on the dashboard: its header, `g`'s sample, the exit line", 3,
           "every screen rendered as a terminal would get it holds no ESC/BEL/C1 but gptwiz's own styling")
