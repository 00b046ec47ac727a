"""A named pipe (FIFO) where gptwiz expects a file: status.json, config.json, metrics.jsonl, train.log, the lock,
a checkpoint or a dataset's manifest.json. Opening a FIFO for reading blocks until a writer comes, so a reader
that opens one hangs for good (under `watch`, neither q nor Ctrl-C then ended the process).

gptwiz never opens what is not a regular file where it expects one: every command below finishes (each is run
with a timeout, so a hang fails the test instead of blocking the suite), the FIFO is named in one line or the run
is listed as unreadable, and nothing else changes.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import REPO, SHAKESPEARE, assert_one_line_error, run_cli
from test_tui_cli import _pty_run
from tui_support import async_test, flat, quiet_context, screen_text, wait_for

from faults.support import fault_env, micro_preset, train_args
from gptwiz.runs.paths import RunPaths
from gptwiz.tui.app import GptwizApp

RECORDED = REPO / "tests" / "tui_data" / "recorded_run"
TIMEOUT = 30  # seconds for a command that must finish at once; a FIFO that is opened blocks past it
RUN_FILES = ("status.json", "config.json", "metrics.jsonl", "train.log", "lock")


def _fifo(path: Path) -> None:
    path.unlink(missing_ok=True)
    os.mkfifo(path)


def _copy(runs: Path, name: str) -> RunPaths:
    shutil.copytree(RECORDED, runs / name)
    return RunPaths(runs / name)


@contextlib.contextmanager
def _deadline(seconds: float = TIMEOUT) -> Iterator[None]:
    """Fail, instead of blocking the suite, a call that is still running after `seconds` (an open of a FIFO is
    interrupted by the alarm)."""
    def expire(signum: int, frame: object) -> None:
        raise TimeoutError(f"still running after {seconds:g}s: something opened a FIFO")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _main(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    """`gptwiz ARGV` in this process, under a deadline: its exit status and the lines it wrote to stderr."""
    from gptwiz.cli import main

    with _deadline():
        code = main(argv)
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    return code, [line for line in err.splitlines() if line.strip()]


def _kinds(folder: Path) -> dict[str, bool]:
    """Each entry of a folder and whether it is (still) a FIFO."""
    return {p.name: p.is_fifo() for p in sorted(folder.iterdir())}


def test_runs_and_stop_with_a_fifo_in_a_run_folder(tmp_path: Path, report) -> None:
    runs = tmp_path / "runs"
    _copy(runs, "ok")
    for name in RUN_FILES:
        _fifo(_copy(runs, f"fifo-{name.replace('.', '-')}").root / name)
    listed = run_cli(["runs", "--json"], cwd=tmp_path, timeout=TIMEOUT)
    assert listed.returncode == 0 and "Traceback" not in listed.stderr, listed.stderr
    rows = {r["name"]: r for r in json.loads(listed.stdout)}
    assert set(rows) == {"ok", *(f"fifo-{n.replace('.', '-')}" for n in RUN_FILES)}
    for name in ("status.json", "config.json"):  # what the list reads: named, with what it is
        row = rows[f"fifo-{name.replace('.', '-')}"]
        assert row["unreadable"] == f"{name} is a named pipe, not a regular file", row
    for name in ("metrics.jsonl", "train.log", "lock"):  # not read to list a run: it is listed as it is
        assert rows[f"fifo-{name.replace('.', '-')}"]["state"] == "finished"
    table = run_cli(["runs"], cwd=tmp_path, timeout=TIMEOUT)
    assert table.returncode == 0 and "fifo-status-json: unreadable: status.json is a named pipe" in table.stdout
    stopped = 0
    for name in RUN_FILES:
        proc = run_cli(["stop", f"fifo-{name.replace('.', '-')}", "--wait", "0"], cwd=tmp_path, timeout=TIMEOUT)
        assert_one_line_error(proc, "fifo-")
        stopped += 1
    assert_one_line_error(run_cli(["stop", "fifo-status-json"], cwd=tmp_path, timeout=TIMEOUT), "named pipe")
    for name in RUN_FILES:
        assert (runs / f"fifo-{name.replace('.', '-')}" / name).is_fifo()  # left as found
    report(f"a FIFO as {', '.join(RUN_FILES)} of a run (`gptwiz runs`, `--json`, `gptwiz stop`)", 2 + stopped,
           "every command finishes: runs exit 0 with every run listed, a FIFO status.json or config.json as "
           "\"unreadable: ... is a named pipe\"; stop exit 2 in one line; the FIFOs left as they were")


def test_resume_and_init_from_with_a_fifo_are_refused(trained_copy: Path, tmp_path: Path, data_dir: Path,
                                                      monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str], report) -> None:
    cwd = trained_copy
    run = cwd / "runs" / "base"
    pristine = tmp_path / "pristine"
    shutil.copytree(run, pristine)
    monkeypatch.chdir(cwd)
    names = (*RUN_FILES, "ckpt_last.pt", "ckpt_best.pt")
    trials = 0
    for name in names:
        for entry in run.iterdir():  # the FIFO of the last round made whole again (or removed: the lock)
            if entry.is_fifo():
                entry.unlink()
                if (pristine / entry.name).exists():
                    shutil.copy(pristine / entry.name, entry)
        _fifo(run / name)
        before = _kinds(run)
        for argv in (["train", "--model_name", "base", "--resume", "--quiet"],
                     ["train", "--model_name", "base", "--resume", "--quiet", "--detach"],
                     [*train_args(cwd / "micro.json", "child", data_dir=data_dir), "--init_from_model", "base"]):
            code, lines = _main(argv, capsys)
            assert code == 2 and len(lines) == 1 and name in lines[0] and "named pipe" in lines[0], (argv, lines)
            assert _kinds(run) == before, (name, argv)
            assert {p.name for p in pristine.iterdir()} <= set(before)
            assert not (cwd / "runs" / "child").exists()
            trials += 1
    # The real command line, in a process of its own.
    proc = run_cli(["train", "--model_name", "base", "--resume", "--quiet"], cwd=cwd, env=fault_env(),
                   timeout=TIMEOUT)
    assert_one_line_error(proc, names[-1], "named pipe")
    trials += 1
    report(f"a FIFO as {', '.join(names)} of a finished run (`train --resume`, `--resume --detach`, and "
           "`--init_from_model` of it)", trials,
           "exit 2 in one line naming the file as a named pipe, before anything is written: the folder as it was, "
           "no runs/child")


def test_sample_with_a_fifo_checkpoint(trained_copy: Path, monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str], report) -> None:
    cwd = trained_copy
    run = cwd / "runs" / "base"
    monkeypatch.chdir(cwd)
    _fifo(run / "ckpt_best.pt")
    code, lines = _main(["sample", "--model_name", "base", "--max_new_tokens", "3"], capsys)
    assert code == 0 and any("ckpt_best.pt is a named pipe" in line and "ckpt_last.pt" in line for line in lines), lines
    _fifo(run / "ckpt_last.pt")
    code, lines = _main(["sample", "--model_name", "base", "--max_new_tokens", "3"], capsys)
    assert code == 2 and len(lines) == 1 and "named pipe" in lines[0], lines
    report("a FIFO as ckpt_best.pt, then as both checkpoints (`gptwiz sample`)", 2,
           "finishes: samples from ckpt_last.pt with a warning naming the FIFO; with both FIFOs exit 2 in one line")


def test_dataset_commands_with_a_fifo_manifest(data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str], report) -> None:
    cache = next((data_dir / "cache").iterdir())
    ds = tmp_path / "ds"
    shutil.copytree(cache, ds)
    _fifo(ds / "manifest.json")
    preset = micro_preset(tmp_path, max_iters=1)
    commands = {
        "dataset-info": ["dataset-info", "ds"],
        "dataset-info --json": ["dataset-info", "ds", "--json"],
        "train --dataset_dir": ["train", "--config_file", str(preset), "--model_name", "t", "--dataset_dir", "ds",
                                "--quiet"],
        "prepare --out_dir": ["prepare", "--source", f"s:{SHAKESPEARE}", "--out_dir", "ds", "--quiet"],
    }
    monkeypatch.chdir(tmp_path)
    for label, argv in commands.items():
        code, lines = _main(argv, capsys)
        assert code == 2 and len(lines) == 1 and "ds" in lines[0], (label, lines)
        if label != "prepare --out_dir":  # (prepare: "already holds a different dataset (... unreadable manifest)")
            assert "manifest.json is a named pipe" in lines[0], lines
        assert (ds / "manifest.json").is_fifo() and not (tmp_path / "runs").exists()
    assert_one_line_error(run_cli(["dataset-info", "ds"], cwd=tmp_path, timeout=TIMEOUT), "manifest.json is a named pipe")
    # A FIFO as the manifest of the token cache that --input_file reuses: not a whole cache, so it is built again.
    cache_copy = tmp_path / "data"
    shutil.copytree(data_dir, cache_copy)
    cached = next((cache_copy / "cache").iterdir())
    _fifo(cached / "manifest.json")
    code, lines = _main(train_args(preset, "t", data_dir=cache_copy), capsys)
    assert code == 0, lines
    assert (cached / "manifest.json").is_file() and not (cached / "manifest.json").is_fifo()
    report("a FIFO as a dataset's manifest.json (`dataset-info`, `--json`, `train --dataset_dir`, `prepare --out_dir` "
           "onto it; `dataset-info` also as a process) and as the --input_file token cache's", len(commands) + 2,
           "each finishes: exit 2 in one line naming the dataset (the manifest as a named pipe), the FIFO left and no "
           "run folder; the token cache is built again in place of the FIFO and the run trains")


@async_test
async def test_dashboard_with_fifos_and_a_status_json_turned_fifo_live(tmp_path: Path, report) -> None:
    runs = tmp_path / "runs"
    every = _copy(runs, "every")
    for name in ("status.json", "config.json", "metrics.jsonl", "train.log"):
        _fifo(every.root / name)
    app = GptwizApp(quiet_context(runs), watch=every)
    async with app.run_test(size=(120, 32)) as pilot:
        await wait_for(pilot, lambda: "UNREADABLE" in screen_text(app), timeout=10)
        assert "status.json is a named pipe, not a regular file" in flat(screen_text(app))
        screen = app.screen
        start = screen.polls
        await wait_for(pilot, lambda: screen.polls >= start + 5)  # still polling
        await pilot.press("q")
    assert app.return_value == "every"
    live = _copy(runs, "live")
    app = GptwizApp(quiet_context(runs), watch=live)
    async with app.run_test(size=(120, 32)) as pilot:
        await wait_for(pilot, lambda: "FINISHED" in screen_text(app))
        fifo = live.root / ".status.json.fifo"
        os.mkfifo(fifo)
        os.replace(fifo, live.status)  # renamed over it, as the trainer replaces status.json
        await wait_for(pilot, lambda: "status.json is a named pipe" in flat(screen_text(app)), timeout=10)
        assert "iter 60/60" in flat(screen_text(app))
        await pilot.press("q")
    assert app.return_value == "live"
    report("a FIFO as status.json, config.json, metrics.jsonl and train.log under the dashboard; status.json replaced "
           "by a FIFO while it is open", 2,
           "banner UNREADABLE with \"status.json is a named pipe\", polling goes on, history kept; q leaves")


@async_test
async def test_welcome_screen_with_a_fifo_status(tmp_path: Path, report) -> None:
    runs = tmp_path / "runs"
    _copy(runs, "ok")
    _fifo(_copy(runs, "piped").status)
    app = GptwizApp(quiet_context(runs))
    async with app.run_test(size=(120, 32)) as pilot:
        await wait_for(pilot, lambda: app.screen.id == "welcome" and app.screen.loaded)
        text = flat(screen_text(app))
        assert "finished" in text and "piped: unreadable: status.json is a named pipe" in text, text
        await pilot.press("w")  # watch the selected run: its dashboard opens, whichever it is
        await wait_for(pilot, lambda: app.screen.id == "dashboard")
        await pilot.press("escape")
    report("the wizard's welcome screen with a run whose status.json is a FIFO", 1,
           "listed as unreadable with the reason beside the good run; w opens the dashboard; no hang")


def test_watch_and_plain_wizard_processes_with_a_fifo_status(tmp_path: Path, report) -> None:
    runs = tmp_path / "runs"
    _fifo(_copy(runs, "piped").status)
    _fifo(runs / "piped" / "metrics.jsonl")
    code, out = _pty_run(["watch", "piped", "--runs_dir", str(runs)], tmp_path, b"q", b"UNREADABLE", timeout=60)
    assert code == 0 and b"Traceback" not in out, out[-2000:]
    code, out = _pty_run(["wizard", "--plain", "--runs_dir", str(runs)], tmp_path, b"\x03",
                         b"What will the model be for?", timeout=60)
    assert code == 130 and b"unreadable: status.json is a named pipe" in out, out[-2000:]
    report("`gptwiz watch` and `gptwiz wizard --plain` (real processes in a terminal) on a run whose status.json and "
           "metrics.jsonl are FIFOs", 2,
           "watch draws UNREADABLE and q ends it (exit 0); the plain wizard lists the run as unreadable, Ctrl-C ends "
           "it (130)")
