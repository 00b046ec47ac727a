"""The probe's verdict panel (rich): what was measured, what it means, what to change. Shown by `gptwiz probe` and
by the plain wizard, both front-ends, so it lives below them."""

from __future__ import annotations

from pathlib import Path

from rich.panel import Panel
from rich.table import Table

from gptwiz.common import fmt
from gptwiz.common.rich_text import outside
from gptwiz.runs.paths import RunPaths
from gptwiz.training.probe.result import ProbeResult
from gptwiz.wizard.advice import budget_line

_COLOURS = {"pass": "green", "warn": "yellow", "fail": "red", "cancelled": "grey50"}


def render(result: ProbeResult) -> Panel:
    """The verdict panel for `result`."""
    colour = _COLOURS.get(result.verdict, "white")
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    _measured_rows(table, result)
    _settings_rows(table, result)
    # Reasons may quote the probe process's error, and names and paths come from outside: inert, and as Text,
    # which rich reads no markup in.
    for i, reason in enumerate(result.reasons):
        table.add_row("why" if i == 0 else "", outside(reason))
    for item in result.advice:
        table.add_row("[bold]advice[/]", outside(item))
    if result.run_dir:
        table.add_row("saved", outside(RunPaths(Path(result.run_dir)).probe))
    return Panel(table, title=f"probe: [bold {colour}]{result.verdict.upper()}[/]", border_style=colour, expand=False)


def _measured_rows(table: Table, r: ProbeResult) -> None:
    """Loss, speed, the full run's time, memory."""
    if r.losses:
        table.add_row("loss", f"{r.loss_first:.3f} -> {r.loss_last:.3f} ({100 * (r.relative_drop or 0):.0f}% lower), "
                              f"slope {r.loss_slope:+.4f}/iter, noise {100 * (r.loss_noise or 0):.1f}%")
        table.add_row("speed", f"{r.sec_per_iter:.3f} s/iter, {fmt.count(r.tokens_per_sec)} tokens/s once warm; "
                               f"warm-up {r.warmup_s:.1f} s ({r.warmup_iters} iterations)"
                               + (f", start-up {r.startup_s:.1f} s" if r.startup_s is not None else ""))
        table.add_row("full run", f"{r.full_run_iters} iterations: about {fmt.duration(r.projected_full_run_s)} "
                                  "(evaluations included)")
    if r.budget_s and r.projected_full_run_s is not None:
        table.add_row("budget", budget_line(r))
    if r.quality:
        table.add_row("quality", quality_after_probe(r))
    if r.peak_memory_bytes:
        share = (f" ({100 * r.peak_memory_bytes / r.device_memory_total_bytes:.0f}%)"
                 if r.device_memory_total_bytes else "")
        table.add_row("memory", f"peak {fmt.gib(r.peak_memory_bytes)} ({r.memory_kind}) of "
                                f"{fmt.gib(r.device_memory_total_bytes)}{share}; estimate {fmt.gib(r.estimate_bytes)}")
    if r.cuda:
        table.add_row("cuda", ", ".join(f"{k} {fmt.gib(v)}" for k, v in r.cuda.items()))


def quality_after_probe(r: ProbeResult) -> str:
    """'final val loss about 4.31 (4.22-4.40), 1.66 bits/byte; before the probe 4.45 (4.19-4.70)'."""
    q, b = r.quality or {}, r.quality_before or {}
    text = f"final val loss about {q['val_loss']:.2f} ({q['low']:.2f}-{q['high']:.2f})"
    if q.get("bits_per_byte") is not None:
        text += f", {q['bits_per_byte']:.2f} bits/byte"
    if b:
        text += f"; before the probe {b['val_loss']:.2f} ({b['low']:.2f}-{b['high']:.2f})"
    return text


def _settings_rows(table: Table, r: ProbeResult) -> None:
    """The settings probed, and each attempt's outcome when there was more than one."""
    table.add_row("settings", outside(f"{r.preset}: --batch_size {r.batch_size} --grad_accum {r.grad_accum} "
                              f"(effective {r.batch_size * r.grad_accum}), block {r.block_size}, "
                              f"--learning_rate {fmt.learning_rate(r.learning_rate)}"
                              + (f", {r.device} {r.dtype}{' compiled' if r.compile else ''}" if r.device else "")))
    if len(r.attempts) > 1:
        attempts = "; ".join(f"batch {a.batch_size} x {a.grad_accum}: {a.outcome}" for a in r.attempts)
        table.add_row("attempts", outside(attempts))
