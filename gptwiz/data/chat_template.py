"""The one chat template: how a conversation becomes the tokens an instruction-tuned model is trained on and
prompted with, and which of them it is trained to produce.

    ### System:\\n{system}\\n\\n                      (only when there is a system text)
    ### User:\\n{message}\\n\\n### Assistant:\\n{answer}<|endoftext|>
    \\n\\n### User:\\n{message}\\n\\n### Assistant:\\n{answer}<|endoftext|>   (each further turn)

Plain text in GPT-2's vocabulary, with its end-of-text token closing each answer, so that generation knows where
an answer ends. Each piece is tokenized on its own and the pieces' tokens joined, so the prompt of a turn has the
same tokens in a training example and in a chat, whatever the answer that follows it. Trained on (mask 1): each
answer's tokens and the end-of-text closing it; never the headers, the user's messages or the system text.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

TEMPLATE_NAME = "gptwiz-chat-v1"
SYSTEM_HEADER = "### System:\n"
USER_HEADER = "### User:\n"
ASSISTANT_HEADER = "### Assistant:\n"
TURN_SEPARATOR = "\n\n"

# The template as the README and the model card show it.
TEMPLATE_TEXT = (f"{SYSTEM_HEADER}{{system}}{TURN_SEPARATOR}{USER_HEADER}{{message}}{TURN_SEPARATOR}"
                 f"{ASSISTANT_HEADER}{{answer}}<|endoftext|>{TURN_SEPARATOR}{USER_HEADER}...")


@dataclass(frozen=True)
class Exchange:
    user: str
    assistant: str


@dataclass(frozen=True)
class Conversation:
    """A system text (optional) and the exchanges, each a user's message and the assistant's answer."""
    exchanges: list[Exchange]
    system: str | None = None


@dataclass
class Encoded:
    """A conversation's token ids and, per token, 1 where the model is trained to produce it."""
    ids: list[int] = field(default_factory=list)
    mask: list[int] = field(default_factory=list)

    def add(self, ids: Sequence[int], trained: bool) -> None:
        self.ids.extend(ids)
        self.mask.extend([int(trained)] * len(ids))


def _turn_prompt(message: str, first: bool) -> str:
    """The text before an answer: the user's message between the headers."""
    return ("" if first else TURN_SEPARATOR) + USER_HEADER + message + TURN_SEPARATOR + ASSISTANT_HEADER


def _encode_head(enc: Any, system: str | None, history: Sequence[Exchange]) -> Encoded:
    out = Encoded()
    if system:
        out.add(enc.encode_ordinary(SYSTEM_HEADER + system + TURN_SEPARATOR), trained=False)
    for i, exchange in enumerate(history):
        out.add(enc.encode_ordinary(_turn_prompt(exchange.user, first=i == 0)), trained=False)
        out.add([*enc.encode_ordinary(exchange.assistant), enc.eot_token], trained=True)
    return out


def encode_conversation(enc: Any, conversation: Conversation) -> Encoded:
    """The tokens a training example is made of, and its trained mask."""
    return _encode_head(enc, conversation.system, conversation.exchanges)


def prompt_ids(enc: Any, message: str, history: Sequence[Exchange] = (), system: str | None = None) -> list[int]:
    """The tokens a chat gives the model for `message`, after the conversation so far: they end with the
    assistant's header, for the model to continue with its answer."""
    out = _encode_head(enc, system, history)
    out.add(enc.encode_ordinary(_turn_prompt(message, first=not history)), trained=False)
    return out.ids
