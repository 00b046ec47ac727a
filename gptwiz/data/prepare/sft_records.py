"""One line of an instruction file as a Conversation, or the reason it cannot be one.

Three forms are read: {"prompt", "response"}; Alpaca's {"instruction", "input", "output"} (the prompt is the
instruction, then a blank line and the input when there is one); {"messages": [{"role", "content"}, ...]}, with
an optional system message first, then user and assistant in turn, ending with the assistant.
"""

from __future__ import annotations

from typing import Any

from gptwiz.common.inert import quote
from gptwiz.common.records import RecordError
from gptwiz.common.safe_read import TOO_DEEP, loads
from gptwiz.data.chat_template import Conversation, Exchange

ROLES = ("system", "user", "assistant")


def json_type(value: Any) -> str:
    """What a JSON value is, in JSON's words."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    return {dict: "an object", list: "a list", str: "a string", int: "a number", float: "a number"}.get(
        type(value), type(value).__name__)


class BadRecord(ValueError):
    """Why a line is not an example (its message names the field)."""


def _text(record: dict[str, Any], key: str, where: str = "") -> str:
    if key not in record:
        raise BadRecord(f"no {key!r} field{where}")
    value = record[key]
    if not isinstance(value, str):
        raise BadRecord(f"{key!r}{where} is {json_type(value)}, not a string")
    return value


def _answer(text: str, label: str) -> str:
    if not text.strip():
        raise BadRecord(f"{label} is empty: an example needs an answer")
    return text


def _messages(messages: Any) -> Conversation:
    if not isinstance(messages, list) or not messages:
        raise BadRecord("'messages' must be a non-empty list of {\"role\", \"content\"} objects")
    system = None
    exchanges: list[Exchange] = []
    pending: str | None = None
    for i, message in enumerate(messages):
        where = f" in message {i + 1}"
        if not isinstance(message, dict):
            raise BadRecord(f"message {i + 1} is {json_type(message)}, not an object with role and content")
        role = _text(message, "role", where)
        content = _text(message, "content", where)
        if role not in ROLES:
            raise BadRecord(f"message {i + 1} has role {quote(role[:20])}; valid: {', '.join(ROLES)}")
        if role == "system":
            if i:
                raise BadRecord(f"message {i + 1} is a system message: only the first may be")
            system = content or None
        elif role == "user":
            if pending is not None:
                raise BadRecord(f"message {i + 1} is a second user message in a row: user and assistant alternate")
            pending = content
        else:
            if pending is None:
                raise BadRecord(f"message {i + 1} is an assistant message with no user message before it")
            exchanges.append(Exchange(pending, _answer(content, f"the content of message {i + 1}")))
            pending = None
    if pending is not None or not exchanges:
        raise BadRecord("the messages must end with an assistant's answer")
    return Conversation(exchanges, system)


def parse_record(line: str) -> Conversation:
    """The conversation of one JSON line; BadRecord saying what is wrong with it."""
    try:
        record = loads(line, "the line")
    except RecordError as exc:  # not JSON, or nested deeper than any example is
        raise BadRecord(exc.problem.removeprefix("is ") if exc.problem == TOO_DEEP else "not JSON") from None
    if not isinstance(record, dict):
        raise BadRecord(f"{json_type(record)}, not an object")
    if "messages" in record:
        return _messages(record["messages"])
    if "instruction" in record or "output" in record:
        prompt = _text(record, "instruction")
        extra = _text(record, "input") if "input" in record else ""
        if extra:
            prompt += "\n\n" + extra
        return Conversation([Exchange(prompt, _answer(_text(record, "output"), "'output'"))])
    if "prompt" in record or "response" in record:
        return Conversation([Exchange(_text(record, "prompt"), _answer(_text(record, "response"), "'response'"))])
    raise BadRecord("no 'prompt'/'response', 'instruction'/'output' or 'messages' field")
