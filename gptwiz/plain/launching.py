"""The plain wizard's last step: name the run, show its command line, and start it in the background (or leave
the command line to start it later)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from gptwiz.common.errors import UsageError
from gptwiz.common.inert import quote
from gptwiz.common.rich_text import outside_markup
from gptwiz.plain.prompts import BACK
from gptwiz.plain.talk import NO, YES, Talk
from gptwiz.runs.launch import launch_detached, wait_for_start
from gptwiz.runs.paths import validate_run_name
from gptwiz.wizard.advice import probe_summary
from gptwiz.wizard.commands import wizard_command_line
from gptwiz.wizard.state import WizardState

# (train arguments, run name) -> the exit code: how the start went
Launch = Callable[[list[str], str], int]


def runs_flag(runs_dir: Path) -> str:
    return "" if str(runs_dir) == "runs" else f" --runs_dir {runs_dir}"


def launch_in_background(talk: Talk, runs_dir: Path, args: list[str], name: str) -> int:
    """Start `gptwiz ARGS` detached, wait until it writes its status, and say how to watch and stop it."""
    run = launch_detached(args, runs_dir=runs_dir, name=name)
    with talk.console.status(f"starting run {outside_markup(name)} (pid {run.pid}) ..."):
        outcome = wait_for_start(run, timeout=600)
    if not outcome.started:
        talk.say(f"[red]the training did not start: {outside_markup(outcome.message)}[/]")  # the trainer's own words
        return 1
    talk.say(f"[green]run {outside_markup(name)} is training in the background (pid {run.pid}).[/]")
    talk.say(outside_markup(f"  watch it: gptwiz watch {name}{runs_flag(runs_dir)}"))
    talk.say(outside_markup(f"  stop it:  gptwiz stop {name}{runs_flag(runs_dir)}"))
    return 0


def name_and_start(talk: Talk, state: WizardState, launch: Launch) -> int | None:
    """Name the run and start it: the exit code saying how it went, or None to go back."""

    def check(name: str) -> str | None:
        try:
            validate_run_name(name)
        except UsageError as exc:
            return str(exc)
        return f"a run named {quote(name)} exists already" if (state.runs_dir / name).exists() else None

    talk.say_item("  ", probe_summary(state.probe_result, state))
    while True:
        name = talk.ask.text("Name of the run:", state.run_name or state.default_run_name(), check)
        if name == BACK:
            return None
        state.run_name = name
        talk.say_command(wizard_command_line(state, name))
        answer = talk.yes_no("Start the training now, in the background?", "yes: start it",
                             "no: leave; the command line above starts it later")
        if answer == YES:
            return launch(state.train_args(name), name)
        if answer == NO:
            talk.say("not started; the command line above starts it")
            return 0
