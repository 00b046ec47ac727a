"""Step 1: what gptwiz does, and the runs already there, to watch or resume."""

from __future__ import annotations

import importlib.util

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import DataTable, Footer, Static
from textual.worker import get_current_worker

from gptwiz.common.errors import UsageError
from gptwiz.common.inert import inert
from gptwiz.common.rich_text import outside
from gptwiz.runs.listing import RunSummary, folder_text, list_runs
from gptwiz.runs.paths import RunPaths
from gptwiz.tui.messages import OpenDashboard, StartTraining
from gptwiz.tui.screens.base import StepTitle, WizardStep, enter_binding
from gptwiz.tui.screens.confirm import ConfirmScreen
from gptwiz.tui.widgets.panels import STATE_STYLE

INTRO = ("gptwiz picks a GPT model size for your use case, hardware and data (following the model-selection "
         "guide), proves it with a short probe run, then trains it in the background while you watch, "
         "detach, and come back later.")


class WelcomeScreen(WizardStep):
    STEP = "welcome"
    HELP = ("The first step: start a new model (n), or pick a run in the list (↑/↓) to watch its dashboard (w or "
            "enter) or to resume a stopped one (r). Space marks runs and c compares the marked ones (or the one "
            "selected): their loss curves on shared axes, written as one HTML page into the runs folder. The list "
            "is re-read every two seconds. Runs go on in the background whether gptwiz is open or not.")
    # One entry per action in the footer, short enough for 80 columns: with no runs, enter starts a new model
    # (n does too, unlisted), and nothing to watch, resume or compare is offered.
    BINDINGS = [
        enter_binding("enter_watch", "watch"),
        enter_binding("enter_new", "new model"),
        Binding("n", "new", "new model"),
        Binding("n", "new_unlisted", "new model", show=False),
        Binding("w", "watch", "watch", show=False),  # enter does the same, and the footer says so
        Binding("r", "resume", "resume"),
        Binding("space", "mark", "mark", show=False),
        Binding("c", "compare", "compare"),
        Binding("escape", "app.leave", "quit", show=False),
    ]

    def __init__(self) -> None:
        super().__init__(id="welcome")
        self.rows: list[RunSummary] = []
        self.loaded = False
        self.marked: set[str] = set()  # the runs space marked, for c to compare

    def compose(self) -> ComposeResult:
        yield StepTitle(self.STEP)
        with Vertical(classes="wizard-body"):
            yield Static(INTRO, id="intro")
            yield Static(Text("Press n to start a new model.", style="bold"), id="start-hint")
            yield Static("", id="runs-title")
            yield DataTable(id="runs", cursor_type="row", zebra_stripes=True)
            yield Static("", id="runs-unreadable")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns("run", "state", "progress", "last loss", "updated")
        table.display = False
        self.query_one("#runs-unreadable", Static).display = False
        self.refresh_runs()
        self.set_interval(2.0, self.refresh_runs)

    def on_screen_resume(self) -> None:
        self.refresh_runs()

    @work(thread=True, exclusive=True, group="welcome-runs")
    def refresh_runs(self) -> None:
        rows = list_runs(self.context.runs_dir)
        if not get_current_worker().is_cancelled:
            self.app.call_from_thread(self._show_rows, rows)

    def _show_rows(self, rows: list[RunSummary]) -> None:
        if self.loaded and rows == self.rows:
            return
        self.loaded = True
        selected = self.selected()
        self.rows = rows
        table = self.query_one(DataTable)
        table.clear()
        for r in rows:
            # Each cell as a Text (a str would be read as markup), made inert: they come from the runs' folders.
            table.add_row(self._name_cell(r.name), outside(r.state_text, STATE_STYLE.get(r.state_text, "")),
                          outside(r.progress_text), outside(r.loss_text),
                          outside(r.updated_at.replace("T", " ")[:16]), key=r.name)
        self.marked &= {r.name for r in rows}
        if selected is not None and selected.name in {r.name for r in rows}:
            table.move_cursor(row=[r.name for r in rows].index(selected.name))
        folder = inert(folder_text(self.context.runs_dir))
        title = (f"Runs in {folder}: w watches the selected one, r resumes a stopped one, "
                 "space marks runs and c compares them"
                 if rows else f"No runs yet in {folder}")
        self.query_one("#runs-title", Static).update(Text(title, style="dim"))
        table.display = bool(rows)
        # Listed all the same, each with its reason below the table (a column would cut it).
        unreadable = [f"{inert(r.name)}: unreadable: {inert(r.unreadable)}" for r in rows if r.unreadable]
        notes = self.query_one("#runs-unreadable", Static)
        notes.update(Text("\n".join(unreadable), style="red"))
        notes.display = bool(unreadable)
        self.refresh_bindings()  # enter watches the selected run, or starts a new model when there is none

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("enter_watch", "new", "resume", "compare"):
            return bool(self.rows)
        if action in ("enter_new", "new_unlisted"):
            return not self.rows
        return True

    def action_enter_watch(self) -> None:
        self.after_typing(self.action_watch)  # after the arrow keys sent just before enter

    def action_enter_new(self) -> None:
        self.action_new()

    def action_new_unlisted(self) -> None:
        self.action_new()

    def selected(self) -> RunSummary | None:
        table = self.query_one(DataTable)
        if not self.rows or table.cursor_row is None or not 0 <= table.cursor_row < len(self.rows):
            return None
        return self.rows[table.cursor_row]

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_watch()

    def action_new(self) -> None:
        self.advance()

    def action_watch(self) -> None:
        row = self.selected()
        if row is None:
            self.notify("no run to watch yet: press n to start one", severity="warning")
            return
        self.post_message(OpenDashboard(self, RunPaths(self.context.runs_dir / row.name)))

    def action_mark(self) -> None:
        """Mark the selected run for comparison, or unmark it."""
        row = self.selected()
        if row is None:
            return
        self.marked ^= {row.name}
        table = self.query_one(DataTable)
        table.update_cell(row.name, table.ordered_columns[0].key, self._name_cell(row.name), update_width=True)

    def _name_cell(self, name: str) -> Text:
        return outside(("✓ " if name in self.marked else "") + name)

    def compared(self) -> list[str]:
        """What c compares: the marked runs in the list's order, else the selected one."""
        marked = [r.name for r in self.rows if r.name in self.marked]
        row = self.selected()
        return marked or ([row.name] if row is not None else [])

    def action_compare(self) -> None:
        names = self.compared()
        if not names:
            self.notify("no runs to compare yet", severity="warning")
            return
        self.notify(f"drawing {', '.join(inert(n) for n in names)} ...", markup=False)
        self._compare(names)

    @work(thread=True, exclusive=True, group="welcome-compare")
    def _compare(self, names: list[str]) -> None:
        """The comparison as one HTML page in the runs folder (matplotlib: loaded here, on first use)."""
        from gptwiz.report.build import MATPLOTLIB_MISSING, command, load, write  # lazy: the report loads on first c

        out = self.context.runs_dir / "compare.html"
        try:
            if importlib.util.find_spec("matplotlib") is None:
                raise UsageError(f"comparing runs {MATPLOTLIB_MISSING}")
            write(load(names, self.context.runs_dir), out, smooth=0.6, log_y=False)
        except (UsageError, OSError) as exc:
            self.app.call_from_thread(self.notify, inert(exc, multiline=True), severity="error", markup=False)
            return
        self.app.call_from_thread(self.notify, f"wrote {inert(out)}: open it in a browser (from a shell: "
                                  f"{inert(command(names, self.context.runs_dir))})", timeout=10, markup=False)

    def action_resume(self) -> None:
        row = self.selected()
        if row is None:
            self.notify("no run to resume", severity="warning")
            return
        if row.state == "running":
            self.action_watch()
            return
        if not row.resumable:
            why = ("it has no checkpoint yet" if not row.has_checkpoint else
                   f"its {inert(row.unreadable)}" if row.unreadable else f"it is {inert(row.state)}")
            self.notify(f"run {inert(row.name)} cannot be resumed: {why}", severity="warning", markup=False)
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self._resume(row)

        self.app.push_screen(ConfirmScreen(
            f"Resume run {inert(row.name)} {inert(row.resume_text)}?\n"
            f"It trains in the background; the dashboard opens.", yes="Resume", no="Cancel"), answered)

    def _resume(self, row: RunSummary) -> None:
        args = ["train", "--model_name", row.name, "--resume", "--runs_dir", str(self.context.runs_dir)]
        self.post_message(StartTraining(self, args, row.name))
