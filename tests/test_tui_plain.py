"""`gptwiz wizard --plain`: the same questions as plain prompts, ending in the same probe and launch."""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from test_tui_cli import _pty_run
from test_tui_wizard import CPU_ONLY, GTX_1660, FakeProbe, probe_result, text_file

from gptwiz.plain import BACK, PlainWizard
from gptwiz.planning.presets import load_preset
from gptwiz.wizard.state import WizardState

# The stand-in probe advises a higher rate below twice small's own, so the recommended rate gets advice.
SMALLS_RATE = load_preset("small").train.learning_rate


class Scripted:
    """Answers the prompts in order; each answer is checked against the question it meets."""

    def __init__(self, *answers: tuple[str, Any]):
        self.answers = list(answers)
        self.asked: list[str] = []
        self.menus: list[tuple[str, Sequence[tuple[str, str]]]] = []

    def _next(self, message: str) -> Any:
        self.asked.append(message)
        assert self.answers, f"no scripted answer left for {message!r}"
        fragment, answer = self.answers.pop(0)
        assert fragment in message, (fragment, message)
        return answer

    def select(self, message: str, choices: Sequence[tuple[str, str]], default: str | None = None) -> str:
        self.menus.append((message, choices))
        answer = self._next(message)
        assert answer in [value for value, _ in choices], (answer, choices)
        return answer

    def text(self, message: str, default: str = "", validate: Callable[[str], str | None] | None = None) -> str:
        answer = self._next(message)
        answer = default if answer is None else answer
        if validate is not None and answer != BACK:  # the real prompters never validate a way back
            assert validate(answer) is None, validate(answer)
        return answer



def run_plain(tmp_path: Path, hardware: Any, answers: list[tuple[str, Any]], probe: Any = None,
              width: int = 100) -> tuple[PlainWizard, str, list]:
    launched: list[tuple[list[str], str]] = []
    out = io.StringIO()
    wizard = PlainWizard(WizardState(runs_dir=tmp_path / "runs", data_dir=tmp_path / "data"), Scripted(*answers),
                         Console(file=out, width=width), detect_hardware=lambda: hardware, run_probe=probe or FakeProbe(below=SMALLS_RATE * 2),
                         probe_iters=20, launch=lambda args, name: launched.append((args, name)) or 0)
    assert wizard.run() == 0
    assert not wizard.ask.answers, f"unused answers: {wizard.ask.answers}"
    return wizard, out.getvalue(), launched


def test_plain_wizard_guide_example_1_probe_advice_then_launch(tmp_path: Path) -> None:
    blog = text_file(tmp_path, "blog_posts.txt", 5_000_000)
    probe = FakeProbe(below=SMALLS_RATE * 2)
    wizard, out, launched = run_plain(tmp_path, GTX_1660, [
        ("What will the model be for?", "prototype"),
        ("Plan for a GPU", ""),
        ("What should it learn from?", "path"),
        ("Path, folder or glob", str(blog)),
        ("Which tokenizer?", "gpt2"),
        ("The settings", "ok"),
        ("probe first", "yes"),
        ("Apply a piece of advice", "0"),      # the stand-in probe says: raise the learning rate
        ("Probe the new settings", "yes"),      # probes again with it: pass
        ("Name of the run", "my_blog_model"),
        ("Start the training now", "yes"),
    ], probe)
    out = " ".join(out.split())
    assert "Recommended: small" in out and "text file: 1 file, 5.0 MB" in out
    assert [c.learning_rate for c in probe.calls] == [1e-3, pytest.approx(3e-3)]
    (args, name), = launched
    assert name == "my_blog_model" and args[:3] == ["train", "--config_file", "small"]
    assert args[args.index("--learning_rate") + 1] == "0.003" and args[args.index("--input_file") + 1] == str(blog)


class OutOfMemoryAbove8(FakeProbe):
    """Out of memory above a micro-batch of 8: like the real probe, it ends at 8 with more accumulation."""

    def __call__(self, opts, on_progress, should_cancel):
        self.calls.append(opts)
        accum = opts.grad_accum or 1
        if opts.batch_size > 8:
            return probe_result(opts, "pass", [], [10.0, 9.5, 9.0], batch_size=8, grad_accum=accum * opts.batch_size // 8)
        return probe_result(opts, "pass", [], [10.0, 9.5, 9.0])


def test_plain_wizard_offers_the_batch_that_fit_after_out_of_memory(tmp_path: Path) -> None:
    blog = text_file(tmp_path, "blog_posts.txt", 5_000_000)
    probe = OutOfMemoryAbove8()
    wizard, out, launched = run_plain(tmp_path, GTX_1660, [
        ("What will the model be for?", "prototype"),
        ("Plan for a GPU", ""),
        ("What should it learn from?", "path"),
        ("Path, folder or glob", str(blog)),
        ("Which tokenizer?", "gpt2"),
        ("The settings", "ok"),
        ("probe first", "yes"),
        ("Apply a piece of advice", "0"),      # the batch the probe fell back to, as in the app
        ("Probe the new settings", "yes"),
        ("Name of the run", None),
        ("Start the training now", "yes"),
    ], probe)
    first, second = probe.calls
    assert first.batch_size > 8 and (second.batch_size, second.grad_accum) == (8, first.grad_accum * first.batch_size // 8)
    assert wizard.state.history and str(wizard.state.history[0]).endswith("(the batch that fit in memory)")
    (args, _), = launched
    assert args[args.index("--batch_size") + 1] == "8"


def test_plain_wizard_switches_to_an_alternative_and_edits_knobs(tmp_path: Path) -> None:
    text_file(tmp_path, "notes.txt", 1_000_000)
    wizard, out, launched = run_plain(tmp_path, CPU_ONLY, [
        ("What will the model be for?", "testing"),
        ("Plan for a GPU", ""),
        ("What should it learn from?", "path"),
        ("Path, folder or glob", str(tmp_path / "missing.txt")),  # a typo: asked again
        ("What should it learn from?", "path"),
        ("Path, folder or glob", str(tmp_path / "notes.txt")),
        ("Which tokenizer?", "gpt2"),
        ("The settings", "alt:tiny"),
        ("The settings", "knobs"),
        ("context length", "64"),
        ("batch size", "4"),
        ("learning rate", None),               # keep
        ("max iterations", "200"),
        ("The settings", "ok"),
        ("probe first", "no"),
        ("Name of the run", None),              # the default name
        ("Start the training now", "yes"),
    ])
    out = " ".join(out.split())  # rich wraps long lines at the console's width
    assert "no such file or folder" in out and "CPU training is for learning and testing" in out
    (args, name), = launched
    assert name == "testing-tiny"
    for flag, value in (("--config_file", "tiny"), ("--block_size", "64"), ("--batch_size", "4"), ("--max_iters", "200")):
        assert args[args.index(flag) + 1] == value


def test_plain_mode_runs_on_a_dumb_terminal_and_ctrl_c_cancels(tmp_path: Path) -> None:
    # A dumb terminal gets line-by-line questions; end of input (Ctrl-D) cancels like Ctrl-C. (The test's
    # terminal is not the process's controlling one, so Ctrl-C there would raise no SIGINT.)
    code, out = _pty_run([], tmp_path, b"\x04", b"number (1-", timeout=60, term="dumb")
    assert code == 130 and b"Testing/Learning" in out and b"gptwiz: cancelled" in out
    code, out = _pty_run(["wizard", "--plain"], tmp_path, b"\x03", b"What will the model be for?", timeout=60)
    assert code == 130 and b"Document RAG" in out


def test_plain_mode_writes_no_escape_codes_on_a_dumb_terminal_or_with_no_color(tmp_path: Path) -> None:
    code, out = _pty_run([], tmp_path, b"\x04", b"number (1-", timeout=60, term="dumb")
    assert code == 130 and b"1) Testing/Learning" in out
    assert b"\x1b" not in out, out[:400]
    code, out = _pty_run(["wizard", "--plain"], tmp_path, b"\x04", b"number (1-", timeout=60,
                         extra_env={"NO_COLOR": "1"})
    assert code == 130 and b"Document RAG" in out
    assert b"\x1b" not in out, out[:400]


def test_plain_wizard_goes_back_from_every_question(tmp_path: Path) -> None:
    notes = text_file(tmp_path, "notes.txt", 1_000_000)
    wizard, out, launched = run_plain(tmp_path, CPU_ONLY, [
        ("What will the model be for?", "testing"),
        ("Plan for a GPU", ""),
        ("What should it learn from?", BACK),               # back to the hardware question
        ("Plan for a GPU", BACK),                           # back to the use case
        ("What will the model be for?", "prototype"),
        ("Plan for a GPU", ""),
        ("What should it learn from?", "path"),
        ("Path, folder or glob", BACK),                     # back to the kind of data
        ("What should it learn from?", "path"),
        ("Path, folder or glob", str(notes)),
        ("Which tokenizer?", BACK),                         # back to the kind of data
        ("What should it learn from?", "path"),
        ("Path, folder or glob", str(notes)),
        ("Which tokenizer?", "gpt2"),
        ("The settings", BACK),                             # back to the dataset
        ("What should it learn from?", "path"),
        ("Path, folder or glob", str(notes)),
        ("Which tokenizer?", "gpt2"),
        ("The settings", "knobs"),
        ("context length", "64"),
        ("batch size", BACK),                               # abandons the edit: the settings as they were
        ("The settings", "ok"),
        ("probe first", BACK),                              # back to the settings
        ("The settings", "ok"),
        ("probe first", "yes"),
        ("Apply a piece of advice", "no"),
        ("Name of the run", BACK),                          # back to the probe: already done, not run again
        ("probed already", "no"),
        ("Name of the run", "back_and_forth"),
        ("Start the training now", BACK),                   # back to the name
        ("Name of the run", None),                          # the name typed before is the default now
        ("Start the training now", "yes"),
    ])
    assert wizard.state.use_case == "prototype"
    assert len(wizard.run_probe.calls) == 1
    (args, name), = launched
    assert name == "back_and_forth" and args[args.index("--input_file") + 1] == str(notes)
    assert args[args.index("--block_size") + 1] == "256"  # the abandoned edit left the preset's context


def test_plain_wizard_lines_and_menus_fit_80_columns(tmp_path: Path) -> None:
    blog = text_file(tmp_path, "blog_posts.txt", 5_000_000)
    wizard, out, _ = run_plain(tmp_path, GTX_1660, [
        ("What will the model be for?", "domain"),
        ("Plan for a GPU", ""),
        ("What should it learn from?", "path"),
        ("Path, folder or glob", str(blog)),
        ("Which tokenizer?", "gpt2"),
        ("The settings", "ok"),
        ("probe first", "no"),
        ("Name of the run", None),
        ("Start the training now", "no"),
    ], width=80)
    too_long = [line for line in out.splitlines() if len(line) > 80]
    assert not too_long, too_long
    # the two phases of the domain path, as the app lists them
    assert "Phases (this wizard launches the first):" in out and "phase 2: domain adaptation" in out
    # questionary draws a menu line as "   " plus the title: a title over the width breaks the menu's drawing
    wide = [title for _, choices in wizard.ask.menus for _, title in choices if len(title) > 76]
    assert not wide, wide


def test_line_prompter_numbers_defaults_back_and_retries() -> None:
    from gptwiz.plain import Cancelled, LinePrompter

    answers = iter(["7", "", "2", "<", "x", "abc", "", "<"])
    out = io.StringIO()
    ask = LinePrompter(read=lambda prompt: next(answers), out=out)
    choices = [("a", "first"), ("b", "second")]
    assert ask.select("Pick one", choices, default="a") == "a"   # "7" refused, then Enter: the default
    assert "'7' is not one of the numbers 1 to 2" in out.getvalue() and "1) first  (default)" in out.getvalue()
    assert ask.select("Pick one", choices) == "b"
    assert ask.select("Pick one", [*choices, (BACK, "back")]) == BACK
    assert ask.text("Name", validate=lambda v: None if v.isalpha() and len(v) > 1 else "letters, please") == "abc"
    assert "letters, please" in out.getvalue()
    assert ask.text("Name", default="dflt") == "dflt"
    assert ask.text("Name") == BACK
    with pytest.raises(Cancelled):
        LinePrompter(read=lambda prompt: (_ for _ in ()).throw(EOFError()), out=out).text("Name")


def test_plain_wizard_shows_the_times_and_recomputes_warnings_for_an_alternative(tmp_path: Path) -> None:
    from test_timing import throughput

    notes = text_file(tmp_path, "notes.txt", 1_000_000)
    measured: list[tuple[str, str]] = []
    out = io.StringIO()
    wizard = PlainWizard(WizardState(runs_dir=tmp_path / "runs", data_dir=tmp_path / "data"), Scripted(
        ("What will the model be for?", "prototype"),
        ("Plan for a GPU", ""),
        ("What should it learn from?", "path"),
        ("Path, folder or glob", str(notes)),
        ("Which tokenizer?", "gpt2"),
        ("The settings", "alt:tiny"),
        ("The settings", "ok"),
        ("probe first", "no"),
        ("Name of the run", None),
        ("Start the training now", "no"),
    ), Console(file=out, width=100), detect_hardware=lambda: CPU_ONLY, run_probe=FakeProbe(), probe_iters=20,
        launch=lambda args, name: 0, measure_throughput=lambda d, t: measured.append((d, t)) or throughput(d, t))
    assert wizard.run() == 0
    text = " ".join(out.getvalue().split())
    assert measured == [("cpu", "float32")]  # measured once, for the device and dtype the run will use
    times = re.findall(r"time: probe about (\S+), run about (\S+) \(([\d,]+) iterations\)", text)
    assert len(times) == 2 and times[0] != times[1]  # the pick, then tiny: each its own prediction
    assert wizard.state.recommendation.knobs.preset == "tiny" and wizard.state.knobs.preset == "tiny"
