"""The estimate of peak training memory against the device it must fit on."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from gptwiz.common import fmt
from gptwiz.tui.widgets.text import bar

FIT_FRACTION = 0.90  # what the recommendation and the probe call fitting: under 90% of the device


def memory_text(estimate: int | None, device: int, device_name: str, width: int) -> Text:
    if estimate is None:
        return Text("memory estimate unavailable", style="dim")
    if device <= 0:
        return Text(f"needs about {fmt.gib(estimate)} (device memory unknown)")
    frac = estimate / device
    style = "green" if frac <= FIT_FRACTION else "yellow" if frac <= 1.0 else "bold red"
    verdict = "fits" if frac <= FIT_FRACTION else "tight (over 90%)" if frac <= 1.0 else "does NOT fit"
    text = Text()
    text.append(bar(frac, width), style=style)
    text.append(f" {100 * frac:.0f}%\n", style=style)
    text.append(f"{fmt.gib(estimate)} of {fmt.gib(device)} {device_name}: ")
    text.append(verdict, style=f"bold {style}")
    return text


class MemoryBar(Static):
    def show(self, estimate: int | None, device: int, device_name: str) -> None:
        width = max(10, (self.content_size.width or 40) - 6)
        self.update(memory_text(estimate, device, device_name, width))
