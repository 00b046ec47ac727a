"""Step 1: what gptwiz does, and the runs already there, to watch or resume."""

from __future__ import annotations

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import DataTable, Footer, Static
from textual.worker import get_current_worker

from gptwiz.common.errors import UsageError
from gptwiz.runs.folder import RunPaths
from gptwiz.runs.listing import RunSummary, list_runs
from gptwiz.tui.screens.base import StepTitle, WizardStep
from gptwiz.tui.screens.confirm import ConfirmScreen
from gptwiz.tui.widgets.panels import STATE_STYLE

INTRO = ("gptwiz picks a GPT model size for your use case, hardware and data (following the model-selection "
         "guide), proves it with a short probe run, then trains it in the background while you watch, "
         "detach, and come back later.")


class WelcomeScreen(WizardStep):
    STEP = "welcome"
    BINDINGS = [
        Binding("n", "new", "new model"),
        Binding("w", "watch", "watch run"),
        Binding("r", "resume", "resume run"),
        Binding("q", "app.quit", "quit"),
        Binding("escape", "app.quit", "quit", show=False),
    ]

    def __init__(self) -> None:
        super().__init__(id="welcome")
        self.rows: list[RunSummary] = []
        self.loaded = False

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
            table.add_row(r.name, Text(r.state_text, style=STATE_STYLE.get(r.state_text, "")), r.progress_text,
                          r.loss_text, r.updated_at.replace("T", " ")[:16], key=r.name)
        if selected is not None and selected.name in {r.name for r in rows}:
            table.move_cursor(row=[r.name for r in rows].index(selected.name))
        title = (f"Runs in {self.context.runs_dir}: w watches the selected one, r resumes a stopped one"
                 if rows else f"No runs in {self.context.runs_dir} yet.")
        self.query_one("#runs-title", Static).update(Text(title, style="dim"))
        table.display = bool(rows)
        # Listed all the same, each with its reason below the table (a column would cut it).
        unreadable = [f"{r.name}: unreadable: {r.unreadable}" for r in rows if r.unreadable]
        notes = self.query_one("#runs-unreadable", Static)
        notes.update(Text("\n".join(unreadable), style="red"))
        notes.display = bool(unreadable)

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
        self.gptwiz.open_dashboard(RunPaths(self.context.runs_dir / row.name))

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
                   f"its {row.unreadable}" if row.unreadable else f"it is {row.state}")
            self.notify(f"run {row.name} cannot be resumed: {why}", severity="warning")
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self._resume(row)

        self.app.push_screen(ConfirmScreen(
            f"Resume run {row.name} from its last checkpoint (iteration {row.iter} of {row.max_iters})?\n"
            f"It trains in the background; the dashboard opens.", yes="Resume", no="Cancel"), answered)

    def _resume(self, row: RunSummary) -> None:
        args = ["train", "--model_name", row.name, "--resume", "--runs_dir", str(self.context.runs_dir)]
        try:
            self.gptwiz.start_training(args, row.name)
        except UsageError as exc:
            self.notify(str(exc), severity="error")
