"""`gptwiz wizard --plain`: the same questions as plain prompts, ending in the same probe and launch."""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from test_tui_cli import _pty_run
from test_tui_wizard import CPU_ONLY, GTX_1660, FakeProbe, probe_result, text_file

from gptwiz.plain import PlainWizard
from gptwiz.wizard.state import WizardState


class Scripted:
    """Answers the prompts in order; each answer is checked against the question it meets."""

    def __init__(self, *answers: tuple[str, Any]):
        self.answers = list(answers)
        self.asked: list[str] = []

    def _next(self, message: str) -> Any:
        self.asked.append(message)
        assert self.answers, f"no scripted answer left for {message!r}"
        fragment, answer = self.answers.pop(0)
        assert fragment in message, (fragment, message)
        return answer

    def select(self, message: str, choices: Sequence[tuple[str, str]], default: str | None = None) -> str:
        answer = self._next(message)
        assert answer in [value for value, _ in choices], (answer, choices)
        return answer

    def text(self, message: str, default: str = "", validate: Callable[[str], str | None] | None = None) -> str:
        answer = self._next(message)
        answer = default if answer is None else answer
        if validate is not None:
            assert validate(answer) is None, validate(answer)
        return answer

    def confirm(self, message: str, default: bool = True) -> bool:
        return bool(self._next(message))


def run_plain(tmp_path: Path, hardware: Any, answers: list[tuple[str, Any]], probe: Any = None) -> tuple[PlainWizard, str, list]:
    launched: list[tuple[list[str], str]] = []
    out = io.StringIO()
    wizard = PlainWizard(WizardState(runs_dir=tmp_path / "runs", data_dir=tmp_path / "data"), Scripted(*answers),
                         Console(file=out, width=100), detect_hardware=lambda: hardware, run_probe=probe or FakeProbe(),
                         probe_iters=20, launch=lambda args, name: launched.append((args, name)) or 0)
    assert wizard.run() == 0
    assert not wizard.ask.answers, f"unused answers: {wizard.ask.answers}"
    return wizard, out.getvalue(), launched


def test_plain_wizard_guide_example_1_probe_advice_then_launch(tmp_path: Path) -> None:
    blog = text_file(tmp_path, "blog_posts.txt", 5_000_000)
    probe = FakeProbe()
    wizard, out, launched = run_plain(tmp_path, GTX_1660, [
        ("What will the model be for?", "prototype"),
        ("Plan for a GPU", ""),
        ("What should it learn from?", "path"),
        ("Path, folder or glob", str(blog)),
        ("The settings", "ok"),
        ("probe first", True),
        ("Apply a piece of advice", "0"),      # the stand-in probe says: raise the learning rate
        ("probe first", True),                  # probes again with it: pass
        ("Name of the run", "my_blog_model"),
        ("Start the training now", True),
    ], probe)
    out = " ".join(out.split())
    assert "Recommended: small" in out and "text file: 1 file, 5.0 MB" in out
    assert [c.learning_rate for c in probe.calls] == [3e-4, 9e-4]
    (args, name), = launched
    assert name == "my_blog_model" and args[:3] == ["train", "--config_file", "small"]
    assert args[args.index("--learning_rate") + 1] == "0.0009" and args[args.index("--input_file") + 1] == str(blog)


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
        ("The settings", "ok"),
        ("probe first", True),
        ("Apply a piece of advice", "0"),      # the batch the probe fell back to, as in the app
        ("probe first", True),
        ("Name of the run", None),
        ("Start the training now", True),
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
        ("The settings", "alt:tiny"),
        ("The settings", "knobs"),
        ("context length", "64"),
        ("batch size", "4"),
        ("learning rate", None),               # keep
        ("max iterations", "200"),
        ("The settings", "ok"),
        ("probe first", False),
        ("Name of the run", None),              # the default name
        ("Start the training now", True),
    ])
    out = " ".join(out.split())  # rich wraps long lines at the console's width
    assert "no such file or folder" in out and "CPU training is for learning and testing" in out
    (args, name), = launched
    assert name == "testing-tiny"
    for flag, value in (("--config_file", "tiny"), ("--block_size", "64"), ("--batch_size", "4"), ("--max_iters", "200")):
        assert args[args.index(flag) + 1] == value


def test_plain_mode_runs_on_a_dumb_terminal_and_ctrl_c_cancels(tmp_path: Path) -> None:
    code, out = _pty_run([], tmp_path, b"\x03", b"What will the model be for?", timeout=60, term="dumb")
    assert code == 130 and b"Testing/Learning" in out and b"gptwiz: cancelled" in out
    code, out = _pty_run(["wizard", "--plain"], tmp_path, b"\x03", b"What will the model be for?", timeout=60)
    assert code == 130 and b"Document RAG" in out
