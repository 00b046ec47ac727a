"""The recommendation screen's predicted times and its one memory figure, driven with Textual's Pilot.

The machine's speed is a fixed stand-in (AppContext.measure_throughput), so the times are the same everywhere;
the rest (recommend, the cost model, the memory estimate) is the real code.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from conftest import cli_env, run_cli
from test_recommend import fixed_throughput
from tui_support import async_test, flat, screen_text, wait_for, widget_text

from gptwiz.common import fmt
from gptwiz.planning.hardware import HardwareReport
from gptwiz.tui.app import GptwizApp
from gptwiz.tui.context import AppContext
from gptwiz.wizard.state import inspect_dataset

GiB = 2**30
CPU_ONLY = HardwareReport(gpus=[], cpu_count=2, cpu_name="AMD EPYC", ram_total_bytes=32 * GiB,
                          ram_available_bytes=24 * GiB, cpu_bf16=False, nvml_error="no NVIDIA driver")


def app_for(tmp_path: Path, measured: list[str]) -> GptwizApp:
    def measure(device_type: str, dtype: str) -> Any:
        measured.append(f"{device_type}:{dtype}")
        return fixed_throughput(device_type, dtype)

    ctx = AppContext(runs_dir=tmp_path / "runs", data_dir=tmp_path / "data", detect_hardware=lambda: CPU_ONLY,
                     measure_throughput=measure)
    return GptwizApp(ctx)


async def open_recommendation(pilot: Any, use_case: str, data: Path) -> Any:
    from gptwiz.tui.screens.recommendation import RecommendationScreen

    pilot.app.wizard.use_case = use_case
    pilot.app.wizard.hardware = CPU_ONLY
    pilot.app.wizard.dataset = inspect_dataset(str(data))
    await pilot.app.push_screen(RecommendationScreen())
    await wait_for(pilot, lambda: pilot.app.screen.rec is not None)
    return pilot.app.screen


def corpus(tmp_path: Path, size: int = 1_100_000) -> Path:
    path = tmp_path / "corpus.txt"
    path.write_text(("All the world's a stage, and all the men and women merely players. " * (size // 67 + 1))[:size])
    return path


def times(screen: Any) -> str:
    return widget_text(screen, "#rec-times")


async def set_knob(pilot: Any, screen: Any, selector: str, value: str) -> None:
    box = screen.query_one(selector)
    box.value = value
    await pilot.pause(0.1)


@async_test
async def test_the_times_show_and_follow_the_knobs(tmp_path: Path) -> None:
    measured: list[str] = []
    app = app_for(tmp_path, measured)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_recommendation(pilot, "testing", corpus(tmp_path))
        assert measured == ["cpu:float32"]  # once, in the worker
        first = times(screen)
        assert first.startswith("Time, predicted\nprobe ") and " · run " in first
        # The Testing/Learning promise on a CPU: a probe under 2 minutes, a run under 20.
        from gptwiz.wizard.services import times_for

        t = times_for(app.wizard.knobs, app.wizard, screen.throughput)
        assert t is not None and t.probe_s <= 120 and t.run_s <= 20 * 60
        assert first == f"Time, predicted\nprobe {fmt.duration(t.probe_s)} · run {fmt.duration(t.run_s)}"
        batch = app.wizard.knobs.batch_size
        await set_knob(pilot, screen, "#knob-batch", str(batch * 4))
        bigger = times(screen)
        assert bigger != first and app.wizard.knobs.batch_size == batch * 4
        await set_knob(pilot, screen, "#knob-iters", str(app.wizard.knobs.max_iters * 2))
        longer = times(screen)
        probe = lambda text: text.split(" · ")[0]  # noqa: E731
        assert longer != bigger and probe(longer) == probe(bigger)  # the probe is 100 iterations whatever the run
        assert "Time, predicted" in flat(screen_text(app)) and measured == ["cpu:float32"]


@async_test
async def test_switching_preset_recomputes_the_warnings_and_alternatives(tmp_path: Path) -> None:
    app = app_for(tmp_path, [])
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_recommendation(pilot, "testing", corpus(tmp_path))
        assert screen.rec.knobs.preset == "tiny"
        before = widget_text(screen, "#rec-warnings")
        alternatives = [a.preset for a in screen.rec.alternatives]
        assert "small" in alternatives and "11M parameters" in flat(before)
        await pilot.press("ctrl+o")
        await pilot.press(*(["down"] * alternatives.index("small")), "enter")
        await wait_for(pilot, lambda: screen.shown is not None and screen.shown.knobs.preset == "small")
        after = widget_text(screen, "#rec-warnings")
        assert after != before and "41M parameters" in flat(after) and "11M parameters" not in flat(after)
        assert "tiny" in [a.preset for a in screen.shown.alternatives]
        text = flat(screen_text(app))
        assert "you switched; recommended: tiny" in text and "--config_file small" in text
        # The switched-to preset's settings fit the same promise on this machine.
        from gptwiz.wizard.services import times_for

        t = times_for(app.wizard.knobs, app.wizard, screen.throughput)
        assert t is not None and t.run_s <= 20 * 60 and app.wizard.knobs.preset == "small"


@async_test
async def test_screen_plain_mode_and_the_cli_show_one_memory_figure(tmp_path: Path) -> None:
    """The recommendation screen's bar, plain mode's 'memory: about ...' (the same service) and `estimate --json`
    for the same settings (tests/test_memory.py holds `recommend --json` to the same figure)."""
    from gptwiz.tui.widgets.memory_bar import MemoryBar
    from gptwiz.wizard.services import estimate_bytes

    app = app_for(tmp_path, [])
    data = corpus(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_recommendation(pilot, "chat", data)
        knobs = app.wizard.knobs
        shown = screen.rec.estimate_bytes
        bar = screen.query_one(MemoryBar)
        assert fmt.gib(shown) in flat(str(bar.render()))
        await set_knob(pilot, screen, "#knob-batch", str(knobs.batch_size + 1))
        await set_knob(pilot, screen, "#knob-batch", str(knobs.batch_size))  # edited back: the same figure
        assert fmt.gib(shown) in flat(str(bar.render()))
        plain = estimate_bytes(app.wizard.knobs, app.wizard)
    assert plain == shown
    env = cli_env(XDG_CACHE_HOME=str(tmp_path / "cache"))
    est = json.loads(run_cli(["estimate", "--config_file", knobs.preset, "--batch_size", str(knobs.batch_size),
                              "--block_size", str(knobs.block_size), "--grad_accum", str(knobs.grad_accum),
                              "--max_iters", str(knobs.max_iters), "--device", "cpu", "--dtype", "float32", "--json"],
                             cwd=tmp_path, env=env, check=True).stdout)
    assert est["bytes"]["total"] == shown
