"""The probe and launch steps driven with Textual's Pilot, with a scripted probe: what a cancelled probe shows,
leaving during a probe (the question, then what the screen says while the probe's process exits), the footer
per state, the probe's own ETA, and the launch screen's probe line for the settings probed or for others.

The probe runner is a stand-in fed through the real ProbeProgress/ProbeResult types, its verdicts made by the
real gptwiz.planning.verdict.judge; tests/test_probe.py runs the real probe.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from tui_support import async_test, flat, screen_text, wait_for, widget_text

from gptwiz.planning.knobs import Knobs
from gptwiz.planning.verdict import ProbeFacts, curve_stats, judge
from gptwiz.training.probe import ProbeProgress, ProbeResult
from gptwiz.tui.app import GptwizApp
from gptwiz.tui.context import AppContext
from gptwiz.wizard.advice import probe_advice, probe_summary, probed_other_settings
from gptwiz.wizard.state import DatasetChoice, WizardState

GiB = 2**30
KNOBS = Knobs("small", 256, 32, 1, 3e-4, 5000)
CANCELLING_TEXT = "cancelling the probe: waiting for its process to exit"


def result_for(opts: Any, losses: list[float], *, cancelled: bool = False, lr_warmup: int = 2,
               **kw: Any) -> ProbeResult:
    """A ProbeResult for `opts` whose verdict, advice and reasons are the real judge's for `losses`."""
    stats = curve_stats(losses, min(lr_warmup, len(losses) // 2)) if losses else None
    j = judge(ProbeFacts(learning_rate=opts.learning_rate, batch_size=opts.batch_size, grad_accum=opts.grad_accum,
                         block_size=opts.block_size, stats=stats, peak_memory_bytes=3 * GiB,
                         device_memory_total_bytes=32 * GiB, projected_full_run_s=5400.0, sec_per_iter=1.0,
                         preset_learning_rate=3e-4, lr_warmup=lr_warmup, cancelled=cancelled,
                         iters_requested=opts.iters))
    fields = {f.name: None for f in dataclasses.fields(ProbeResult)}
    fields.update(verdict=j.verdict, advice=j.advice, reasons=j.reasons, loss_verdict=j.loss,
                  loss_unjudged_reason=j.loss_unjudged, iters=len(losses), iters_requested=opts.iters, losses=losses,
                  full_run_iters=opts.max_iters, memory_kind="cpu_rss", batch_size=opts.batch_size,
                  grad_accum=opts.grad_accum, block_size=opts.block_size, learning_rate=opts.learning_rate,
                  preset=opts.config_file, attempts=[], peak_memory_bytes=3 * GiB, projected_full_run_s=5400.0,
                  input_file=opts.input_file, dataset_dir=opts.dataset_dir)
    fields.update(kw)
    return ProbeResult(**fields)


class ScriptedProbe:
    """A probe whose loss is `loss(i)`, `sec` seconds a step (reported as the ETA, not slept). Gated, it runs only
    the iterations `allow(n)` lets through, waiting before the next (`waiting_at`) until allowed or cancelled;
    `exit_gate` then holds its return after a cancel, as a child trainer finishing its step would."""

    def __init__(self, loss: Callable[[int], float] = lambda i: 10.8 - 0.05 * i, sec: float = 4.5,
                 gated: bool = False, exit_gate: threading.Event | None = None, eta: bool = True):
        self.loss, self.sec, self.exit_gate, self.eta = loss, sec, exit_gate, eta
        self.allowed = 0 if gated else 10**9
        self.calls: list[Any] = []
        self.cancelled_seen = threading.Event()
        self.waiting_at: int | None = None
        self._cond = threading.Condition()

    def allow(self, n: int) -> None:
        with self._cond:
            self.allowed = n
            self._cond.notify_all()

    def __call__(self, opts: Any, on_progress: Callable[[Any], None], should_cancel: Callable[[], bool]) -> ProbeResult:
        self.calls.append(opts)
        losses: list[float] = []
        for i in range(1, opts.iters + 1):
            with self._cond:
                while i > self.allowed and not should_cancel():
                    self.waiting_at = i
                    self._cond.wait(0.02)
            if should_cancel():
                return self._cancel(opts, losses)
            losses.append(self.loss(i))
            on_progress(ProbeProgress(iter=i, iters=opts.iters, batch_size=opts.batch_size, grad_accum=opts.grad_accum,
                                      attempt=1, loss=losses[-1], tokens_per_sec=2000.0, peak_mem_bytes=3 * GiB,
                                      eta_s=(opts.iters - i) * self.sec if self.eta else None,
                                      sec_per_iter=self.sec if self.eta else None, eta_rough=i <= 2))
        return result_for(opts, losses)

    def _cancel(self, opts: Any, losses: list[float]) -> ProbeResult:
        self.cancelled_seen.set()
        if self.exit_gate is not None:
            self.exit_gate.wait(20)
        return result_for(opts, losses, cancelled=True)


def app_with(tmp_path: Path, probe: Any, iters: int = 20) -> GptwizApp:
    ctx = AppContext(runs_dir=tmp_path / "runs", data_dir=tmp_path / "data", run_probe=probe, probe_iters=iters,
                     detect_hardware=lambda: None, clock=lambda: 1795495000.0)
    return GptwizApp(ctx)


def set_state(app: GptwizApp, tmp_path: Path, knobs: Knobs = KNOBS) -> None:
    data = tmp_path / "blog.txt"
    data.write_text("All the world's a stage. " * 400)
    app.wizard.use_case = "prototype"
    app.wizard.dataset = DatasetChoice("input_file", str(data), 1, data.stat().st_size)
    app.wizard.knobs = knobs


async def open_probe(pilot: Any, app: GptwizApp, tmp_path: Path) -> Any:
    from gptwiz.tui.screens.probe import ProbeScreen

    set_state(app, tmp_path)
    await wait_for(pilot, lambda: app.screen.id == "welcome")  # going back leads there
    await app.push_screen(ProbeScreen())
    await wait_for(pilot, lambda: app.screen.id == "probe")
    return app.screen


def right_column(screen: Any) -> str:
    """The probe screen's verdict column (reasons, advice, what to press), unwrapped."""
    return flat(widget_text(screen, "#probe-reasons") + " " + widget_text(screen, "#probe-advice"))


def footer_keys(app: GptwizApp) -> dict[str, str]:
    """The screen's part of the footer (the app's q and ? are on every screen): key -> description."""
    return {key: b.binding.description for key, b in app.screen.active_bindings.items()
            if b.binding.show and b.enabled and b.node is not app}


# --- cancelled: no verdict, no advice ---------------------------------------------------------------------

@async_test
async def test_a_cancelled_probe_shows_no_verdict_and_no_advice(tmp_path: Path) -> None:
    # A flat curve: a finished probe would warn and advise a higher learning rate.
    probe = ScriptedProbe(loss=lambda i: 10.8, gated=True)
    app = app_with(tmp_path, probe)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await open_probe(pilot, app, tmp_path)
        await wait_for(pilot, lambda: probe.waiting_at == 1)
        await pilot.press("c")  # cancel and stay
        await wait_for(pilot, lambda: screen.result is not None)
        await wait_for(pilot, lambda: "CANCELLED" in widget_text(screen, "#probe-verdict"))
        text = right_column(screen)
        assert screen.result.verdict == "cancelled" and screen.result.loss_verdict is None
        assert "cancelled after 0 of 20 iterations, still in warm-up" in text
        assert screen.advice == [] and not screen.query_one("#probe-advice").display
        assert "--learning_rate" not in widget_text(screen, "#probe-reasons")
        assert "No verdict: r probes again" in text
        assert app.wizard.probe_result is screen.result
    # The wizard's offers for a cancelled probe: none, not even the batch it ran at.
    assert probe_advice(dataclasses.replace(screen.result, batch_size=8), KNOBS) == []


# --- leaving during a probe --------------------------------------------------------------------------------

@async_test
async def test_escape_during_a_probe_asks_then_says_it_is_cancelling_until_the_process_exits(tmp_path: Path) -> None:
    exit_gate = threading.Event()
    probe = ScriptedProbe(gated=True, exit_gate=exit_gate)
    app = app_with(tmp_path, probe)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await open_probe(pilot, app, tmp_path)
        await wait_for(pilot, lambda: probe.waiting_at == 1)
        await pilot.press("escape")
        await wait_for(pilot, lambda: "Cancel the probe and" in flat(screen_text(app)))
        assert "A probe is running (starting): leaving cancels it" in flat(screen_text(app))
        assert "Cancel the probe and go back?" in flat(screen_text(app))
        await pilot.press("n")  # keep probing
        await wait_for(pilot, lambda: app.screen is screen)
        assert screen.running and not probe.cancelled_seen.is_set()

        await pilot.press("escape")
        await wait_for(pilot, lambda: "Cancel the probe and" in flat(screen_text(app)))
        await pilot.press("y")
        # The probe saw the cancel; its "process" has not exited yet: the screen says what it waits for.
        await wait_for(pilot, lambda: probe.cancelled_seen.is_set() and app.screen is screen)
        await wait_for(pilot, lambda: CANCELLING_TEXT in right_column(screen))
        assert "CANCELLING" in screen_text(app) and app.screen.id == "probe"
        assert footer_keys(app) == {}  # nothing to press while it cancels
        exit_gate.set()
        await wait_for(pilot, lambda: app.screen.id == "welcome")
    assert screen.result.verdict == "cancelled"


@async_test
async def test_the_leave_hook_asks_only_while_a_probe_runs_and_leaves_once_it_has_ended(tmp_path: Path) -> None:
    exit_gate = threading.Event()
    probe = ScriptedProbe(gated=True, exit_gate=exit_gate)
    app = app_with(tmp_path, probe)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await open_probe(pilot, app, tmp_path)
        await wait_for(pilot, lambda: probe.waiting_at == 1)
        question = screen.leave_warning()
        assert question == "A probe is running (starting): leaving cancels it and stops its trainer."
        left: list[bool] = []
        screen.finish_before_leaving(lambda: left.append(True))  # the app's q, after the user said yes
        await wait_for(pilot, lambda: CANCELLING_TEXT in right_column(screen))
        assert left == [] and screen.leave_warning() is None  # cancelling already: nothing more to ask
        exit_gate.set()
        await wait_for(pilot, lambda: left == [True])
        assert screen.leave_warning() is None and not screen.running
        screen.finish_before_leaving(lambda: left.append(True))  # no probe: at once
        assert left == [True, True]



@async_test
async def test_a_probe_interrupted_mid_run_is_named_by_its_iteration(tmp_path: Path) -> None:
    probe = ScriptedProbe(gated=True)
    app = app_with(tmp_path, probe)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await open_probe(pilot, app, tmp_path)
        probe.allow(3)
        await wait_for(pilot, lambda: probe.waiting_at == 4 and len(screen.losses) == 3)
        at = 3
        assert screen.leave_warning().startswith(f"A probe is running (iteration {at} of 20)")
        await pilot.press("s")  # skip to the launch: the same question, then the launch step
        await wait_for(pilot, lambda: "Cancel the probe and" in flat(screen_text(app)))
        await pilot.press("y")
        await wait_for(pilot, lambda: app.screen.id == "launch")
        assert f"probe: no verdict (cancelled after {at} of 20 iterations" in flat(screen_text(app))


# --- footers and Enter -------------------------------------------------------------------------------------

@async_test
async def test_footer_offers_no_launch_while_running_and_says_what_enter_does_after(tmp_path: Path) -> None:
    probe = ScriptedProbe(gated=True)
    app = app_with(tmp_path, probe)
    async with app.run_test(size=(120, 30)) as pilot:
        screen = await open_probe(pilot, app, tmp_path)
        await wait_for(pilot, lambda: probe.waiting_at == 1)
        keys = footer_keys(app)
        assert keys.get("escape") == "back (cancels probe)" and keys.get("c") == "cancel probe"
        assert "enter" not in keys and "r" not in keys and "1" not in keys, keys
        assert "launch" not in screen_text(app).rstrip().splitlines()[-1]  # the footer line
        await pilot.press("enter")  # offered nowhere, and does nothing
        await pilot.pause(0.1)
        assert app.screen is screen and screen.running
        probe.allow(20)
        await wait_for(pilot, lambda: screen.result is not None)
        keys = footer_keys(app)
        assert keys.get("enter") == "next: name and launch" and keys.get("escape") == "back"
        assert keys.get("r") == "probe again" and "c" not in keys, keys
        await wait_for(pilot, lambda: "PASS" in widget_text(screen, "#probe-verdict"))
        footer = screen_text(app).rstrip().splitlines()[-1]
        assert "next: name and launch" in footer and "cancel probe" not in footer
        assert "Enter goes on to the launch: name the run, then start it." in right_column(screen)
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.screen.id == "launch")
        assert footer_keys(app).get("enter") == "start the training"
        assert "Enter starts this training in the background:" in flat(screen_text(app))


# --- the probe's own ETA -----------------------------------------------------------------------------------

@async_test
async def test_the_probe_screen_shows_the_probes_own_eta(tmp_path: Path) -> None:
    probe = ScriptedProbe(gated=True, sec=4.5)
    app = app_with(tmp_path, probe)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await open_probe(pilot, app, tmp_path)
        await wait_for(pilot, lambda: probe.waiting_at == 1)
        assert "starting the trainer (importing torch, loading data)" in widget_text(screen, "#probe-status")
        for n in (1, 4):
            probe.allow(n)
            await wait_for(pilot, lambda: probe.waiting_at == n + 1 and len(screen.losses) == n)
            status = widget_text(screen, "#probe-status")
            # 20 iterations at 4.5 s: what is left after n of them, counted down by at most the time since.
            left = (20 - n) * 4.5
            # Only the slow first steps measured: an upper bound.
            word = "at most" if n <= 2 else "about"
            assert f"iter {n}/20 · {word} " in status and " left" in status, status
            minutes, seconds = status.split(f"{word} ")[1].split(" left")[0].split("m")
            assert left - 3 <= int(minutes) * 60 + int(seconds.rstrip("s")) <= left
        probe.allow(20)
        await wait_for(pilot, lambda: screen.result is not None)
        assert "iter 20/20 · all iterations done" in widget_text(screen, "#probe-status")


@async_test
async def test_without_a_measured_step_the_eta_says_it_is_measuring(tmp_path: Path) -> None:
    probe = ScriptedProbe(gated=True, eta=False)
    app = app_with(tmp_path, probe)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await open_probe(pilot, app, tmp_path)
        probe.allow(1)
        await wait_for(pilot, lambda: probe.waiting_at == 2 and len(screen.losses) == 1)
        assert "iter 1/20 · time left: measuring" in widget_text(screen, "#probe-status")
        probe.allow(20)
        await wait_for(pilot, lambda: screen.result is not None)


# --- the launch screen's probe line ------------------------------------------------------------------------

@async_test
async def test_launch_shows_the_verdict_only_for_the_settings_probed(tmp_path: Path) -> None:
    probe = ScriptedProbe()
    app = app_with(tmp_path, probe)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await open_probe(pilot, app, tmp_path)
        await wait_for(pilot, lambda: screen.result is not None)
        assert screen.result.verdict == "pass"
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.screen.id == "launch")
        text = flat(screen_text(app))
        assert "probe: pass · the full run takes about 1h30m at the probe's rate" in text
        # Back, other knobs (as the recommendation screen sets them), on to the launch again.
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen.id == "probe")
        app.wizard.knobs = dataclasses.replace(KNOBS, learning_rate=1e-4, preset="tiny")
        from gptwiz.tui.screens.launch import LaunchScreen

        await app.push_screen(LaunchScreen())
        await wait_for(pilot, lambda: app.screen.id == "launch")
        text = flat(screen_text(app))
        assert "probe: it ran with other settings, so its verdict does not apply to these:" in text
        assert "preset small (now tiny)" in text and "learning rate 3e-4 (now 1e-4)" in text
        assert "probe: pass" not in text


def state_with(tmp_path: Path, knobs: Knobs = KNOBS) -> WizardState:
    data = tmp_path / "blog.txt"
    data.write_text("words " * 100)
    return WizardState(runs_dir=tmp_path / "runs", use_case="prototype", knobs=knobs,
                       dataset=DatasetChoice("input_file", str(data), 1, 600))


def probed(state: WizardState, iters: int = 20, **changes: Any) -> ProbeResult:
    opts = dataclasses.replace(state.probe_options(iters), **changes)
    return result_for(opts, [10.8 - 0.05 * i for i in range(iters)])


@pytest.mark.parametrize("change,expected", [
    (dict(preset="tiny"), "preset small (now tiny)"),
    (dict(block_size=512), "context 256 (now 512)"),
    (dict(batch_size=16, grad_accum=2), "batch 32 x accum 1 (now 16 x 2)"),
    (dict(learning_rate=1.5e-4), "learning rate 3e-4 (now 1.5e-4)"),
    (dict(max_iters=20000), "5,000 iterations (now 20,000)"),
])
def test_each_changed_knob_is_named(tmp_path: Path, change: dict[str, Any], expected: str) -> None:
    state = state_with(tmp_path)
    result = probed(state)
    assert probed_other_settings(result, state) == [] and probe_summary(result, state).startswith("probe: pass")
    state.knobs = dataclasses.replace(KNOBS, **change)
    assert probed_other_settings(result, state) == [expected]
    assert "its verdict does not apply" in probe_summary(result, state) and "pass" not in probe_summary(result, state)


def test_other_data_and_a_fallback_batch_are_other_settings(tmp_path: Path) -> None:
    state = state_with(tmp_path)
    result = probed(state)
    other = tmp_path / "other.txt"
    other.write_text("more words " * 100)
    state.dataset = DatasetChoice("input_file", str(other), 1, 1100)
    assert probed_other_settings(result, state) == [f"data {tmp_path / 'blog.txt'} (now {other})"]
    # The probe fell back to batch 16 x 2 after an out-of-memory at 32: launching 32 x 1 is not what passed.
    state = state_with(tmp_path)
    fallback = dataclasses.replace(probed(state), batch_size=16, grad_accum=2)
    assert probed_other_settings(fallback, state) == ["batch 16 x accum 2 (now 32 x 1)"]
    assert probe_summary(None, state) == "probe: not run"


@async_test
async def test_q_during_a_probe_asks_with_the_probes_warning_and_cancels_it_on_yes(tmp_path: Path) -> None:
    probe = ScriptedProbe(gated=True)
    app = app_with(tmp_path, probe)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await open_probe(pilot, app, tmp_path)
        await wait_for(pilot, lambda: probe.waiting_at == 1)
        await pilot.press("q")
        await wait_for(pilot, lambda: "A probe is running (starting): leaving cancels it" in flat(screen_text(app)))
        await pilot.press("n")
        await wait_for(pilot, lambda: app.screen is screen)
        assert screen.running and not probe.cancelled_seen.is_set()
        await pilot.press("q")
        await wait_for(pilot, lambda: "A probe is running" in flat(screen_text(app)))
        await pilot.press("y")
        await wait_for(pilot, lambda: probe.cancelled_seen.is_set())
