"""Step 5: the recommended preset and why, the alternatives, the knobs with a live memory bar and the predicted
times of the probe and the run, the command line."""

from __future__ import annotations

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.widgets import Footer, Input, LoadingIndicator, OptionList, Static
from textual.widgets.option_list import Option
from textual.worker import get_current_worker

from gptwiz.common import fmt
from gptwiz.common.errors import UsageError
from gptwiz.common.inert import inert
from gptwiz.common.rich_text import outside
from gptwiz.data.facts import DataFacts
from gptwiz.planning.knobs import Knobs
from gptwiz.planning.quality import QualityModel
from gptwiz.tui.screens.base import StepTitle, WizardStep, enter_binding
from gptwiz.tui.widgets.command import CommandLine
from gptwiz.tui.widgets.memory_bar import MemoryBar
from gptwiz.wizard.commands import wizard_command_line
from gptwiz.wizard.knob_fields import KNOB_FIELDS, knobs_from_texts
from gptwiz.wizard.services import (
    RecView,
    data_facts_for,
    estimate_bytes,
    knobs_for_preset,
    local_quality_model,
    quality_for,
    recommend_for,
    throughput_for,
    times_for,
    use_cases,
    view,
    with_run_dropout,
)

# Knobs field -> its input's id (the stylesheet and the tests know them).
INPUT_IDS = {"block_size": "knob-block", "batch_size": "knob-batch", "learning_rate": "knob-lr",
             "max_iters": "knob-iters"}


def use_case_name(key: str | None) -> str:
    """The use case's name as the guide says it; its key where the list cannot be read."""
    try:
        return {k: name for k, name, _ in use_cases()}.get(key or "", key or "?")
    except ImportError:
        return key or "?"


class ReasonsPane(VerticalScroll):
    """The reasons' pane, which says when its own height changes: what it hides depends on that height as much
    as on its content, and the screen's resize does not cover a layout that settles later."""

    class Resized(Message):
        pass

    def on_resize(self) -> None:
        self.post_message(self.Resized())


class RecommendationScreen(WizardStep):
    STEP = "recommendation"
    # Page up and down scroll the reasons whichever field has the focus (a knob's field takes neither key).
    BINDINGS = [Binding("escape", "back", "back"), enter_binding("enter", "probe"),
                Binding("ctrl+r", "probe", "probe", show=False),
                Binding("ctrl+l", "launch", "skip probe"), Binding("ctrl+o", "alternatives", "others"),
                Binding("pagedown", "scroll_reasons(1)", "scroll the reasons down", show=False),
                Binding("pageup", "scroll_reasons(-1)", "scroll the reasons up", show=False)]

    def __init__(self) -> None:
        super().__init__(id="recommendation")
        self.rec: RecView | None = None       # the guide's pick
        self.shown: RecView | None = None     # what the reasons, warnings and alternatives are about now
        self.error: str | None = None
        self.throughput: object | None = None  # gptwiz.planning.timing.Throughput, measured in the worker
        self.facts: DataFacts | None = None    # the data's difficulty, measured in the worker
        self.quality_model: QualityModel | None = None  # with this runs folder's correction, read in the worker

    def compose(self) -> ComposeResult:
        yield StepTitle(self.STEP)
        yield Static("", id="situation", classes="hint")
        with Horizontal(id="rec-body"):
            with Vertical(id="rec-left"):
                with ReasonsPane(id="rec-scroll"):
                    yield LoadingIndicator(id="rec-loading")
                    yield Static("", id="rec-pick")
                    yield Static("", id="rec-reasons")
                    yield Static("", id="rec-warnings")
                    yield Static(Text("Alternatives (enter switches to one):", style="bold"), id="alt-title")
                    yield OptionList(id="alternatives")
                yield Static("", id="rec-more")  # what the pane holds below (or above) what it shows
            with Vertical(id="rec-right"):
                yield Static(Text("Knobs (type, enter probes)", style="bold"))
                for knob in KNOB_FIELDS:
                    with Horizontal(classes="knob"):
                        yield Static(knob.label, classes="knob-label")
                        yield Input(id=INPUT_IDS[knob.name], compact=True,
                                    type="integer" if knob.kind is int else "number")
                yield Static("", id="knob-accum", classes="hint")
                yield Static("", id="knob-error", classes="error-text")
                yield Static(Text("Peak memory, estimated", style="bold"))
                yield MemoryBar(id="memory-bar")
                yield Static("", id="rec-times")
                yield Static("", id="rec-quality")
        yield CommandLine(id="command-line")
        yield Footer()

    def on_mount(self) -> None:
        s = self.state
        data = s.dataset.describe() if s.dataset else "no dataset"
        device = f"{s.vram_gb:g} GB GPU" + (f" x{s.gpu_count}" if s.gpu_count > 1 else "") if s.on_gpu else "CPU only"
        case = use_case_name(s.use_case)
        self.query_one("#situation", Static).update(outside(f"for {case} · {device} · {data}"))  # it names files
        self.query_one("#alt-title").display = False
        self.query_one("#rec-more").display = False
        scroll = self.query_one("#rec-scroll", VerticalScroll)
        self.watch(scroll, "scroll_y", self._show_more, init=False)
        self.watch(scroll, "virtual_size", self._show_more, init=False)
        self._recommend()

    def on_screen_resume(self) -> None:
        if self.rec is not None and self.state.knobs is not None:
            self._fill_knobs(self.state.knobs)  # the probe may have applied advice

    @work(thread=True, exclusive=True, group="recommend")
    def _recommend(self, preset: str | None = None) -> None:
        """The recommendation (with `preset`: for that preset instead of the guide's pick), after measuring this
        machine's speed once (seconds the first time on a machine, then read from its cache)."""
        if self.throughput is None:
            try:
                self.throughput = throughput_for(self.state, self.context.measure_throughput)
            except Exception:  # no speed, no times: the rest of the screen works
                self.throughput = None
        if self.facts is None:
            self.facts = data_facts_for(self.state)
            self.quality_model = local_quality_model(self.state.runs_dir)
        try:
            rec, error = view(recommend_for(self.state, self.throughput, preset, self.facts)), None
        except Exception as exc:  # a UsageError, or a module not there yet: say it on the screen
            rec, error = None, f"could not recommend: {exc}"
        if not get_current_worker().is_cancelled:
            self.app.call_from_thread(self._show_rec, rec, error, preset is not None)

    def _show_rec(self, rec: RecView | None, error: str | None, switched: bool = False) -> None:
        self.query_one("#rec-loading").display = False
        if not switched:
            self.rec, self.error = rec, error
        if rec is None:
            self.query_one("#rec-pick", Static).update(outside(error or "no recommendation", style="red",
                                                               multiline=True))
            return
        self.shown = rec
        if not switched:
            self.state.recommendation = rec
        self.state.knobs = rec.knobs
        reasons = Text()
        for i, reason in enumerate(rec.reasons, 1):
            reasons.append(f"{i}. ", style="dim")
            reasons.append(inert(reason) + "\n")  # a reason may name the dataset or the preset file
        if rec.phases:
            reasons.append("Phases (this wizard launches the first):\n", style="bold")
            for phase in rec.phases:
                reasons.append(f"  {inert(phase)}\n")
        self.query_one("#rec-reasons", Static).update(reasons)
        warnings = Text()
        for w in rec.warnings:
            warnings.append(f"! {inert(w)}\n", style="yellow")
        self.query_one("#rec-warnings", Static).update(warnings)
        alts = self.query_one("#alternatives", OptionList)
        alts.clear_options()
        alts.add_options([Option(Text.assemble((inert(a.preset), "bold"),
                                               (f": {inert(a.why)}" if a.why else "", "dim")), id=a.preset)
                          for a in rec.alternatives])
        self.query_one("#alt-title").display = bool(rec.alternatives)
        alts.display = bool(rec.alternatives)
        self._fill_knobs(rec.knobs)
        if not switched:
            self.query_one("#knob-block", Input).focus()

    # -- knobs --

    def _fill_knobs(self, knobs: Knobs) -> None:
        for knob in KNOB_FIELDS:
            box = self.query_one(f"#{INPUT_IDS[knob.name]}", Input)
            with box.prevent(Input.Changed):
                box.value = knob.text(knobs)
        self._update(knobs)

    def _read_knobs(self) -> Knobs | None:
        if self.state.knobs is None:
            return None
        texts = {knob.name: self.query_one(f"#{INPUT_IDS[knob.name]}", Input).value for knob in KNOB_FIELDS}
        try:
            knobs = with_run_dropout(knobs_from_texts(self.state.knobs, texts), self.state, self.facts)
        except UsageError as exc:
            self.query_one("#knob-error", Static).update(outside(exc, multiline=True))
            return None
        self.query_one("#knob-error", Static).update("")
        return knobs

    def on_input_changed(self, event: Input.Changed) -> None:
        knobs = self._read_knobs()
        if knobs is not None:
            self.state.knobs = knobs
            self._update(knobs)

    def _update(self, knobs: Knobs) -> None:
        s = self.state
        self.state.knobs = knobs
        rec = self.rec
        pick = Text()
        pick.append(inert(knobs.preset), style="bold green")  # a preset may be a file the user named
        if rec is not None and knobs.preset != rec.knobs.preset:
            pick.append(f"  (you switched; recommended: {inert(rec.knobs.preset)})", style="yellow")
        elif rec is not None:
            pick.append("  recommended", style="green")
        self.query_one("#rec-pick", Static).update(pick)
        effective = knobs.batch_size * knobs.grad_accum
        self.query_one("#knob-accum", Static).update(
            f"grad accum {knobs.grad_accum} · {effective * knobs.block_size:,} tokens/iter")
        # The recommendation's own estimate is for GPT-2's vocabulary: a tokenizer of the data's own is priced here.
        same_as_rec = rec is not None and knobs == rec.knobs and rec.estimate_bytes is not None and s.vocab_size is None
        try:
            estimate = rec.estimate_bytes if same_as_rec else estimate_bytes(knobs, s)  # type: ignore[union-attr]
        except Exception:  # an estimator not there yet, or a preset it cannot read: no bar, the rest works
            estimate = None
        device_name = "GPU" if s.on_gpu else "RAM"
        self.query_one(MemoryBar).show(estimate, s.device_memory_bytes(), device_name)
        self.query_one("#rec-times", Static).update(self._times_text(knobs))
        self.query_one("#rec-quality", Static).update(self._quality_text(knobs))
        self.query_one("#command-line", CommandLine).set_command(wizard_command_line(s))

    def _times_text(self, knobs: Knobs) -> Text:
        """'Time, predicted' over 'probe 1m29s · run 19m24s' (as the memory bar's title over the bar), or why
        there is none."""
        text = Text()
        try:
            times = times_for(knobs, self.state, self.throughput)
        except Exception:  # a preset it cannot read: no times, the rest works
            times = None
        text.append("Time, predicted\n", style="bold")
        if times is None:
            text.append("measuring this machine..." if self.rec is None else "no speed measured for this device",
                        style="dim")
            return text
        text.append(f"probe {fmt.duration(times.probe_s)} · run {fmt.duration(times.run_s)}")
        if times.label:
            text.append(f"\n{times.label}", style="dim")
        return text

    def _quality_text(self, knobs: Knobs) -> Text:
        """'Quality, predicted' over 'val loss 4.21 (3.95-4.47) · 1.52 bits/byte' for these knobs."""
        text = Text()
        model = self.quality_model
        q = quality_for(knobs, self.state, self.facts, model) if self.rec is not None and model is not None else None
        if q is None:
            return text
        text.append("Quality, predicted (final)\n", style="bold")
        text.append(f"val loss {q.val_loss:.2f} ({q.low:.2f}-{q.high:.2f})")
        if q.bits_per_byte is not None:
            text.append(f" · {q.bits_per_byte:.2f} bits/byte")
        if q.assumed_data:
            text.append("\ntypical English prose assumed", style="dim")
        return text

    def action_enter(self) -> None:
        """Enter probes, except in the alternatives, where it switches to the highlighted one."""
        alts = self.query_one("#alternatives", OptionList)
        if alts.has_focus and alts.highlighted is not None:
            alts.action_select()
        else:
            self.after_typing(self.action_probe)

    # -- the reasons' pane, which holds more than 80x24 shows --

    def _show_more(self) -> None:
        """Say under the pane that it holds more than it shows, and how to read it."""
        scroll = self.query_one("#rec-scroll", VerticalScroll)
        below, above = scroll.max_scroll_y - round(scroll.scroll_y), round(scroll.scroll_y)
        more = self.query_one("#rec-more", Static)
        # The line's own row is taken from the pane: content one row over a pane so shortened fits without it.
        hidden = below - 1 if more.display and above == 0 else below
        if hidden > 0:
            more.update(Text(f"▼ {below} more line{'s' if below > 1 else ''} below: pgdn", style="bold yellow"))
        elif above > 0:
            more.update(Text("▲ the end; pgup scrolls back up", style="dim"))
        if more.display != (hidden > 0 or above > 0):
            more.display = hidden > 0 or above > 0
            self.call_after_refresh(self._show_more)  # its row changes the pane's height: counted again after

    def on_reasons_pane_resized(self) -> None:
        self.call_after_refresh(self._show_more)

    def action_scroll_reasons(self, direction: int) -> None:
        scroll = self.query_one("#rec-scroll", VerticalScroll)
        if direction > 0:
            scroll.scroll_page_down(animate=False)
        else:
            scroll.scroll_page_up(animate=False)

    # -- alternatives --

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        if event.option.id:
            # At once the preset's own settings; then its recommendation: the settings that fit this machine,
            # and the warnings and alternatives of the new pick.
            self._fill_knobs(knobs_for_preset(event.option.id, self.state.knobs))
            self.notify(f"switched to {inert(event.option.id)}", markup=False)
            self._recommend(event.option.id)

    def action_alternatives(self) -> None:
        alts = self.query_one("#alternatives", OptionList)
        if alts.display:
            if alts.highlighted is None and alts.option_count:
                alts.highlighted = 0
            alts.focus()

    def leaving_note(self, width: int) -> str | None:
        return self.settings_note("at the recommendation", width)

    # -- on --

    def _ready(self) -> bool:
        knobs = self._read_knobs() if self.state.knobs is not None else None
        if knobs is None:
            self.notify("fix the knobs first" if self.state.knobs else "no recommendation yet", severity="warning")
            return False
        self.state.knobs = knobs  # what the boxes hold now, their last Changed handled or not
        return True

    def action_probe(self) -> None:
        if self._ready():
            self.advance()

    def action_launch(self) -> None:
        if self._ready():
            self.advance("launch")
