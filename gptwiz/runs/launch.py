"""Training that outlives the terminal: `gptwiz train` in its own process session, and the graceful stop.

The detached trainer is started with `start_new_session=True`, so neither the app quitting nor the SSH
connection dropping (SIGHUP to the terminal's session) reaches it; it writes the run folder as any
trainer does, and its console output goes to runs/<name>/console.log. It is never started through a shell.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from gptwiz.common.errors import UsageError
from gptwiz.common.files import open_append, write_failure
from gptwiz.common.inert import quote
from gptwiz.common.safe_read import UnreadableFile
from gptwiz.runs.jsonfile import read_json
from gptwiz.runs.lock import lock_owner
from gptwiz.runs.paths import RunPaths, run_paths
from gptwiz.runs.restore import missing_folders, remove_empty_folders
from gptwiz.runs.status import effective_state, read_status, write_status


@dataclass
class DetachedRun:
    name: str
    paths: RunPaths
    pid: int
    argv: list[str]
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False, compare=False)
    started_at: float = 0.0  # time.time() at launch

    @property
    def console_log(self) -> Path:
        return self.paths.console


def strip_detach(argv: Sequence[str]) -> list[str]:
    """The same command line without --detach (either spelling), for the detached child to run."""
    return [a for a in argv if a not in ("--detach",)]


def train_command(train_args: Sequence[str]) -> list[str]:
    """`gptwiz train ARGS` as this Python runs it, whichever way gptwiz was installed."""
    args = list(train_args)
    if args[:1] != ["train"]:
        args = ["train", *args]
    if "--quiet" not in args:
        args.append("--quiet")  # plain lines into console.log, not a live display nobody sees
    return [sys.executable, "-m", "gptwiz", *args]


def launch_detached(train_args: Sequence[str], *, runs_dir: Path | str, name: str,
                    cwd: Path | str | None = None, env: dict[str, str] | None = None) -> DetachedRun:
    """Start `gptwiz train ARGS` in a new session with stdio on runs/<name>/console.log; returns at once."""
    paths = run_paths(runs_dir if cwd is None or Path(runs_dir).is_absolute() else Path(cwd) / runs_dir, name)
    made = missing_folders(paths.root)
    argv = train_command(train_args)
    started_at = time.time()
    try:
        paths.root.mkdir(parents=True, exist_ok=True)
        # Never through a symlink planted as console.log: the trainer's output would land in the file it names.
        out = open_append(paths.console)
    except OSError as exc:  # a full or read-only disk: nothing started, no folder left
        remove_empty_folders(made)
        raise UsageError(f"cannot start run {quote(name)}: {write_failure(exc) or exc}") from None
    with out:
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out.fileno(),
                                stderr=subprocess.STDOUT, start_new_session=True, close_fds=True)
    return DetachedRun(name=name, paths=paths, pid=proc.pid, argv=argv, process=proc, started_at=started_at)


@dataclass(frozen=True)
class StartOutcome:
    started: bool        # the trainer wrote status.json with its pid
    exit_code: int | None
    message: str


def wait_for_start(run: DetachedRun, timeout: float = 60.0, poll_s: float = 0.2,
                   should_cancel: Callable[[], bool] | None = None) -> StartOutcome:
    """Until the trainer has written its status (it is training) or exited (it failed before starting)."""
    proc = run.process
    assert proc is not None, "wait_for_start needs the run this process launched"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _status_written_by(run):
            status = read_json(run.paths.status) or {}
            return StartOutcome(True, None, f"run {run.name} is {status.get('state', 'starting')} "
                                            f"(pid {status.get('pid', proc.pid)})")
        code = proc.poll()
        if code is not None:
            if _status_written_by(run):  # it started, and ended already
                continue
            return StartOutcome(False, code, console_tail(run.paths) or f"the trainer exited with status {code}")
        if should_cancel is not None and should_cancel():
            return StartOutcome(False, None, "cancelled while the trainer was starting (it goes on in the background)")
        time.sleep(poll_s)
    return StartOutcome(False, None, f"the trainer (pid {proc.pid}) has not written its status after {timeout:.0f}s; "
                                     f"see {run.console_log}")


def _status_written_by(run: DetachedRun) -> bool:
    """status.json written by this launch: by its process, or (with --nproc) by the rank-0 worker it started,
    in which case the file is newer than the launch (a resumed run's old status is older)."""
    status = read_json(run.paths.status)
    if not status:
        return False
    if status.get("pid") == run.pid:  # (an old, damaged status.json may hold anything there)
        return True
    try:
        return run.paths.status.stat().st_mtime >= run.started_at
    except FileNotFoundError:
        return False


def console_tail(paths: RunPaths, lines: int = 3) -> str:
    try:
        text = (paths.console).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    kept = [l for l in text.splitlines() if l.strip()]
    return " | ".join(kept[-lines:])


def request_stop(paths: RunPaths) -> int:
    """The graceful stop: SIGTERM to the trainer, which finishes its step, checkpoints and records 'stopped'.
    Only the process holding the run's lock is signalled: a pid in status.json may since belong to another."""
    try:
        status = read_status(paths)
    except UnreadableFile as exc:  # a running trainer rewrites it within a second; nothing is signalled on it
        raise UsageError(f"run {quote(paths.name)}: its {exc.path.name} {exc.reason}; nothing was signalled") from None
    if status is None:
        raise UsageError(f"run {quote(paths.name)} has no status.json in {paths.root}: it has not started, nothing to stop")
    state = effective_state(status, paths)
    if state != "running":
        raise UsageError(f"run {quote(paths.name)} is not running (state: {state}); nothing to stop")
    pid = lock_owner(paths)
    if pid is None:
        raise UsageError(f"run {quote(paths.name)}: its trainer has just ended; nothing to stop")
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        raise UsageError(f"run {quote(paths.name)}: its trainer (pid {pid}) has just ended; nothing to stop") from None
    except PermissionError:
        raise UsageError(f"run {quote(paths.name)}: not allowed to signal its trainer (pid {pid}, another user's?)") from None
    return pid


def wait_for_state_change(paths: RunPaths, timeout: float, poll_s: float = 0.2) -> str:
    """The run's state once it is no longer running, or 'running' if `timeout` passes first."""
    deadline = time.monotonic() + timeout
    while True:
        state = effective_state(read_json(paths.status), paths)
        if state != "running" or time.monotonic() >= deadline:
            return state
        time.sleep(poll_s)


# --- several processes on this machine: torchrun -------------------------------------------------

# Ranks other than 0 cannot write the run folder; a failing one leaves its error in this folder for the launcher.
ERROR_DIR_ENV = "GPTWIZ_RANK_ERROR_DIR"


def collect_rank_errors(folder: str) -> list[str]:
    errors = []
    for name in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
        if name.endswith(".err"):
            with open(os.path.join(folder, name), encoding="utf-8") as f:
                errors.append(f"{name[:-4].replace('rank', 'rank ')}: {f.read().strip()}")
    return errors


def launch_command(nproc: int, argv: Sequence[str]) -> list[str]:
    """The torchrun command line that runs `gptwiz <argv>` in nproc processes on this machine."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
            "-m", "gptwiz", *argv]


def check_nproc(nproc: int, device: str) -> None:
    if nproc < 1:
        raise UsageError(f"invalid --nproc {nproc}: must be 1 or more")
    if device in ("auto", "cuda") or device.startswith("cuda"):
        import torch  # lazy: only to count the cards, never on the --help path

        if torch.cuda.is_available():
            count = torch.cuda.device_count()
            if nproc > count:
                raise UsageError(f"--nproc {nproc} is more than the {count} GPU(s) on this machine "
                                 f"(use --nproc {count} or fewer, or --device cpu)")
        elif device != "auto":
            raise UsageError(f"--device {device}: no CUDA GPU is available here (valid: auto, cpu)")


def _without_nproc(argv: Sequence[str]) -> list[str]:
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg == "--nproc":
            skip = True
            continue
        if arg.startswith("--nproc="):
            continue
        out.append(arg)
    return out


def launch_torchrun(nproc: int, argv: Sequence[str], runs_dir: str, name: str) -> int:
    """`gptwiz train --nproc N`, validated by the caller: the same command in N processes under torchrun.

    A rank that dies makes torchrun end the others; its error, which that rank could not write into the
    run folder itself, is recorded here in status.json as the run's failure.
    """
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="gptwiz-ranks-") as error_dir:
        env = dict(os.environ, **{ERROR_DIR_ENV: error_dir})
        # N processes on this machine's cores: without this each would start a thread per core.
        env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
        proc = subprocess.Popen(launch_command(nproc, _without_nproc(argv)), env=env)
        previous = {sig: signal.signal(sig, lambda s, f: proc.send_signal(s)) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            rc = proc.wait()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        errors = collect_rank_errors(error_dir)
    paths = run_paths(runs_dir, name)
    status = read_json(paths.status) or {}
    # Only a status.json written by this launch's trainer says how it ended: one that failed before its first
    # step put back the folder's old one (or left none), which must be neither trusted nor rewritten.
    try:
        written_now = paths.status.stat().st_mtime >= started - 1.0  # (file times can lag the clock a little)
    except OSError:
        written_now = False
    if rc == 0 or (written_now and status.get("state") in ("stopped", "finished", "diverged")):
        return 0 if status.get("state") != "diverged" else 3
    message = (errors[0] if errors else written_now and status.get("error")) or \
        f"a training process exited with status {rc}"
    if written_now:
        status.update(state="failed", error=message)
        try:
            write_status(paths, status)
        except OSError:
            pass  # (a full disk: the message below still says what failed)
    print(f"gptwiz train: failed: {message}", file=sys.stderr)
    return 1
