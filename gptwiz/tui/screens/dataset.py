"""Step 4: what to train on, with live stats as a path is typed or picked, or the built-in demo corpus.

A folder or glob is prepared with `gptwiz prepare` (gptwiz.data.prepare) when the user goes on, with a
progress bar; escape cancels it and prepare removes its partial output.
"""

from __future__ import annotations

import os
from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.suggester import Suggester
from textual.widgets import Footer, Input, OptionList, ProgressBar, Static
from textual.widgets.option_list import Option
from textual.worker import Worker, get_current_worker

from gptwiz.common.errors import UsageError
from gptwiz.common.inert import inert
from gptwiz.common.rich_text import outside
from gptwiz.tui.screens.base import StepTitle, WizardStep, enter_binding
from gptwiz.wizard.preparing import PrepareCancelled, PrepareStatus, PrepareTracker, demo_choice, prepare_choice
from gptwiz.wizard.state import DatasetChoice, find_prepared, inspect_dataset
from gptwiz.wizard.tokenizer_offer import TokenizerOffer, tokenizer_offer, with_tokenizer

DEMO_ID = "demo"
TYPING_PAUSE_S = 0.25  # measure once the user pauses, not at every key


def path_matches(value: str) -> tuple[str, list[str]]:
    """The folder part of `value` as typed ("docs/", "" for the current folder) and the names in that folder that
    complete its last part, sorted, with "/" after a folder's name. Hidden names only when asked for (a dot typed);
    none for a glob, or a folder that cannot be listed."""
    if any(c in value for c in "*?["):
        return "", []
    folder, slash, prefix = value.rpartition("/")
    typed = folder + slash
    base = os.path.expanduser(typed or ".")
    try:
        names = sorted(n for n in os.listdir(base) if n.startswith(prefix)
                       and (prefix.startswith(".") or not n.startswith(".")))
    except OSError:
        return typed, []
    return typed, [n + ("/" if os.path.isdir(os.path.join(base, n)) else "") for n in names]


def complete_path(value: str) -> tuple[str, list[str]]:
    """What tab makes of `value`, as a shell does: the one match in full, else the longest start all matches
    share; and the matches, for the screen to list when there are several."""
    typed, names = path_matches(value)
    if not names:
        return value, []
    common = os.path.commonprefix(names)
    return (typed + common if len(typed + common) > len(value) else value), names


class PathSuggester(Suggester):
    """Shows the first name that completes the last part of a path, in grey (→ accepts it; tab completes)."""

    def __init__(self) -> None:
        super().__init__(use_cache=False, case_sensitive=True)

    async def get_suggestion(self, value: str) -> str | None:
        if not value:
            return None
        typed, names = path_matches(value)
        return typed + names[0] if names else None


class DatasetScreen(WizardStep):
    STEP = "dataset"
    HELP = ("What to train on: a text file, a folder of documents or a glob (docs/**/*.md) is measured as you "
            "type and prepared (tokenized into data/NAME-prepared) when you go on; a prepared dataset folder is "
            "used as it is. Tab completes the path as a shell does (the grey suggestion: →). The built-in demo "
            "corpus (^t) needs no data of your own. For a text file, folder or glob of a megabyte or more, ^o "
            "trains a tokenizer of the text's own (bpe:8192) when it is prepared: a small model's steps cost a "
            "fraction of what they do over GPT-2's 50,257 tokens. Escape cancels a preparation, or goes back.")
    BINDINGS = [Binding("escape", "back", "back"), enter_binding("choose", "use this"),
                Binding("tab", "complete", "complete", priority=True), Binding("ctrl+t", "demo", "demo data"),
                Binding("ctrl+o", "own_tokenizer", "own tokenizer")]

    def __init__(self) -> None:
        super().__init__(id="dataset")
        self.choice: DatasetChoice | None = None
        self.offer: TokenizerOffer | None = None  # the inspected choice's (tokenizer_offer), found off the UI loop
        self.preparing: Worker[Any] | None = None
        self._prep_text = ""
        self._measured: Text = Text("")
        self.own_tokenizer = False  # ^o: prepare the text with a tokenizer of its own
        self.inspections = 0   # finished measurements (tests wait on it)

    def compose(self) -> ComposeResult:
        yield StepTitle(self.STEP)
        with Vertical(classes="wizard-body"):
            yield Static("Train on a text file, a folder of documents, a glob (docs/**/*.md) or a prepared "
                         "dataset. Type a path (tab completes), or pick below.", classes="hint")
            yield Input(placeholder="path, folder or glob", id="path", suggester=PathSuggester())
            yield Static("", id="stats")
            yield OptionList(id="choices")
            yield Static("", id="prep-message")
            yield ProgressBar(id="prep-bar", show_eta=False)
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#prep-bar").display = False
        options = [Option(Text.assemble(("Built-in demo corpus", "bold"),
                                        (": the Python standard library's docstrings and source, "
                                         "about 5.7 MB, prepared on first use", "dim")), id=DEMO_ID)]
        for folder in find_prepared(self.context.data_dir):
            if folder.name.startswith("demo-stdlib"):
                continue
            options.append(Option(Text.assemble(("prepared: ", "dim"), (inert(folder), "bold")), id=str(folder)))
        choices = self.query_one("#choices", OptionList)
        choices.add_options(options)
        path_input = self.query_one("#path", Input)
        if self.state.dataset is not None and self.state.dataset.kind != "demo":
            path_input.value = self.state.dataset.path
        path_input.focus()

    # -- live stats --

    def on_input_changed(self, event: Input.Changed) -> None:
        self.choice, self.offer = None, None
        if not event.value.strip():
            self.query_one("#stats", Static).update("")
            return
        self.query_one("#stats", Static).update(Text("measuring ...", style="dim"))
        self._inspect(event.value)

    @work(thread=True, exclusive=True, group="dataset-inspect")
    def _inspect(self, text: str) -> None:
        worker = get_current_worker()
        if worker.cancelled_event.wait(TYPING_PAUSE_S):
            return
        try:
            found = inspect_dataset(text)
            choice: DatasetChoice | None = found
            message = outside(found.describe(), style="green", multiline=True)  # it names the files found
        except UsageError as exc:
            choice, message = None, outside(exc, style="yellow", multiline=True)
        except OSError as exc:
            choice, message = None, outside(f"{text}: {exc.strerror or exc}", style="yellow", multiline=True)
        # The offer reads a preset file: here in the worker, not on the UI's loop.
        offer = tokenizer_offer(choice, self.state.use_case, self.state.vram_gb)
        if not worker.is_cancelled:
            self.app.call_from_thread(self._show_inspection, text, choice, message, offer)

    def _show_inspection(self, text: str, choice: DatasetChoice | None, message: Text,
                         offer: TokenizerOffer | None) -> None:
        if self.query_one("#path", Input).value != text:
            return  # typed on since
        self.choice, self.offer = choice, offer
        self.inspections += 1
        self._measured = message
        self._show_stats()

    def _show_stats(self) -> None:
        """What the path names, and the tokenizer offer where there is one (tokenizer_offer)."""
        if self.offer is None:
            self.query_one("#stats", Static).update(self._measured)
            return
        line = (Text.assemble(("✓ ", "green"), (f"{self.offer.line()} (^o: GPT-2's)", ""))
                if self.own_tokenizer else Text(f"^o: {self.offer.line()}", style="dim"))
        self.query_one("#stats", Static).update(Text("\n").join([self._measured, line]))

    def action_own_tokenizer(self) -> None:
        if self.offer is None:
            self.notify("a tokenizer of its own is for a text file, folder or glob of a megabyte or more, not yet "
                        "prepared", severity="warning")
            return
        self.own_tokenizer = not self.own_tokenizer
        self._show_stats()

    # -- tab: complete the path --

    def action_complete(self) -> None:
        path = self.query_one("#path", Input)
        if not path.has_focus:
            self.focus_next()
            return
        value, names = complete_path(path.value)
        if value != path.value:
            path.value = value
            path.cursor_position = len(value)
        elif len(names) > 1:
            shown = "  ".join(inert(n) for n in names[:12]) + ("  ..." if len(names) > 12 else "")
            self.query_one("#stats", Static).update(Text(f"{len(names)} names start so: {shown}", style="dim"))
        elif not names:
            self.query_one("#choices", OptionList).focus()  # nothing to complete: on to the list, as tab does

    # -- choosing --

    def action_choose(self) -> None:
        choices = self.query_one("#choices", OptionList)
        if choices.has_focus:
            if choices.highlighted is not None:
                choices.action_select()
            return
        self.after_typing(lambda: self._submit(self.query_one("#path", Input).value))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self._submit(event.value)

    def _submit(self, value: str) -> None:
        text = value.strip()
        if not text:
            self.query_one("#stats", Static).update(Text("type a path, or pick the demo corpus below", style="yellow"))
            return
        try:
            choice = self.choice if self.choice is not None and self.choice.path == text else inspect_dataset(text)
        except (UsageError, OSError) as exc:
            self.query_one("#stats", Static).update(outside(exc, style="yellow", multiline=True))
            return
        self._go(choice)

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        if event.option.id == DEMO_ID:
            self.action_demo()
            return
        try:
            self._go(inspect_dataset(str(event.option.id)))
        except (UsageError, OSError) as exc:
            self.query_one("#stats", Static).update(outside(exc, style="yellow", multiline=True))

    def action_demo(self) -> None:
        self._go(demo_choice(self.context.data_dir))

    def _go(self, choice: DatasetChoice) -> None:
        if self.preparing is not None:
            return
        # The inspected choice's offer; one inspected just now on enter (or prepared) is looked at afresh.
        offer = self.offer if choice is self.choice else tokenizer_offer(choice, self.state.use_case,
                                                                         self.state.vram_gb)
        if offer is not None:
            choice = with_tokenizer(choice, self.own_tokenizer)
        if choice.needs_prepare:
            self._start_prepare(choice)
            return
        self.state.dataset = choice
        self.advance()

    # -- preparing, in a worker --

    def _start_prepare(self, choice: DatasetChoice) -> None:
        self.query_one("#prep-bar").display = True
        self._prep_text = f"preparing {inert(choice.path)}"
        self.query_one("#prep-message", Static).update(Text(f"{self._prep_text} (escape cancels) ...", style="bold"))
        self.preparing = self._prepare(choice)

    @work(thread=True, exclusive=True, group="dataset-prepare")
    def _prepare(self, choice: DatasetChoice) -> None:
        worker = get_current_worker()
        tracker = PrepareTracker(lambda status: self.app.call_from_thread(self._prep_progress, status))
        try:
            done = prepare_choice(choice, self.context.data_dir, tracker, should_cancel=lambda: worker.is_cancelled,
                                  on_stage=tracker.stage)
        except PrepareCancelled:
            self.app.call_from_thread(self._prep_done, None, "cancelled: nothing was kept")
            return
        except UsageError as exc:
            self.app.call_from_thread(self._prep_done, None, str(exc))
            return
        self.app.call_from_thread(self._prep_done, done, "")

    def _prep_progress(self, status: PrepareStatus) -> None:
        if status.total_bytes is not None:
            self.query_one("#prep-bar", ProgressBar).update(total=status.total_bytes, progress=status.done_bytes)
        if status.text != self._prep_text:
            self._prep_text = status.text
            self.query_one("#prep-message", Static).update(
                Text(f"{inert(status.text, multiline=True)} (escape cancels) ...", style="bold"))

    def _prep_done(self, choice: DatasetChoice | None, error: str) -> None:
        self.preparing = None
        self.query_one("#prep-bar").display = False
        if choice is None:
            self.query_one("#prep-message", Static).update(outside(error, style="yellow", multiline=True))
            return
        self.query_one("#prep-message", Static).update(outside(f"prepared: {choice.describe()}", style="green",
                                                               multiline=True))
        self._go(choice)

    def action_back(self) -> None:
        if self.preparing is not None:
            self.preparing.cancel()
            self.query_one("#prep-message", Static).update(Text("cancelling ...", style="yellow"))
            return
        super().action_back()
