"""The dashboard's text panels: state banner, progress, throughput, log tail. Each draws what it is given."""

from __future__ import annotations

import textwrap

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Sparkline, Static

from gptwiz.common import fmt
from gptwiz.common.inert import inert
from gptwiz.runs.snapshot import RunSnapshot
from gptwiz.tui.widgets.text import bar
from gptwiz.wizard.run_quality import RunPrediction, prediction_lines

STATE_STYLE = {"running": "bold green", "finished": "bold cyan", "stopped": "bold yellow",
               "failed": "bold white on red", "diverged": "bold white on red", "unknown": "dim", "missing": "dim", "starting": "bold blue",
               "unreadable": "bold white on red"}


class QuietStatic(Static):
    """A Static that redraws only when its text changed, and without a layout pass when its size is fixed."""

    fixed_size = True

    def set_text(self, text: Text) -> None:
        if text == getattr(self, "_last_text", None):
            return
        self._last_text = text
        self.update(text, layout=not self.fixed_size)


def state_text(state: str) -> Text:
    return Text(f" {inert(state.upper())} ", style=STATE_STYLE.get(state, "bold"))  # status.json's own word


class StateBanner(QuietStatic):
    fixed_size = False  # an error adds a line
    """Run name, preset, device and state; a failed or diverged run's error on the line below, and the file that
    holds it in full (its traceback, or the trainer's own output) on the last line."""

    ERROR_LINES = 2  # the error's room, so that the file's line is never cut off

    def show(self, snap: RunSnapshot, error_file: str | None = None) -> None:
        # Every string here comes from the run's files (its folder's name, status.json, config.json): inert.
        line = Text.assemble(("run ", "dim"), (inert(snap.name), "bold"), "  ", state_text(snap.state))
        if snap.activity:  # "evaluating (3 of 40 batches)": the iteration stands still meanwhile
            line.append(f" {inert(snap.activity)}", style="bold")
        details = [inert(d) for d in (snap.preset and f"preset {snap.preset}",
                                      snap.params and f"{snap.params / 1e6:.1f}M params", snap.device) if d]
        if details:
            line.append("  " + " · ".join(details), style="dim")
        if snap.error and snap.state in ("failed", "diverged", "stopped", "missing", "unreadable"):
            error = f"{snap.state}: {inert(snap.error)}"
            room = self.ERROR_LINES * max(20, (self.content_size.width or 78))
            if error_file and len(error) > room:
                error = error[:room - 1] + "…"
            line.append("\n")
            line.append(error, style="bold red")
        if snap.held_out and not (snap.error and snap.state in ("failed", "diverged")):
            line.append("\n")
            line.append(inert(snap.held_out), style="dim")
        if error_file and snap.state in ("failed", "diverged"):
            line.append("\n")
            line.append("the whole error: ", style="dim")
            line.append(inert(error_file), style="bold")
        self.set_class(bool(snap.error) and snap.state in ("failed", "diverged"), "-error")
        self.set_text(line)


class ProgressPanel(QuietStatic):
    """Iteration, a bar, elapsed and ETA."""

    def show(self, snap: RunSnapshot) -> None:
        width = max(8, self.content_size.width or 24)
        text = Text()
        text.append(f"iter {snap.iter:,}/{snap.max_iters:,}  {100 * snap.progress:.0f}%\n", style="bold")
        text.append(bar(snap.progress, width - 1) + "\n", style="green" if snap.state != "failed" else "red")
        text.append(f"elapsed {fmt.duration(snap.elapsed_s)}\n")
        eta = fmt.UNKNOWN if snap.state != "running" else fmt.duration(snap.eta_s) if snap.eta_s is not None else "measuring"
        text.append(f"ETA     {eta}\n")
        text.append(loss_line(snap.last_loss, snap.best_val_loss, width))
        self.set_text(text)


def loss_line(last_loss: float | None, best_val: float | None, width: int) -> str:
    """'loss 8.1234 best val 8.1727': the same words at every width, fewer digits where it is narrow."""
    line = ""
    for digits in (4, 3, 2, 1):
        last = f"{last_loss:.{digits}f}" if last_loss is not None else fmt.UNKNOWN
        best = f"{best_val:.{digits}f}" if best_val is not None else fmt.UNKNOWN
        line = f"loss {last} best val {best}"
        if len(line) <= width:
            break
    return line


class ThroughputPanel(Vertical):
    """Tokens/s now and as a sparkline, MFU, peak memory; the predicted final val loss, where the run has a
    prediction (quality.json), in the sparkline's place."""

    def compose(self) -> ComposeResult:
        yield QuietStatic(id="tps-text")
        quality = QuietStatic(id="quality-text")
        quality.display = False
        quality.fixed_size = False  # one line or two, by the panel's width
        yield quality
        yield Sparkline([], id="tps-spark")

    def show_prediction(self, pred: RunPrediction | None) -> None:
        """The prediction's line, or nothing (and its room back to the sparkline) where there is none."""
        text = self.query_one("#quality-text", QuietStatic)
        text.display = pred is not None
        if pred is not None:
            lines = prediction_lines(pred, max(8, text.content_size.width or self.content_size.width or 24))
            text.set_text(Text("\n".join(lines), style="dim", no_wrap=True, overflow="ellipsis"))

    def show(self, snap: RunSnapshot) -> None:
        tps = fmt.count(snap.tokens_per_sec)
        mfu = f"{100 * snap.mfu:.1f}%" if snap.mfu is not None else fmt.UNKNOWN
        text = Text()
        text.append(f"{tps} tok/s", style="bold")
        text.append(f"  MFU {mfu}\n")
        text.append(f"peak mem {fmt.gib(snap.peak_mem_bytes)}", style="dim")
        self.query_one("#tps-text", QuietStatic).set_text(text)
        spark = self.query_one("#tps-spark", Sparkline)
        data = snap.tokens_per_sec_history[-max(8, spark.size.width or 40):]
        if list(spark.data or []) != data:
            spark.data = data


def last_rows(lines: list[str], width: int, height: int) -> list[str]:
    """The newest of `lines` that fit `height` rows of `width` cells, each wrapped at spaces: the newest line
    always shows (its start, if alone it is taller than the panel)."""
    rows: list[str] = []
    for line in reversed(lines):
        wrapped = textwrap.wrap(line, max(1, width), break_long_words=True, break_on_hyphens=False) or [""]
        if len(rows) + len(wrapped) > height:
            if not rows:
                rows = wrapped[:height]
            break
        rows = wrapped + rows
    return rows


class LogTailView(QuietStatic):
    """The last lines of train.log that fit, wrapped: the newest line is never cut off."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self._lines: list[str] = []
        self._shown: list[str] = []

    def show(self, lines: list[str]) -> None:
        if lines != self._lines:
            self._lines = lines
            self._shown = [inert(line) for line in lines]  # the trainer's log holds outside text (paths, errors)
            self._render_lines()

    def on_resize(self) -> None:
        self._render_lines()

    def _render_lines(self) -> None:
        height = max(1, self.content_size.height or 3)
        shown = last_rows(self._shown, self.content_size.width or 76, height) or ["(train.log is empty so far)"]
        self.set_text(Text("\n".join(shown), no_wrap=True, overflow="crop"))
