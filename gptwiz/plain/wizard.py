"""The plain wizard: the app's steps as questions, one at a time, in gptwiz.wizard.flow's order.

Same answers, same WizardState, same modules behind it as the app: it ends in the same probe and the same
detached launch. Every question but the first offers a way back to the one before; the prompts go through a
`Prompter` (gptwiz.plain.prompts), so the flow is tested with scripted answers.
"""

from __future__ import annotations

import os
import textwrap
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rich.markup import escape

from gptwiz.common import fmt
from gptwiz.common.commands import fold_command
from gptwiz.common.errors import UsageError
from gptwiz.plain.prompts import BACK, BACK_TITLE, Cancelled, LinePrompter, Prompter, QuestionaryPrompter, plain_output
from gptwiz.wizard.advice import apply_advice, probe_advice, probe_summary
from gptwiz.wizard.flow import back_step, next_step
from gptwiz.wizard.knob_fields import KNOB_FIELDS, knobs_from_texts
from gptwiz.wizard.state import DatasetChoice, WizardState, inspect_dataset

DEMO = "demo"
CANCELLED = 130
YES, NO = "yes", "no"


class PlainWizard:
    def __init__(self, state: WizardState, prompter: Prompter, console: Any,
                 detect_hardware: Callable[[], Any] | None = None,
                 run_probe: Callable[..., Any] | None = None, probe_iters: int = 100,
                 launch: Callable[[list[str], str], int] | None = None,
                 measure_throughput: Callable[[str, str], Any] | None = None):
        self.state, self.ask, self.console = state, prompter, console
        self.detect_hardware = detect_hardware
        self.run_probe = run_probe
        self.probe_iters = probe_iters
        self.launch = launch or self._launch
        self.exit_code = 0
        self.measure_throughput = measure_throughput
        self._speed: tuple[Any] | None = None  # (the measured throughput, or None), once measured
        self._probed: Any = None  # the knobs the last probe ran with

    def say(self, *things: Any) -> None:
        self.console.print(*things, highlight=False)

    def say_item(self, marker: str, text: str, style: str | None = None) -> None:
        """One reason or warning, wrapped to the terminal with its continuation lines under its text."""
        lines = textwrap.wrap(text, width=max(20, self.console.width - 1), initial_indent=marker,
                              subsequent_indent=" " * len(marker))
        for line in lines:
            self.say(f"[{style}]{escape(line)}[/]" if style else escape(line))

    def say_command(self, command: str) -> None:
        """A command line folded at its options (never mid-word), each line but the last ending in a backslash."""
        for line in fold_command(command, max(20, self.console.width - 3)):
            self.say(f"  [cyan]{escape(line)}[/]")

    def _fit(self, title: str) -> str:
        """A choice's title cut to one line of the terminal: a menu line that wraps breaks the menu's drawing."""
        return textwrap.shorten(title, width=max(20, self.console.width - 6), placeholder=" ...")

    def _select(self, message: str, choices: Sequence[tuple[str, str]], default: str | None = None,
                back: bool = True) -> str:
        """A menu with a way back to the previous question (the answer BACK) unless this is the first."""
        items = [(value, self._fit(title)) for value, title in choices]
        return self.ask.select(message, items + ([(BACK, BACK_TITLE)] if back else []), default)

    def _yes_no(self, message: str, yes: str, no: str) -> str:
        """YES, NO or BACK: a yes/no question that can also lead back."""
        return self._select(message, [(YES, yes), (NO, no)], default=YES)

    # -- the steps, as gptwiz.wizard.flow leads (the app's order) --

    def run(self) -> int:
        steps: dict[str, Callable[[], str]] = {
            "welcome": self.welcome, "use_case": self.choose_use_case, "hardware": self.choose_hardware,
            "dataset": self.choose_dataset, "recommendation": self.recommend, "probe": self.probe_step,
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

    def _probe_first(self) -> str:
        """'next' (probe), 'launch' (no probe) or 'back'."""
        answer = self._yes_no(f"Run the {self.probe_iters}-iteration probe first (recommended)?",
                              "yes: probe the settings first", "no: start the training without a probe")
        return {YES: "next", NO: "launch"}.get(answer, "back")

    def welcome(self) -> str:
        from gptwiz.runs.listing import list_runs

        self.say("[bold]gptwiz[/]: pick a GPT model size for your use case, hardware and data, probe it, "
                 "then train it in the background.")
        rows = list_runs(self.state.runs_dir)
        for r in rows[:10]:
            self.say(f"  {r.name:24} {r.state_text:9} {r.progress_text:>18}  loss {r.loss_text}")
            if r.unreadable:
                self.say(f"    [red]unreadable: {escape(r.unreadable)}[/]")
        if rows:
            self.say(f"  (watch one with: gptwiz watch NAME{self._runs_flag()})")
        return "next"

    def choose_use_case(self) -> str:
        from gptwiz.wizard.services import use_cases

        cases = use_cases()
        # The first question: nothing before it to go back to (Ctrl-C leaves).
        self.state.use_case = self._select("What will the model be for?",
                                           [(key, f"{name}: {why}") for key, name, why in cases],
                                           default=self.state.use_case, back=False)
        return "next"

    def choose_hardware(self) -> str:
        from gptwiz.wizard.services import hardware_lines
        from gptwiz.wizard.state import parse_vram

        try:
            self.state.hardware = (self.detect_hardware or _default_detect)()
        except Exception as exc:
            self.say(f"[yellow]hardware detection failed ({exc})[/]")
            self.state.hardware = None
        for line in hardware_lines(self.state.hardware) if self.state.hardware is not None else []:
            self.say(f"  {line}")
        detected = self.state.detected_vram_gb

        def check(text: str) -> str | None:
            try:
                parse_vram(text)
            except ValueError:
                return "type a number of GB such as 6, 24 or 80, or leave it empty"
            return None

        answer = self.ask.text(f"Plan for a GPU with how many GB? (empty: as detected, {detected:g} GB)",
                               validate=check)
        if answer == BACK:
            return "back"
        self.state.vram_override_gb = parse_vram(answer)
        return "next"

    def choose_dataset(self) -> str:
        from gptwiz.wizard.preparing import demo_choice  # loads the prepare pipeline: not before this question

        while True:
            kind = self._select("What should it learn from?", [
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
                    self.say(f"[yellow]{exc}[/]")
                    continue
                self.say(f"  {choice.describe()}")
            try:
                self.state.dataset = self._prepared(choice)
            except UsageError as exc:
                self.say(f"[yellow]{exc}[/]")
                continue
            return "next"

    def _prepared(self, choice: DatasetChoice) -> DatasetChoice:
        if not choice.needs_prepare:
            return choice
        from gptwiz.data.prepare import RichPrepareProgress
        from gptwiz.wizard.preparing import prepare_choice
        from gptwiz.wizard.state import prepared_dir_for

        if choice.kind != "demo":
            self.say(f"  preparing {choice.path} into {prepared_dir_for(choice.path, self.state.data_dir)} ...")
        return prepare_choice(choice, self.state.data_dir, RichPrepareProgress(),
                              on_stage=lambda m: self.say(f"  {m} ..."))

    def recommend(self) -> str:
        """'next' to probe the settings agreed on, 'launch' to start without a probe."""
        from gptwiz.wizard.services import estimate_bytes, knobs_for_preset, recommend_for, times_for, view

        throughput = self._throughput()
        rec = view(recommend_for(self.state, throughput))
        self.state.recommendation = rec
        self.state.knobs = rec.knobs
        self.say(f"\n[bold green]Recommended: {rec.knobs.preset}[/]")
        for i, reason in enumerate(rec.reasons, 1):
            self.say_item(f"  {i}. ", reason)
        if rec.phases:
            self.say("  [bold]Phases (this wizard launches the first):[/]")
            for phase in rec.phases:
                self.say_item("    ", phase)
        for warning in rec.warnings:
            self.say_item("  ! ", warning, "yellow")
        while True:
            k = self.state.knobs
            try:
                est = estimate_bytes(k, self.state)
            except Exception:
                est = rec.estimate_bytes if k == rec.knobs else None
            device = self.state.device_memory_bytes()
            if est is not None and device:
                self.say(f"  memory: about {fmt.gib(est)} of {fmt.gib(device)} "
                         f"({100 * est / device:.0f}%)")
            times = times_for(k, self.state, throughput)
            if times is not None:
                self.say(f"  time: probe about {fmt.duration(times.probe_s)}, run about {fmt.duration(times.run_s)} "
                         f"({k.max_iters:,} iterations)")
            self.say_command(self.state.command_line())
            choices = [("ok", "go on with this"), ("knobs", "change context length, batch size, learning rate, iterations")]
            choices += [(f"alt:{a.preset}", f"switch to {a.preset}" + (f": {a.why}" if a.why else ""))
                        for a in rec.alternatives]
            answer = self._select("The settings:", choices, default="ok")
            if answer == BACK:
                return "back"
            if answer == "ok":
                move = self._probe_first()
                if move != "back":
                    return move
                continue
            if answer.startswith("alt:"):
                # The alternative's own recommendation: its settings, warnings and alternatives.
                rec = view(recommend_for(self.state, throughput, preset=answer[4:]))
                self.state.recommendation = rec
                self.state.knobs = rec.knobs if rec.knobs.preset == answer[4:] else knobs_for_preset(answer[4:], k)
                for warning in rec.warnings:
                    self.say_item("  ! ", warning, "yellow")
                continue
            texts: dict[str, str] = {}
            for knob in KNOB_FIELDS:
                text = self.ask.text(knob.label, knob.text(k), knob.check)
                if text == BACK:
                    break
                texts[knob.name] = text
            else:
                self.state.knobs = knobs_from_texts(k, texts)

    def _throughput(self) -> Any:
        """This machine's measured speed for the time predictions (seconds the first time, then cached); None where
        it cannot be measured here (planning for a card this machine lacks), and the times are not shown."""
        from gptwiz.wizard.services import device_and_dtype

        if self.measure_throughput is None:
            return None
        if self._speed is None:
            self.say("  measuring this machine's speed for the time predictions ...")
            try:
                self._speed = (self.measure_throughput(*device_and_dtype(self.state)),)
            except Exception as exc:  # a prediction is a convenience: never a reason to stop the wizard
                self.say(f"  [yellow]could not measure the speed ({escape(str(exc))}): no time predictions[/]")
                self._speed = (None,)
        return self._speed[0]

    def probe_step(self) -> str:
        """Probe; after a piece of advice is applied, offer to probe again. Then on to the launch ('next'), or
        'back' to the settings."""
        if self._probed is not None and self._probed == self.state.knobs:
            # Back here from the launch: these settings were probed already.
            again = self._yes_no("These settings were probed already: probe them again?",
                                 "yes: probe them again", "no: on to the launch")
            if again == BACK:
                return "back"
            if again == NO:
                return "next"
        while True:
            outcome = self.probe()
            if outcome == "back":
                return "back"
            if outcome == "done":
                return "next"
            again = self._yes_no(f"Probe the new settings ({self.probe_iters} iterations)?",
                                 "yes: probe them", "no: start the training with them")
            if again == BACK:
                return "back"
            if again == NO:
                return "next"

    def probe(self) -> str:
        """'again' after applying advice, 'back' to leave for the settings, 'done' otherwise."""
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        run_probe = self.run_probe or _default_probe
        # A live bar redraws its line with escape codes: where the console has none, a line every tenth instead.
        live = self.console.is_terminal and not self.console.is_dumb_terminal and self.console.color_system
        shown: list[int] = []
        with Progress(TextColumn("probe"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
                      console=self.console, transient=True, disable=not live) as bar:
            task = bar.add_task("probe", total=self.probe_iters, info="starting ...")

            def on_progress(p: Any) -> None:
                loss = f"loss {p.loss:.4f}" if p.loss is not None else ""
                bar.update(task, completed=p.iter, total=p.iters, info=p.message or loss)
                tenth = 10 * p.iter // max(1, p.iters)
                if not live and (not shown or tenth > shown[-1]):
                    shown.append(tenth)
                    self.say(f"  probe: iteration {p.iter} of {p.iters} {loss}".rstrip())

            result = run_probe(self.state.probe_options(self.probe_iters), on_progress, lambda: False)
        self.state.probe_result = result
        self._probed = self.state.knobs
        try:
            from gptwiz.training.probe import render

            self.say(render(result))
        except Exception:  # a stand-in result in tests, or a renderer that changed: the essentials
            self.say(f"verdict: {result.verdict}")
            for reason in getattr(result, "reasons", []) or []:
                self.say(f"  {reason}")
        advice = probe_advice(result, self.state.knobs)
        if not advice:
            return "done"
        answer = self._select("Apply a piece of advice?",
                              [(str(i), str(a)) for i, a in enumerate(advice)] + [("no", "no: launch as it is")],
                              default="no")
        if answer == BACK:
            return "back"
        if answer == "no":
            return "done"
        try:
            apply_advice(self.state, advice[int(answer)])
        except UsageError as exc:
            self.say(f"[yellow]{exc}[/]")
            return "done"
        return "again"

    def start(self) -> str:
        """Name the run and start it: 'done' (self.exit_code says how it went), or 'back'."""
        from gptwiz.runs.folder import validate_run_name

        def check(name: str) -> str | None:
            try:
                validate_run_name(name)
            except UsageError as exc:
                return str(exc)
            return f"a run named {name} exists already" if (self.state.runs_dir / name).exists() else None

        self.say_item("  ", probe_summary(self.state.probe_result, self.state))
        while True:
            name = self.ask.text("Name of the run:", self.state.run_name or self.state.default_run_name(), check)
            if name == BACK:
                return "back"
            self.state.run_name = name
            self.say_command(self.state.command_line(name))
            answer = self._yes_no("Start the training now, in the background?", "yes: start it",
                                  "no: leave; the command line above starts it later")
            if answer == YES:
                self.exit_code = self.launch(self.state.train_args(name), name)
                return "done"
            if answer == NO:
                self.say("not started; the command line above starts it")
                self.exit_code = 0
                return "done"

    def _runs_flag(self) -> str:
        return "" if str(self.state.runs_dir) == "runs" else f" --runs_dir {self.state.runs_dir}"

    def _launch(self, args: list[str], name: str) -> int:
        from gptwiz.runs.launch import launch_detached, wait_for_start

        run = launch_detached(args, runs_dir=self.state.runs_dir, name=name)
        with self.console.status(f"starting run {name} (pid {run.pid}) ..."):
            outcome = wait_for_start(run, timeout=600)
        if not outcome.started:
            self.say(f"[red]the training did not start: {outcome.message}[/]")
            return 1
        self.say(f"[green]run {name} is training in the background (pid {run.pid}).[/]")
        self.say(f"  watch it: gptwiz watch {name}{self._runs_flag()}")
        self.say(f"  stop it:  gptwiz stop {name}{self._runs_flag()}")
        return 0


def _default_detect() -> Any:
    from gptwiz.planning.hardware import detect_hardware

    return detect_hardware()


def _default_probe(opts: Any, on_progress: Callable[[Any], None], should_cancel: Callable[[], bool]) -> Any:
    from gptwiz.training.probe import run_probe

    return run_probe(opts, on_progress=on_progress, should_cancel=should_cancel)


def run_plain_wizard(runs_dir: str | Path = "runs", data_dir: str | Path = "data") -> int:
    from rich.console import Console

    # A dumb terminal, or NO_COLOR: numbered questions and output without a single escape code.
    bare = plain_output(os.environ)
    prompter: Prompter = LinePrompter() if bare else QuestionaryPrompter()
    console = Console(color_system=None, highlight=False) if bare else Console()
    from gptwiz.wizard.services import measure_throughput

    wizard = PlainWizard(WizardState(runs_dir=Path(runs_dir), data_dir=Path(data_dir)), prompter, console,
                         measure_throughput=measure_throughput)
    try:
        return wizard.run()
    except Cancelled:
        print("gptwiz: cancelled")
        return CANCELLED
