"""Argument parsing shared by every verb: one-line errors, and flags spelled with underscores or dashes."""

from __future__ import annotations

import argparse
import sys
from typing import Any

# What str.splitlines() breaks a line at: a value typed with one of them must not split an error message.
_LINE_BREAKS = str.maketrans({c: repr(c)[1:-1] for c in "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029"})


def one_line(text: object) -> str:
    """`text` on one line: line breaks inside values (a pasted path, a quoted argument) shown as escapes."""
    return str(text).translate(_LINE_BREAKS)


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        # One line, not argparse's usage block: the valid choices are in the message or in --help.
        print(one_line(f"{self.prog}: error: {message} (see {self.prog} --help)"), file=sys.stderr)
        raise SystemExit(2)


def flag(parser: argparse.ArgumentParser, name: str, *extra: str, **kwargs: Any) -> None:
    """An option spelled both ways the guide's users type it: --max_iters and --max-iters."""
    names = [f"--{name}"]
    if "_" in name:
        names.append(f"--{name.replace('_', '-')}")
    parser.add_argument(*names, *extra, dest=name, **kwargs)


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid value {text!r}: expected a positive whole number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"invalid value {text!r}: expected a positive whole number")
    return value


def number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid value {text!r}: expected a number such as 3e-4") from None
