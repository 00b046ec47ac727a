"""The dashboard (`gptwiz watch`), the app's run list and `gptwiz runs` when the run folder is deleted,
replaced or unreadable under them: a message, no crash.

The suite runs as root on some machines, where permissions do not stop a read; "unreadable" is then made
real by putting a folder where a file is read (EISDIR) or a file where the run folder was (ENOTDIR).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from conftest import REPO, run_cli
from tui_support import async_test, flat, screen_text, wait_for

from gptwiz.runs.paths import RunPaths
from gptwiz.tui.app import GptwizApp
from gptwiz.tui.context import AppContext
from gptwiz.tui.devicestats import DeviceSampler

RECORDED = REPO / "tests" / "tui_data" / "recorded_run"


def _context(runs: Path) -> AppContext:
    return AppContext(runs_dir=runs, device_sampler=lambda: DeviceSampler(gpu_stats=lambda: []),
                      poll_interval_s=0.05, chart_interval_s=0.1)


def _copy(tmp_path: Path, name: str = "demo") -> RunPaths:
    dest = tmp_path / "runs" / name
    shutil.copytree(RECORDED, dest)
    return RunPaths(dest)


async def _polls(pilot, n: int = 3) -> None:
    screen = pilot.app.screen
    start = screen.polls
    await wait_for(pilot, lambda: screen.polls >= start + n)


def _to_folder(path: Path) -> None:
    path.unlink()
    path.mkdir()


@async_test
async def test_dashboard_survives_its_run_folder_deleted(tmp_path: Path, report) -> None:
    paths = _copy(tmp_path)
    app = GptwizApp(_context(tmp_path / "runs"), watch=paths)
    async with app.run_test(size=(110, 32)) as pilot:
        await _polls(pilot)
        assert "FINISHED" in screen_text(app)
        shutil.rmtree(paths.root)
        await wait_for(pilot, lambda: "MISSING" in screen_text(app))
        text = flat(screen_text(app))  # a long path wraps the message
        assert "is gone" in text and "iter 60/60" in text  # says so, and keeps what it had read
        await pilot.press("question_mark")  # still answering keys
        await wait_for(pilot, lambda: "picks it up again" in flat(screen_text(app)))  # the dashboard's help
        await pilot.press("escape")
        await pilot.press("q")
    assert app.return_value == "demo"
    report("run folder deleted under the open dashboard", 1, "banner MISSING with \"the run folder ... is gone\"; "
           "history kept; keys still work")


@async_test
async def test_dashboard_survives_unreadable_files_and_folder(tmp_path: Path, report) -> None:
    paths = _copy(tmp_path)
    app = GptwizApp(_context(tmp_path / "runs"), watch=paths)
    async with app.run_test(size=(110, 32)) as pilot:
        await _polls(pilot)
        for name in ("train.log", "metrics.jsonl", "status.json", "config.json"):
            _to_folder(paths.root / name)  # reading it now fails with EISDIR
            await _polls(pilot)
        with open(paths.root / "garbage.tmp", "w"):
            pass
        shutil.rmtree(paths.root)
        paths.root.write_text("a file where the run folder was\n")  # every read inside it: ENOTDIR
        await wait_for(pilot, lambda: "MISSING" in screen_text(app))
        await _polls(pilot)
        assert app.is_running
    report("train.log, metrics.jsonl, status.json, config.json turned unreadable (EISDIR), then the run folder "
           "replaced by a file (ENOTDIR), under the open dashboard", 5, "no crash; MISSING shown at the end")


@async_test
async def test_dashboard_survives_records_of_the_wrong_types(tmp_path: Path, report) -> None:
    paths = _copy(tmp_path)
    bad = [{"type": "eval", "iter": 61, "val_loss": "high", "train_loss": None},
           {"type": "train", "iter": "62", "loss": 1.0}, {"type": "train", "iter": 63, "loss": [1]},
           {"type": 7}, [1, 2, 3], "text", None, {"iter": 1e308, "type": "train", "loss": 2.0}]
    with open(paths.metrics, "a") as f:
        for rec in bad:
            f.write(json.dumps(rec) + "\n")
    app = GptwizApp(_context(tmp_path / "runs"), watch=paths)
    async with app.run_test(size=(110, 32)) as pilot:
        await _polls(pilot)
        assert "FINISHED" in screen_text(app)
    report("metrics.jsonl records that are JSON but of the wrong shape or types", len(bad),
           "dashboard shows the run; the bad records ignored or drawn as gaps")


@async_test
async def test_app_run_list_survives_runs_deleted_and_unreadable(tmp_path: Path, report) -> None:
    runs = tmp_path / "runs"
    first, second = _copy(tmp_path, "first"), _copy(tmp_path, "second")
    app = GptwizApp(_context(runs))
    async with app.run_test(size=(110, 32)) as pilot:
        await wait_for(pilot, lambda: "second" in screen_text(app) and "first" in screen_text(app))
        shutil.rmtree(first.root)
        _to_folder(second.status)
        screen = app.screen
        await wait_for(pilot, lambda: "first" not in screen_text(app), timeout=15)
        shutil.rmtree(runs)
        await wait_for(pilot, lambda: "No runs yet in" in screen_text(app), timeout=15)
        assert app.screen is screen
        await pilot.press("w")  # watch: nothing to watch now, said in a notification
        await pilot.pause(0.2)
        assert app.is_running
    report("the wizard app's run list with a run deleted, a status.json unreadable, then runs/ deleted", 3,
           "the list follows (\"No runs yet in ...\"); no crash")


def test_runs_command_with_broken_run_folders(tmp_path: Path, report) -> None:
    runs = tmp_path / "runs"
    ok = _copy(tmp_path, "ok")
    broken = _copy(tmp_path, "broken")
    for name in ("status.json", "metrics.jsonl"):
        _to_folder(broken.root / name)
    (runs / "dangling").symlink_to(tmp_path / "nowhere")
    (runs / "a-file").write_text("not a run")
    proc = run_cli(["runs", "--json"], cwd=tmp_path)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    names = {r["name"]: r for r in json.loads(proc.stdout)}
    assert names["ok"]["state"] == "finished" and names["broken"]["state"] == "unknown"
    assert "dangling" not in names and "a-file" not in names
    watch = run_cli(["watch", "gone-run"], cwd=tmp_path)
    assert watch.returncode == 2 and len(watch.stderr.strip().splitlines()) == 1
    assert ok.root.exists()
    report("`gptwiz runs` with an unreadable run, a dangling symlink and a stray file in runs/; "
           "`gptwiz watch` of a missing run", 2, "runs: exit 0, the good run listed, the broken one as unknown; "
           "watch: one-line error")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads through permissions; the EISDIR/ENOTDIR tests stand in")
def test_runs_command_with_a_run_folder_without_permissions(tmp_path: Path, report) -> None:
    locked = _copy(tmp_path, "locked")
    _copy(tmp_path, "ok")
    locked.root.chmod(0)
    try:
        proc = run_cli(["runs", "--json"], cwd=tmp_path)
    finally:
        locked.root.chmod(0o755)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert "ok" in {r["name"] for r in json.loads(proc.stdout)}
    report("`gptwiz runs` with a run folder of mode 000", 1, "exit 0, the other runs listed")
