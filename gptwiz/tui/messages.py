"""What a screen asks of the app. Screens never call the app: they post one of these, it bubbles from the screen to
the app (gptwiz.tui.app), and the app decides what it means (which screen comes next, what is pushed or popped).
A screen reads what it shares with the others through gptwiz.tui.context."""

from __future__ import annotations

from typing import Any

from textual.message import Message
from textual.screen import Screen

from gptwiz.runs.paths import RunPaths


class MoveOn(Message):
    """A wizard step is done: on to where `move` (gptwiz.wizard.flow.MOVES) leads from `step`."""

    def __init__(self, step: str, move: str = "next") -> None:
        super().__init__()
        self.step, self.move = step, move


class GoBack(Message):
    """Back to the wizard step shown before the current one."""


class StartTraining(Message):
    """Start `gptwiz TRAIN_ARGS` detached as run `name`, from `screen` (a launch, a resume), and follow it."""

    def __init__(self, screen: Screen[Any], train_args: list[str], name: str) -> None:
        super().__init__()
        self.screen, self.train_args, self.name = screen, train_args, name

    @property
    def control(self) -> Screen[Any]:
        return self.screen


class OpenDashboard(Message):
    """Show the dashboard of the run in `paths` over `screen`, with a way back to it."""

    def __init__(self, screen: Screen[Any], paths: RunPaths) -> None:
        super().__init__()
        self.screen, self.paths = screen, paths

    @property
    def control(self) -> Screen[Any]:
        return self.screen


class RunStarted(Message):
    """A launched run wrote its status: the wizard is done, and the run's dashboard takes over."""

    def __init__(self, paths: RunPaths) -> None:
        super().__init__()
        self.paths = paths


class LeaveApp(Message):
    """Leave the app, asking first when a screen says leaving would cancel something (as q does)."""
