"""metrics.jsonl whose last line was cut mid-write (a trainer killed inside a write): the dashboard's reader,
the dashboard itself, `gptwiz runs` and `--resume` all read the rest, and the resume leaves a file of whole lines."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import run_cli
from tui_support import async_test, screen_text, wait_for

from faults.support import every_line_is_json, fault_env, micro_preset, status, train_args, train_iters
from gptwiz.runs.folder import RunPaths, read_metrics
from gptwiz.runs.monitor import RunMonitor
from gptwiz.tui.app import GptwizApp
from gptwiz.tui.context import AppContext
from gptwiz.tui.devicestats import DeviceSampler

TORN = {
    "cut inside a record": b'{"type":"train","iter":13,"loss":7.1,"lr',
    "cut inside a UTF-8 character": b'{"type":"train","iter":13,"note":"\xe2\x82',
    "a record with no newline and no end": b'{"type":"eval","iter":13,"val_loss":',
}


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Path:
    root = tmp_path_factory.mktemp("torn-template")
    preset = micro_preset(root, max_iters=12, eval_interval=6)
    run_cli(train_args(preset, "t", data_dir=data_dir), cwd=root, env=fault_env(), check=True)
    return root


def _torn_copy(finished: Path, tmp_path: Path, tail: bytes) -> Path:
    shutil.copytree(finished, tmp_path / "w")
    run = tmp_path / "w" / "runs" / "t"
    with open(run / "metrics.jsonl", "ab") as f:
        f.write(tail)
    return run


@pytest.mark.parametrize("kind", list(TORN))
def test_readers_skip_the_torn_line(finished: Path, tmp_path: Path, kind: str, report) -> None:
    run = _torn_copy(finished, tmp_path, TORN[kind])
    assert [r["iter"] for r in read_metrics(run / "metrics.jsonl") if r["type"] == "train"] == list(range(1, 13))
    snap = RunMonitor(RunPaths(run)).poll()
    assert snap.train_iters == [float(i) for i in range(1, 13)] and snap.iter == 12 and snap.state == "finished"
    listed = run_cli(["runs", "--json"], cwd=tmp_path / "w")
    assert listed.returncode == 0 and "Traceback" not in listed.stderr
    row = json.loads(listed.stdout)[0]
    assert row["name"] == "t" and row["iter"] == 12 and row["state"] == "finished"
    table = run_cli(["runs"], cwd=tmp_path / "w")
    assert table.returncode == 0 and "12/12" in table.stdout
    report(f"metrics.jsonl last line {kind}: reader, dashboard monitor, `gptwiz runs`", 3,
           "the 12 whole records read; the torn one skipped; no error")


@async_test
async def test_dashboard_shows_a_run_with_a_torn_line(finished: Path, tmp_path: Path, report) -> None:
    run = _torn_copy(finished, tmp_path, TORN["cut inside a record"])
    context = AppContext(runs_dir=run.parent, device_sampler=lambda: DeviceSampler(gpu_stats=lambda: []),
                         poll_interval_s=0.05)
    app = GptwizApp(context, watch=RunPaths(run))
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: getattr(app.screen, "polls", 0) >= 2)
        assert "iter 12/12" in screen_text(app) and "FINISHED" in screen_text(app)
    report("`gptwiz watch` (the dashboard app) on metrics.jsonl with a torn last line", 1,
           "shows iteration 12/12 and FINISHED")


def test_resume_reads_the_rest_and_leaves_whole_lines(finished: Path, tmp_path: Path, report) -> None:
    run = _torn_copy(finished, tmp_path, TORN["cut inside a record"])
    proc = run_cli(["train", "--model_name", "t", "--resume", "--max_iters", "18", "--quiet"], cwd=tmp_path / "w",
                   env=fault_env())
    assert proc.returncode == 0, proc.stderr
    assert every_line_is_json(run / "metrics.jsonl")
    assert train_iters(run) == list(range(1, 19)) and status(run)["state"] == "finished"
    report("`--resume` of a run whose metrics.jsonl ends in a torn line", 1,
           "trimmed the torn line, continued 13..18; every line of the file whole JSON")


def test_unreadable_status_is_shown_as_unknown(finished: Path, tmp_path: Path, report) -> None:
    run = _torn_copy(finished, tmp_path, b"")
    for content in (b"", b"{\"state\": \"runn", b"\xff\xfe garbage", b"[1, 2]"):
        (run / "status.json").write_bytes(content)
        listed = run_cli(["runs", "--json"], cwd=tmp_path / "w")
        assert listed.returncode == 0 and "Traceback" not in listed.stderr, listed.stderr
        assert json.loads(listed.stdout)[0]["name"] == "t"
        assert RunMonitor(RunPaths(run)).poll().train_iters[-1] == 12.0
    report("status.json empty, cut, binary or not an object: `gptwiz runs`, dashboard monitor", 4,
           "run listed (state unknown), history shown, no error")
