"""A conversation with a run's model: each message becomes a prompt, and the answer is streamed a piece of text at a
time as its tokens are chosen, ending at max_new_tokens, at an end-of-text token or when the caller interrupts it.

A pretrained model continues the message's text: the prompt is the message itself. A run tuned on an instruction
dataset (its config.json's data.sft) is prompted as it was trained: the conversation so far and the message, laid
out by gptwiz.data.chat_template, its oldest exchanges left out when they would not leave room in the block for
an answer; the answer ends at the end-of-text token that closes answers. Generation keeps the keys and
values of the positions it has run (gptwiz.model.gpt's KVCache), so each new token costs one position; once the
window is full it slides, running the latest block_size tokens again, as GPT.generate does.
"""

from __future__ import annotations

import codecs
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch

from gptwiz.data.chat_template import Exchange, prompt_ids
from gptwiz.data.tokenizer import run_tokenizer
from gptwiz.model.gpt import GPT
from gptwiz.runs.jsonfile import read_json
from gptwiz.runs.paths import resolve_run
from gptwiz.training.device import Runtime
from gptwiz.training.run_model import RunModel, inference_runtime, load_run_model
from gptwiz.training.sample import GenerationOptions, check_generation_options


@dataclass(frozen=True)
class ChatOptions(GenerationOptions):
    """`gptwiz chat`'s options: those of any generation (each message's answer is one)."""


@dataclass(frozen=True)
class Answer:
    prompt: str
    response: str
    tokens: int          # new tokens generated (an end-of-text that ended the answer counts, it was generated)
    seconds: float
    interrupted: bool = False  # stopped by the caller before its end
    data: bytes = b""          # the answer's bytes exactly as its tokens make them (`response` replaces non-UTF-8)

    @property
    def tokens_per_sec(self) -> float:
        return self.tokens / self.seconds if self.seconds > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        return {"prompt": self.prompt, "response": self.response, "tokens": self.tokens,
                "tokens_per_sec": round(self.tokens_per_sec, 2)}


def check_chat_options(opts: ChatOptions) -> None:
    """The numbers within the ranges `gptwiz sample` accepts, with its messages."""
    check_generation_options(opts)


def prompt_tokens(enc: Any, message: str) -> list[int]:
    """The tokens a message is given to the model as: a pretrained model continues its text; an empty message
    starts a new document."""
    return enc.encode_ordinary(message) or [enc.eot_token]


def tuned_prompt(enc: Any, message: str, history: list[Exchange], block_size: int, room: int) -> list[int]:
    """An instruction-tuned model's prompt: the template's, with as many of the latest exchanges as leave `room`
    tokens of the block for the answer (the message alone, its start cut, when even it leaves none)."""
    for first in range(len(history) + 1):
        ids = prompt_ids(enc, message, history[first:])
        if len(ids) + room <= block_size:
            return ids
    return ids[-max(1, block_size - room):]


def run_template(run_config: dict[str, Any] | None) -> str | None:
    """The chat template a run was tuned with (its config.json's data.sft), or None for a pretrained run."""
    sft = ((run_config or {}).get("data") or {}).get("sft")
    return sft.get("template") if isinstance(sft, dict) else None


@torch.no_grad()
def stream_tokens(model: GPT, ids: list[int], max_new_tokens: int, temperature: float, top_k: int | None,
                  generator: torch.Generator | None, runtime: Runtime, n_vocab: int) -> Iterator[int]:
    """The tokens that continue `ids`, one at a time as each is chosen (GPT.stream, under the run's autocast for
    each step only). Only the tokenizer's `n_vocab` tokens are chosen from (the padded rows of the vocabulary are
    none)."""
    x = torch.tensor([ids], dtype=torch.long, device=runtime.device)
    tokens = model.stream(x, max_new_tokens, temperature, top_k, generator,
                          vocab=min(n_vocab, model.config.vocab_size))
    while True:
        with runtime.autocast():
            token = next(tokens, None)
        if token is None:
            return
        yield int(token[0, 0])


class ChatSession:
    """A loaded model and the settings each answer is generated with."""

    def __init__(self, opts: ChatOptions, warn: Callable[[str], None] | None = None,
                 note: Callable[[str], None] | None = None):
        check_chat_options(opts)
        paths = resolve_run(opts.model_name, opts.runs_dir)
        self.opts = opts
        self.runtime = inference_runtime(opts.device)
        self.loaded: RunModel = load_run_model(paths, opts.checkpoint, self.runtime.device, warn=warn, note=note)
        config = read_json(paths.config)
        self.enc = run_tokenizer(paths.root, config)
        self.generator = torch.Generator(device=self.runtime.device)
        self.generator.manual_seed(opts.seed if opts.seed is not None else torch.seed())
        self.template = run_template(config)
        self.history: list[Exchange] = []  # a tuned run's conversation so far

    def reset(self) -> None:
        """Start a new conversation."""
        self.history = []

    def prompt(self, message: str) -> list[int]:
        """The tokens the model is given for `message`."""
        if self.template is None:
            return prompt_tokens(self.enc, message)
        block = self.loaded.config.block_size
        return tuned_prompt(self.enc, message, self.history, block, room=min(self.opts.max_new_tokens, block // 2))

    def answer(self, message: str, on_text: Callable[[str], None] | None = None,
               interruptible: bool = False, on_bytes: Callable[[bytes], None] | None = None) -> Answer:
        """The model's answer to `message`; `on_text` hears each piece of its text as soon as it is known (a
        token that ends inside a character waits for the rest of it), `on_bytes` each token's bytes as they are.
        With `interruptible`, Ctrl-C ends the answer where it is (the answer says so) instead of propagating."""
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        pieces: list[str] = []
        data = bytearray()
        count, interrupted = 0, False

        def emit(text: str) -> None:
            if text:
                pieces.append(text)
                if on_text is not None:
                    on_text(text)

        started = time.perf_counter()
        try:
            for token in stream_tokens(self.loaded.model, self.prompt(message), self.opts.max_new_tokens,
                                       self.opts.temperature, self.opts.top_k, self.generator, self.runtime,
                                       self.enc.n_vocab):
                count += 1
                if token == self.enc.eot_token:  # the end of a document: the model has said all it would
                    break
                piece = self.enc.decode_single_token_bytes(token)
                data += piece
                if on_bytes is not None:
                    on_bytes(piece)
                emit(decoder.decode(piece))
        except KeyboardInterrupt:
            if not interruptible:
                raise
            interrupted = True
        seconds = time.perf_counter() - started
        emit(decoder.decode(b"", final=True))
        response = "".join(pieces)
        if self.template is not None:
            self.history.append(Exchange(message, response))
        return Answer(message, response, count, seconds, interrupted, bytes(data))
