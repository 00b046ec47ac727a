"""A recycled pid: the status.json of a crashed run (state still "running") names the pid of an unrelated live
process, `python -c "import time; time.sleep(600)"` started from this venv with `gptwiz train --model_name NAME`
in its command line, so that its /proc/PID/cmdline holds both the venv's Python and the word gptwiz. Only the
run's lock says whether a trainer holds the run: `gptwiz stop` refuses in one line, the dashboard's s key stops
nothing, `gptwiz runs` shows the run as failed, and the process lives. With a real lock holder, stop signals the
holder and only it."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import REPO, assert_one_line_error, run_cli
from tui_support import async_test, screen_text, wait_for

from faults.support import fault_env
from gptwiz.runs.lock import lock_owner
from gptwiz.runs.paths import RunPaths
from gptwiz.tui.app import GptwizApp
from gptwiz.tui.context import AppContext
from gptwiz.tui.devicestats import DeviceSampler

RECORDED = REPO / "tests" / "tui_data" / "recorded_run"
NAME = "crashed"


@pytest.fixture
def bystander() -> Iterator[subprocess.Popen]:
    """The unrelated process whose pid the crashed run's files name."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)", "gptwiz", "train",
                             "--model_name", NAME])
    cmdline = Path(f"/proc/{proc.pid}/cmdline")
    if cmdline.exists():
        deadline = time.monotonic() + 30
        while b"-c" not in cmdline.read_bytes().split(b"\0") and time.monotonic() < deadline:
            time.sleep(0.01)  # (between fork and exec it is still this process's)
        words = cmdline.read_bytes().split(b"\0")
        assert words[0].decode() == sys.executable and b"gptwiz" in words  # what a cmdline check would accept
    yield proc
    proc.kill()
    proc.wait()


def _crashed_run(root: Path, pid: int, lock_names_it: bool) -> RunPaths:
    """A run whose trainer died mid-run: status "running" with `pid`, and maybe the lock file it left, naming
    `pid` too (the file outlives its holder; the lock on it does not)."""
    paths = RunPaths(root / "runs" / NAME)
    shutil.copytree(RECORDED, paths.root)
    status = json.loads(paths.status.read_text())
    status.update(state="running", pid=pid, iter=30)
    status.pop("best_val_loss")
    paths.status.write_text(json.dumps(status))
    if lock_names_it:
        paths.lock.write_text(str(pid))
    return paths


@pytest.mark.parametrize("lock_names_it", [False, True], ids=["no lock file", "a stale lock file naming it"])
def test_stop_and_runs_leave_the_process_alone(tmp_path: Path, bystander: subprocess.Popen, lock_names_it: bool,
                                               report) -> None:
    paths = _crashed_run(tmp_path, bystander.pid, lock_names_it)
    assert lock_owner(paths) is None
    for wait in ("60", "0"):
        proc = run_cli(["stop", NAME, "--wait", wait], cwd=tmp_path, env=fault_env())
        assert_one_line_error(proc, NAME, "not running", "nothing to stop")
    listed = run_cli(["runs", "--json"], cwd=tmp_path, env=fault_env())
    assert listed.returncode == 0, listed.stderr
    assert {r["name"]: r["state"] for r in json.loads(listed.stdout)}[NAME] == "failed"
    time.sleep(0.2)  # a signal sent would have landed by now
    assert bystander.poll() is None  # alive
    assert json.loads(paths.status.read_text())["state"] == "running"  # the viewers changed nothing
    report(f"status.json of a crashed run naming a live unrelated process (venv Python, \"gptwiz\" in its "
           f"cmdline){', and its leftover lock file naming it too' if lock_names_it else ''}: "
           "`gptwiz stop` (--wait 60 and 0), `gptwiz runs`", 3,
           "stop: exit 2, one line (not running); runs: the run is failed; the process is alive, never signalled")


@async_test
async def test_dashboard_s_leaves_the_process_alone(tmp_path: Path, bystander: subprocess.Popen, report) -> None:
    paths = _crashed_run(tmp_path, bystander.pid, lock_names_it=True)
    context = AppContext(runs_dir=tmp_path / "runs", device_sampler=lambda: DeviceSampler(gpu_stats=lambda: []),
                         poll_interval_s=0.05, chart_interval_s=0.1)
    app = GptwizApp(context, watch=paths)
    async with app.run_test(size=(110, 32)) as pilot:
        await wait_for(pilot, lambda: getattr(app.screen, "snapshot", None) is not None)
        assert app.screen.snapshot.state == "failed"
        assert "FAILED" in screen_text(app)
        await pilot.press("s")
        await pilot.pause(0.3)
        assert not any(type(s).__name__ == "ConfirmScreen" for s in app.screen_stack)  # nothing to confirm
        await pilot.press("q")
    assert bystander.poll() is None
    report("the dashboard's s key on that crashed run (status \"running\", its stale lock file naming the live "
           "process)", 1, "the run shown FAILED; s stops nothing (no confirmation asked); the process is alive")


def test_stop_signals_the_lock_holder_only(tmp_path: Path, bystander: subprocess.Popen, report) -> None:
    """A trainer does hold the lock, but status.json names the other process: the holder gets the SIGTERM."""
    paths = _crashed_run(tmp_path, bystander.pid, lock_names_it=False)
    marker = tmp_path / "holder-got-sigterm"
    script = ("import signal, sys, time\n"
              "from pathlib import Path\n"
              "from gptwiz.runs.lock import RunLock\nfrom gptwiz.runs.paths import RunPaths\n"
              "lock = RunLock(RunPaths(Path(sys.argv[1])))\n"
              "lock.acquire()\n"
              "def stop(*a):\n"
              "    Path(sys.argv[2]).write_text('yes'); lock.release(); sys.exit(0)\n"
              "signal.signal(signal.SIGTERM, stop)\n"
              "time.sleep(600)\n")
    holder = subprocess.Popen([sys.executable, "-c", script, str(paths.root), str(marker)], env=fault_env())
    try:
        deadline = time.monotonic() + 60
        while lock_owner(paths) != holder.pid and holder.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert lock_owner(paths) == holder.pid
        proc = run_cli(["stop", NAME, "--wait", "0"], cwd=tmp_path, env=fault_env())
        assert proc.returncode == 0 and f"(pid {holder.pid})" in proc.stdout, (proc.stdout, proc.stderr)
        assert holder.wait(timeout=30) == 0 and marker.read_text() == "yes"
    finally:
        if holder.poll() is None:
            holder.send_signal(signal.SIGKILL)
            holder.wait()
    assert bystander.poll() is None
    report("a run whose lock a live stand-in trainer holds while status.json names the unrelated process: "
           "`gptwiz stop`", 1, "exit 0; SIGTERM went to the lock's holder (it stopped), the process named in "
           "status.json is alive")
