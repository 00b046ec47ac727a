"""`gptwiz probe` and its child: SIGKILL of the probe (no clean-up can run) and SIGHUP (a closed terminal) end
the child too, within seconds, instead of leaving it training for the probe's whole length; the temporary
folder of a killed probe is removed by the next probe. Each probe works in a private temporary folder
(mkdtemp), so folders that another user (or a symlink) put at the names the probe once used change nothing.

Every probe here runs with TMPDIR pointing at a folder of the test's own, so that its temporary folders can
be counted."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import SHAKESPEARE, run_cli

from faults.support import fault_env, micro_preset, wait_for

PREFIX = "gptwiz-probe-"
ITERS = 100_000  # far longer than the test: a child that outlives its probe would train for minutes


def _state(pid: int) -> str | None:
    """The process's state letter (R, S, Z, ...), None when it is gone. A zombie (Z) has ended already: the
    orphan's new parent (the container's init) may never reap it."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


def _alive(pid: int) -> bool:
    return _state(pid) not in (None, "Z", "X")


def _plant(tmp: Path) -> list[Path]:
    """What another user could put in the shared temporary folder: the fixed paths earlier probes used, with a
    run's files in them, and a symlink under the probe's prefix leading to a folder that must stay whole."""
    fixed = tmp / f"{PREFIX}check-none" / "probe-check"
    fixed.mkdir(parents=True)
    (fixed / "config.json").write_text("{}")
    (fixed / "ckpt_last.pt").write_bytes(b"not yours")
    target = tmp.parent / "precious"
    target.mkdir()
    (target / "keep.txt").write_text("keep me")
    (tmp / f"{PREFIX}link").symlink_to(target)
    if os.geteuid() == 0:  # as another user's, which it is in the case this stands for
        for path in (fixed.parent, fixed, *fixed.iterdir()):
            os.lchown(path, 65534, 65534)
    return [fixed.parent, tmp / f"{PREFIX}link"]


def _ours(tmp: Path, planted: list[Path]) -> list[Path]:
    return sorted(p for p in tmp.iterdir() if p.name.startswith(PREFIX) and p not in planted)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGHUP], ids=["SIGKILL", "SIGHUP"])
def test_the_child_dies_with_the_probe_and_its_folder_goes(tmp_path: Path, data_dir: Path, sig: signal.Signals,
                                                           report) -> None:
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    planted = _plant(tmp)
    env = fault_env(TMPDIR=str(tmp))
    preset = micro_preset(tmp_path)
    argv = ["probe", "--config_file", str(preset), "--input_file", str(SHAKESPEARE), "--data_dir", str(data_dir),
            "--iters", str(ITERS), "--device", "cpu", "--dtype", "float32", "--json"]
    log = open(tmp_path / "probe.log", "wb")
    probe = subprocess.Popen([sys.executable, "-m", "gptwiz", *argv], cwd=tmp_path, env=env, stdout=log,
                             stderr=subprocess.STDOUT)
    log.close()
    try:
        scratch = wait_for(lambda: (_ours(tmp, planted) or [None])[0], timeout=120, proc=probe)
        assert scratch is not None, (tmp_path / "probe.log").read_text()
        assert stat.S_IMODE(scratch.stat().st_mode) == 0o700  # private: mkdtemp's
        run = scratch / "runs" / "probe"

        def training() -> int | None:
            try:
                status = json.loads((run / "status.json").read_text())
            except (OSError, ValueError):
                return None
            return status.get("pid") if status.get("iter", 0) >= 3 else None

        child = wait_for(training, timeout=120, proc=probe)
        assert child and _alive(child), (tmp_path / "probe.log").read_text()
        probe.send_signal(sig)
        code = probe.wait(timeout=60)
        t0 = time.monotonic()
        wait_for(lambda: not _alive(child), timeout=30)
        gone_after = time.monotonic() - t0
    finally:
        if probe.poll() is None:
            probe.kill()
            probe.wait()
    output = (tmp_path / "probe.log").read_text()
    assert "Traceback" not in output, output
    status = json.loads((run / "status.json").read_text()) if run.exists() else {}
    if sig == signal.SIGHUP:
        # The probe heard it: it stopped its child and removed its folder itself, then said so in one line.
        assert code == 130 and output.strip().splitlines()[-1] == "gptwiz probe: interrupted", (code, output)
        assert not scratch.exists()
    else:
        assert code == -signal.SIGKILL
        assert status.get("state") == "stopped" and status.get("iter", ITERS) < ITERS, status  # asked, it stopped
        assert scratch.exists()  # nothing could clean up: the next probe does
        # A folder whose probe is alive (its lock held) must survive that clean-up.
        alive = tmp / f"{PREFIX}alive"
        alive.mkdir(mode=0o700)
        holder = os.open(alive / "lock", os.O_CREAT | os.O_RDWR, 0o600)
        fcntl.flock(holder, fcntl.LOCK_EX)
        try:
            nxt = run_cli(["probe", "--config_file", str(preset), "--input_file", str(SHAKESPEARE), "--iters", "5"],
                          cwd=tmp_path, env=env)
            assert nxt.returncode == 2 and "--iters" in nxt.stderr, nxt.stderr  # refused, after cleaning up
            assert not scratch.exists() and alive.exists()
        finally:
            os.close(holder)
        alive.joinpath("lock").unlink()
        alive.rmdir()
    assert _ours(tmp, planted) == []  # no temporary folder of a probe left
    assert (tmp_path / "precious" / "keep.txt").read_text() == "keep me"
    assert (planted[0] / "probe-check" / "ckpt_last.pt").read_bytes() == b"not yours"
    how = {signal.SIGKILL: "SIGKILL (no clean-up runs)", signal.SIGHUP: "SIGHUP (the terminal closed)"}[sig]
    report(f"{how} of `gptwiz probe` while its child trains ({ITERS} iterations asked)", 1,
           f"the child ended {gone_after:.1f} s later"
           + (" (SIGTERM from PR_SET_PDEATHSIG: it stopped after its step); its folder, left behind, removed by the "
              "next probe, which kept one whose lock was held" if sig == signal.SIGKILL else
              "; the probe stopped it, removed its folder and exited 130 with one line"))
    if sig == signal.SIGKILL:
        report("the probe's temporary folder: another user's `gptwiz-probe-check-none/probe-check/` holding a "
               "run's files, and a symlink named like a probe's folder, in $TMPDIR", 2,
               "each probe trains in its own mkdtemp folder (mode 0700); the planted folder and the link's target "
               "untouched")
