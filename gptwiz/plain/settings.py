"""The plain wizard's recommendation step: the guide's pick and why, then the settings (memory, predicted times,
command line) until the user goes on with them, switches to an alternative or types the knobs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gptwiz.common import fmt
from gptwiz.common.rich_text import outside_markup
from gptwiz.data.facts import DataFacts
from gptwiz.plain.prompts import BACK
from gptwiz.plain.talk import NO, YES, Talk
from gptwiz.planning.knobs import Knobs
from gptwiz.planning.quality import QualityModel
from gptwiz.wizard.commands import wizard_command_line
from gptwiz.wizard.knob_fields import KNOB_FIELDS, knobs_from_texts
from gptwiz.wizard.services import (
    RecView,
    data_facts_for,
    device_and_dtype,
    estimate_bytes,
    knobs_for_preset,
    local_quality_model,
    quality_for,
    recommend_for,
    throughput_for,
    times_for,
    view,
    with_run_dropout,
)
from gptwiz.wizard.state import WizardState


class SettingsStep:
    def __init__(self, talk: Talk, state: WizardState, probe_iters: int,
                 measure_throughput: Callable[[str, str], Any] | None) -> None:
        self.talk, self.state, self.probe_iters = talk, state, probe_iters
        self.measure_throughput = measure_throughput
        self._speed: tuple[Any] | None = None  # (the measured throughput, or None), once measured
        self._facts: DataFacts | None = None   # the data's difficulty, once measured

    def run(self) -> str:
        """'next' to probe the settings agreed on, 'launch' to start without a probe, or 'back'."""
        throughput = self.throughput()
        self._facts = self._facts or data_facts_for(self.state)
        model = local_quality_model(self.state.runs_dir)  # the runs folder's correction, read once a visit
        rec = view(recommend_for(self.state, throughput, facts=self._facts))
        self.state.recommendation = rec
        self.state.knobs = rec.knobs
        self._show_pick(rec)
        while True:
            k = self.state.knobs or rec.knobs  # never None here: set from a recommendation
            self._show_settings(k, rec, throughput, model)
            choices = [("ok", "go on with this"),
                       ("knobs", "change context length, batch size, learning rate, iterations")]
            choices += [(f"alt:{a.preset}", f"switch to {a.preset}" + (f": {a.why}" if a.why else ""))
                        for a in rec.alternatives]
            answer = self.talk.select("The settings:", choices, default="ok")
            if answer == BACK:
                return "back"
            if answer == "ok":
                move = self._probe_first()
                if move != "back":
                    return move
                continue
            if answer.startswith("alt:"):
                rec = self._switch(answer[4:], k, throughput)
                continue
            self._type_knobs(k)

    def _show_pick(self, rec: RecView) -> None:
        talk = self.talk
        talk.say(f"\n[bold green]Recommended: {outside_markup(rec.knobs.preset)}[/]")
        for i, reason in enumerate(rec.reasons, 1):
            talk.say_item(f"  {i}. ", reason)
        if rec.phases:
            talk.say("  [bold]Phases (this wizard launches the first):[/]")
            for phase in rec.phases:
                talk.say_item("    ", phase)
        for warning in rec.warnings:
            talk.say_item("  ! ", warning, "yellow")

    def _show_settings(self, k: Knobs, rec: RecView, throughput: Any, model: QualityModel) -> None:
        """The settings' memory and predicted times (where known), and their command line."""
        try:
            est = estimate_bytes(k, self.state)
        except Exception:
            est = rec.estimate_bytes if k == rec.knobs else None
        device = self.state.device_memory_bytes()
        if est is not None and device:
            self.talk.say(f"  memory: about {fmt.gib(est)} of {fmt.gib(device)} "
                          f"({100 * est / device:.0f}%)")
        times = times_for(k, self.state, throughput)
        if times is not None:
            self.talk.say(f"  time: probe about {fmt.duration(times.probe_s)}, run about {fmt.duration(times.run_s)} "
                          f"({k.max_iters:,} iterations){'; ' + times.label if times.label else ''}")
        q = quality_for(k, self.state, self._facts, model)
        if q is not None:
            bpb = f", {q.bits_per_byte:.2f} bits/byte" if q.bits_per_byte is not None else ""
            assumed = " (typical English prose assumed)" if q.assumed_data else ""
            self.talk.say(f"  quality: final val loss about {q.val_loss:.2f} ({q.low:.2f}-{q.high:.2f}, 80%){bpb}"
                          f"{assumed}")
        self.talk.say_command(wizard_command_line(self.state))

    def _switch(self, preset: str, k: Knobs, throughput: Any) -> RecView:
        """The alternative's own recommendation: its settings, warnings and alternatives."""
        rec = view(recommend_for(self.state, throughput, preset=preset, facts=self._facts))
        self.state.recommendation = rec
        self.state.knobs = rec.knobs if rec.knobs.preset == preset else knobs_for_preset(preset, k)
        for warning in rec.warnings:
            self.talk.say_item("  ! ", warning, "yellow")
        return rec

    def _type_knobs(self, k: Knobs) -> None:
        """Each knob typed in turn; a way back at any of them keeps the settings as they were."""
        texts: dict[str, str] = {}
        for knob in KNOB_FIELDS:
            text = self.talk.ask.text(knob.label, knob.text(k), knob.check)
            if text == BACK:
                return
            texts[knob.name] = text
        self.state.knobs = with_run_dropout(knobs_from_texts(k, texts), self.state, self._facts)

    def _probe_first(self) -> str:
        """'next' (probe), 'launch' (no probe) or 'back'."""
        iters = self.state.probe_iters(self.probe_iters)
        whole = " (the whole run: it is its own probe)" if iters < self.probe_iters else ""
        answer = self.talk.yes_no(f"Run the {iters}-iteration probe first{whole} (recommended)?",
                                  "yes: probe the settings first", "no: start the training without a probe")
        return {YES: "next", NO: "launch"}.get(answer, "back")

    def throughput(self) -> Any:
        """This machine's measured speed for the time predictions (seconds the first time, then cached); None where
        it cannot be measured here (planning for a card this machine lacks), and the times are not shown."""
        if self.state.card is not None and self.state.on_gpu:
            return throughput_for(self.state, None)  # a named card's prior: nothing to measure
        if self.measure_throughput is None:
            return None
        if self._speed is None:
            self.talk.say("  measuring this machine's speed for the time predictions ...")
            try:
                self._speed = (self.measure_throughput(*device_and_dtype(self.state)),)
            except Exception as exc:  # a prediction is a convenience: never a reason to stop the wizard
                self.talk.say(f"  [yellow]could not measure the speed ({outside_markup(exc)}): no time predictions[/]")
                self._speed = (None,)
        return self._speed[0]
