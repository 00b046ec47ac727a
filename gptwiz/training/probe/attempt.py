"""One attempt of a probe: start the child trainer at one micro-batch size, follow its records while it trains,
stop it when asked or past the memory limit, and say how it ended.

The child runs in its own session, so a Ctrl-C in the terminal reaches only this process, which then stops the
child itself (SIGTERM: the trainer finishes its step and leaves; past a grace period it is killed).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gptwiz.common.errors import UsageError
from gptwiz.planning.verdict import probe_eta
from gptwiz.runs.jsonfile import read_json
from gptwiz.runs.metrics import MetricsReader
from gptwiz.runs.paths import RunPaths, run_paths
from gptwiz.training.probe.memory import nvml_memory, process_rss
from gptwiz.training.probe.options import Attempt, ProbeOptions, ProbeProgress
from gptwiz.training.probe.plan import ProbePlan

CHILD_MODULE = "gptwiz.training.probe.child"
STOP_GRACE_S = 20.0  # a trainer asked to stop finishes its step first; a big model's step can take a while
_POLL_S = 0.2

_OOM_MARKERS = ("out of memory", "outofmemoryerror", "can't allocate memory", "cannot allocate memory",
                "memoryerror", "defaultcpuallocator")


def is_oom_message(text: str | None) -> bool:
    """Whether an error message is an out-of-memory's, on a card or on the CPU."""
    return bool(text) and any(marker in text.lower() for marker in _OOM_MARKERS)


@dataclass
class AttemptRun:
    """What one attempt left: its outcome, the trainer's records and files, and what this process measured."""
    attempt: Attempt
    records: list[dict[str, Any]] = field(default_factory=list)
    config: dict[str, Any] | None = None
    detail: dict[str, Any] = field(default_factory=dict)   # the child's own figures (spec's detail file)
    status: dict[str, Any] = field(default_factory=dict)
    nvml_peak: int | None = None
    startup_s: float | None = None


@dataclass
class _AttemptFiles:
    paths: RunPaths     # the run folder the child trains in
    spec: Path
    detail: Path
    log: Path


def run_attempt(opts: ProbeOptions, plan: ProbePlan, batch_size: int, grad_accum: int, number: int, scratch: Path,
                on_progress: Callable[[ProbeProgress], None], should_cancel: Callable[[], bool]) -> AttemptRun:
    """Attempt number `number`, at `batch_size` x `grad_accum`; raises UsageError if the child refused the
    settings."""
    files = _prepare(opts, plan, batch_size, grad_accum, number, scratch)
    run = AttemptRun(Attempt(batch_size, grad_accum, "failed", 0))
    follow = _follower(run, MetricsReader(files.paths.metrics), opts.iters, number, on_progress)
    with open(files.log, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", CHILD_MODULE, "--child", str(files.spec)],
                                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
        try:
            killed_for = _supervise(proc, run, follow, opts, plan, should_cancel)
        finally:
            stop_child(proc, STOP_GRACE_S)
    follow()
    run.config = read_json(files.paths.config)
    run.status = read_json(files.paths.status) or {}
    run.detail = read_json(files.detail) or {}
    run.attempt.iters = len(run.records)
    if run.attempt.outcome == "cancelled":
        return run
    if "usage_error" in run.detail:
        raise UsageError(run.detail["usage_error"])
    _settle_outcome(run, killed_for, proc.returncode, files.log)
    return run


def _prepare(opts: ProbeOptions, plan: ProbePlan, batch_size: int, grad_accum: int, number: int,
             scratch: Path) -> _AttemptFiles:
    """A clean run folder (the named run's, or one in `scratch`), and the child's spec written."""
    paths = plan.paths or run_paths(scratch / "runs", "probe")
    paths.root.mkdir(parents=True, exist_ok=True)
    # A previous attempt's or probe's files (the folder holds nothing else): the dashboard starts over.
    for stale in (paths.metrics, paths.status, paths.probe):
        stale.unlink(missing_ok=True)
    files = _AttemptFiles(paths=paths, spec=scratch / f"spec-{number}.json", detail=scratch / f"detail-{number}.json",
                          log=scratch / f"child-{number}.log")
    # The trainer's settings (TrainOptions' fields): gptwiz.training.probe.child makes them a probe's options.
    settings = dict(
        config_file=opts.config_file, model_name=paths.name, dataset_dir=plan.dataset_dir, max_iters=opts.iters,
        learning_rate=plan.preset.train.learning_rate, optimizer=plan.preset.train.optimizer, batch_size=batch_size,
        dropout=plan.preset.model.dropout,
        block_size=plan.preset.model.block_size, grad_accum=grad_accum, device=opts.device, dtype=opts.dtype, compile=opts.compile, seed=opts.seed,
        runs_dir=str(paths.root.parent.resolve()), data_dir=str(Path(opts.data_dir).resolve()), quiet=True)
    files.spec.write_text(json.dumps({"settings": settings, "full_iters": plan.full_iters,
                                      "detail_path": str(files.detail), "parent_pid": os.getpid()}))
    return files


def _follower(run: AttemptRun, reader: MetricsReader, iters: int, number: int,
              on_progress: Callable[[ProbeProgress], None]) -> Callable[[], None]:
    """A function that reads the child's new probe records into `run`, reporting each to `on_progress`."""
    started = time.monotonic()
    a = run.attempt

    def follow() -> None:
        for rec in reader.read_new():
            if rec.get("type") != "probe":
                continue
            if not run.records and run.startup_s is None:
                run.startup_s = max(0.0, time.monotonic() - started - float(rec.get("elapsed_s", 0.0)))
            run.records.append(rec)
            eta = probe_eta([float(r.get("dt_s") or 0.0) for r in run.records], iters)
            on_progress(ProbeProgress(iter=int(rec["iter"]), iters=iters, batch_size=a.batch_size,
                                      grad_accum=a.grad_accum, attempt=number, loss=rec.get("loss"),
                                      tokens_per_sec=rec.get("tokens_per_sec"),
                                      peak_mem_bytes=rec.get("peak_mem_bytes"),
                                      eta_s=eta.seconds if eta else None, sec_per_iter=eta.sec_per_iter if eta else None,
                                      eta_rough=eta.rough if eta else False))

    return follow


def _supervise(proc: subprocess.Popen[bytes], run: AttemptRun, follow: Callable[[], None], opts: ProbeOptions,
               plan: ProbePlan, should_cancel: Callable[[], bool]) -> str | None:
    """Follow the child until it ends, is cancelled (the attempt's outcome says so), or crosses the memory limit
    (killed: the reason is returned)."""
    limit = int(opts.memory_limit_gb * 2**30) if opts.memory_limit_gb else None
    cuda = plan.device.startswith("cuda")
    while proc.poll() is None:
        follow()
        if cuda:
            info = nvml_memory(plan.device)
            if info is not None:
                run.nvml_peak = max(run.nvml_peak or 0, int(info.used))
        if limit:
            # The trainer's own figure (CUDA: reserved + context; CPU: peak RSS), and on CPU the RSS
            # between records too, since one step can allocate far past the limit.
            peak = max([int(r.get("peak_mem_bytes") or 0) for r in run.records[-1:]]
                       + ([] if cuda else [process_rss(proc.pid)]))
            if peak > limit:
                proc.kill()
                proc.wait()
                return f"peak memory {peak / 2**30:.2f} GB crossed --memory_limit_gb {opts.memory_limit_gb:g}"
        if should_cancel():
            stop_child(proc, STOP_GRACE_S)
            run.attempt.outcome = "cancelled"
            return None
        time.sleep(_POLL_S)
    return None


def stop_child(proc: subprocess.Popen[bytes], grace: float) -> None:
    """SIGTERM asks the trainer to finish its step and leave; past the grace period it is killed."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(grace)
    except (subprocess.TimeoutExpired, KeyboardInterrupt):  # too slow, or a second Ctrl-C: no more waiting
        proc.kill()
        proc.wait()


def _settle_outcome(run: AttemptRun, killed_for: str | None, returncode: int | None, log_path: Path) -> None:
    """The attempt's outcome and detail, from how the child ended and what it left."""
    a = run.attempt
    state = run.detail.get("state") or run.status.get("state")
    error = run.detail.get("error") or run.status.get("error")
    if killed_for:
        a.outcome, a.detail = "oom", killed_for
    elif state == "finished":
        a.outcome = "ok"
    elif state == "diverged":
        a.outcome, a.detail = "diverged", error
    elif state == "stopped":  # asked to stop from outside (`gptwiz stop NAME`, a SIGTERM): cancelled, not failed
        a.outcome = "cancelled"
        a.detail = f"the trainer was stopped (gptwiz stop or SIGTERM) after {len(run.records)} iterations"
    elif is_oom_message(error):
        a.outcome, a.detail = "oom", error
    elif returncode == -signal.SIGKILL:
        a.outcome = "oom"
        a.detail = "the trainer was killed (SIGKILL), most likely by the kernel's out-of-memory killer"
    else:
        tail = log_path.read_text(errors="replace").strip().splitlines()[-1:] if log_path.exists() else []
        a.outcome = "failed"
        a.detail = error or (tail[0] if tail else f"the trainer exited with status {returncode}")
