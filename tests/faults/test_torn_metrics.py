"""metrics.jsonl whose last line was cut mid-write (a trainer killed inside a write): the dashboard's reader,
the dashboard itself, `gptwiz runs` and `--resume` all read the rest, and the resume leaves a file of whole lines."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import run_cli
from tui_support import async_test, screen_text, wait_for

from faults.support import every_line_is_json, fault_env, status, train_iters
from gptwiz.runs.metrics import read_metrics
from gptwiz.runs.monitor import RunMonitor
from gptwiz.runs.paths import RunPaths
from gptwiz.tui.app import GptwizApp
from gptwiz.tui.context import AppContext
from gptwiz.tui.devicestats import DeviceSampler

TORN = {
    "cut inside a record": b'{"type":"train","iter":3,"loss":7.1,"lr',
    "cut inside a UTF-8 character": b'{"type":"train","iter":3,"note":"\xe2\x82',
    "a record with no newline and no end": b'{"type":"eval","iter":3,"val_loss":',
}


def _torn(trained_copy: Path, tail: bytes) -> Path:
    """The copy's finished run of 2 iterations, its metrics.jsonl ending in `tail`."""
    run = trained_copy / "runs" / "base"
    with open(run / "metrics.jsonl", "ab") as f:
        f.write(tail)
    return run


@pytest.mark.parametrize("kind", list(TORN))
def test_readers_skip_the_torn_line(trained_copy: Path, kind: str, report) -> None:
    run = _torn(trained_copy, TORN[kind])
    assert [r["iter"] for r in read_metrics(run / "metrics.jsonl") if r["type"] == "train"] == [1, 2]
    assert [r["iter"] for r in read_metrics(run / "metrics.jsonl") if r["type"] == "eval"] == [0, 1, 2]
    snap = RunMonitor(RunPaths(run)).poll()
    assert snap.train_iters == [1.0, 2.0] and snap.iter == 2 and snap.state == "finished"
    listed = run_cli(["runs", "--json"], cwd=trained_copy)
    assert listed.returncode == 0 and "Traceback" not in listed.stderr
    row = json.loads(listed.stdout)[0]
    assert row["name"] == "base" and row["iter"] == 2 and row["state"] == "finished"
    table = run_cli(["runs"], cwd=trained_copy)
    assert table.returncode == 0 and "2/2" in table.stdout
    report(f"metrics.jsonl last line {kind}: reader, dashboard monitor, `gptwiz runs`", 3,
           "the whole records read (2 iterations, 3 evaluations); the torn one skipped; no error")


@async_test
async def test_dashboard_shows_a_run_with_a_torn_line(trained_copy: Path, report) -> None:
    run = _torn(trained_copy, TORN["cut inside a record"])
    context = AppContext(runs_dir=run.parent, device_sampler=lambda: DeviceSampler(gpu_stats=lambda: []),
                         poll_interval_s=0.05)
    app = GptwizApp(context, watch=RunPaths(run))
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: getattr(app.screen, "polls", 0) >= 2)
        assert "iter 2/2" in screen_text(app) and "FINISHED" in screen_text(app)
    report("`gptwiz watch` (the dashboard app) on metrics.jsonl with a torn last line", 1,
           "shows iteration 2/2 and FINISHED")


def test_resume_reads_the_rest_and_leaves_whole_lines(trained_copy: Path, report) -> None:
    run = _torn(trained_copy, TORN["cut inside a record"])
    proc = run_cli(["train", "--model_name", "base", "--resume", "--max_iters", "4", "--quiet"], cwd=trained_copy,
                   env=fault_env())
    assert proc.returncode == 0, proc.stderr
    assert every_line_is_json(run / "metrics.jsonl")
    assert train_iters(run) == [1, 2, 3, 4] and status(run)["state"] == "finished"
    report("`--resume` of a run whose metrics.jsonl ends in a torn line", 1,
           "trimmed the torn line, continued 3..4; every line of the file whole JSON")


def test_unreadable_status_is_shown_as_unknown(trained_copy: Path, report) -> None:
    run = _torn(trained_copy, b"")
    for content in (b"", b"{\"state\": \"runn", b"\xff\xfe garbage", b"[1, 2]"):
        (run / "status.json").write_bytes(content)
        listed = run_cli(["runs", "--json"], cwd=trained_copy)
        assert listed.returncode == 0 and "Traceback" not in listed.stderr, listed.stderr
        assert json.loads(listed.stdout)[0]["name"] == "base"
        assert RunMonitor(RunPaths(run)).poll().train_iters[-1] == 2.0
    report("status.json empty, cut, binary or not an object: `gptwiz runs`, dashboard monitor", 4,
           "run listed (state unknown), history shown, no error")
