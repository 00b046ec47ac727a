"""`gptwiz wizard --plain`: the wizard's questions as plain prompts (questionary) and rich output.

For terminals where a full-screen app is unwelcome, and for TERM=dumb. Same answers, same
WizardState, same modules behind it as the app: it ends in the same probe and the same detached launch.
The prompts go through a `Prompter`, so the flow is tested with scripted answers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

from rich.markup import escape

from gptwiz.common import fmt
from gptwiz.common.errors import UsageError
from gptwiz.wizard.advice import apply_advice, probe_advice
from gptwiz.wizard.flow import next_step
from gptwiz.wizard.knob_fields import KNOB_FIELDS, knobs_from_texts
from gptwiz.wizard.state import DatasetChoice, WizardState, inspect_dataset

DEMO = "demo"
CANCELLED = 130


class Cancelled(Exception):
    """The user pressed Ctrl-C at a prompt."""


class Prompter(Protocol):
    def select(self, message: str, choices: Sequence[tuple[str, str]], default: str | None = None) -> str: ...
    def text(self, message: str, default: str = "", validate: Callable[[str], str | None] | None = None) -> str: ...
    def confirm(self, message: str, default: bool = True) -> bool: ...


class QuestionaryPrompter:
    """The real prompts. questionary answers None on Ctrl-C: that ends the wizard."""

    def _ask(self, question: Any) -> Any:
        answer = question.ask()
        if answer is None:
            raise Cancelled()
        return answer

    def select(self, message: str, choices: Sequence[tuple[str, str]], default: str | None = None) -> str:
        import questionary

        items = [questionary.Choice(title=title, value=value) for value, title in choices]
        chosen = next((c for c in items if c.value == default), None)
        return str(self._ask(questionary.select(message, choices=items, default=chosen)))

    def text(self, message: str, default: str = "", validate: Callable[[str], str | None] | None = None) -> str:
        import questionary

        check = (lambda v: validate(v) or True) if validate else None
        return str(self._ask(questionary.text(message, default=default, validate=check)))

    def confirm(self, message: str, default: bool = True) -> bool:
        import questionary

        return bool(self._ask(questionary.confirm(message, default=default)))


class PlainWizard:
    def __init__(self, state: WizardState, prompter: Prompter, console: Any,
                 detect_hardware: Callable[[], Any] | None = None,
                 run_probe: Callable[..., Any] | None = None, probe_iters: int = 100,
                 launch: Callable[[list[str], str], int] | None = None):
        self.state, self.ask, self.console = state, prompter, console
        self.detect_hardware = detect_hardware
        self.run_probe = run_probe
        self.probe_iters = probe_iters
        self.launch = launch or self._launch

    def say(self, *things: Any) -> None:
        self.console.print(*things, highlight=False)

    # -- the steps, as gptwiz.wizard.flow leads (the app's order) --

    def run(self) -> int:
        steps: dict[str, Callable[[], str]] = {
            "welcome": self.welcome, "use_case": self.choose_use_case, "hardware": self.choose_hardware,
            "dataset": self.choose_dataset, "recommendation": self.recommend, "probe": self.probe_step}
        step = "welcome"
        while step != "launch":
            step = next_step(step, self.state, steps[step]())
        return self.start()

    def _probe_first(self) -> bool:
        return self.ask.confirm(f"Run the {self.probe_iters}-iteration probe first (recommended)?", default=True)

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
        self.state.use_case = self.ask.select("What will the model be for?",
                                              [(key, f"{name}: {why}") for key, name, why in cases],
                                              default=self.state.use_case)
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
        self.state.vram_override_gb = parse_vram(answer)
        return "next"

    def choose_dataset(self) -> str:
        from gptwiz.wizard.preparing import demo_choice  # loads the prepare pipeline: not before this question

        while True:
            kind = self.ask.select("What should it learn from?", [
                ("path", "a text file, a folder of documents, a glob or a prepared dataset"),
                (DEMO, "the built-in demo corpus (Python standard library docstrings and source)")])
            if kind == DEMO:
                choice = demo_choice(self.state.data_dir)
            else:
                path = self.ask.text("Path, folder or glob:")
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
        from gptwiz.wizard.services import estimate_bytes, knobs_for_preset, recommend_for, view

        rec = view(recommend_for(self.state))
        self.state.recommendation = rec
        self.state.knobs = rec.knobs
        self.say(f"\n[bold green]Recommended: {rec.knobs.preset}[/]")
        for i, reason in enumerate(rec.reasons, 1):
            self.say(f"  {i}. {reason}")
        for warning in rec.warnings:
            self.say(f"  [yellow]! {warning}[/]")
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
            self.say(f"  [cyan]{self.state.command_line()}[/]")
            choices = [("ok", "go on with this"), ("knobs", "change context length, batch size, learning rate, iterations")]
            choices += [(f"alt:{a.preset}", f"switch to {a.preset}" + (f": {a.why}" if a.why else ""))
                        for a in rec.alternatives]
            answer = self.ask.select("The settings:", choices, default="ok")
            if answer == "ok":
                return "next" if self._probe_first() else "launch"
            if answer.startswith("alt:"):
                self.state.knobs = knobs_for_preset(answer[4:], k)
                continue
            texts = {knob.name: self.ask.text(knob.label, knob.text(k), knob.check) for knob in KNOB_FIELDS}
            self.state.knobs = knobs_from_texts(k, texts)

    def probe_step(self) -> str:
        """Probe; after a piece of advice is applied, offer to probe again. Then on to the launch."""
        while self.probe() == "again" and self._probe_first():
            pass
        return "next"

    def probe(self) -> str:
        """'again' after applying advice, 'done' otherwise."""
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        run_probe = self.run_probe or _default_probe
        with Progress(TextColumn("probe"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
                      console=self.console, transient=True) as bar:
            task = bar.add_task("probe", total=self.probe_iters, info="starting ...")

            def on_progress(p: Any) -> None:
                loss = f"loss {p.loss:.4f}" if p.loss is not None else ""
                bar.update(task, completed=p.iter, total=p.iters, info=p.message or loss)

            result = run_probe(self.state.probe_options(self.probe_iters), on_progress, lambda: False)
        self.state.probe_result = result
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
        answer = self.ask.select("Apply a piece of advice and probe again?",
                                 [(str(i), str(a)) for i, a in enumerate(advice)] + [("no", "no: launch as it is")],
                                 default="no")
        if answer == "no":
            return "done"
        try:
            apply_advice(self.state, advice[int(answer)])
        except UsageError as exc:
            self.say(f"[yellow]{exc}[/]")
            return "done"
        return "again"

    def start(self) -> int:
        from gptwiz.runs.folder import validate_run_name

        def check(name: str) -> str | None:
            try:
                validate_run_name(name)
            except UsageError as exc:
                return str(exc)
            return f"a run named {name} exists already" if (self.state.runs_dir / name).exists() else None

        name = self.ask.text("Name of the run:", self.state.default_run_name(), check)
        self.state.run_name = name
        self.say(f"  [cyan]{self.state.command_line(name)}[/]")
        if not self.ask.confirm("Start the training now, in the background?", default=True):
            self.say("not started; the command line above starts it")
            return 0
        return self.launch(self.state.train_args(name), name)

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

    wizard = PlainWizard(WizardState(runs_dir=Path(runs_dir), data_dir=Path(data_dir)), QuestionaryPrompter(), Console())
    try:
        return wizard.run()
    except Cancelled:
        print("gptwiz: cancelled")
        return CANCELLED
