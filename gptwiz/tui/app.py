"""The gptwiz terminal app: the wizard (use case to running training) and the run dashboard.

Startup imports Textual and the first screen only; the other screens load when first shown, and torch, NVML
and the estimators are imported by the workers that need them, so the first screen is up in well under a second.
Which step follows which is gptwiz.wizard.flow's to say; this module only maps each step to its screen.
"""

from __future__ import annotations

from pathlib import Path

from textual.app import App
from textual.screen import Screen

from gptwiz.runs.folder import RunPaths
from gptwiz.tui.context import AppContext
from gptwiz.tui.screens.base import WizardStep
from gptwiz.wizard.flow import FlowError, back_step, next_step
from gptwiz.wizard.state import WizardState


def step_screen(step: str) -> Screen[None]:
    """A new screen for one of gptwiz.wizard.flow's steps. Each module is imported when its step is first
    shown: the probe's loss chart (plotext) and the estimators stay off the first screen's path."""
    if step == "welcome":
        from gptwiz.tui.screens.welcome import WelcomeScreen

        return WelcomeScreen()
    if step == "use_case":
        from gptwiz.tui.screens.use_case import UseCaseScreen

        return UseCaseScreen()
    if step == "hardware":
        from gptwiz.tui.screens.hardware import HardwareScreen

        return HardwareScreen()
    if step == "dataset":
        from gptwiz.tui.screens.dataset import DatasetScreen

        return DatasetScreen()
    if step == "recommendation":
        from gptwiz.tui.screens.recommendation import RecommendationScreen

        return RecommendationScreen()
    if step == "probe":
        from gptwiz.tui.screens.probe import ProbeScreen

        return ProbeScreen()
    if step == "launch":
        from gptwiz.tui.screens.launch import LaunchScreen

        return LaunchScreen()
    raise ValueError(f"no screen for step {step!r}")


class GptwizApp(App[str | None]):
    """Returns the name of the run last watched (for the "training goes on" hint), or None."""

    CSS_PATH = "gptwiz.tcss"
    TITLE = "gptwiz"
    ENABLE_COMMAND_PALETTE = False

    def __init__(self, context: AppContext | None = None, *, watch: RunPaths | None = None) -> None:
        super().__init__()
        self.context = context or AppContext()
        self.watch_paths = watch
        self.wizard = WizardState(runs_dir=self.context.runs_dir, data_dir=self.context.data_dir)

    def on_mount(self) -> None:
        if self.watch_paths is not None:
            from gptwiz.tui.screens.dashboard import DashboardScreen  # its charts load only when watching

            self.push_screen(DashboardScreen(self.watch_paths, self.context))
        else:
            self.push_screen(step_screen("welcome"))

    # -- the wizard's steps, as gptwiz.wizard.flow leads --

    def advance(self, screen: WizardStep, move: str = "next") -> None:
        """From `screen`'s step to where `move` leads; a warning instead when the answers do not allow it yet."""
        try:
            target = next_step(screen.STEP, self.wizard, move)
        except FlowError as exc:
            self.notify(str(exc), severity="warning")
            return
        self.push_screen(step_screen(target))

    def back(self) -> None:
        """Back to the step shown before the current one, as it was left; nothing on the first."""
        self._pop_to(back_step([s.STEP for s in self.screen_stack if isinstance(s, WizardStep)]))

    def _pop_to(self, step: str | None) -> None:
        """Pop the screens above the topmost one showing `step` (none if no screen does)."""
        names = [s.STEP if isinstance(s, WizardStep) else None for s in self.screen_stack]
        if step is None or step not in names:
            return
        above = names[::-1].index(step)
        for _ in range(above):
            self.pop_screen()

    # -- training and the dashboard --

    def start_training(self, train_args: list[str], name: str) -> None:
        """Start `gptwiz train ARGS` detached and follow it to its dashboard (screens/starting.py)."""
        from gptwiz.tui.screens.starting import StartingScreen  # the launcher loads only when a run starts

        self.push_screen(StartingScreen(train_args, name))

    def open_dashboard(self, paths: RunPaths) -> None:
        from gptwiz.tui.screens.dashboard import DashboardScreen  # its charts load only when watching

        self.push_screen(DashboardScreen(paths, self.context, can_go_back=True))

    def use_case_name(self, key: str | None) -> str:
        from gptwiz.wizard.services import use_cases

        try:
            return {k: name for k, name, _ in use_cases()}.get(key or "", key or "?")
        except ImportError:
            return key or "?"

    def show_run(self, paths: RunPaths) -> None:
        """After a launch: back to the welcome screen (the wizard is done) with the run's dashboard on top."""
        self._pop_to("welcome")
        self.wizard = WizardState(runs_dir=self.context.runs_dir, data_dir=self.context.data_dir)
        self.open_dashboard(paths)


def _farewell(run_name: str | None, runs_dir: Path) -> None:
    if run_name:
        flag = "" if str(runs_dir) == "runs" else f" --runs_dir {runs_dir}"
        print(f"left the dashboard; if run {run_name} is training it goes on. "
              f"Watch it again: gptwiz watch {run_name}{flag}")


def run_watch_app(paths: RunPaths) -> int:
    app = GptwizApp(AppContext(runs_dir=paths.root.parent), watch=paths)
    _farewell(app.run(), paths.root.parent)
    return 0


def run_wizard_app(runs_dir: str | Path = "runs", data_dir: str | Path = "data") -> int:
    context = AppContext(runs_dir=Path(runs_dir), data_dir=Path(data_dir))
    app = GptwizApp(context)
    _farewell(app.run(), context.runs_dir)
    return 0
