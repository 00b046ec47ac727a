"""The device panel: each GPU's memory, utilisation, temperature and power, or the training process's CPU and RAM."""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text

from gptwiz.common import fmt
from gptwiz.common.inert import inert
from gptwiz.tui.widgets.panels import QuietStatic
from gptwiz.tui.widgets.text import bar


@dataclass(frozen=True)
class GpuCard:
    index: int
    name: str
    memory_used_bytes: int
    memory_total_bytes: int
    utilization_pct: float | None = None
    temperature_c: float | None = None
    power_w: float | None = None


@dataclass(frozen=True)
class ProcessUsage:
    pid: int
    cpu_pct: float            # of one core, as psutil gives it (can exceed 100 with several threads)
    rss_bytes: int
    ram_total_bytes: int
    ram_available_bytes: int
    cpu_count: int


@dataclass(frozen=True)
class DeviceReading:
    gpus: tuple[GpuCard, ...] = ()
    process: ProcessUsage | None = None
    note: str = ""


def machine_cpu_fraction(p: ProcessUsage) -> float:
    """The trainer's CPU use as a share of the whole machine (1.0: every core busy), as htop's total bar reads."""
    return min(1.0, max(0.0, p.cpu_pct / (100 * max(1, p.cpu_count))))


def short_name(name: str) -> str:
    for prefix in ("NVIDIA GeForce ", "NVIDIA "):
        if name.startswith(prefix):
            return name[len(prefix):]
    return name


class DevicePanel(QuietStatic):
    def show(self, reading: DeviceReading) -> None:
        width = max(8, (self.content_size.width or 24) - 12)
        text = Text()
        if reading.gpus:
            full_width = max(16, self.content_size.width or 24)
            lines = self.content_size.height or 5
            two_lines = 2 * len(reading.gpus) <= lines  # one line a card when there are many
            for card in reading.gpus:
                frac = card.memory_used_bytes / card.memory_total_bytes if card.memory_total_bytes else 0.0
                temp_power = f"{fmt.quantity(card.temperature_c, '°C')} {fmt.quantity(card.power_w, 'W')}"
                util = fmt.quantity(card.utilization_pct, "%")
                memory = f"{fmt.gib(card.memory_used_bytes, unit=False)}/{fmt.gib(card.memory_total_bytes)}"
                if two_lines:
                    head = f"GPU{card.index} {inert(short_name(card.name))} util {util} {temp_power}"
                    if len(head) > full_width:  # narrow: the numbers matter more than the name
                        head = f"GPU{card.index} util {util} {temp_power}"
                    text.append(head[:5], style="bold")
                    text.append(head[5:full_width] + "\n")
                    text.append(bar(frac, max(4, full_width - len(memory) - 1)) + " ", style="magenta")
                    text.append(f"{memory}\n")
                else:
                    text.append(f"{card.index} ", style="bold")
                    text.append(bar(frac, 6) + " ", style="magenta")
                    text.append(f"{100 * frac:3.0f}% {util} {temp_power}"[:max(4, full_width - 9)] + "\n")
        elif reading.process is not None:
            p = reading.process
            machine = machine_cpu_fraction(p)
            text.append(f"trainer pid {p.pid} (CPU)\n", style="bold")
            text.append(f"{bar(machine, width)} CPU {100 * machine:.0f}%\n", style="cyan")
            ram_frac = p.rss_bytes / p.ram_total_bytes if p.ram_total_bytes else 0.0
            text.append(f"{bar(ram_frac, width)} RAM {100 * ram_frac:.0f}%\n", style="magenta")
            text.append(f"RSS {fmt.gib(p.rss_bytes)} of {fmt.gib(p.ram_total_bytes)}, "
                        f"{fmt.gib(p.ram_available_bytes)} free")
        else:
            text.append(inert(reading.note or "no device readings", multiline=True), style="dim")
        self.set_text(text)
