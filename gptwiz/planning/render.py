"""Rich renderings of the hardware report, the memory estimate and the recommendation.

Kept apart from the decision logic so that the logic stays pure and testable, and so that the
terminal app can reuse the same pieces (the memory bar above all).
"""

from __future__ import annotations

from typing import Any

from rich.console import Console, ConsoleOptions, Group, RenderResult
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from gptwiz.common import fmt
from gptwiz.common.commands import paste_lines
from gptwiz.planning.batch_fit import HEADROOM
from gptwiz.planning.guide_tables import USE_CASES
from gptwiz.planning.hardware import HardwareReport
from gptwiz.planning.memory import MemoryEstimate
from gptwiz.planning.quality import Quality
from gptwiz.planning.quality_choice import short_quality
from gptwiz.planning.recommendation import Recommendation
from gptwiz.planning.timing import RunTime


def memory_bar(used: int, capacity: int | None, width: int = 32, headroom: float = HEADROOM) -> Text:
    """'██████░░░░ 4.9 GiB of 6 GiB (82%)': green within the headroom, yellow up to the card, red over it."""
    if not capacity:
        return Text(f"{fmt.bytes_(used, binary=True)} (no capacity to compare with)")
    share = used / capacity
    style = "green" if share <= headroom else "yellow" if share <= 1 else "red"
    filled = min(width, round(share * width))
    mark = min(width - 1, round(headroom * width))
    bar = Text()
    for i in range(width):
        if i < filled:
            bar.append("█", style=style)
        else:
            bar.append("│" if i == mark else "░", style="dim")
    bar.append(f" {fmt.bytes_(used, binary=True)} of {fmt.bytes_(capacity, binary=True)} ({share:.0%})",
               style=style)
    return bar


def hardware_table(report: HardwareReport) -> Table:
    table = Table(title="this machine", show_header=False, box=None, padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    if report.gpus:
        for g in report.gpus:
            cc = f", compute {g.compute_capability}" if g.compute_capability else ""
            table.add_row(f"GPU {g.index}", f"{g.name}: {fmt.bytes_(g.memory_total_bytes, binary=True)} "
                          f"({fmt.bytes_(g.memory_free_bytes, binary=True)} free){cc}, "
                          f"bf16 {'yes' if g.bf16 else 'no (float16)'}")
        table.add_row("driver", f"{report.driver_version or fmt.UNKNOWN} (CUDA {report.cuda_version or fmt.UNKNOWN})")
    else:
        table.add_row("GPU", f"none ({report.nvml_error})" if report.nvml_error else "none")
    table.add_row("CPU", f"{report.cpu_name}, {report.cpu_count} cores, bf16 {'yes' if report.cpu_bf16 else 'no'}")
    table.add_row("RAM", f"{fmt.bytes_(report.ram_total_bytes, binary=True)} "
                  f"({fmt.bytes_(report.ram_available_bytes, binary=True)} available)")
    for w in report.warnings:
        table.add_row("note", Text(w, style="yellow"))
    return table


def estimate_table(est: MemoryEstimate, title: str, guide_vram_gb: float | None = None) -> Table:
    """The estimate term by term. The title says what the figure is (CPU RAM or the card's VRAM); the guide's
    VRAM figure stands beside a CUDA estimate only, the one it can be compared with."""
    cpu = est.device_type == "cpu"
    where = "CPU peak RSS" if cpu else "CUDA reserved + context"
    kind = "peak CPU RAM (not VRAM)" if cpu else "peak VRAM"
    table = Table(title=f"{title}: {est.params / 1e6:.1f}M parameters, {kind}", title_justify="left",
                  caption=f"batch {est.batch_size} x block {est.block_size}, grad accum {est.grad_accum}, "
                          f"{est.dtype} on {est.device_type}{' compiled' if est.compiled else ''}"
                          f"{', Muon' if est.optimizer_name == 'muon' else ''}: {where}",
                  caption_justify="left", show_header=False, box=None, padding=(0, 2))
    table.add_column()
    table.add_column(justify="right")
    lines = est.lines()
    for label, value in lines[:-1]:
        table.add_row(label, fmt.bytes_(value, binary=True), style="dim" if value < 0 else None)
    label, value = lines[-1]
    table.add_row(Text(label, style="bold"), Text(fmt.bytes_(value, binary=True), style="bold"))
    if guide_vram_gb and not cpu:
        table.add_row("the guide's VRAM figure", f"{guide_vram_gb:g} GB", style="dim")
    return table


def time_lines(run: RunTime | None, probe: RunTime | None, iters: int, device_type: str) -> Text:
    """'time: about 19m24s for 1,300 iterations (probe 1m29s)' and what the figure comes from."""
    out = Text()
    if run is None:
        out.append(f"time: not predicted (no {'CUDA card' if device_type == 'cuda' else 'device'} here to measure)",
                   style="dim")
        return out
    out.append("time: ", style="bold")
    out.append(f"about {fmt.duration(run.seconds)} for {iters:,} iterations")
    if probe is not None and probe.iters >= iters:  # probe_iters: never longer than the run
        out.append(" (a probe would train all of it: the run is its own probe)")
    elif probe is not None:
        out.append(f" (a {probe.iters}-iteration probe: {fmt.duration(probe.seconds)})")
    out.append(f"\n  {run.tokens_per_sec:,.0f} tokens/s; {run.basis}; evaluations {fmt.duration(run.eval_s)}, "
               f"checkpoints {fmt.duration(run.checkpoint_s)}, start{' and compile' if run.compiled else ''} "
               f"{fmt.duration(run.startup_s)}", style="dim")
    return out


def quality_lines(q: Quality | None) -> Text:
    """'quality: val loss 4.21 (80%: 3.95-4.47), 1.52 bits/byte (1.43-1.61)' and what it rests on."""
    out = Text()
    if q is None:
        return out
    out.append("quality: ", style="bold")
    out.append(f"final val loss about {q.val_loss:.2f} (80% band {q.low:.2f}-{q.high:.2f})")
    if q.bits_per_byte is not None and q.bpb_low is not None and q.bpb_high is not None:
        out.append(f", {q.bits_per_byte:.2f} bits/byte ({q.bpb_low:.2f}-{q.bpb_high:.2f})")
    basis = {"fit": "predicted from runs of the trainer", "probe": "refitted on the probe's curve",
             "run": "refitted on the run's own curve"}[q.basis]
    notes = [basis]
    if q.assumed_data:
        notes.append("typical English prose assumed (give --dataset to measure yours)")
    if q.extrapolated:
        notes.append("beyond the fitted runs: a published size exponent, a wider band")
    out.append("\n  " + "; ".join(notes), style="dim")
    return out


def recommendation_view(rec: Recommendation, commands: list[str], data_note: str | None = None) -> Group:
    name, explanation = USE_CASES[rec.use_case]
    head = Text()
    head.append(rec.preset, style="bold green" if rec.fits else "bold red")
    head.append(f"  {rec.params / 1e6:.0f}M parameters, context {rec.block_size}, batch {rec.batch_size}")
    if rec.grad_accum > 1:
        head.append(f" x {rec.grad_accum} accumulation")
    head.append(f", learning rate {rec.learning_rate:g}, dropout {rec.dropout:g}, {rec.max_iters} iterations")
    path = Text()
    for i, reason in enumerate(rec.reasons):
        path.append(f"{'└' if i == len(rec.reasons) - 1 else '├'}─ ", style="dim")
        path.append(reason + "\n")
    parts: list[Any] = [Panel(head, title=f"{name}: {explanation}", title_align="left"),
                        Text("decision path", style="bold"), path]
    parts += [Text("memory", style="bold"),
              memory_bar(rec.estimate_bytes, rec.memory_bytes),
              Text(f"estimated peak on {'the card' if rec.device_type == 'cuda' else 'CPU, of the RAM available'}; "
                   f"the line marks {HEADROOM:.0%}", style="dim")]
    if rec.run_time is not None:
        parts += [Text("time", style="bold"), time_lines(rec.run_time, rec.probe_time, rec.max_iters, rec.device_type)]
    if rec.quality is not None:
        parts.append(quality_lines(rec.quality))
    for w in rec.warnings:
        parts.append(Text(f"! {w}", style="yellow"))
    if rec.phases:
        phases = Table(title="phases", show_header=True, box=None, title_justify="left")
        for col in ("phase", "preset", "learning rate", "iterations", "note"):
            phases.add_column(col)
        for ph in rec.phases:
            phases.add_row(ph.name, ph.preset, f"{ph.learning_rate:g}", str(ph.max_iters), ph.note)
        parts.append(phases)
    if rec.alternatives:
        alts = Table(title="alternatives", show_header=False, box=None, title_justify="left")
        alts.add_column(style="cyan")
        alts.add_column()
        for preset, why in rec.alternatives:
            q = rec.alternative_quality.get(preset)
            alts.add_row(preset, why + (f" (predicted {short_quality(q)})" if q else ""))
        parts.append(alts)
    parts.append(Text("to train it", style="bold"))
    if data_note:
        parts.append(Text(data_note, style="dim"))
    for cmd in commands:
        parts.append(FoldedCommand(cmd))
    return Group(*parts)


class FoldedCommand:
    """A command line folded between its arguments at the width it is drawn at, so that pasted back into a shell
    the lines are the one command (rich's own wrapping would break it without backslashes)."""

    def __init__(self, command: str, style: str = "bold cyan") -> None:
        self.command, self.style = command, style

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        for line in paste_lines(self.command, max(20, options.max_width)):
            yield Text(line, style=self.style, no_wrap=True, overflow="fold")


__all__ = ["memory_bar", "hardware_table", "estimate_table", "time_lines", "recommendation_view"]
