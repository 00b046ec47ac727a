"""Argument parsing shared by every verb: one-line errors, and flags spelled with underscores or dashes."""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable
from typing import Any

from gptwiz.common.inert import inert, quote


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        # One line, not argparse's usage block: the valid choices are in the message or in --help.
        print(inert(f"{self.prog}: error: {message} (see {self.prog} --help)"), file=sys.stderr)
        raise SystemExit(2)


def flag(parser: argparse.ArgumentParser, name: str, *extra: str, **kwargs: Any) -> None:
    """An option spelled both ways the guide's users type it: --max_iters and --max-iters."""
    names = [f"--{name}"]
    if "_" in name:
        names.append(f"--{name.replace('_', '-')}")
    parser.add_argument(*names, *extra, dest=name, **kwargs)


def _typed(text: str) -> str:
    """What the user typed, for an error message: hundreds of digits are shortened, not echoed whole."""
    return quote(text) if len(text) <= 40 else f"{quote(text[:12] + '...' + text[-4:])} ({len(text)} characters)"


def _whole(text: str, wanted: str) -> int:
    try:
        return int(text)
    except ValueError:  # not a whole number, or one of more digits than Python converts (4300)
        raise argparse.ArgumentTypeError(f"invalid value {_typed(text)}: expected {wanted}") from None


def positive_int(text: str) -> int:
    value = _whole(text, "a positive whole number")
    if value <= 0:
        raise argparse.ArgumentTypeError(f"invalid value {_typed(text)}: expected a positive whole number")
    return value


def bounded_int(low: int, high: int) -> Callable[[str], int]:
    """A flag's type: a whole number from `low` to `high`; the error names the range."""
    wanted = f"a whole number from {low} to {high}"

    def parse(text: str) -> int:
        value = _whole(text, wanted)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"invalid value {_typed(text)}: expected {wanted}")
        return value

    parse.__name__ = "whole number"  # argparse names the type in some messages
    return parse


def number(text: str) -> float:
    """A flag's type: any number but NaN (infinity is for each verb to accept or refuse)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid value {_typed(text)}: expected a number such as 3e-4") from None
    if math.isnan(value):
        raise argparse.ArgumentTypeError(f"invalid value {_typed(text)}: expected a number such as 3e-4, not NaN")
    return value
