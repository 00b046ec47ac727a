"""gptwiz.common.records: a JSON object read back into the dataclass it becomes, every key checked, the first
problem one line naming the file and the key."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import pytest

from gptwiz.common.errors import UsageError
from gptwiz.common.records import (
    ANY_NUMBER,
    Bound,
    Check,
    RecordError,
    Shape,
    check_record,
    read_flat,
    read_lenient,
    read_record,
    rule,
    shown,
)

Unit = Annotated[float, Bound(0, 1, whole=False, high_open=True)]


@dataclass(frozen=True)
class Inner:
    width: int = field(metadata=rule(Bound(1, 64)))
    rate: float = field(default=0.5, metadata=rule(Bound(0, 1, whole=False, low_open=True)))


@dataclass(frozen=True)
class Outer:
    name: str
    inner: Inner
    parent: str | None = None
    tags: list[str] = field(default_factory=list)
    pair: tuple[Unit, Unit] = (0.9, 0.95)
    mode: Literal["fast", "slow"] = "fast"
    flag: bool = False
    scale: float = 1.0
    loss: float | None = field(default=None, metadata=rule(ANY_NUMBER))
    extra: dict[str, Any] = field(default_factory=dict)


GOOD = {"name": "a", "inner": {"width": 8}}


def _error(data: Any, **kwargs: Any) -> str:
    with pytest.raises(RecordError) as err:
        read_record(Outer, data, "runs/x/config.json", **kwargs)
    message = str(err.value)
    assert "\n" not in message and message.startswith("runs/x/config.json: ")
    return message


def test_a_good_object_becomes_the_dataclass() -> None:
    out = read_record(Outer, {**GOOD, "pair": [0, 0.5], "tags": ["t"], "scale": 2, "parent": None}, "f.json")
    assert out == Outer(name="a", inner=Inner(width=8), tags=["t"], pair=(0.0, 0.5), scale=2.0)
    assert isinstance(out.pair, tuple) and isinstance(out.scale, float)  # the dataclass's types, not JSON's


def test_an_error_is_a_usage_error() -> None:
    assert issubclass(RecordError, UsageError)  # the CLI's one-line error, exit status 2


def test_wrong_type_names_the_key_what_is_valid_and_the_value() -> None:
    assert _error({**GOOD, "name": 5}) == "runs/x/config.json: key 'name' must be text, got 5"
    assert "key 'tags[1]' must be text, got 3" in _error({**GOOD, "tags": ["a", 3]})
    assert "key 'mode' must be one of fast, slow, got 'medium'" in _error({**GOOD, "mode": "medium"})
    assert "key 'flag' must be true or false, got 1" in _error({**GOOD, "flag": 1})
    assert "key 'inner' must be an object, got [1]" in _error({**GOOD, "inner": [1]})
    assert "must be a JSON object, got [1, 2]" in _error([1, 2])


def test_out_of_bounds() -> None:
    message = _error({**GOOD, "inner": {"width": 65}})
    assert "key 'inner.width' must be a whole number from 1 to 64, got 65" in message
    assert "a number in (0, 1]" in _error({**GOOD, "inner": {"width": 8, "rate": 0}})
    assert "key 'pair' must be a list of 2 items, each a number in [0, 1), got [0.5, 1]" in \
        _error({**GOOD, "pair": [0.5, 1]})
    assert "key 'pair'" in _error({**GOOD, "pair": [0.5]})


def test_a_number_of_thousands_of_digits_is_shortened() -> None:
    message = _error({**GOOD, "inner": {"width": int("7" * 4000)}})
    assert "4000 characters" in message and len(message) < 200


def test_missing_and_unknown_keys() -> None:
    assert _error({"inner": {"width": 8}}) == "runs/x/config.json: key 'name' is missing"
    assert "key 'inner.width' is missing" in _error({"name": "a", "inner": {}})
    assert "key 'inner.depth' is unknown (valid keys: rate, width)" in _error({**GOOD, "inner": {"width": 8, "depth": 2}})
    assert "key 'colour' is unknown" in _error({**GOOD, "colour": 1})
    read_record(Outer, {**GOOD, "colour": 1}, "f.json", open_keys=(Outer,))  # let be where the reader says so


def test_suffix_follows_the_message() -> None:
    assert _error({**GOOD, "name": 5}, suffix="; fix it").endswith("got 5; fix it")


def test_none_is_allowed_only_where_annotated() -> None:
    assert read_record(Outer, {**GOOD, "parent": None, "loss": None}, "f.json").parent is None
    assert "key 'name' must be text, got null" in _error({**GOOD, "name": None})
    assert "key 'parent' must be text, or null, got 3" in _error({**GOOD, "parent": 3})


def test_bool_is_not_a_number() -> None:
    assert "key 'inner.width' must be a whole number from 1 to 64, got true" in \
        _error({**GOOD, "inner": {"width": True}})
    assert "key 'scale' must be a finite number, got false" in _error({**GOOD, "scale": False})
    assert "key 'loss'" in _error({**GOOD, "loss": True})


def test_nan_and_infinity_are_refused_unless_a_rule_admits_them() -> None:
    for value in (float("nan"), float("inf"), -float("inf"), 10**400):
        assert "key 'scale' must be a finite number" in _error({**GOOD, "scale": value})
    assert "key 'inner.rate'" in _error({**GOOD, "inner": {"width": 8, "rate": float("nan")}})
    assert "key 'pair'" in _error({**GOOD, "pair": [float("nan"), 0.5]})
    loss = read_record(Outer, {**GOOD, "loss": float("nan")}, "f.json").loss  # a diverged run's loss
    assert loss is not None and loss != loss


def test_json_parsed_nan_goes_the_same_way() -> None:
    data = json.loads('{"name": "a", "inner": {"width": 8}, "scale": NaN}')
    assert "key 'scale' must be a finite number, got nan" in _error(data)


def test_deeply_nested_values_are_one_line() -> None:
    deep: Any = []
    for _ in range(100_000):
        deep = [deep]
    message = _error({**GOOD, "tags": deep})
    assert "key 'tags[0]' must be text" in message and len(message) < 200
    message = _error({**GOOD, "inner": deep})
    assert "key 'inner' must be an object" in message
    assert shown(deep).startswith("[[[")


def test_extra_rules_and_shapes_for_a_dataclass_declared_elsewhere() -> None:
    rules = {"name": Check(lambda v: v.isalpha(), "a word"), "extra": Shape(Inner), "inner.width": Bound(4, 8)}
    with pytest.raises(RecordError, match="key 'name' must be a word, got '1'"):
        read_record(Outer, {**GOOD, "name": "1"}, "f.json", rules=rules)
    with pytest.raises(RecordError, match="key 'extra.width' is missing"):
        read_record(Outer, {**GOOD, "extra": {}}, "f.json", rules=rules)
    with pytest.raises(RecordError, match=r"key 'inner.width' must be a whole number from 4 to 8, got 2"):
        read_record(Outer, {**GOOD, "inner": {"width": 2}}, "f.json", rules=rules)
    kept = read_record(Outer, {**GOOD, "extra": {"width": 3, "more": 1}}, "f.json", rules=rules).extra
    assert kept == {"width": 3, "more": 1}  # a Shape checks the dict and keeps it as it is


def test_flat_objects_and_lenient_reads() -> None:
    inner, outer = read_flat((Inner, Outer), {"width": 3, "name": "n", "inner": {"width": 1}}, "p.json")
    assert inner.width == 3 and outer.name == "n"
    with pytest.raises(RecordError, match="key 'depth' is unknown"):
        read_flat((Inner, Outer), {"depth": 3}, "p.json")

    @dataclass(frozen=True)
    class Header:
        title: str = ""
        size: int = field(default=0, metadata=rule(Bound(0, 10)))

    assert read_lenient(Header, {"title": 5, "size": 7}) == Header(size=7)
    assert read_lenient(Header, {"title": "t", "size": 11}) == Header(title="t")
    assert read_lenient(Header, [1]) == Header()


def test_check_record_only_checks() -> None:
    assert check_record(Outer, GOOD, "f.json") is None
    with pytest.raises(RecordError) as err:
        check_record(Outer, {**GOOD, "inner": {"width": "x"}}, "f.json")
    assert err.value.key == "inner.width" and err.value.valid == "a whole number from 1 to 64" and err.value.got == "'x'"


def test_a_key_inside_an_optional_object_is_named() -> None:
    @dataclass(frozen=True)
    class Holder:
        inner: Inner | None = None

    with pytest.raises(RecordError, match="key 'inner.width' must be a whole number from 1 to 64, got 0"):
        read_record(Holder, {"inner": {"width": 0}}, "f.json")
    with pytest.raises(RecordError, match="key 'inner' must be an object, or null, got 3"):
        read_record(Holder, {"inner": 3}, "f.json")
