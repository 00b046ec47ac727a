"""Reading a JSON object back into the dataclass it becomes, checked against that dataclass's own fields.

A field's annotation says what its JSON value must be: int, float, bool, str, `X | None`, `Literal[...]`,
`list[X]`, `tuple[X, ...]` or `tuple[X, Y]` (a JSON list), `dict[str, X]`, a nested dataclass, or `Any`. A rule
narrows it: in the field's metadata (`n_layer: int = field(metadata=rule(Bound(1, 1024)))`), inside the annotation
(`Annotated[float, Bound(0, 1)]`, for a list's items), or passed in by the reader for a dataclass declared where
its checks do not belong. The first problem found is one `RecordError` line naming the file and the key:

    preset presets/x.json: key 'n_layer' must be a whole number from 1 to 1024, got 0

A bool is never a number; NaN and the infinities are numbers only where a rule admits them (no rule: finite only).
The walk goes only as deep as the dataclasses do, so a document nested thousands deep is one line, not a
RecursionError.
"""

from __future__ import annotations

import dataclasses
import functools
import reprlib
import sys
import types
import typing
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeVar, Union

from gptwiz.common.errors import UsageError

T = TypeVar("T")
RULE = "rule"  # the key of a field's metadata that holds its rule


class RecordError(UsageError):
    """A JSON object that is not the record it should be: `key` is the dotted path ('model.n_layer',
    'sources[0].files'; '' for the document itself) and `problem` the rest ("must be ..., got ..."); for a
    value of the wrong type or range, `valid` says what would do and `got` is the value as shown."""

    def __init__(self, source: str, key: str, problem: str, suffix: str = "", valid: str = "", got: str = ""):
        where = f"key '{key}' " if key else ""
        super().__init__(f"{source}: {where}{problem}{suffix}")
        self.key = key
        self.problem = problem
        self.valid = valid
        self.got = got


@dataclass(frozen=True)
class Bound:
    """The valid range of a number."""
    low: float
    high: float
    whole: bool = True        # whole numbers only
    low_open: bool = False    # `low` itself is not valid
    high_open: bool = False   # `high` itself is not valid
    note: str = ""            # why, after the range: "(the GPT-2 tokenizer's tokens)"

    def holds(self, value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, int if self.whole else (int, float)):
            return False
        above = value > self.low if self.low_open else value >= self.low
        below = value < self.high if self.high_open else value <= self.high
        return above and below  # False for NaN

    def describe(self) -> str:
        if self.whole:
            text = f"a whole number from {self.low} to {self.high}"
        else:
            text = (f"a number in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}"
                    f"{')' if self.high_open else ']'}")
        return f"{text} {self.note}" if self.note else text


@dataclass(frozen=True)
class Check:
    """Any other test of a value that already has its annotated type: a run name, a device, a template."""
    test: Callable[[Any], bool]
    description: str

    def holds(self, value: Any) -> bool:
        return bool(self.test(value))

    def describe(self) -> str:
        return self.description


@dataclass(frozen=True)
class Shape:
    """A value kept as it is (a dict) that must nonetheless have the fields of `record` (others allowed)."""
    record: type

    def describe(self) -> str:
        return "an object"


Rule = Bound | Check | Shape
FINITE = Check(lambda v: abs(v) <= sys.float_info.max, "a finite number")  # False for NaN, and for 10**400
ANY_NUMBER = Check(lambda v: True, "a number")  # NaN and the infinities too: a loss that diverged


def rule(value: Rule) -> dict[str, Rule]:
    """A field's metadata holding its rule: `field(default=..., metadata=rule(Bound(...)))`."""
    return {RULE: value}


def field_rules(cls: type) -> dict[str, Rule]:
    """The rules a dataclass's fields carry in their metadata, by field name."""
    return {f.name: f.metadata[RULE] for f in dataclasses.fields(cls) if RULE in f.metadata}


_short = reprlib.Repr()
_short.maxlevel, _short.maxstring, _short.maxother, _short.maxlist, _short.maxdict = 3, 36, 36, 4, 3


def shown(value: Any) -> str:
    """A value for an error message: a number of hundreds of digits is shortened, a deep list cut at 3 levels."""
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    if isinstance(value, int):
        text = str(value)
    elif isinstance(value, (list, dict, tuple)):
        return _short.repr(value)
    else:
        text = repr(value)
    return text if len(text) <= 40 else f"{text[:12]}...{text[-4:]} ({len(text)} characters)"


# --- the shape of a dataclass, read once per class -------------------------------------------------------

@dataclass(frozen=True)
class _Field:
    name: str
    kind: Any          # the resolved annotation
    rule: Rule | None
    required: bool


@functools.cache
def _fields(cls: type) -> tuple[_Field, ...]:
    hints = typing.get_type_hints(cls, include_extras=True)
    return tuple(_Field(f.name, hints[f.name], f.metadata.get(RULE),
                        f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING)
                 for f in dataclasses.fields(cls) if f.init)


def _split(kind: Any) -> tuple[Any, Rule | None]:
    """`Annotated[X, rule]` as (X, rule); anything else as (kind, None)."""
    if typing.get_origin(kind) is typing.Annotated:
        found = [m for m in kind.__metadata__ if isinstance(m, (Bound, Check, Shape))]
        return kind.__origin__, (found[0] if found else None)
    return kind, None


def _options(kind: Any) -> tuple[Any, ...] | None:
    """The members of a union (`X | None`, `Optional[X]`), None for any other annotation."""
    if typing.get_origin(kind) is Union or isinstance(kind, types.UnionType):
        return typing.get_args(kind)
    return None


def describe(kind: Any, rule_: Rule | None = None) -> str:
    """What a value of this annotation (narrowed by `rule_`) must be, in words."""
    kind, inner = _split(kind)
    rule_ = rule_ or inner
    options = _options(kind)
    if options is not None:
        members = [o for o in options if o is not type(None)]
        named = [describe(members[0], rule_)] if len(members) == 1 else [describe(o) for o in members]
        return " or ".join(named) + (", or null" if type(None) in options else "")
    if rule_ is not None and not isinstance(rule_, Shape):
        return rule_.describe()
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin is Literal:
        return "one of " + ", ".join(str(a) for a in args)
    if origin in (list, tuple):
        if origin is tuple and args and args[-1] is not Ellipsis:
            return f"a list of {len(args)} items, each {describe(args[0])}"
        return f"a list whose items are each {describe(args[0]) if args else 'anything'}"
    if origin is dict or kind is dict or dataclasses.is_dataclass(kind):
        return "an object"
    return {int: "a whole number", float: "a finite number", bool: "true or false", str: "text",
            type(None): "null"}.get(kind, "a value")


# --- the walk ----------------------------------------------------------------------------------------------

class _Bad(Exception):
    """A problem at a key, raised up the walk and turned into one RecordError at the top."""

    def __init__(self, key: str, problem: str, valid: str = "", got: str = ""):
        super().__init__(key, problem)
        self.key, self.problem, self.valid, self.got = key, problem, valid, got


@dataclass(frozen=True)
class _Walk:
    open_keys: Collection[type]
    rules: Mapping[str, Rule]

    def wrong(self, key: str, kind: Any, rule_: Rule | None, value: Any) -> _Bad:
        valid, got = describe(kind, rule_), shown(value)
        return _Bad(key, f"must be {valid}, got {got}", valid, got)

    def value(self, key: str, kind: Any, rule_: Rule | None, value: Any) -> Any:
        """`value` checked against `kind` and `rule_`, as the dataclass field holds it."""
        kind, inner = _split(kind)
        rule_ = rule_ or inner
        options = _options(kind)
        if options is not None:
            if value is None and type(None) in options:
                return None
            members = [o for o in options if o is not type(None)]
            for member in members:
                try:
                    return self.value(key, member, rule_, value)
                except _Bad as bad:
                    if bad.key != key and len(members) == 1:  # a key inside the value: name that one
                        raise
            raise self.wrong(key, kind, rule_, value)
        if rule_ is None and kind is float:
            rule_ = FINITE
        converted = self.typed(key, kind, rule_, value)
        if isinstance(rule_, Shape):
            self.record(key, rule_.record, value, keep_open=True)
        elif rule_ is not None and not rule_.holds(value):
            raise self.wrong(key, kind, rule_, value)
        return converted

    def typed(self, key: str, kind: Any, rule_: Rule | None, value: Any) -> Any:
        """`value` if it has the type `kind` says (a list for a tuple, an object for a dataclass), converted."""
        origin, args = typing.get_origin(kind), typing.get_args(kind)
        if kind is Any:
            return value
        if isinstance(kind, type) and dataclasses.is_dataclass(kind):
            if not isinstance(value, dict):
                raise self.wrong(key, kind, rule_, value)
            return self.record(key, kind, value)
        if origin is Literal:
            if not any(value == a and type(value) is type(a) for a in args):
                raise self.wrong(key, kind, rule_, value)
            return value
        if origin in (list, tuple):
            return self.sequence(key, kind, rule_, value)
        if origin is dict or kind is dict:
            if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
                raise self.wrong(key, kind, rule_, value)
            item = args[1] if args else Any
            return {k: self.value(f"{key}.{k}", item, None, v) for k, v in value.items()}
        if kind is float:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise self.wrong(key, kind, rule_, value)
            return float(value) if isinstance(value, float) or abs(value) <= sys.float_info.max else value
        if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
            raise self.wrong(key, kind, rule_, value)
        if kind in (bool, str) and not isinstance(value, kind):
            raise self.wrong(key, kind, rule_, value)
        if kind is type(None) and value is not None:
            raise self.wrong(key, kind, rule_, value)
        return value

    def sequence(self, key: str, kind: Any, rule_: Rule | None, value: Any) -> Any:
        origin, args = typing.get_origin(kind), typing.get_args(kind)
        if not isinstance(value, list):
            raise self.wrong(key, kind, rule_, value)
        fixed = origin is tuple and args and args[-1] is not Ellipsis
        if fixed and len(value) != len(args):
            raise self.wrong(key, kind, rule_, value)
        items = args if fixed else (args[0] if args else Any,) * len(value)
        try:
            out = [self.value(f"{key}[{i}]", item, None, v) for i, (item, v) in enumerate(zip(items, value))]
        except _Bad:
            if fixed:  # a pair is one value to the user: "must be a list of 2 numbers", not "betas[1] ..."
                raise self.wrong(key, kind, rule_, value) from None
            raise
        return tuple(out) if origin is tuple else out

    def record(self, key: str, cls: type, data: dict[str, Any], keep_open: bool = False) -> Any:
        """The dataclass `cls` from `data`, or with `keep_open` (a Shape) only checked."""
        prefix = f"{key}." if key else ""
        known = _fields(cls)
        names = {f.name for f in known}
        if not keep_open and cls not in self.open_keys:
            unknown = sorted(k for k in data if k not in names)
            if unknown:
                raise _Bad(prefix + str(unknown[0]), f"is unknown (valid keys: {', '.join(sorted(names))})")
        missing = sorted(f.name for f in known if f.required and f.name not in data)
        if missing:
            raise _Bad(prefix + missing[0], "is missing")
        args = {}
        for f in known:
            if f.name in data:
                given = self.rules.get(prefix + f.name, f.rule)
                args[f.name] = self.value(prefix + f.name, f.kind, given, data[f.name])
        return None if keep_open else cls(**args)


def read_record(cls: type[T], data: Any, source: str, *, suffix: str = "", open_keys: Collection[type] = (),
                rules: Mapping[str, Rule] | None = None) -> T:
    """The dataclass `cls` made from the JSON object `data`, every key checked first; a RecordError naming
    `source` and the key (then `suffix`, advice such as "; prepare the dataset again") at the first problem.

    Unknown keys are refused, except in the dataclasses of `open_keys`. `rules` add rules by key path ("seed",
    "data"), for a dataclass whose own fields carry none."""
    if not isinstance(data, dict):
        raise RecordError(source, "", f"must be a JSON object, got {shown(data)}", suffix)
    try:
        return typing.cast(T, _Walk(open_keys, rules or {}).record("", cls, data))
    except _Bad as bad:
        raise RecordError(source, bad.key, bad.problem, suffix, bad.valid, bad.got) from None
    except RecursionError:
        raise RecordError(source, "", "is nested too deep", suffix) from None


def read_flat(classes: tuple[type, ...], data: Any, source: str, *, suffix: str = "") -> list[Any]:
    """Several dataclasses from one flat JSON object whose keys are the union of their fields (a preset holds
    the model's and the training's settings side by side); a key none of them has is refused."""
    if not isinstance(data, dict):
        raise RecordError(source, "", f"must be a JSON object of settings, got {shown(data)}", suffix)
    names = sorted({f.name for cls in classes for f in _fields(cls)})
    unknown = [k for k in data if k not in names]
    if unknown:
        raise RecordError(source, str(unknown[0]), f"is unknown (valid keys: {', '.join(names)})", suffix)
    return [read_record(cls, {f.name: data[f.name] for f in _fields(cls) if f.name in data}, source, suffix=suffix)
            for cls in classes]


def read_lenient(cls: type[T], data: Any) -> T:
    """The dataclass `cls` (every field with a default) from `data`, each value that is missing or wrong left at
    its default: what a viewer shows of a damaged file, rather than nothing."""
    walk, args, shape = _Walk((), {}), {}, typing.cast(type, cls)
    for f in _fields(shape):
        if isinstance(data, dict) and f.name in data:
            try:
                args[f.name] = walk.value(f.name, f.kind, f.rule, data[f.name])
            except (_Bad, RecursionError):
                continue
    return cls(**args)


def check_record(cls: type, data: Any, source: str, *, suffix: str = "", open_keys: Collection[type] = (),
                 rules: Mapping[str, Rule] | None = None) -> None:
    """As read_record, for a document kept as the dict it is: only checked."""
    read_record(cls, data, source, suffix=suffix, open_keys=open_keys, rules=rules)


__all__ = ["RecordError", "Bound", "Check", "Shape", "Rule", "FINITE", "ANY_NUMBER", "rule", "field_rules", "shown",
           "describe", "read_record", "read_flat", "read_lenient", "check_record"]
