"""The knob set a run is planned with, and a piece of advice: a change to some of its options, with the reason.

One dataclass for the knobs everywhere: the recommendation picks them, the wizard lets the user change them,
the probe's advice changes them. Advice is data (option name -> value), rendered as the `gptwiz train` flags
the user would type; nothing reads it back out of that text. Light to import: the wizard's first screen loads it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from gptwiz.common.errors import UsageError
from gptwiz.common.inert import quote

Value = str | int | float


def flag_value(value: Value) -> str:
    """How a value is written after its flag: floats in the guide's short form (3e-4, 1.5e-4), the rest as is."""
    if isinstance(value, float) and math.isfinite(value):
        digits = next(p for p in range(17) if float(f"{value:.{p}e}") == value)
        mantissa, exponent = f"{value:.{digits}e}".split("e")
        return f"{mantissa}e{int(exponent)}"
    return str(value)


@dataclass(frozen=True)
class Advice:
    """One concrete change: `changes` are `gptwiz train` options (name -> value, in order), `why` says what it does.

    Without changes it is a change the wizard cannot make itself (more data, say), and `why` is all of it.
    """
    changes: tuple[tuple[str, Value], ...]
    why: str

    def flags(self) -> str:
        """'--batch_size 8 --grad_accum 4'."""
        return " ".join(f"--{name} {flag_value(value)}" for name, value in self.changes)

    def __str__(self) -> str:
        """'--learning_rate 1e-4 (3x lower: smaller, steadier steps)', as the probe prints it."""
        return f"{self.flags()} ({self.why})" if self.changes else self.why

    def to_json(self) -> dict[str, Value]:
        return dict(self.changes)


@dataclass(frozen=True)
class Knobs:
    """What a run is planned with and the user may still change: the preset and its main settings."""
    preset: str
    block_size: int
    batch_size: int
    grad_accum: int
    learning_rate: float
    max_iters: int
    dropout: float | None = None  # the recommendation's (Recommended Combinations); not a knob on screen

    def with_changes(self, changes: Iterable[tuple[str, Any]]) -> Knobs:
        """These knobs with some `gptwiz train` options changed (config_file is the preset)."""
        updates: dict[str, Any] = {}
        for option, value in changes:
            if option not in KNOB_OPTIONS:
                raise UsageError(f"the wizard cannot apply --{option} itself; change it on the command line")
            name, cast = KNOB_OPTIONS[option]
            try:
                updates[name] = cast(value)
            except (TypeError, ValueError):
                raise UsageError(f"--{option} {quote(value)} is not a valid value") from None
        return replace(self, **updates)

    def with_advice(self, advice: Advice) -> Knobs:
        """Apply one piece of probe advice; UsageError when it changes nothing the wizard sets."""
        changes = [(option, value) for option, value in advice.changes if option in KNOB_OPTIONS]
        if not changes:
            raise UsageError(f"nothing the wizard can apply in {quote(str(advice))}: change it on the command line")
        return self.with_changes(changes)


# `gptwiz train` option -> (Knobs field, its type).
KNOB_OPTIONS: dict[str, tuple[str, Any]] = {
    "config_file": ("preset", str), "block_size": ("block_size", int), "batch_size": ("batch_size", int),
    "grad_accum": ("grad_accum", int), "learning_rate": ("learning_rate", float), "max_iters": ("max_iters", int)}
