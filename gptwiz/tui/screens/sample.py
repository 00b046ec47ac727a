"""g on the dashboard: text generated from a run's checkpoint, drawn as it comes with the tokens so far.

The generation runs in a thread worker (gptwiz.tui.sampling says what it generates); this screen starts it, reads
its feed a few times a second and draws it, so escape and q close the dialog at any moment, and closing it stops
the generation at its next token. A tuned run answers a short message; tab goes to a field where the user types
another, and enter asks it.
"""

from __future__ import annotations

from collections.abc import Callable

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.widgets import Input, Static

from gptwiz.common.inert import inert
from gptwiz.common.rich_text import model_text, outside
from gptwiz.runs.paths import RunPaths
from gptwiz.tui.sampling import PLAIN_SAMPLES, FeedView, SampleFeed, SampleStopped
from gptwiz.tui.screens.message import MessageScreen

# (run, best or last, feed) -> the texts generated (gptwiz.tui.sampling.default_sample_text)
Sampler = Callable[[RunPaths, str, SampleFeed], list[str]]

DRAW_INTERVAL_S = 0.2
SEPARATOR = "─" * 30
HINT = "↑/↓ pgup/pgdn scroll · escape: close"
TUNED_HINT = "tab: ask something else · " + HINT


class SampleScreen(MessageScreen):
    """`title` names the checkpoint; `sampler` generates from it, in a worker, into a SampleFeed."""

    EXTRA_ROWS = 3  # the progress line, and the field to ask in with its margin

    def __init__(self, title: str, paths: RunPaths, checkpoint: str, sampler: Sampler) -> None:
        super().__init__(title, Text("generating ...", style="dim"), id="sample-view")
        self.paths, self.checkpoint, self.sampler = paths, checkpoint, sampler
        self.feed: SampleFeed | None = None
        self.done = False             # the current generation has ended (tests wait on it)
        self._texts: list[str] | None = None
        self._error: str | None = None
        self._ticks = 0

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog wide"):
            yield Static(Text(self.title_text, style="bold"), classes="dialog-title")
            yield Static("", id="sample-status")
            with VerticalScroll(classes="dialog-scroll"):
                yield Static(self.body, id="message-body")
            yield Input(id="sample-ask", compact=True, placeholder="type a message for the model, enter asks it")
            yield Static(Text(HINT, style="dim"), id="sample-hint")

    def on_mount(self) -> None:  # (MessageScreen's on_mount runs too: the text has the focus)
        self.query_one("#sample-ask").display = False  # until the run turns out to be a tuned one
        self.set_interval(DRAW_INTERVAL_S, self._draw)
        self.ask(None)

    def on_unmount(self) -> None:
        if self.feed is not None:
            self.feed.stop.set()  # the worker is cancelled too, but only the feed reaches the model's loop

    # -- generating --

    def ask(self, prompt: str | None) -> None:
        """Generate anew (for a tuned run: the answer to `prompt`, or to the default message)."""
        if self.feed is not None:
            self.feed.stop.set()
        self.feed = SampleFeed(prompt=prompt)
        self.done, self._texts, self._error, self._ticks = False, None, None, 0
        self._generate(self.feed)
        self._draw()

    @work(thread=True, exclusive=True, group="sample")
    def _generate(self, feed: SampleFeed) -> None:
        try:
            texts, error = self.sampler(self.paths, self.checkpoint, feed), None
        except SampleStopped:
            return
        except Exception as exc:  # an unreadable checkpoint, no torch: said in the dialog
            texts, error = None, f"could not sample: {exc}"
        try:
            self.app.call_from_thread(self._finished, feed, texts, error)
        except RuntimeError:  # the app is closing
            pass

    def _finished(self, feed: SampleFeed, texts: list[str] | None, error: str | None) -> None:
        if feed is not self.feed or not self.is_attached:
            return  # asked something else since, or closed
        self.done, self._texts, self._error = True, texts, error
        self._draw()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        message = event.value.strip()
        if message:
            self.ask(message)
            self.query_one(VerticalScroll).focus()

    # -- drawing --

    def _draw(self) -> None:
        if self.feed is None or not self.is_attached:
            return
        view = self.feed.view()
        self._ticks += 1
        if view.template is not None and not self.query_one("#sample-ask").display:
            self.query_one("#sample-ask").display = True
            self.query_one("#sample-hint", Static).update(Text(TUNED_HINT, style="dim"))
        self.query_one("#sample-status", Static).update(self._status(view))
        if self._error is not None:
            self.set_body(outside(self._error, style="red", multiline=True))
        elif view.loaded or self._texts is not None:
            scroll = self.query_one(VerticalScroll)
            follow = not self.done and scroll.is_vertical_scroll_end  # unless the user scrolled up meanwhile
            self.set_body(sample_body(view, self._texts))
            if follow:
                self.call_after_refresh(scroll.scroll_end, animate=False)

    def _status(self, view: FeedView) -> Text:
        if self._error is not None:
            return Text("failed", style="red")
        if not self.done:
            if not view.loaded:
                waited = self._ticks * DRAW_INTERVAL_S
                return Text(f"generating: loading the checkpoint on the CPU ... {waited:.0f}s", style="yellow")
            rate = view.tokens / view.seconds if view.seconds > 0 else 0.0
            which = f" · sample {len(view.texts)} of {PLAIN_SAMPLES}" if view.template is None else ""
            return Text(f"generating: {_tokens(view.tokens)} so far · {rate:.1f} tokens/s{which}", style="yellow")
        if not view.loaded:
            return Text("done", style="dim")
        ended = "ended at end-of-text" if all(view.ended) else "cut at the length limit" if not any(view.ended) \
            else f"{sum(view.ended)} of {len(view.ended)} ended at end-of-text"
        template = f" · chat template {inert(view.template)}" if view.template else ""  # the run's config.json says it
        return Text(f"{_tokens(view.tokens)} in {view.seconds:.1f}s · {ended}{template}", style="dim")


def _tokens(n: int) -> str:
    return f"{n} token{'' if n == 1 else 's'}"


def sample_body(view: FeedView, texts: list[str] | None) -> Text:
    """The samples as the model wrote them (control characters dropped), a tuned run's after the message it
    answers; each one that the model ended marks its end-of-text once."""
    samples = list(texts) if texts is not None else list(view.texts)
    body = Text()
    if view.prompt is not None:
        body.append("you: ", style="bold")
        body.append_text(outside(view.prompt, multiline=True))
        body.append("\nmodel: ", style="bold")
    for i, text in enumerate(samples):
        if i:
            body.append(f"\n{SEPARATOR}\n", style="dim")
        body.append_text(model_text(text.strip("\n") if view.prompt is None else text.strip()))
        if i < len(view.ended) and view.ended[i]:
            body.append(" ⏎ end of text" if text.strip() else "(ended at once: end of text)", style="dim")
    return body

