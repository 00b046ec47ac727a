"""Snapshots (pytest-textual-snapshot) of every wizard screen and of the dashboard, at 80x24 and 120x40.

Everything that could vary is fixed: the hardware report is injected, the clock frozen, the device
panel fed a fixed reading, paths relative to a working folder, the runs' files recorded, the probe a
stand-in, cursors not blinking. Regenerate after a deliberate change of the look with
`python -m pytest tests/test_tui_snapshots.py --snapshot-update` and review the SVGs.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from test_tui_wizard import GTX_1660, FakeProbe, preset_state, text_file
from textual.widgets import Input
from tui_support import wait_for

from gptwiz.runs.lock import RunLock
from gptwiz.runs.paths import RunPaths
from gptwiz.tui.app import GptwizApp
from gptwiz.tui.context import AppContext
from gptwiz.tui.widgets.device_panel import DeviceReading, GpuCard, ProcessUsage

RECORDED = Path(__file__).parent / "tui_data" / "recorded_run"
FROZEN_NOW = 1795495000.0
SIZES = [pytest.param((80, 24), id="80x24"), pytest.param((120, 40), id="120x40")]


class FixedSampler:
    def __init__(self, reading: DeviceReading):
        self.reading = reading

    def read(self, pid: int, running: bool) -> DeviceReading:
        return self.reading


TWO_CARDS = DeviceReading(gpus=(GpuCard(0, "NVIDIA GeForce RTX 3090", 18 * 2**30, 24 * 2**30, 97, 71, 331.0),
                                GpuCard(1, "NVIDIA GeForce RTX 3090", 17 * 2**30, 24 * 2**30, 95, 69, 325.0)))
CPU_READING = DeviceReading(process=ProcessUsage(4242, 180.0, 1_300_000_000, 24 * 2**30, 18 * 2**30, 2))


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working folder with two recorded runs (one finished, one failed), distinct mtimes, relative paths."""
    monkeypatch.chdir(tmp_path)
    runs = tmp_path / "runs"
    shutil.copytree(RECORDED, runs / "shakespeare")
    shutil.copytree(RECORDED, runs / "oom-try")
    status = json.loads((runs / "oom-try" / "status.json").read_text())
    status.update(state="failed", iter=12, last_loss=10.1, error="OutOfMemoryError: CUDA out of memory")
    (runs / "oom-try" / "status.json").write_text(json.dumps(status))
    for i, name in enumerate(("oom-try", "shakespeare")):
        for f in (runs / name).iterdir():
            os.utime(f, (1_795_000_000 + i * 1000, 1_795_000_000 + i * 1000))
    return tmp_path


def make_app(reading: DeviceReading = CPU_READING, watch: RunPaths | None = None, **kw: Any) -> GptwizApp:
    ctx = AppContext(runs_dir=Path("runs"), data_dir=Path("data"), detect_hardware=lambda: GTX_1660,
                     clock=lambda: FROZEN_NOW, device_sampler=lambda: FixedSampler(reading),
                     run_probe=FakeProbe(), probe_iters=20,
                     # no speed measured: the pictures must not depend on the machine that draws them
                     measure_throughput=lambda device_type, dtype: None, **kw)
    return GptwizApp(ctx, watch=watch)


async def settle(pilot: Any) -> None:
    for box in pilot.app.screen.query(Input):
        box.cursor_blink = False
    await pilot.pause(0.2)


# --- the wizard, screen by screen ------------------------------------------------------------------------

@pytest.mark.parametrize("size", SIZES)
def test_welcome(snap_compare: Any, workdir: Path, size: tuple[int, int]) -> None:
    app = make_app()

    async def run_before(pilot: Any) -> None:
        await wait_for(pilot, lambda: pilot.app.screen.id == "welcome" and pilot.app.screen.loaded)
        await settle(pilot)

    assert snap_compare(app, terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES)
def test_use_case(snap_compare: Any, workdir: Path, size: tuple[int, int]) -> None:
    app = make_app()

    async def run_before(pilot: Any) -> None:
        await wait_for(pilot, lambda: pilot.app.screen.id == "welcome")
        await pilot.press("n", "down", "down")
        await wait_for(pilot, lambda: pilot.app.screen.id == "use-case")
        await settle(pilot)

    assert snap_compare(app, terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES)
def test_hardware(snap_compare: Any, workdir: Path, size: tuple[int, int]) -> None:
    app = make_app()

    async def run_before(pilot: Any) -> None:
        from gptwiz.tui.screens.hardware import HardwareScreen

        pilot.app.wizard.use_case = "prototype"
        await pilot.app.push_screen(HardwareScreen())
        await wait_for(pilot, lambda: pilot.app.screen.detected)
        await settle(pilot)

    assert snap_compare(app, terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES)
def test_dataset(snap_compare: Any, workdir: Path, size: tuple[int, int]) -> None:
    text_file(workdir, "blog_posts.txt", 1_500_000)
    app = make_app()

    async def run_before(pilot: Any) -> None:
        from gptwiz.tui.screens.dataset import DatasetScreen

        pilot.app.wizard.use_case = "prototype"
        await pilot.app.push_screen(DatasetScreen())
        await pilot.press(*"blog_posts.txt")
        await wait_for(pilot, lambda: pilot.app.screen.inspections > 0)
        await settle(pilot)

    assert snap_compare(app, terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES)
def test_recommendation_guide_example_1(snap_compare: Any, workdir: Path, size: tuple[int, int]) -> None:
    text_file(workdir, "blog_posts.txt", 5_000_000)
    app = make_app()

    async def run_before(pilot: Any) -> None:
        from gptwiz.tui.screens.recommendation import RecommendationScreen
        from gptwiz.wizard.state import inspect_dataset

        pilot.app.wizard.use_case = "prototype"
        pilot.app.wizard.hardware = GTX_1660
        pilot.app.wizard.dataset = inspect_dataset("blog_posts.txt")
        await pilot.app.push_screen(RecommendationScreen())
        # The first recommendation of a session measures this machine's speed (a few seconds, more under load).
        await wait_for(pilot, lambda: pilot.app.screen.rec is not None or pilot.app.screen.error, timeout=60)
        await settle(pilot)

    assert snap_compare(app, terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES)
def test_probe_verdict_with_advice(snap_compare: Any, workdir: Path, size: tuple[int, int]) -> None:
    app = make_app()

    async def run_before(pilot: Any) -> None:
        from gptwiz.tui.screens.probe import ProbeScreen

        preset_state(pilot.app, Path("."))
        pilot.app.wizard.dataset = pilot.app.wizard.dataset.__class__("input_file", "blog.txt", 1, 1_000_000)
        await pilot.app.push_screen(ProbeScreen())
        await wait_for(pilot, lambda: pilot.app.screen.result is not None)
        await settle(pilot)

    assert snap_compare(app, terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES)
def test_launch(snap_compare: Any, workdir: Path, size: tuple[int, int]) -> None:
    app = make_app()

    async def run_before(pilot: Any) -> None:
        from gptwiz.tui.screens.launch import LaunchScreen

        preset_state(pilot.app, Path("."))
        pilot.app.wizard.dataset = pilot.app.wizard.dataset.__class__("input_file", "blog.txt", 1, 1_000_000)
        await pilot.app.push_screen(LaunchScreen())
        await settle(pilot)

    assert snap_compare(app, terminal_size=size, run_before=run_before)


# --- the dashboard -----------------------------------------------------------------------------------------

def dashboard_snapshot(snap_compare: Any, paths: RunPaths, size: tuple[int, int], reading: DeviceReading) -> bool:
    app = make_app(reading, watch=paths)

    async def run_before(pilot: Any) -> None:
        await wait_for(pilot, lambda: getattr(pilot.app.screen, "polls", 0) > 1)
        await settle(pilot)

    return snap_compare(app, terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES)
def test_dashboard_finished_run(snap_compare: Any, workdir: Path, size: tuple[int, int]) -> None:
    assert dashboard_snapshot(snap_compare, RunPaths(Path("runs/shakespeare")), size, DeviceReading(
        note="the trainer is not running: no live CPU/RAM reading"))


@pytest.mark.parametrize("size", SIZES)
def test_dashboard_running_on_two_gpus(snap_compare: Any, workdir: Path, size: tuple[int, int]) -> None:
    paths = RunPaths(Path("runs/shakespeare"))
    status = json.loads(paths.status.read_text())
    status.update(state="running", pid=os.getpid(), iter=40)
    paths.status.write_text(json.dumps(status))
    lines = paths.metrics.read_text().splitlines()
    paths.metrics.write_text("\n".join(lines[:43]) + "\n")  # up to iteration 40
    paths.log.write_text("".join(paths.log.read_text().splitlines(keepends=True)[:4]))
    lock = RunLock(paths)  # held, as by its trainer: a run whose lock nobody holds shows as failed
    lock.acquire()
    try:
        assert dashboard_snapshot(snap_compare, paths, size, TWO_CARDS)
    finally:
        lock.release()


@pytest.mark.parametrize("size", SIZES)
def test_dashboard_failed_run(snap_compare: Any, workdir: Path, size: tuple[int, int]) -> None:
    assert dashboard_snapshot(snap_compare, RunPaths(Path("runs/oom-try")), size, DeviceReading(
        note="the trainer is not running: no live CPU/RAM reading"))
