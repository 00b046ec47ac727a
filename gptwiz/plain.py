"""`gptwiz wizard --plain`: the wizard's questions as plain prompts (questionary) and rich output.

For terminals where a full-screen app is unwelcome, and for TERM=dumb. Same answers, same
WizardState, same modules behind it as the app: it ends in the same probe and the same detached launch.
The prompts go through a `Prompter`, so the flow is tested with scripted answers.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Protocol, Sequence

from gptwiz.common.errors import UsageError
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


def _number_or_error(kind: type, low: float, high: float) -> Callable[[str], str | None]:
    def check(text: str) -> str | None:
        try:
            value = kind(text)
        except ValueError:
            return f"{text!r} is not a {'whole number' if kind is int else 'number'}"
        return None if low <= value <= high else f"give a value from {low:g} to {high:g}"
    return check


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

    # -- the steps, in the app's order --

    def run(self) -> int:
        self.welcome()
        self.choose_use_case()
        self.choose_hardware()
        self.choose_dataset()
        self.recommend()
        while True:
            if self.ask.confirm(f"Run the {self.probe_iters}-iteration probe first (recommended)?", default=True):
                if self.probe() == "again":
                    continue
            break
        return self.start()

    def welcome(self) -> None:
        from gptwiz.runs.listing import run_rows

        self.say("[bold]gptwiz[/]: pick a GPT model size for your use case, hardware and data, probe it, "
                 "then train it in the background.")
        rows = run_rows(self.state.runs_dir)
        for r in rows[:10]:
            self.say(f"  {r.name:24} {r.state:9} {r.progress_text:>18}  loss {r.loss_text}")
        if rows:
            self.say(f"  (watch one with: gptwiz watch NAME{self._runs_flag()})")

    def choose_use_case(self) -> None:
        from gptwiz.wizard.services import use_cases

        cases = use_cases()
        self.state.use_case = self.ask.select("What will the model be for?",
                                              [(key, f"{name}: {why}") for key, name, why in cases],
                                              default=self.state.use_case)

    def choose_hardware(self) -> None:
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

    def choose_dataset(self) -> None:
        while True:
            kind = self.ask.select("What should it learn from?", [
                ("path", "a text file, a folder of documents, a glob or a prepared dataset"),
                (DEMO, "the built-in demo corpus (Python standard library docstrings and source)")])
            if kind == DEMO:
                choice = DatasetChoice("demo", "demo corpus (Python standard library)", files=2, bytes=5_700_000)
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
            return

    def _prepared(self, choice: DatasetChoice) -> DatasetChoice:
        if not choice.needs_prepare:
            return choice
        from gptwiz.data.prepare import RichPrepareProgress

        if choice.kind == "demo":
            from gptwiz.data.demo import build_demo

            corpus = build_demo(self.state.data_dir, progress=RichPrepareProgress(),
                                on_stage=lambda m: self.say(f"  {m} ..."))
            return replace(choice, files=corpus.files, bytes=corpus.bytes, tokens=corpus.tokens,
                           prepared_dir=str(corpus.dataset_dir))
        from gptwiz.data.prepare import PrepareOptions, prepare
        from gptwiz.wizard.state import prepared_dir_for, source_glob

        out = prepared_dir_for(choice.path, self.state.data_dir)
        self.say(f"  preparing {choice.path} into {out} ...")
        result = prepare(PrepareOptions(sources=[f"data:{source_glob(choice.path)}"], out_dir=str(out), overwrite=True),
                         RichPrepareProgress())
        tokens = sum(int(s["train_tokens"]) + int(s["val_tokens"]) for s in result.manifest["sources"])
        return replace(choice, tokens=tokens, prepared_dir=str(out))

    def recommend(self) -> None:
        from gptwiz.wizard.services import estimate_bytes, knobs_for_preset, recommend_for, view

        rec = view(recommend_for(self.state))
        self.state.recommendation = rec
        self.state.knobs = rec.knobs
        self.say(f"\n[bold green]Recommended: {rec.preset}[/]")
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
                self.say(f"  memory: about {est / 2**30:.1f} GiB of {device / 2**30:.1f} GiB "
                         f"({100 * est / device:.0f}%)")
            self.say(f"  [cyan]{self.state.command_line()}[/]")
            choices = [("ok", "go on with this"), ("knobs", "change context length, batch size, learning rate, iterations")]
            choices += [(f"alt:{a.preset}", f"switch to {a.preset}" + (f": {a.why}" if a.why else ""))
                        for a in rec.alternatives]
            answer = self.ask.select("The settings:", choices, default="ok")
            if answer == "ok":
                return
            if answer.startswith("alt:"):
                self.state.knobs = knobs_for_preset(answer[4:], k)
                continue
            self.state.knobs = replace(
                k,
                block_size=int(self.ask.text("context length", str(k.block_size), _number_or_error(int, 16, 8192))),
                batch_size=int(self.ask.text("batch size", str(k.batch_size), _number_or_error(int, 1, 4096))),
                learning_rate=float(self.ask.text("learning rate", f"{k.learning_rate:g}",
                                                  _number_or_error(float, 1e-7, 0.99))),
                max_iters=int(self.ask.text("max iterations", str(k.max_iters), _number_or_error(int, 1, 10_000_000))),
            )

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
        advice = list(getattr(result, "advice", []) or [])
        if not advice:
            return "done"
        answer = self.ask.select("Apply a piece of advice and probe again?",
                                 [(str(i), a) for i, a in enumerate(advice)] + [("no", "no: launch as it is")],
                                 default="no")
        if answer == "no":
            return "done"
        try:
            self.state.knobs = self.state.knobs.with_advice(advice[int(answer)])  # type: ignore[union-attr]
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
