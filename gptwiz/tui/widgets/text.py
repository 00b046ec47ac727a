"""The bar the widgets draw memory, progress and CPU with (numbers are formatted by gptwiz.common.fmt)."""

from __future__ import annotations

import math

FULL, EMPTY = "█", "░"


def bar(fraction: float, width: int) -> str:
    """A bar of `width` cells, filled to `fraction` (clamped to 0..1), with eighths for the last cell."""
    width = max(1, width)
    if not math.isfinite(fraction):
        fraction = 0.0
    fraction = min(1.0, max(0.0, fraction))
    eighths = round(fraction * width * 8)
    full, rest = divmod(eighths, 8)
    partial = " ▏▎▍▌▋▊▉"[rest].strip() if rest else ""
    return (FULL * full + partial + EMPTY * width)[:width]

