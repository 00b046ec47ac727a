"""How numbers read on screen and in messages: sizes in bytes, durations, counts, learning rates, readings.

Every formatter shows a value that is not known (None, NaN, infinity) as UNKNOWN. Sizes of data are decimal
(1 MB = 10^6 bytes, as the guide's dataset table and file managers count them); device memory is binary,
in GiB (NVML reports a "24 GB" card as 24576 MiB).
"""

from __future__ import annotations

import math

UNKNOWN = "-"

_DECIMAL_UNITS = ("B", "KB", "MB", "GB", "TB")
_BINARY_UNITS = ("B", "KiB", "MiB", "GiB", "TiB")
_COUNT_UNITS = ((1e9, "B"), (1e6, "M"), (1e3, "k"))
_UNIT_BYTES = {name: base**i for base, units in ((1000, _DECIMAL_UNITS), (1024, _BINARY_UNITS))
               for i, name in enumerate(units)}


def known(x: float | None) -> bool:
    return x is not None and math.isfinite(x)


def _significant(value: float) -> str:
    """Three significant digits, never in exponent form: 4.94, 12.3, 512."""
    return f"{value:.0f}" if abs(value) >= 100 else f"{value:.3g}"


def bytes_(n: float | None, *, binary: bool = False, decimals: int | None = None, unit: str | None = None) -> str:
    """'4.94 GiB' or '5 MB' (three significant digits, in the unit that needs at most three), '512 B' under a
    kilobyte; with `decimals`, '952.8 MB'; with `unit`, always in that unit: '0.0 MB' (one decimal by default)."""
    if not known(n):
        return UNKNOWN
    assert n is not None
    if unit is not None:
        return f"{n / _UNIT_BYTES[unit]:,.{1 if decimals is None else decimals}f} {unit}"
    base, units = (1024, _BINARY_UNITS) if binary else (1000, _DECIMAL_UNITS)
    text = _significant if decimals is None else (lambda v: f"{v:.{decimals}f}")
    value = float(n)
    for i, name in enumerate(units):
        # Up a unit when the number would need four digits: 1000 KiB reads as 0.977 MiB.
        if i == len(units) - 1 or abs(float(text(value) if name != "B" else round(value))) < min(base, 1000):
            break
        value /= base
    return f"{value:.0f} B" if name == "B" else f"{text(value)} {name}"


def gib(n: float | None, *, unit: bool = True) -> str:
    """Device memory and RAM, always in GiB with one decimal: '3.0 GiB' (or '3.0' without the unit)."""
    text = bytes_(n, unit="GiB")
    return text if unit or text == UNKNOWN else text.removesuffix(" GiB")


def duration(seconds: float | None) -> str:
    """'0m59s', '1h01m', '2d12h': the two largest units, to the nearest second."""
    if not known(seconds):
        return UNKNOWN
    assert seconds is not None
    whole = int(round(seconds))
    d, rem = divmod(whole, 86400)
    h, rem = divmod(rem, 3600)
    m, s = divmod(rem, 60)
    if d:
        return f"{d}d{h:02d}h"
    if h:
        return f"{h}h{m:02d}m"
    return f"{m}m{s:02d}s"


def count(n: float | None) -> str:
    """Tokens, tokens/s, iterations: '9,500', '12.3k', '1.25M', '10B' (three significant digits from 10,000)."""
    if not known(n):
        return UNKNOWN
    assert n is not None
    if abs(n) < 1e4:
        return f"{n:,.0f}"
    rounded = float(f"{n:.3g}")  # 999,600 is 1M, not 1e+03k
    size, suffix = next((s, u) for s, u in _COUNT_UNITS if abs(rounded) >= s)
    return f"{_significant(n / size)}{suffix}"


def learning_rate(x: float | None) -> str:
    """3e-4, not 3.0000000000000003e-04: one significant digit, as the guide writes learning rates."""
    if not known(x):
        return UNKNOWN
    mantissa, exponent = f"{x:.0e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def number(x: float | int | None) -> str:
    """A value as typed back into a field: 0.0003, 256, 1e-07 (Python's %g for floats)."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return UNKNOWN
    return f"{x:g}" if isinstance(x, float) else str(x)


def quantity(value: float | None, unit: str) -> str:
    """A sensor reading, whole: '71°C', '331W', '97%'."""
    return UNKNOWN if not known(value) else f"{value:.0f}{unit}"


__all__ = ["UNKNOWN", "known", "bytes_", "gib", "duration", "count", "learning_rate", "number", "quantity"]
