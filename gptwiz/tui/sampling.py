"""What the dashboard's g generates, and how its progress reaches the screen.

The text comes from gptwiz.training.chat's ChatSession, the generator `gptwiz chat` streams with: it stops at the
end-of-text token, and it prompts an instruction-tuned run (its config.json's data.sft) through the chat template it
was tuned with. So a tuned run answers one short message (the default, or one the user typed) and a pretrained
run continues a new document, twice, each ending at end-of-text or at its length. The generating thread writes what
it has into a SampleFeed; the screen reads the feed a few times a second and draws it, so the event loop never
waits on the model. Torch is imported by the thread, on the first g.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field, replace

from gptwiz.runs.paths import RunPaths

DEFAULT_PROMPT = "Hello! What can you tell me?"  # a tuned run's message when the user typed none
PLAIN_PROMPT = "\n"             # a pretrained run starts a new line, as `gptwiz sample` does
PLAIN_SAMPLES = 2
PLAIN_TOKENS = 80               # each pretrained sample: a few lines
TUNED_TOKENS = 160              # an answer: a few sentences, ended earlier by the model's end-of-text


class SampleStopped(Exception):
    """The screen asked the generation to stop (closed, or asked something else)."""


@dataclass(frozen=True)
class FeedView:
    """What a feed holds at one moment, for the screen to draw."""

    loaded: bool
    template: str | None        # the chat template of a tuned run; None for a pretrained one
    prompt: str | None          # the message a tuned run answers
    texts: tuple[str, ...]      # one per sample so far, the last one growing
    ended: tuple[bool, ...]     # per finished sample: whether end-of-text ended it
    tokens: int
    seconds: float


@dataclass
class SampleFeed:
    """Filled by the generating thread, read by the screen; `stop` asks the thread to end at its next token."""

    prompt: str | None = None   # what the user asked a tuned run (None: DEFAULT_PROMPT)
    stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _loaded: bool = field(default=False, init=False)
    _template: str | None = field(default=None, init=False)
    _asked: str | None = field(default=None, init=False)
    _texts: list[str] = field(default_factory=list, init=False)
    _ended: list[bool] = field(default_factory=list, init=False)
    _tokens: int = field(default=0, init=False)
    _started: float = field(default=0.0, init=False)
    _stopped: float | None = field(default=None, init=False)  # when the last sample ended

    def begin(self, template: str | None, asked: str | None) -> None:
        """The model is loaded: a tuned run (its template) answers `asked`; a pretrained one continues text."""
        with self._lock:
            self._loaded, self._template, self._asked = True, template, asked
            self._started = time.monotonic()

    def new_sample(self) -> None:
        with self._lock:
            self._texts.append("")

    def add_text(self, text: str) -> None:
        with self._lock:
            self._texts[-1] += text

    def add_token(self, _data: bytes = b"") -> None:
        """One more token chosen (end-of-text excepted); where the screen asked to stop, the generation ends here."""
        if self.stop.is_set():
            raise SampleStopped()
        with self._lock:
            self._tokens += 1

    def end_sample(self, at_end_of_text: bool) -> None:
        with self._lock:
            self._ended.append(at_end_of_text)
            self._stopped = time.monotonic()

    def view(self) -> FeedView:
        with self._lock:
            ended = self._stopped if self._stopped is not None and len(self._ended) == len(self._texts) else None
            seconds = ((ended or time.monotonic()) - self._started) if self._loaded else 0.0
            return FeedView(self._loaded, self._template, self._asked, tuple(self._texts), tuple(self._ended),
                            self._tokens, seconds)


def default_sample_text(paths: RunPaths, checkpoint: str, feed: SampleFeed) -> list[str]:
    """Generate from the run's checkpoint `checkpoint` (best or last) on the CPU, so a full card is left alone,
    writing into `feed` as it goes; the texts generated."""
    from gptwiz.training.chat import ChatOptions, ChatSession  # lazy: torch loads on the dashboard's first g

    session = ChatSession(ChatOptions(model_name=str(paths.root), runs_dir=str(paths.root.parent), device="cpu",
                                      checkpoint=checkpoint, max_new_tokens=PLAIN_TOKENS))
    tuned = session.template is not None
    if tuned:
        session.opts = replace(session.opts, max_new_tokens=TUNED_TOKENS)
    message = (feed.prompt or DEFAULT_PROMPT) if tuned else PLAIN_PROMPT
    feed.begin(session.template, message if tuned else None)
    for _ in range(1 if tuned else PLAIN_SAMPLES):
        feed.new_sample()
        before = feed.view().tokens
        answer = session.answer(message, on_text=feed.add_text, on_bytes=feed.add_token)
        # The end-of-text that ended an answer is counted in it, but has no bytes of its own.
        feed.end_sample(answer.tokens > feed.view().tokens - before)
        session.reset()
    return list(feed.view().texts)


__all__ = ["DEFAULT_PROMPT", "PLAIN_SAMPLES", "FeedView", "SampleFeed", "SampleStopped", "default_sample_text"]
