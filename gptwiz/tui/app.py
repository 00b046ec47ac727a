"""The gptwiz terminal app: the wizard (use case to running training) and the run dashboard.

Startup imports Textual and the first screen only; the other screens load when first shown, and torch, NVML
and the estimators are imported by the workers that need them, so the first screen is up in well under a second.
Which step follows which is gptwiz.wizard.flow's to say; this module only maps each step to its screen. Screens
never call the app: they post what they ask for (gptwiz.tui.messages), and the handlers here act on it.

Keys every screen has (the app's bindings): q leaves, asking first when a screen says leaving would cancel
something (AppScreen.leave_warning); ? shows the screen's help; ^p the command palette of its actions. In a text
field q and ? type themselves, so there ^q and f1 do the same, and the footer shows those instead. ^c leaves from
anywhere, after the same question.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.command import Provider
from textual.screen import Screen

from gptwiz.common.inert import inert
from gptwiz.runs.paths import RunPaths
from gptwiz.tui.context import AppContext
from gptwiz.tui.messages import GoBack, LeaveApp, MoveOn, OpenDashboard, RunStarted, StartTraining
from gptwiz.tui.outcome import farewell_line
from gptwiz.tui.screens.base import AppScreen, WizardStep
from gptwiz.tui.screens.confirm import ConfirmScreen
from gptwiz.wizard.flow import FlowError, back_step, next_step
from gptwiz.wizard.state import WizardState


def screen_actions() -> type[Provider]:
    from gptwiz.tui.commands import ScreenActions  # lazy: loaded when the palette first opens

    return ScreenActions


def step_screen(step: str) -> Screen[None]:
    """A new screen for one of gptwiz.wizard.flow's steps. Each module is imported when its step is first
    shown: the probe's loss chart (plotext) and the estimators stay off the first screen's path."""
    if step == "welcome":
        from gptwiz.tui.screens.welcome import WelcomeScreen  # lazy: each step's screen loads when first shown

        return WelcomeScreen()
    if step == "use_case":
        from gptwiz.tui.screens.use_case import UseCaseScreen  # lazy: as the welcome screen's

        return UseCaseScreen()
    if step == "hardware":
        from gptwiz.tui.screens.hardware import HardwareScreen  # lazy: as the welcome screen's

        return HardwareScreen()
    if step == "dataset":
        from gptwiz.tui.screens.dataset import DatasetScreen  # lazy: the prepare pipeline loads with it

        return DatasetScreen()
    if step == "recommendation":
        from gptwiz.tui.screens.recommendation import RecommendationScreen  # lazy: the estimators load with it

        return RecommendationScreen()
    if step == "probe":
        from gptwiz.tui.screens.probe import ProbeScreen  # lazy: its loss chart (plotext) loads with it

        return ProbeScreen()
    if step == "launch":
        from gptwiz.tui.screens.launch import LaunchScreen  # lazy: as the welcome screen's

        return LaunchScreen()
    raise ValueError(f"no screen for step {step!r}")


class GptwizApp(App[str | None]):
    """Returns the name of the run last shown (the farewell line speaks of its state), or None."""

    CSS_PATH = "gptwiz.tcss"
    TITLE = "gptwiz"
    COMMANDS = App.COMMANDS | {screen_actions}
    # Replaces Textual's own (^q quits at once, ^c only says how to quit): both ask a screen's leave_warning first.
    BINDINGS = [
        Binding("q", "leave", "quit"),
        Binding("ctrl+q", "leave_typing", "quit", priority=True),  # shown while a text field has the focus
        Binding("ctrl+q,ctrl+c", "leave", "quit", show=False, priority=True),
        Binding("question_mark", "help", "help"),
        Binding("f1", "help_typing", "help"),
        Binding("f1", "help", "help", show=False),
    ]

    def __init__(self, context: AppContext | None = None, *, watch: RunPaths | None = None) -> None:
        super().__init__()
        self.context = context or AppContext()
        self.watch_paths = watch
        self.wizard = WizardState(runs_dir=self.context.runs_dir, data_dir=self.context.data_dir)
        self._asking_to_leave = False
        self.farewell_note: str | None = None  # what to print on leaving when no run was shown (_leave)

    def on_mount(self) -> None:
        if self.watch_paths is not None:
            from gptwiz.tui.screens.dashboard import DashboardScreen  # lazy: its charts load only when watching

            self.push_screen(DashboardScreen(self.watch_paths, self.context))
        else:
            self.push_screen(step_screen("welcome"))

    # -- keys every screen has --

    def typing(self) -> bool:
        """Whether the focused widget takes printable keys (a text field): q and ? type there."""
        focused = self.screen.focused
        return focused is not None and focused.check_consume_key("q", "q")

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("leave_typing", "help_typing"):
            return self.typing()
        return True

    def app_screens(self) -> list[AppScreen]:
        return [s for s in self.screen_stack if isinstance(s, AppScreen)]

    def action_leave(self) -> None:
        """Leave the app; when a screen says leaving would cancel something, ask first."""
        if self._asking_to_leave:
            return
        warnings = [w for s in self.app_screens() if (w := s.leave_warning())]
        if not warnings:
            self._leave()
            return
        self._asking_to_leave = True

        def answered(yes: bool | None) -> None:
            self._asking_to_leave = False
            if yes:
                self._leave()

        self.push_screen(ConfirmScreen("\n\n".join(warnings) + "\n\nLeave gptwiz anyway?", yes="Leave", no="Stay"),
                         answered)

    def action_leave_typing(self) -> None:
        self.action_leave()

    def _leave(self) -> None:
        """Let each screen end its work (showing what it waits for), one after the other, then exit."""
        screens = self.app_screens()

        def finish(i: int) -> None:
            if i < len(screens):
                screens[i].finish_before_leaving(lambda: finish(i + 1))
                return
            # The topmost screen that shows a run (a dashboard, a run starting) names it in the farewell line;
            # where none does, the topmost wizard step with settings says how to train with them.
            runs = [name for s in reversed(self.screen_stack) if (name := getattr(s, "leaving_run", lambda: None)())]
            if not runs:
                notes = [note for s in reversed(self.app_screens()) if (note := s.leaving_note(self.size.width))]
                self.farewell_note = notes[0] if notes else None
            self.exit(runs[0] if runs else None)

        finish(0)

    def action_help(self) -> None:
        """Toggle the help of the screen shown (a help already open is closed by its own ? binding)."""
        from gptwiz.tui.screens.help import HelpScreen  # lazy: loaded on the first ?

        screen = self.screen
        title = screen.help_title() if isinstance(screen, AppScreen) else "gptwiz"
        self.push_screen(HelpScreen(screen, f"{title}: keys and help"))

    def action_help_typing(self) -> None:
        self.action_help()

    def get_system_commands(self, screen: Screen[object]) -> Iterable[SystemCommand]:
        """Textual's own commands, with its Quit going through the same question as q."""
        for command in super().get_system_commands(screen):
            if command.title == "Quit":
                yield SystemCommand("Quit", "Leave gptwiz (asks first if that would cancel something)",
                                    self.action_leave)
            else:
                yield command

    # -- the wizard's steps, as gptwiz.wizard.flow leads --

    def _steps(self) -> list[str]:
        """The wizard steps on the stack, the one shown last."""
        return [s.STEP for s in self.screen_stack if isinstance(s, WizardStep)]

    def on_move_on(self, message: MoveOn) -> None:
        """From the message's step to where its move leads; a warning instead when the answers do not allow it."""
        steps = self._steps()
        if not steps or steps[-1] != message.step:
            return  # sent twice (enter pressed again before the move was made): it has moved on already
        try:
            target = next_step(message.step, self.wizard, message.move)
        except FlowError as exc:
            self.notify(inert(exc, multiline=True), severity="warning", markup=False)
            return
        self.push_screen(step_screen(target))

    def on_go_back(self, message: GoBack) -> None:
        """Back to the step shown before the current one, as it was left; nothing on the first."""
        self._pop_to(back_step(self._steps()))

    def _pop_to(self, step: str | None) -> None:
        """Pop the screens above the topmost one showing `step` (none if no screen does)."""
        names = [s.STEP if isinstance(s, WizardStep) else None for s in self.screen_stack]
        if step is None or step not in names:
            return
        above = names[::-1].index(step)
        for _ in range(above):
            self.pop_screen()

    # -- training and the dashboard --

    def on_start_training(self, message: StartTraining) -> None:
        """Start `gptwiz train ARGS` detached and follow it to its dashboard (screens/starting.py)."""
        if message.screen is not self.screen:
            return  # asked again before the first start was shown: that one goes on
        from gptwiz.tui.screens.starting import StartingScreen  # lazy: the launcher loads only when a run starts

        self.push_screen(StartingScreen(message.train_args, message.name, self.context))

    def on_open_dashboard(self, message: OpenDashboard) -> None:
        if message.screen is self.screen:  # not when asked again before the first dashboard was shown
            self._open_dashboard(message.paths)

    def _open_dashboard(self, paths: RunPaths) -> None:
        from gptwiz.tui.screens.dashboard import DashboardScreen  # lazy: its charts load only when watching

        self.push_screen(DashboardScreen(paths, self.context, can_go_back=True))

    def on_run_started(self, message: RunStarted) -> None:
        """After a launch: back to the welcome screen (the wizard is done) with the run's dashboard on top."""
        self._pop_to("welcome")
        self.wizard = WizardState(runs_dir=self.context.runs_dir, data_dir=self.context.data_dir)
        self._open_dashboard(message.paths)

    def on_leave_app(self, message: LeaveApp) -> None:
        self.action_leave()


def farewell(app: GptwizApp) -> str | None:
    """What to print once the app has ended: the state of the run it showed last (gptwiz.tui.outcome), or, left in
    the wizard before a run started, the command that trains what was chosen; None where nothing goes on."""
    if app.return_value:
        return farewell_line(app.return_value, app.context.runs_dir)
    return app.farewell_note


def _run(app: GptwizApp) -> int:
    app.run()
    line = farewell(app)
    if line:
        print(line)
    return 0


def run_watch_app(paths: RunPaths) -> int:
    return _run(GptwizApp(AppContext(runs_dir=paths.root.parent), watch=paths))


def run_wizard_app(runs_dir: str | Path = "runs", data_dir: str | Path = "data") -> int:
    return _run(GptwizApp(AppContext(runs_dir=Path(runs_dir), data_dir=Path(data_dir))))
