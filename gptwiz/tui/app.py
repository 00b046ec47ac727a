"""The gptwiz terminal app: the wizard (use case to running training) and the run dashboard.

Startup imports Textual and the screens only; torch, NVML and the estimators are imported by the
workers that need them, so the first screen is up in well under a second.
"""

from __future__ import annotations

from pathlib import Path

from textual.app import App

from gptwiz.runs.folder import RunPaths
from gptwiz.tui.context import AppContext
from gptwiz.wizard.state import WizardState


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
            from gptwiz.tui.screens.dashboard import DashboardScreen

            self.push_screen(DashboardScreen(self.watch_paths, self.context))
        else:
            from gptwiz.tui.screens.welcome import WelcomeScreen

            self.push_screen(WelcomeScreen())

    def open_dashboard(self, paths: RunPaths) -> None:
        from gptwiz.tui.screens.dashboard import DashboardScreen

        self.push_screen(DashboardScreen(paths, self.context, can_go_back=True))

    def use_case_name(self, key: str | None) -> str:
        from gptwiz.wizard.services import use_cases

        try:
            return {k: name for k, name, _ in use_cases()}.get(key or "", key or "?")
        except ImportError:
            return key or "?"

    def show_run(self, paths: RunPaths) -> None:
        """After a launch: back to the welcome screen (the wizard is done) with the run's dashboard on top."""
        while len(self.screen_stack) > 2:
            self.pop_screen()
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
