"""Counts and sizes as prepare's messages and summary write them."""

from __future__ import annotations

from gptwiz.common import fmt


def plural(n: int, noun: str) -> str:
    return f"{n:,} {noun}" + ("" if n == 1 else "s")


def size_text(nbytes: int) -> str:
    return fmt.bytes_(nbytes, unit="MB") if nbytes >= 100_000 else plural(nbytes, "byte")
