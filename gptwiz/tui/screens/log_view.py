"""l on the dashboard: train.log or console.log in full screen, scrollable, following the end as the run writes.

A thread worker reads what was appended a few times a second (never the whole file again) and hands the new
lines to the event loop; the view stays at the end while it is there, and stays put once the user scrolls up
(end follows again). A line longer than the view wraps onto the rows below it.
"""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.css.query import NoMatches
from textual.widgets import Footer, Static
from textual.worker import get_current_worker

from gptwiz.common.inert import inert
from gptwiz.runs.paths import RunPaths
from gptwiz.runs.tail import TailReader
from gptwiz.tui.context import AppContext
from gptwiz.tui.screens.base import AppScreen
from gptwiz.tui.widgets.wrapped_log import WrappedLog

FIRST_READ_BYTES = 4 << 20  # a long log opens at its last 4 MB: the view keeps MAX_LINES anyway
MAX_LINES = 20_000
READ_CHUNK = 1 << 20        # at most this much a poll: a log grown by gigabytes is taken in steps

HELP = """\
The run's two logs, in full: train.log is what the trainer logs (settings, evaluations, checkpoints, the
traceback of a failure); console.log is the detached trainer's own output (its progress lines, and errors from
before train.log was opened). New lines appear as the run writes them; the view follows the end unless you
scrolled up (end follows again; home goes to the top). tab switches between the two files.
"""


class LogViewScreen(AppScreen):
    BINDINGS = [
        Binding("escape", "app.pop_screen", "back"),
        Binding("l", "app.pop_screen", "back", show=False),
        Binding("tab", "switch", "other log", priority=True),
    ]
    HELP = HELP

    def __init__(self, paths: RunPaths, context: AppContext, which: str = "train.log") -> None:
        super().__init__(id="log-view")
        self.paths, self.context = paths, context
        self.which = which
        self.lines_read = 0  # lines shown from the current file (tests wait on it)
        self.polls = 0
        self._missing: bool | None = None

    def help_title(self) -> str:
        return f"gptwiz: run {inert(self.paths.name)}'s logs"

    def leaving_run(self) -> str | None:
        return self.paths.name

    def path(self) -> Path:
        return self.paths.log if self.which == "train.log" else self.paths.console

    def compose(self) -> ComposeResult:
        yield Static("", id="log-view-title")
        yield WrappedLog(id="log-view-text", max_lines=MAX_LINES, auto_scroll=True)
        yield Footer()

    def on_mount(self) -> None:
        self._open()

    def _open(self) -> None:
        log = self.query_one(WrappedLog)
        log.clear()
        self.lines_read = 0
        self._title()
        log.focus()
        self._follow(self.path())

    def _title(self, missing: bool = False) -> None:
        text = Text.assemble(("run ", "dim"), (inert(self.paths.name), "bold"), "  ", (self.which, "bold cyan"))
        if missing:
            text.append(" (not there yet)", style="yellow")
        text.append(f"  {inert(self.path())}", style="dim")
        self.query_one("#log-view-title", Static).update(text)

    @work(thread=True, exclusive=True, group="log-view")
    def _follow(self, path: Path) -> None:
        worker = get_current_worker()
        follower = TailReader(path, first_read_bytes=FIRST_READ_BYTES, max_read_bytes=READ_CHUNK)
        while not worker.is_cancelled:
            lines, restarted = follower.read_text()
            try:
                self.app.call_from_thread(self._add, path, lines, restarted, follower.offset is None)
            except RuntimeError:  # the app is closing
                return
            if worker.cancelled_event.wait(self.context.poll_interval_s):
                return

    def _add(self, path: Path, lines: list[str], restarted: bool, missing: bool) -> None:
        if path != self.path():
            return  # switched files since
        try:
            log = self.query_one(WrappedLog)
        except NoMatches:
            return
        self.polls += 1
        if restarted:
            log.clear()
            self.lines_read = 0
        if missing != self._missing:
            self._missing = missing
            self._title(missing)
        if lines:
            # A log holds outside text (paths, errors, another process's output); tabs stay, the log expands them.
            log.add_lines([inert(line, multiline=True) for line in lines])  # scrolls only if it was at the end
            self.lines_read += len(lines)

    def action_switch(self) -> None:
        self.which = "console.log" if self.which == "train.log" else "train.log"
        self._missing = None
        self._open()
