"""Preparing what the dataset step chose (a folder or glob of documents, or the demo corpus), for both front-ends.

The work is gptwiz.data.prepare's (and gptwiz.data.demo's); this module picks which, makes cancelling the same
everywhere (PrepareCancelled, nothing kept), and keeps the progress as plain values (PrepareTracker) that a
front-end only draws. Any gptwiz.data.prepare.PrepareProgress can watch, e.g. its RichPrepareProgress bar.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from gptwiz.data.demo import DemoCancelled, build_demo, demo_dataset_dir, demo_ready
from gptwiz.data.prepare import PrepareOptions, PrepareProgress, prepare
from gptwiz.wizard.state import DatasetChoice, inspect_dataset, prepared_dir_for, source_glob

DEMO_PATH = "demo corpus (Python standard library)"
DEMO_FILES, DEMO_BYTES = 2, 5_700_000  # about what the demo corpus holds, until it is built and measured


class PrepareCancelled(Exception):
    """should_cancel said so; prepare removed its partial output."""


def demo_choice(data_dir: Path) -> DatasetChoice:
    """The demo corpus: measured when it is built already, else an estimate to prepare."""
    if demo_ready(data_dir):
        return replace(inspect_dataset(str(demo_dataset_dir(data_dir))), kind="demo", path=DEMO_PATH)
    return DatasetChoice("demo", DEMO_PATH, files=DEMO_FILES, bytes=DEMO_BYTES)


@dataclass(frozen=True)
class PrepareStatus:
    """How far a preparation has got, as a front-end shows it."""
    text: str                       # what is happening now: a stage, or "tokenizing 6 files"
    done_bytes: int = 0
    total_bytes: int | None = None  # None until tokenizing starts: the bar has no length yet

    @property
    def fraction(self) -> float | None:
        return None if self.total_bytes is None else min(1.0, self.done_bytes / self.total_bytes)


class PrepareTracker(PrepareProgress):
    """gptwiz.data.prepare's progress calls, and the demo's stages, as PrepareStatus values handed to `show`
    (called on the preparing thread)."""

    def __init__(self, show: Callable[[PrepareStatus], None]) -> None:
        self.show = show
        self.status = PrepareStatus("starting")

    def _set(self, status: PrepareStatus) -> None:
        self.status = status
        self.show(status)

    def stage(self, message: str) -> None:
        self._set(replace(self.status, text=message))

    def start(self, files: int, nbytes: int) -> None:
        self._set(PrepareStatus(f"tokenizing {files} files", 0, max(1, nbytes)))

    def advance(self, files: int, nbytes: int, tokens: int) -> None:
        self._set(replace(self.status, done_bytes=self.status.done_bytes + nbytes))


class _Cancellable(PrepareProgress):
    """Forwards to `inner`; raising from advance makes prepare stop and remove its partial output."""

    def __init__(self, inner: PrepareProgress, should_cancel: Callable[[], bool]) -> None:
        self.inner, self.should_cancel = inner, should_cancel

    def start(self, files: int, nbytes: int) -> None:
        self.inner.start(files, nbytes)

    def advance(self, files: int, nbytes: int, tokens: int) -> None:
        if self.should_cancel():
            raise PrepareCancelled()
        self.inner.advance(files, nbytes, tokens)

    def stop(self) -> None:
        self.inner.stop()


def prepare_choice(choice: DatasetChoice, data_dir: Path, progress: PrepareProgress | None = None,
                   should_cancel: Callable[[], bool] = lambda: False,
                   on_stage: Callable[[str], None] = lambda message: None) -> DatasetChoice:
    """`choice` ready to train from: the demo corpus built, or the documents (or a text file that gets a tokenizer
    of its own) prepared into data/<name>-prepared, with their exact token count. Raises PrepareCancelled, or UsageError for bad input."""
    if not choice.needs_prepare:
        return choice
    watched = _Cancellable(progress or PrepareProgress(), should_cancel)
    if choice.kind == "demo":
        try:
            corpus = build_demo(data_dir, progress=watched, should_cancel=should_cancel, on_stage=on_stage)
        except DemoCancelled as exc:
            raise PrepareCancelled() from exc
        return replace(choice, files=corpus.files, bytes=corpus.bytes, tokens=corpus.tokens,
                       prepared_dir=str(corpus.dataset_dir))
    out = prepared_dir_for(choice.path, data_dir, choice.tokenizer)
    result = prepare(PrepareOptions(sources=[f"data:{source_glob(choice.path)}"], out_dir=str(out), overwrite=True,
                                    tokenizer=choice.tokenizer), watched)
    tokens = sum(int(s["train_tokens"]) + int(s["val_tokens"]) for s in result.manifest["sources"])
    own = choice.tokenizer != "gpt2"
    return replace(choice, tokens=tokens, prepared_dir=str(out),
                   vocab_tokens=int(result.manifest["vocab_size"]) if own else None)
