"""A conversation with a run's model: each message becomes a prompt, and the answer is streamed a piece of text at a
time as its tokens are chosen, ending at max_new_tokens, at an end-of-text token or when the caller interrupts it.

A pretrained model continues the message's text: the prompt is the message itself. Generation keeps the keys and
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

from gptwiz.data.tokenizer import EOT_TOKEN, GPT2_VOCAB_SIZE, get_encoding
from gptwiz.model.gpt import GPT
from gptwiz.runs.folder import resolve_run
from gptwiz.training.device import Runtime
from gptwiz.training.run_model import RunModel, inference_runtime, load_run_model
from gptwiz.training.sample import SampleOptions, check_sample_options


@dataclass(frozen=True)
class ChatOptions:
    model_name: str
    max_new_tokens: int = 200
    temperature: float = 0.8
    top_k: int | None = 200
    seed: int | None = None
    device: str = "auto"
    runs_dir: str = "runs"
    checkpoint: str = "auto"  # best, last, or auto (gptwiz.runs.checkpoints.choose)


@dataclass(frozen=True)
class Answer:
    prompt: str
    response: str
    tokens: int          # new tokens generated (an end-of-text that ended the answer counts, it was generated)
    seconds: float
    interrupted: bool = False  # stopped by the caller before its end

    @property
    def tokens_per_sec(self) -> float:
        return self.tokens / self.seconds if self.seconds > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        return {"prompt": self.prompt, "response": self.response, "tokens": self.tokens,
                "tokens_per_sec": round(self.tokens_per_sec, 2)}


def check_chat_options(opts: ChatOptions) -> None:
    """The numbers within the ranges `gptwiz sample` accepts, with its messages."""
    check_sample_options(SampleOptions(model_name=opts.model_name, max_new_tokens=opts.max_new_tokens,
                                       temperature=opts.temperature, top_k=opts.top_k, seed=opts.seed,
                                       device=opts.device, runs_dir=opts.runs_dir, checkpoint=opts.checkpoint))


def prompt_tokens(enc: Any, message: str) -> list[int]:
    """The tokens a message is given to the model as: a pretrained model continues its text; an empty message
    starts a new document."""
    return enc.encode_ordinary(message) or [EOT_TOKEN]


@torch.no_grad()
def stream_tokens(model: GPT, ids: list[int], max_new_tokens: int, temperature: float, top_k: int | None,
                  generator: torch.Generator | None, runtime: Runtime) -> Iterator[int]:
    """The tokens that continue `ids`, one at a time as each is chosen (GPT.stream, under the run's autocast for
    each step only). Only GPT-2's 50,257 tokens are chosen from (the padded rows of the vocabulary are none)."""
    x = torch.tensor([ids], dtype=torch.long, device=runtime.device)
    tokens = model.stream(x, max_new_tokens, temperature, top_k, generator,
                          vocab=min(GPT2_VOCAB_SIZE, model.config.vocab_size))
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
        self.enc = get_encoding()
        self.generator = torch.Generator(device=self.runtime.device)
        self.generator.manual_seed(opts.seed if opts.seed is not None else torch.seed())

    def answer(self, message: str, on_text: Callable[[str], None] | None = None,
               interruptible: bool = False) -> Answer:
        """The model's answer to `message`; `on_text` hears each piece of its text as soon as it is known (a
        token that ends inside a character waits for the rest of it). With `interruptible`, Ctrl-C ends the answer
        where it is (the answer says so) instead of propagating."""
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        pieces: list[str] = []
        count, interrupted = 0, False

        def emit(text: str) -> None:
            if text:
                pieces.append(text)
                if on_text is not None:
                    on_text(text)

        started = time.perf_counter()
        try:
            for token in stream_tokens(self.loaded.model, prompt_tokens(self.enc, message), self.opts.max_new_tokens,
                                       self.opts.temperature, self.opts.top_k, self.generator, self.runtime):
                count += 1
                if token == EOT_TOKEN:  # the end of a document: the model has said all it would
                    break
                emit(decoder.decode(self.enc.decode_single_token_bytes(token)))
        except KeyboardInterrupt:
            if not interruptible:
                raise
            interrupted = True
        seconds = time.perf_counter() - started
        emit(decoder.decode(b"", final=True))
        return Answer(message, "".join(pieces), count, seconds, interrupted)
