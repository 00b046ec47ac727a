"""The plain wizard: the app's steps as questions, one at a time, in gptwiz.wizard.flow's order.

Same answers, same WizardState, same modules behind it as the app: it ends in the same probe and the same
detached launch. Every question but the first offers a way back to the one before; the prompts go through a
`Prompter` (gptwiz.plain.prompts), so the flow is tested with scripted answers. The longer steps have modules of
their own: settings (the recommendation and the knobs), probing, launching.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console

from gptwiz.common.errors import UsageError
from gptwiz.common.rich_text import outside_markup
from gptwiz.plain.launching import Launch, launch_in_background, name_and_start, runs_flag
from gptwiz.plain.probing import ProbeStep, RunProbe, default_probe
from gptwiz.plain.prompts import BACK, Cancelled, LinePrompter, Prompter, QuestionaryPrompter, plain_output
from gptwiz.plain.settings import SettingsStep
from gptwiz.plain.talk import Talk
from gptwiz.planning.hardware import detect_hardware as detect_this_machine
from gptwiz.runs.listing import list_runs
from gptwiz.wizard.flow import back_step, next_step
from gptwiz.wizard.services import (
    apply_hardware_answer,
    gpu_choices,
    hardware_lines,
    measure_throughput,
    parse_hardware_answer,
    use_cases,
)
from gptwiz.wizard.state import DatasetChoice, WizardState, inspect_dataset, prepared_dir_for
from gptwiz.wizard.tokenizer_offer import tokenizer_offer, with_tokenizer

DEMO = "demo"
CANCELLED = 130


class PlainWizard:
    def __init__(self, state: WizardState, prompter: Prompter, console: Any,
                 detect_hardware: Callable[[], Any] | None = None,
                 run_probe: RunProbe | None = None, probe_iters: int = 100,
                 launch: Launch | None = None,
                 measure_throughput: Callable[[str, str], Any] | None = None):
        self.state = state
        self.talk = Talk(prompter, console)
        self.detect_hardware = detect_hardware or detect_this_machine
        self.run_probe = run_probe
        self.probe_iters = probe_iters
        self.launch = launch or self._launch
        self.exit_code = 0
        self.settings = SettingsStep(self.talk, state, probe_iters, measure_throughput)
        self.probing = ProbeStep(self.talk, state, run_probe or default_probe, probe_iters)

    @property
    def ask(self) -> Prompter:
        return self.talk.ask

    @property
    def console(self) -> Any:
        return self.talk.console

    # -- the steps, as gptwiz.wizard.flow leads (the app's order) --

    def run(self) -> int:
        steps: dict[str, Callable[[], str]] = {
            "welcome": self.welcome, "use_case": self.choose_use_case, "hardware": self.choose_hardware,
            "dataset": self.choose_dataset, "recommendation": self.settings.run, "probe": self.probing.run,
            "launch": self.start}
        visited = ["welcome"]
        while True:
            move = steps[visited[-1]]()
            if move == "done":
                return self.exit_code
            if move == "back":
                if back_step(visited) is not None:
                    visited.pop()
                continue
            visited.append(next_step(visited[-1], self.state, move))

    def welcome(self) -> str:
        say = self.talk.say
        say("[bold]gptwiz[/]: pick a GPT model size for your use case, hardware and data, probe it, "
            "then train it in the background.")
        rows = list_runs(self.state.runs_dir)
        for r in rows[:10]:
            say(outside_markup(f"  {r.name_text:24} {r.state_text:9} {r.progress_text:>18}  loss {r.loss_text}"))
            if r.unreadable:
                say(f"    [red]unreadable: {outside_markup(r.unreadable)}[/]")
        if rows:
            say(f"  (watch one with: gptwiz watch NAME{runs_flag(self.state.runs_dir)})")
        return "next"

    def choose_use_case(self) -> str:
        cases = use_cases()
        # The first question: nothing before it to go back to (Ctrl-C leaves).
        self.state.use_case = self.talk.select("What will the model be for?",
                                               [(key, f"{name}: {why}") for key, name, why in cases],
                                               default=self.state.use_case, back=False)
        return "next"

    def choose_hardware(self) -> str:
        try:
            self.state.hardware = self.detect_hardware()
        except Exception as exc:
            self.talk.say(f"[yellow]hardware detection failed ({outside_markup(exc)})[/]")
            self.state.hardware = None
        for line in hardware_lines(self.state.hardware) if self.state.hardware is not None else []:
            self.talk.say(f"  {outside_markup(line)}")
        detected = self.state.detected_vram_gb
        self.talk.say("  or plan for a named card (its memory, and times from its data sheet):")
        for _, label in gpu_choices()[1:]:
            self.talk.say(f"    {label}")

        def check(text: str) -> str | None:
            try:
                parse_hardware_answer(text)
            except ValueError:
                return "type a number of GB such as 6, 24 or 80, a card such as 3090 or a100-80gb, or leave it empty"
            return None

        answer = self.ask.text(f"Plan for a GPU with how many GB, or which card? (empty: as detected, {detected:g} GB)",
                               validate=check, default=self.state.planned_gpu or "")
        if answer == BACK:
            return "back"
        apply_hardware_answer(self.state, answer)
        return "next"

    def choose_dataset(self) -> str:
        from gptwiz.wizard.preparing import demo_choice  # loads the prepare pipeline: not before this question

        while True:
            kind = self.talk.select("What should it learn from?", [
                ("path", "a text file, a folder of documents, a glob or a prepared dataset"),
                (DEMO, "the built-in demo corpus (Python standard library docstrings and source)")])
            if kind == BACK:
                return "back"
            if kind == DEMO:
                choice = demo_choice(self.state.data_dir)
            else:
                path = self.ask.text("Path, folder or glob:")
                if path == BACK:
                    continue
                try:
                    choice = inspect_dataset(path)
                except (UsageError, OSError) as exc:
                    self.talk.say(f"[yellow]{outside_markup(exc)}[/]")
                    continue
                self.talk.say(f"  {outside_markup(choice.describe())}")
                choice = self._tokenizer(choice)
                if choice is None:
                    continue
            try:
                self.state.dataset = self._prepared(choice)
            except UsageError as exc:
                self.talk.say(f"[yellow]{outside_markup(exc)}[/]")
                continue
            return "next"

    def _tokenizer(self, choice: DatasetChoice) -> DatasetChoice | None:
        """The choice with the tokenizer asked for, where a tokenizer of its own is offered; None: back."""
        offer = tokenizer_offer(choice, self.state.use_case, self.state.vram_gb)
        if offer is None:
            return choice
        answer = self.talk.select("Which tokenizer?", [
            ("gpt2", "GPT-2's (50,257 tokens), as the guide's presets"),
            ("own", offer.line())], default="gpt2")
        if answer == BACK:
            return None
        return with_tokenizer(choice, answer == "own")

    def _prepared(self, choice: DatasetChoice) -> DatasetChoice:
        if not choice.needs_prepare:
            return choice
        from gptwiz.data.prepare import RichPrepareProgress  # lazy: the prepare pipeline, as in choose_dataset
        from gptwiz.wizard.preparing import prepare_choice  # lazy: as demo_choice in choose_dataset

        if choice.kind != "demo":
            into = prepared_dir_for(choice.path, self.state.data_dir, choice.tokenizer)
            self.talk.say(f"  preparing {outside_markup(choice.path)} into {outside_markup(into)} ...")
        return prepare_choice(choice, self.state.data_dir, RichPrepareProgress(),
                              on_stage=lambda m: self.talk.say(f"  {outside_markup(m)} ..."))

    def start(self) -> str:
        """Name the run and start it: 'done' (self.exit_code says how it went), or 'back'."""
        code = name_and_start(self.talk, self.state, self.launch)
        if code is None:
            return "back"
        self.exit_code = code
        return "done"

    def _launch(self, args: list[str], name: str) -> int:
        return launch_in_background(self.talk, self.state.runs_dir, args, name)


def run_plain_wizard(runs_dir: str | Path = "runs", data_dir: str | Path = "data") -> int:
    # A dumb terminal, or NO_COLOR: numbered questions and output without a single escape code.
    bare = plain_output(os.environ)
    prompter: Prompter = LinePrompter() if bare else QuestionaryPrompter()
    console = Console(color_system=None, highlight=False) if bare else Console()
    wizard = PlainWizard(WizardState(runs_dir=Path(runs_dir), data_dir=Path(data_dir)), prompter, console,
                         measure_throughput=measure_throughput)
    try:
        return wizard.run()
    except Cancelled:
        print("gptwiz: cancelled")
        return CANCELLED
