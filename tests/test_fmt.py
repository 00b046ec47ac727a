"""gptwiz.common.fmt: the one way sizes, durations, counts and learning rates are written."""

from __future__ import annotations

import math

import pytest

from gptwiz.common import fmt

MB, GiB = 10**6, 2**30


@pytest.mark.parametrize("value", [None, math.nan, math.inf, -math.inf])
def test_an_unknown_value_is_one_placeholder_everywhere(value: float | None) -> None:
    outputs = {fmt.bytes_(value), fmt.bytes_(value, binary=True), fmt.bytes_(value, decimals=1), fmt.gib(value),
               fmt.duration(value), fmt.count(value), fmt.learning_rate(value), fmt.number(value),
               fmt.quantity(value, "W")}
    assert outputs == {fmt.UNKNOWN} == {"-"}


def test_bytes_three_significant_digits() -> None:
    assert fmt.bytes_(5 * MB) == "5 MB" and fmt.bytes_(512) == "512 B" and fmt.bytes_(0) == "0 B"
    assert fmt.bytes_(6 * GiB, binary=True) == "6 GiB"
    assert fmt.bytes_(int(4.94 * GiB), binary=True) == "4.94 GiB"
    assert fmt.bytes_(123_456_789) == "123 MB" and fmt.bytes_(1_500_000) == "1.5 MB"
    assert fmt.bytes_(-2 * GiB, binary=True) == "-2 GiB"  # a saving in the estimate's table
    assert fmt.bytes_(5 * 10**15) == "5000 TB"  # the largest unit grows digits instead


def test_bytes_never_needs_four_digits_or_an_exponent() -> None:
    assert fmt.bytes_(1000 * 2**10, binary=True) == "0.977 MiB"
    assert fmt.bytes_(999_600) == "1 MB"
    assert fmt.bytes_(1023 * 2**20, binary=True) == "0.999 GiB"
    for n in (999, 1000, 1023, 1024, 999_999, 10**6, 2**30 - 1, 2**30, 10**12 - 1):
        for binary in (False, True):
            number = fmt.bytes_(n, binary=binary).split()[0]
            assert "e" not in number and len(number.replace(".", "").lstrip("0")) <= 3, (n, binary, number)


def test_bytes_with_fixed_decimals() -> None:
    assert fmt.bytes_(952_758_272, decimals=1) == "952.8 MB"
    assert fmt.bytes_(5 * MB, decimals=1) == "5.0 MB" and fmt.bytes_(300, decimals=1) == "300 B"
    assert fmt.bytes_(2 * 10**9, decimals=1) == "2.0 GB"


def test_bytes_in_one_unit() -> None:
    assert fmt.bytes_(3000, unit="MB") == "0.0 MB" and fmt.bytes_(1_500_000, unit="MB") == "1.5 MB"
    assert fmt.bytes_(2 * 10**9, unit="MB") == "2,000.0 MB" and fmt.bytes_(3 * GiB, unit="MiB", decimals=0) == "3,072 MiB"


def test_gib() -> None:
    assert fmt.gib(3 * GiB) == "3.0 GiB" and fmt.gib(int(18.04 * GiB), unit=False) == "18.0"
    assert fmt.gib(0) == "0.0 GiB"


def test_duration() -> None:
    assert fmt.duration(59) == "0m59s" and fmt.duration(59.6) == "1m00s" and fmt.duration(3700) == "1h01m"
    assert fmt.duration(5400) == "1h30m" and fmt.duration(2.5 * 86400) == "2d12h" and fmt.duration(0) == "0m00s"


def test_count() -> None:
    assert fmt.count(92.4) == "92" and fmt.count(9_500) == "9,500"
    assert fmt.count(12_000) == "12k" and fmt.count(12_345) == "12.3k" and fmt.count(123_456) == "123k"
    assert fmt.count(1_250_000) == "1.25M" and fmt.count(10e6) == "10M" and fmt.count(500e6) == "500M"
    assert fmt.count(999_600) == "1M" and fmt.count(1.5e9) == "1.5B"


def test_learning_rate_and_number() -> None:
    assert fmt.learning_rate(3e-4) == "3e-4" and fmt.learning_rate(3e-4 * 3) == "9e-4"
    assert fmt.learning_rate(1e-3 / 3) == "3e-4"
    assert fmt.number(0.0003) == "0.0003" and fmt.number(256) == "256" and fmt.number(1e-7) == "1e-07"


def test_quantity() -> None:
    assert fmt.quantity(71.4, "°C") == "71°C" and fmt.quantity(331.0, "W") == "331W" and fmt.quantity(97, "%") == "97%"
