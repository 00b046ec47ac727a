"""The plain wizard's probe step: the guide's short check of the settings, with a progress bar (a line every tenth
where the terminal draws none), its verdict, and its advice to apply and probe again."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from gptwiz.common.errors import UsageError
from gptwiz.common.rich_text import outside_markup
from gptwiz.plain.prompts import BACK
from gptwiz.plain.talk import NO, Talk
from gptwiz.wizard.advice import apply_advice, probe_advice
from gptwiz.wizard.state import WizardState

# (options, on_progress, should_cancel) -> a gptwiz.training.probe result
RunProbe = Callable[[Any, Callable[[Any], None], Callable[[], bool]], Any]


def default_probe(opts: Any, on_progress: Callable[[Any], None], should_cancel: Callable[[], bool]) -> Any:
    from gptwiz.training.probe import run_probe  # lazy: the trainer (numpy, then torch) loads when a probe starts

    return run_probe(opts, on_progress=on_progress, should_cancel=should_cancel)


class ProbeStep:
    def __init__(self, talk: Talk, state: WizardState, run_probe: RunProbe, probe_iters: int) -> None:
        self.talk, self.state, self.run_probe, self.probe_iters = talk, state, run_probe, probe_iters
        self._probed: Any = None  # the knobs the last probe ran with

    def run(self) -> str:
        """Probe; after a piece of advice is applied, offer to probe again. Then on to the launch ('next'), or
        'back' to the settings."""
        if self._probed is not None and self._probed == self.state.knobs:
            # Back here from the launch: these settings were probed already.
            again = self.talk.yes_no("These settings were probed already: probe them again?",
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
            again = self.talk.yes_no(f"Probe the new settings ({self.state.probe_iters(self.probe_iters)} iterations)?",
                                     "yes: probe them", "no: start the training with them")
            if again == BACK:
                return "back"
            if again == NO:
                return "next"

    def probe(self) -> str:
        """'again' after applying advice, 'back' to leave for the settings, 'done' otherwise."""
        result = self._run_with_progress()
        self.state.probe_result = result
        self._probed = self.state.knobs
        self._show_verdict(result)
        return self._offer_advice(result)

    def _run_with_progress(self) -> Any:
        console = self.talk.console
        # A live bar redraws its line with escape codes: where the console has none, a line every tenth instead.
        live = console.is_terminal and not console.is_dumb_terminal and console.color_system
        shown: list[int] = []
        with Progress(TextColumn("probe"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
                      console=console, transient=True, disable=not live) as bar:
            task = bar.add_task("probe", total=self.state.probe_iters(self.probe_iters), info="starting ...")

            def on_progress(p: Any) -> None:
                loss = f"loss {p.loss:.4f}" if p.loss is not None else ""
                # The info column is read as markup, and a message is the probe process's: escaped, inert.
                bar.update(task, completed=p.iter, total=p.iters, info=outside_markup(p.message or loss))
                tenth = 10 * p.iter // max(1, p.iters)
                if not live and (not shown or tenth > shown[-1]):
                    shown.append(tenth)
                    self.talk.say(f"  probe: iteration {p.iter} of {p.iters} {loss}".rstrip())

            return self.run_probe(self.state.probe_options(self.probe_iters), on_progress, lambda: False)

    def _show_verdict(self, result: Any) -> None:
        try:
            from gptwiz.wizard.probe_panel import render  # lazy: rich's panel only once a probe has run

            self.talk.say(render(result))
        except Exception:  # a stand-in result in tests, or a renderer that changed: the essentials
            self.talk.say(f"verdict: {outside_markup(result.verdict)}")
            for reason in getattr(result, "reasons", []) or []:
                self.talk.say(f"  {outside_markup(reason)}")

    def _offer_advice(self, result: Any) -> str:
        advice = probe_advice(result, self.state.knobs)
        if not advice:
            return "done"
        answer = self.talk.select("Apply a piece of advice?",
                                  [(str(i), str(a)) for i, a in enumerate(advice)] + [("no", "no: launch as it is")],
                                  default="no")
        if answer == BACK:
            return "back"
        if answer == "no":
            return "done"
        try:
            apply_advice(self.state, advice[int(answer)])
        except UsageError as exc:
            self.talk.say(f"[yellow]{outside_markup(exc)}[/]")
            return "done"
        return "again"
