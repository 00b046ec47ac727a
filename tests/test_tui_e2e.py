"""End to end, for real: a training launched from the app outlives it, `gptwiz watch` attaches, `gptwiz stop`
checkpoints it, the dashboard samples from that checkpoint; the probe screen runs the real probe; the demo
corpus is built and prepared from the standard library. Slow (a real tiny model on the CPU)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from conftest import run_cli
from test_tui_cli import _pty_run
from tui_support import async_test, flat, screen_text, wait_for

from gptwiz.planning.knobs import Knobs
from gptwiz.runs.jsonfile import read_json
from gptwiz.runs.paths import RunPaths
from gptwiz.runs.status import effective_state, pid_alive
from gptwiz.tui.app import GptwizApp
from gptwiz.tui.context import AppContext
from gptwiz.wizard.state import DatasetChoice

pytestmark = pytest.mark.slow


def tiny_state(app: GptwizApp, shakespeare: Path, max_iters: int) -> None:
    app.wizard.use_case = "testing"
    app.wizard.dataset = DatasetChoice("input_file", str(shakespeare), 1, shakespeare.stat().st_size)
    app.wizard.knobs = Knobs("tiny", 32, 2, 1, 3e-4, max_iters)


@async_test
async def test_a_run_launched_from_the_app_outlives_it_and_watch_attaches(tmp_path: Path, shakespeare: Path) -> None:
    runs = tmp_path / "runs"
    ctx = AppContext(runs_dir=runs, data_dir=tmp_path / "data", cwd=tmp_path, device_interval_s=0.5)
    app = GptwizApp(ctx)
    async with app.run_test(size=(100, 30)) as pilot:
        tiny_state(app, shakespeare, max_iters=100_000)
        from gptwiz.tui.screens.launch import LaunchScreen

        await app.push_screen(LaunchScreen())
        app.screen.query_one("#run-name").value = "e2e"
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.screen.id == "starting")
        await wait_for(pilot, lambda: app.screen.id == "dashboard", timeout=240)
        await wait_for(pilot, lambda: app.screen.snapshot is not None and app.screen.snapshot.state == "running")
        assert "RUNNING" in screen_text(app)
        await pilot.press("q")
    assert app.return_value == "e2e"

    paths = RunPaths(runs / "e2e")
    status = read_json(paths.status) or {}
    pid = int(status["pid"])
    time.sleep(1.0)
    assert pid_alive(pid) and effective_state(read_json(paths.status), paths) == "running", "the app took the training down"
    assert os.getsid(pid) == pid and os.getsid(pid) != os.getsid(0)

    # `gptwiz watch` from another terminal attaches to the live run, and q leaves it running
    code, out = _pty_run(["watch", "e2e", "--runs_dir", str(runs)], tmp_path, b"q", b"RUNNING", timeout=120)
    assert code == 0 and b"RUNNING" in out and b"run e2e is running at iteration" in out and b"goes on in the background" in out
    assert pid_alive(pid)
    deadline = time.time() + 240
    while (read_json(paths.status) or {}).get("iter", 0) < 2 and time.time() < deadline:
        time.sleep(0.5)

    stop = run_cli(["stop", "e2e", "--runs_dir", str(runs), "--wait", "180"], tmp_path, check=True)
    assert "is stopped" in stop.stdout
    assert paths.ckpt_last.exists()

    # the stopped run's dashboard: whole history, and g samples from its checkpoint (real torch, CPU)
    watch = GptwizApp(AppContext(runs_dir=runs), watch=paths)
    async with watch.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: watch.screen.polls > 0 and "STOPPED" in screen_text(watch))
        await pilot.press("g")
        await wait_for(pilot, lambda: watch.screen.id == "sample-view")
        await wait_for(pilot, lambda: "generating" not in screen_text(watch), timeout=180)
        body = str(watch.screen.body)
        assert "could not sample" not in body and len(body.strip()) > 20


@async_test
async def test_probe_screen_runs_the_real_probe(tmp_path: Path, shakespeare: Path) -> None:
    ctx = AppContext(runs_dir=tmp_path / "runs", data_dir=tmp_path / "data", probe_iters=12)
    app = GptwizApp(ctx)
    async with app.run_test(size=(100, 30)) as pilot:
        tiny_state(app, shakespeare, max_iters=1000)
        from gptwiz.tui.screens.probe import ProbeScreen

        await app.push_screen(ProbeScreen())
        await wait_for(pilot, lambda: app.screen.result is not None or "ERROR" in screen_text(app), timeout=400)
        result = app.screen.result
        assert result is not None, screen_text(app)
        assert result.verdict in ("pass", "warn") and len(result.losses) == 12
        assert result.batch_size == 2 and result.block_size == 32
        text = screen_text(app)
        assert result.verdict.upper() in text and "iter 12/12" in text
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())  # a probe is not a run


@async_test
async def test_the_demo_corpus_is_built_and_prepared_on_first_use(tmp_path: Path) -> None:
    ctx = AppContext(runs_dir=tmp_path / "runs", data_dir=tmp_path / "data")
    app = GptwizApp(ctx)
    async with app.run_test(size=(100, 30)) as pilot:
        app.wizard.use_case = "testing"
        from gptwiz.tui.screens.dataset import DatasetScreen

        await app.push_screen(DatasetScreen())
        await pilot.press("ctrl+t")
        await wait_for(pilot, lambda: app.screen.id == "recommendation", timeout=300)
        dataset = app.wizard.dataset
        assert dataset.kind == "demo" and dataset.prepared_dir and dataset.tokens > 1_000_000
    manifest = read_json(tmp_path / "data" / "demo-stdlib" / "manifest.json") or {}
    assert [s["name"] for s in manifest["sources"]] == ["docstrings", "code"]


@async_test
async def test_resume_from_the_welcome_screen_relaunches_and_shows_the_outcome(tmp_path: Path) -> None:
    """r on a stopped run starts `gptwiz train --resume` detached; this run's dataset is gone (the recorded
    config names a folder of another machine), so the trainer refuses the resume before writing anything:
    the app shows why, and the run is left exactly as it was (still stopped, at its iteration)."""
    import json
    import shutil

    runs = tmp_path / "runs"
    shutil.copytree(Path(__file__).parent / "tui_data" / "recorded_run", runs / "paused")
    status = json.loads((runs / "paused" / "status.json").read_text())
    status.update(state="stopped", iter=40)
    (runs / "paused" / "status.json").write_text(json.dumps(status))
    (runs / "paused" / "ckpt_last.pt").write_bytes(b"stand-in: resuming fails before reading it")
    before = {p.name: p.read_bytes() for p in (runs / "paused").iterdir()}
    app = GptwizApp(AppContext(runs_dir=runs, data_dir=tmp_path / "data", cwd=tmp_path))
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: app.screen.id == "welcome" and app.screen.loaded)
        await pilot.press("r")
        await wait_for(pilot, lambda: "Resume run paused" in screen_text(app))
        await pilot.press("y")
        await wait_for(pilot, lambda: "the trainer exited (status 2)" in flat(screen_text(app)), timeout=240)
        assert "--dataset_dir /data/example/data/cache" in flat(screen_text(app))
    after = {p.name: p.read_bytes() for p in (runs / "paused").iterdir() if p.name != "console.log"}
    assert after == before  # a refused resume changes nothing
    console = (runs / "paused" / "console.log").read_text()
    assert "gptwiz train: error: --resume" in console and "/data/example/data/cache" in console
    assert "Traceback" not in console
