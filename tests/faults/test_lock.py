"""Two trainers on one run name: the second refuses in one line and the first goes on untouched; a lock left
by a dead trainer (or naming a pid that now belongs to another process) is taken over; to viewers and `gptwiz stop`
only the process holding the lock is the run's trainer."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from conftest import REPO, assert_one_line_error, run_cli

from faults.support import (
    every_line_is_json,
    fault_env,
    micro_preset,
    one_line,
    start,
    status,
    train_args,
    train_iters,
    wait_for,
)
from gptwiz.common.errors import UsageError
from gptwiz.runs.launch import request_stop
from gptwiz.runs.lock import RunLock, lock_owner
from gptwiz.runs.paths import RunPaths
from gptwiz.runs.status import effective_state

_CONTENDER = textwrap.dedent("""
    import os, sys, time
    from pathlib import Path
    from gptwiz.common.errors import UsageError
    from gptwiz.runs.lock import RunLock
    from gptwiz.runs.paths import RunPaths
    go = Path(sys.argv[2])
    while not go.exists():
        time.sleep(0.001)
    lock = RunLock(RunPaths(Path(sys.argv[1])))
    try:
        lock.acquire()
    except UsageError as exc:
        print("refused", exc)
        sys.exit(0)
    print("got")
    sys.stdout.flush()
    time.sleep(0.5)
    lock.release()
""")


def test_many_processes_racing_for_one_lock_one_wins(tmp_path: Path, report) -> None:
    run = tmp_path / "runs" / "race"
    run.mkdir(parents=True)
    rounds, contenders = 5, 6
    env = dict(os.environ, PYTHONPATH=str(REPO))
    for n in range(rounds):
        go = tmp_path / f"go{n}"
        procs = [subprocess.Popen([sys.executable, "-c", _CONTENDER, str(run), str(go)], env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(contenders)]
        time.sleep(0.5)  # let them all reach the start line
        go.touch()
        outs = [p.communicate(timeout=60) for p in procs]
        got = [o for o, _ in outs if o.startswith("got")]
        assert len(got) == 1, outs
        assert all(o.startswith(("got", "refused")) and not e for o, e in outs), outs
        assert not (run / "lock").exists()  # released by the winner
    report("processes racing for one run's lock at the same instant", rounds * contenders,
           f"exactly one of {contenders} took it in each of {rounds} rounds; the others refused")


def _dead_pid() -> int:
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(proc.stdout)


@pytest.mark.parametrize("owner", ["dead trainer's pid", "pid reused by a live process", "garbage"])
def test_a_stale_lock_is_taken_over(trained_copy: Path, owner: str, report) -> None:
    run = trained_copy / "runs" / "base"
    content = {"dead trainer's pid": str(_dead_pid()), "pid reused by a live process": str(os.getpid()),
               "garbage": "not a pid\n"}[owner]
    (run / "lock").write_text(content)
    proc = run_cli(["train", "--model_name", "base", "--resume", "--max_iters", "4", "--quiet"], cwd=trained_copy,
                   env=fault_env())
    assert proc.returncode == 0, proc.stderr
    assert status(run)["state"] == "finished" and train_iters(run) == list(range(1, 5))
    assert not (run / "lock").exists()
    report(f"stale lock file ({owner}) on `--resume`", 1, "taken over; the run resumed and finished; lock removed")


def test_a_second_trainer_on_a_running_run_refuses_in_one_line(tmp_path: Path, data_dir: Path, report) -> None:
    preset = micro_preset(tmp_path, max_iters=400, eval_interval=100)
    run = tmp_path / "runs" / "busy"
    first = start(train_args(preset, "busy", "--ckpt_interval_s", "0.5", data_dir=data_dir), tmp_path,
                  log=tmp_path / "first.log")
    try:
        wait_for(lambda: (run / "ckpt_last.pt").exists() and status(run).get("pid") == first.pid, proc=first)
        resume = run_cli(["train", "--model_name", "busy", "--resume", "--quiet"], cwd=tmp_path, env=fault_env())
        assert_one_line_error(resume, "busy", f"process {first.pid}")
        again = run_cli(train_args(preset, "busy", data_dir=data_dir), cwd=tmp_path, env=fault_env())
        assert_one_line_error(again, "busy", "already exists")
        assert first.poll() is None  # untouched
    finally:
        if first.poll() is None:
            first.terminate()
        first.wait(timeout=120)
    assert status(run)["state"] == "stopped" and every_line_is_json(run / "metrics.jsonl")
    iters = train_iters(run)
    assert iters == list(range(1, len(iters) + 1))  # one writer only: no record twice
    report("a second `train --resume` / fresh `train` on a run being trained", 2,
           "exit 2, one line naming the run (and the owner's pid); the first trainer carried on")


def test_two_trainers_started_together_one_trains(tmp_path: Path, data_dir: Path, report) -> None:
    preset = micro_preset(tmp_path, max_iters=10, eval_interval=5)
    trials = 2
    for n in range(trials):
        name = f"twin{n}"
        procs = [subprocess.Popen([sys.executable, "-m", "gptwiz", *train_args(preset, name, data_dir=data_dir)],
                                  cwd=tmp_path, env=fault_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True) for _ in range(2)]
        outs = [(p.wait(timeout=300), *p.communicate()) for p in procs]
        codes = sorted(rc for rc, _, _ in outs)
        assert codes == [0, 2], outs
        refusal = next(err for rc, _, err in outs if rc == 2)
        assert len(one_line(refusal)) == 1 and "Traceback" not in refusal and "already" in refusal, refusal
        run = tmp_path / "runs" / name
        assert train_iters(run) == list(range(1, 11)) and status(run)["state"] == "finished"
    report("two `gptwiz train` of one new run name started at the same moment", trials,
           "one trained to the end; the other refused in one line (exit 2); metrics from one writer")


def test_only_the_lock_holder_is_the_runs_trainer(tmp_path: Path, report) -> None:
    """lock_owner, what viewers, `gptwiz stop` and the probe ask: a pid only while a process holds the lock."""
    paths = RunPaths(tmp_path / "runs" / "r")
    paths.root.mkdir(parents=True)
    assert lock_owner(paths) is None  # no lock file
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        running = {"state": "running", "pid": bystander.pid}
        paths.status.write_text(json.dumps(running))
        for content in (str(bystander.pid), str(os.getpid()), "not a pid\n", ""):
            paths.lock.write_text(content)  # left by a trainer that died; the pid in it is alive or garbage
            assert lock_owner(paths) is None and effective_state(running, paths) == "failed"
            with pytest.raises(UsageError, match="not running"):
                request_stop(paths)
        assert bystander.poll() is None  # never signalled: it does not hold the lock
    finally:
        bystander.kill()
        bystander.wait()
    lock = RunLock(paths)
    lock.acquire()  # taken over from the stale file
    assert lock_owner(paths) == os.getpid()
    assert effective_state({"state": "running", "pid": 1}, paths) == "running"
    lock.release()
    assert lock_owner(paths) is None and not paths.lock.exists()
    report("a lock file naming a live process that does not hold the lock (also garbage, empty)", 4,
           "viewers show the run failed; `gptwiz stop` refuses and signals nothing")


def test_asking_who_holds_the_lock_never_refuses_a_starter(tmp_path: Path, report) -> None:
    paths = RunPaths(tmp_path / "runs" / "r")
    paths.root.mkdir(parents=True)
    done = threading.Event()
    seen: set[int | None] = set()

    def viewer() -> None:
        while not done.is_set():
            seen.add(lock_owner(paths))

    thread = threading.Thread(target=viewer)
    thread.start()
    rounds = 300
    try:
        for _ in range(rounds):
            lock = RunLock(paths)
            lock.acquire()  # a UsageError here would be a starter refused because a viewer looked
            lock.release()
    finally:
        done.set()
        thread.join()
    assert seen <= {None, os.getpid()}
    report("a viewer asking who holds the lock while a trainer takes and releases it", rounds,
           "the trainer took it every time; the viewer saw only it or nobody")
