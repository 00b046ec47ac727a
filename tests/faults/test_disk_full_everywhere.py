"""A really full disk under the trainer (a small tmpfs as --runs_dir, filled to a chosen number of free pages):
whichever file the disk runs out at (the lock, config.json, status.json, metrics.jsonl, train.log, a checkpoint),
`gptwiz train` ends with one line naming that file and the free space, exit status 1, and no traceback or
"--- Logging error ---". A run that fails before its first step leaves nothing (no lock, no folder); one that
fails later leaves whole files only, and `--resume` finishes it once there is room.

The ENOSPC of an existing file's atomic write (checkpoints, status.json) injected by a hook is in
test_disk_full.py; here the disk is real."""

from __future__ import annotations

import errno
import json
import os
import re
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import run_cli

from faults.support import (
    every_line_is_json,
    fault_env,
    micro_preset,
    one_line,
    process_alive,
    start,
    temp_files,
    train_args,
    train_iters,
    wait_for,
)
from gptwiz.runs.paths import RunPaths
from gptwiz.runs.status import effective_state
from gptwiz.training.checkpoint import load_checkpoint

_MESSAGE = re.compile(r"no space left on the disk while writing (\S+) \((\S+ \S+) free of \S+ \S+(, no inodes left)?\)")


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Callable[[str], Path]]:
    """mount(size): a fresh tmpfs of that size (mount's syntax: 64k, 128m), unmounted after the test."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mounted: list[Path] = []

    def mount(size: str) -> Path:
        folder = tmp_path / f"disk{len(mounted)}"
        folder.mkdir()
        proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            pytest.skip(f"mount -t tmpfs failed: {proc.stderr.strip()}")
        mounted.append(folder)
        return folder

    yield mount
    for folder in mounted:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def _fill(disk: Path, leave_pages: int) -> int:
    """Write disk/fill until only `leave_pages` pages are free (or the disk refuses more); the pages left."""
    vfs = os.statvfs(disk)
    want = max(0, (vfs.f_bavail - leave_pages) * vfs.f_frsize)
    chunk = b"\0" * (1 << 20)
    with open(disk / "fill", "ab") as f:
        while want > 0:
            try:
                f.write(chunk[:want])
                f.flush()
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
                break
            want -= min(want, len(chunk))
    return os.statvfs(disk).f_bavail


def _assert_one_line_failure(proc: subprocess.CompletedProcess[str]) -> re.Match[str]:
    assert proc.returncode == 1, (proc.returncode, proc.stdout, proc.stderr)
    everything = proc.stdout + proc.stderr
    assert "Traceback" not in everything and "Logging error" not in everything, everything
    lines = one_line(proc.stderr)
    assert len(lines) == 1, proc.stderr
    match = _MESSAGE.search(lines[0])
    assert match, lines[0]
    return match


def test_a_fresh_run_on_a_full_disk_fails_in_one_line_wherever_it_runs_out(small_disk, tmp_path: Path,
                                                                            data_dir: Path, report) -> None:
    preset = micro_preset(tmp_path, max_iters=4, eval_interval=2)
    hit: dict[str, list[tuple[int, bool]]] = {}  # file -> (free pages, whether the run folder was left)
    for free in range(0, 7):
        disk = small_disk("64k")
        left = _fill(disk, free)
        runs = disk / "runs"
        proc = run_cli([*train_args(preset, "full", data_dir=data_dir), "--runs_dir", str(runs)], cwd=tmp_path,
                       env=fault_env())
        match = _assert_one_line_failure(proc)
        name = Path(match.group(1)).name
        run = runs / "full"
        hit.setdefault(name, []).append((left, run.exists()))
        if run.exists():
            # It began: whole files only, the reason recorded where it could be, and --resume advised.
            assert "--resume" in proc.stderr
            assert not temp_files(run) and not (run / "lock").exists()
            status = json.loads((run / "status.json").read_text())
            assert effective_state(status, RunPaths(run)) == "failed"
            json.loads((run / "config.json").read_text())
            assert every_line_is_json(run / "metrics.jsonl")
        else:
            # Refused before its first step: no folder, not even runs/ (it made both), no empty lock.
            assert sorted(p.name for p in disk.iterdir()) == ["fill"], list(disk.iterdir())
            assert "start the run again" in proc.stderr
    for name in ("lock", "config.json", "status.json", "metrics.jsonl"):
        assert name in hit, hit
    for name, trials in sorted(hit.items()):
        left = {kept for _, kept in trials}
        kept = ("nothing left, not even runs/ (no step taken)" if left == {False} else
                "the run folder with whole files only, status failed, --resume advised" if left == {True} else
                "nothing left before the first step, whole files only after it")
        report(f"disk full (a real tmpfs) when a fresh run writes {name}", len(trials),
               f"free pages {[free for free, _ in trials]}: exit 1, one line naming {name} and the free space; "
               f"no traceback, no 'Logging error'; {kept}")


def test_a_disk_that_fills_while_training_fails_the_run_in_one_line_and_resume_finishes(
        small_disk, tmp_path: Path, data_dir: Path, report) -> None:
    disk = small_disk("160m")  # room for the two checkpoints of the micro model (20 MB each) and their temporaries
    runs = disk / "runs"
    run = runs / "live"
    preset = micro_preset(tmp_path, max_iters=400, eval_interval=1000)
    out = tmp_path / "out.log"
    proc = start([*train_args(preset, "live", data_dir=data_dir), "--runs_dir", str(runs)], cwd=tmp_path, log=out)
    try:
        wait_for(lambda: len(train_iters(run)) >= 3, proc=proc)
        assert proc.poll() is None
        _fill(disk, 0)
        code = proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = out.read_text()
    assert code == 1, text
    assert "Traceback" not in text and "Logging error" not in text, text
    failure = [line for line in text.splitlines() if line.startswith("gptwiz train: failed:")]
    assert len(failure) == 1 and _MESSAGE.search(failure[0]), text
    written = Path(_MESSAGE.search(failure[0]).group(1)).name
    # Whole files only: every metrics line parses, status.json parses (its last state; the dead lock says
    # failed), the checkpoint of iteration 0 loads, no temporary file, no lock.
    assert every_line_is_json(run / "metrics.jsonl")
    assert effective_state(json.loads((run / "status.json").read_text()), RunPaths(run)) == "failed"
    assert load_checkpoint(run / "ckpt_last.pt")["iter"] == 0
    assert not temp_files(run) and not (run / "lock").exists()
    (disk / "fill").unlink()
    resumed = run_cli(["train", "--model_name", "live", "--resume", "--max_iters", "6", "--quiet",
                       "--runs_dir", str(runs)], cwd=tmp_path, env=fault_env())
    assert resumed.returncode == 0, resumed.stderr
    assert train_iters(run) == list(range(1, 7))
    report("the disk fills up while the trainer runs (a real tmpfs, filled from outside)", 1,
           f"exit 1, one line naming {written} and the free space; its own failure log line to train.log dropped "
           "silently (no 'Logging error'); metrics.jsonl whole lines only, status.json and ckpt_last.pt whole; "
           "--resume finished once there was room")


def test_a_detached_start_on_a_full_disk_leaves_nothing_that_blocks_a_retry(small_disk, tmp_path: Path,
                                                                             data_dir: Path, report) -> None:
    preset = micro_preset(tmp_path, max_iters=4, eval_interval=2)
    # No file entries left: the launcher cannot make the run folder, says so, and starts nothing.
    disk = small_disk("1m,nr_inodes=64")
    try:
        for n in range(64):
            (disk / f"entry{n}").touch()
    except OSError as exc:
        assert exc.errno == errno.ENOSPC
    argv = [*train_args(preset, "bg", data_dir=data_dir), "--runs_dir", str(disk / "runs"), "--detach"]
    before = sorted(p.name for p in disk.iterdir())
    proc = run_cli(argv, cwd=tmp_path, env=fault_env())
    assert proc.returncode == 2 and "Traceback" not in proc.stdout + proc.stderr, proc.stderr
    lines = one_line(proc.stderr)
    assert len(lines) == 1 and _MESSAGE.search(lines[0]) and "no inodes left" in lines[0], proc.stderr
    assert sorted(p.name for p in disk.iterdir()) == before
    # No bytes left: the folder and its empty console.log can be made and the trainer starts, but it cannot
    # take its lock; it leaves no lock, config or status, and once there is room the same command starts.
    disk = small_disk("64m")  # (room for the checkpoints once the filler is gone)
    _fill(disk, 0)
    argv = [*train_args(preset, "bg", data_dir=data_dir), "--runs_dir", str(disk / "runs")]
    proc = run_cli([*argv, "--detach"], cwd=tmp_path, env=fault_env())
    assert proc.returncode == 0, proc.stderr
    pid = int(proc.stdout.split("(pid ", 1)[1].split(")", 1)[0])
    wait_for(lambda: not process_alive(pid), timeout=120)
    assert sorted(p.name for p in (disk / "runs" / "bg").iterdir()) == ["console.log"]
    (disk / "fill").unlink()
    retry = run_cli(argv, cwd=tmp_path, env=fault_env())
    assert retry.returncode == 0, retry.stderr
    report("disk full under `train --detach`: no inodes for the run folder, then no bytes for the trainer's lock", 2,
           "no inodes: exit 2, one line with the free space, nothing made, nothing started; no bytes: the trainer "
           "leaves only the (empty) console.log, and the same command then trains under the same name")

