"""The knobs the user may type in, with their allowed ranges: the one table both front-ends ask from.

Checking a typed value gives the same message in the app (under the knobs) and in the plain prompts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from gptwiz.common import fmt
from gptwiz.common.errors import UsageError
from gptwiz.common.inert import quote
from gptwiz.planning.knobs import Knobs

Number = int | float


@dataclass(frozen=True)
class KnobField:
    name: str          # the Knobs field
    label: str
    kind: type         # int or float
    low: Number
    high: Number

    def text(self, knobs: Knobs) -> str:
        return fmt.number(getattr(knobs, self.name))

    def parse(self, text: str) -> Number:
        """The typed value; UsageError (one line, saying which knob and why) if it is not one."""
        text = text.strip()
        try:
            value = self.kind(text)
        except ValueError:
            raise UsageError(f"{self.label}: {quote(text)} is not a number") from None
        if not self.low <= value <= self.high:
            raise UsageError(f"{self.label}: {text} is outside {fmt.number(self.low)}..{fmt.number(self.high)}")
        return value

    def check(self, text: str) -> str | None:
        """parse's message, or None when the text is a valid value (for a prompt's validator)."""
        try:
            self.parse(text)
        except UsageError as exc:
            return str(exc)
        return None


KNOB_FIELDS: tuple[KnobField, ...] = (
    KnobField("block_size", "context length", int, 16, 8192),
    KnobField("batch_size", "batch size", int, 1, 4096),
    KnobField("learning_rate", "learning rate", float, 1e-7, 0.99),
    KnobField("max_iters", "max iterations", int, 1, 10_000_000),
)


def knobs_from_texts(knobs: Knobs, texts: Mapping[str, str]) -> Knobs:
    """`knobs` with the typed values (Knobs field -> text) put in; UsageError for the first that is not valid."""
    values: dict[str, Any] = {f.name: f.parse(texts[f.name]) for f in KNOB_FIELDS if f.name in texts}
    return replace(knobs, **values)
