"""The dashboard's text panels: state banner, progress, throughput, log tail. Each draws what it is given."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Sparkline, Static

from gptwiz.common import fmt
from gptwiz.runs.monitor import RunSnapshot
from gptwiz.tui.widgets.text import bar

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
    return Text(f" {state.upper()} ", style=STATE_STYLE.get(state, "bold"))


class StateBanner(QuietStatic):
    fixed_size = False  # an error adds a line
    """Run name, preset, device and state; a failed or diverged run's error on the line below."""

    def show(self, snap: RunSnapshot) -> None:
        line = Text.assemble(("run ", "dim"), (snap.name, "bold"), "  ", state_text(snap.state))
        details = [d for d in (snap.preset and f"preset {snap.preset}",
                               snap.params and f"{snap.params / 1e6:.1f}M params", snap.device) if d]
        if details:
            line.append("  " + " · ".join(details), style="dim")
        if snap.error and snap.state in ("failed", "diverged", "stopped", "missing", "unreadable"):
            line.append("\n")
            line.append(f"{snap.state}: {snap.error}", style="bold red")
        self.set_class(bool(snap.error) and snap.state in ("failed", "diverged"), "-error")
        self.set_text(line)


class ProgressPanel(QuietStatic):
    """Iteration, a bar, elapsed and ETA."""

    def show(self, snap: RunSnapshot) -> None:
        width = max(8, self.content_size.width or 24)
        text = Text()
        text.append(f"iter {snap.iter:,}/{snap.max_iters:,}  {100 * snap.progress:.0f}%\n", style="bold")
        text.append(bar(snap.progress, width) + "\n", style="green" if snap.state != "failed" else "red")
        text.append(f"elapsed {fmt.duration(snap.elapsed_s)}\n")
        eta = fmt.UNKNOWN if snap.state != "running" else fmt.duration(snap.eta_s) if snap.eta_s is not None else "measuring"
        text.append(f"ETA     {eta}\n")
        digits = 4 if width >= 26 else 3
        best = f"{snap.best_val_loss:.{digits}f}" if snap.best_val_loss is not None else fmt.UNKNOWN
        last = f"{snap.last_loss:.{digits}f}" if snap.last_loss is not None else fmt.UNKNOWN
        text.append(f"loss {last} best val {best}" if width >= 30 else f"loss {last} val {best}")
        self.set_text(text)


class ThroughputPanel(Vertical):
    """Tokens/s now and as a sparkline, MFU, peak memory."""

    def compose(self) -> ComposeResult:
        yield QuietStatic(id="tps-text")
        yield Sparkline([], id="tps-spark")

    def show(self, snap: RunSnapshot) -> None:
        tps = fmt.count(snap.tokens_per_sec)
        mfu = f"{100 * snap.mfu:.1f}%" if snap.mfu is not None else fmt.UNKNOWN
        text = Text()
        text.append(f"{tps} tok/s", style="bold")
        text.append(f"  MFU {mfu}\n")
        text.append(f"peak mem {fmt.bytes_(snap.peak_mem_bytes, decimals=1)}", style="dim")
        self.query_one("#tps-text", QuietStatic).set_text(text)
        spark = self.query_one("#tps-spark", Sparkline)
        data = snap.tokens_per_sec_history[-max(8, spark.size.width or 40):]
        if list(spark.data or []) != data:
            spark.data = data


class LogTailView(QuietStatic):
    """The last lines of train.log that fit."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self._lines: list[str] = []

    def show(self, lines: list[str]) -> None:
        if lines != self._lines:
            self._lines = lines
            self._render_lines()

    def on_resize(self) -> None:
        self._render_lines()

    def _render_lines(self) -> None:
        height = max(1, self.content_size.height or 4)
        shown = self._lines[-height:] or ["(train.log is empty so far)"]
        self.set_text(Text("\n".join(shown), no_wrap=True, overflow="ellipsis"))
