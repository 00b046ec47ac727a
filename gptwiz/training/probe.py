"""`gptwiz probe`: the guide's 100-iteration validation run, measured and judged.

The real trainer (gptwiz.training.trainer, with TrainOptions.probe: no evaluation, no checkpoints, "probe"
records) runs in a child process, so that its memory is measured alone and an out-of-memory or a
crash cannot take the caller down. This module starts the child, follows its metrics.jsonl while it
trains, retries at half the micro-batch after an out-of-memory, and hands the numbers to
gptwiz.planning.verdict for the judgement.

The child is `python -m gptwiz.training.probe --child SPEC.json` (see `_child_main`); it dies with the probe,
however the probe ends (`_die_with_parent`). Each probe keeps its files in a private temporary folder
(`scratch_folder`), and removes those of probes killed before they could. For tests, the child
reads the fault-injection variable GPTWIZ_PROBE_FAKE_OOM_ABOVE_BATCH=N (gptwiz.common.faults): every forward
pass of a micro-batch larger than N raises the CUDA out-of-memory error, on any device.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from gptwiz.common import fmt
from gptwiz.common.errors import UsageError
from gptwiz.common.faults import FAKE_OOM_ENV, fake_oom_above_batch
from gptwiz.planning.knobs import Advice
from gptwiz.planning.presets import BOUNDS, check_bound, shown
from gptwiz.planning.timing import from_probe_rate, preset_plan
from gptwiz.planning.verdict import (
    CurveStats,
    Judgement,
    ProbeFacts,
    Timing,
    curve_stats,
    judge,
    probe_eta,
    shrink_batch,
    timing,
    warmup_iterations,
)
from gptwiz.runs.folder import MetricsReader, RunPaths, lock_owner, read_json, run_paths

MIN_ITERS = 10
MAX_MEMORY_LIMIT_GB = 1e6  # more than any machine has: a bigger figure is a slip
_POLL_S = 0.2
_STOP_GRACE_S = 20.0  # a trainer asked to stop finishes its step first; a big model's step can take a while

_OOM_MARKERS = ("out of memory", "outofmemoryerror", "can't allocate memory", "cannot allocate memory",
                "memoryerror", "defaultcpuallocator")


@dataclass
class ProbeOptions:
    """What to probe. None: the preset's value."""
    config_file: str | None = None
    input_file: str | None = None
    dataset_dir: str | None = None
    iters: int = 100
    batch_size: int | None = None
    block_size: int | None = None
    grad_accum: int | None = None
    learning_rate: float | None = None
    max_iters: int | None = None        # the full run's length, for the projection (default: the preset's)
    device: str = "auto"
    dtype: str = "auto"
    compile: bool | None = None         # default: whatever the full run would do
    model_name: str | None = None       # with a name: runs/<name>/ gets the probe's records and probe.json
    memory_limit_gb: float | None = None
    seed: int = 1337
    runs_dir: str = "runs"
    data_dir: str = "data"


@dataclass
class ProbeProgress:
    """One update for a progress display: after each iteration, and at each retry."""
    iter: int
    iters: int
    batch_size: int
    grad_accum: int
    attempt: int
    loss: float | None = None
    tokens_per_sec: float | None = None
    peak_mem_bytes: int | None = None
    message: str | None = None
    eta_s: float | None = None          # what is left of this attempt: iterations left x the warm step time
    sec_per_iter: float | None = None   # the warm step time so far
    eta_rough: bool = False             # only the slow first steps (compilation) measured yet: an overestimate


@dataclass
class Attempt:
    batch_size: int
    grad_accum: int
    outcome: str       # "ok", "oom", "diverged", "failed", "cancelled" (should_cancel, or the trainer stopped)
    iters: int
    detail: str | None = None


@dataclass
class ProbeResult:
    verdict: str                       # "pass", "warn", "fail", or "cancelled" (stopped early: no verdict, no advice)
    advice: list[Advice]               # JSON: "advice" as printed, "advice_changes" the options each changes
    reasons: list[str]
    iters: int                         # iterations the final attempt completed
    iters_requested: int
    losses: list[float]
    loss_first: float | None
    loss_last: float | None
    loss_slope: float | None
    relative_drop: float | None
    loss_noise: float | None
    warmup_iters: int | None
    tokens_per_sec: float | None
    sec_per_iter: float | None
    warmup_s: float | None
    startup_s: float | None
    projected_full_run_s: float | None
    full_run_iters: int
    peak_memory_bytes: int | None
    memory_kind: str                   # "cuda" or "cpu_rss"
    device_memory_total_bytes: int | None
    estimate_bytes: int | None
    batch_size: int
    grad_accum: int
    block_size: int
    learning_rate: float
    preset: str
    device: str | None
    dtype: str | None
    compile: bool | None
    cuda: dict[str, int] | None        # max_memory_allocated, max_memory_reserved, nvml_used_peak (bytes)
    attempts: list[Attempt]
    run_dir: str | None
    error: str | None = None
    loss_verdict: str | None = None    # the loss curve's: "falls", "flat", "rising", "erratic", "diverged"
    loss_unjudged_reason: str | None = None  # why loss_verdict is None (cancelled, still in warm-up, ...)
    input_file: str | None = None      # the data probed, as given
    dataset_dir: str | None = None

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        for key, value in out.items():  # NaN is not JSON
            if isinstance(value, float) and not math.isfinite(value):
                out[key] = None
        out["advice"] = [str(a) for a in self.advice]
        out["advice_changes"] = [a.to_json() for a in self.advice]
        return out


# --- the child -------------------------------------------------------------------------------------

def _inject_fake_oom(above: int) -> None:
    """Make every forward pass of more than `above` sequences fail as a CUDA out-of-memory would."""
    import torch

    from gptwiz.model.gpt import GPT

    real_forward = GPT.forward

    def forward(self: Any, idx: Any, targets: Any = None) -> Any:
        if idx.shape[0] > above:
            raise torch.cuda.OutOfMemoryError(
                f"CUDA out of memory (injected by {FAKE_OOM_ENV}={above} for a micro-batch of {idx.shape[0]})")
        return real_forward(self, idx, targets)

    GPT.forward = forward  # type: ignore[method-assign]


_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
_PARENT_CHECK_S = 0.5


def _die_with_parent(parent_pid: int) -> None:
    """The child ends when the probe that started it does, however the probe ends (SIGKILL included, which runs
    no clean-up there): on Linux the kernel sends the child SIGTERM as its parent dies (PR_SET_PDEATHSIG);
    everywhere, a thread sees it re-parented and does the same. SIGTERM makes the trainer stop after its step;
    one that does not stop within the grace period is ended."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
        except (OSError, AttributeError):  # no prctl in this libc: the thread below still watches
            pass

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(_PARENT_CHECK_S)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(_STOP_GRACE_S)
        os._exit(128 + int(signal.SIGTERM))

    # Started after prctl, so that a parent which died before it (no death signal then) is seen at once.
    threading.Thread(target=watch, name="probe-parent-watch", daemon=True).start()


def _child_main(spec_path: str) -> int:
    """Run the trainer as a probe, then leave what only this process can know in the spec's detail file."""
    from gptwiz.common.atomic import atomic_write_json
    from gptwiz.training.device import cpu_peak_rss_bytes, resolve_compile, resolve_device, resolve_dtype
    from gptwiz.training.options import TrainOptions
    from gptwiz.training.trainer import train

    spec = json.loads(Path(spec_path).read_text())
    if spec.get("parent_pid"):
        _die_with_parent(int(spec["parent_pid"]))
    opts = TrainOptions(**spec["options"])
    fake_oom_above = fake_oom_above_batch()
    if fake_oom_above is not None:
        _inject_fake_oom(fake_oom_above)
    # Compile as the full run would, not as a run of `iters` iterations would: that is what is measured.
    try:
        device = resolve_device(opts.device)
        compile_flag = resolve_compile(opts.compile, device, resolve_dtype(opts.dtype, device), int(spec["full_iters"]))
        opts = replace(opts, compile=compile_flag)
        result = train(opts)
    except UsageError as exc:
        atomic_write_json(spec["detail_path"], {"usage_error": str(exc)})
        return 2
    detail: dict[str, Any] = {"state": result.state, "error": result.error}
    if device.startswith("cuda"):
        import torch

        detail.update(max_memory_allocated=int(torch.cuda.max_memory_allocated(device)),
                      max_memory_reserved=int(torch.cuda.max_memory_reserved(device)),
                      device_memory_total=int(torch.cuda.get_device_properties(device).total_memory))
    else:
        detail["peak_rss"] = cpu_peak_rss_bytes()
    atomic_write_json(spec["detail_path"], detail)
    return result.exit_code


# --- the parent ------------------------------------------------------------------------------------

def is_oom_message(text: str | None) -> bool:
    return bool(text) and any(marker in text.lower() for marker in _OOM_MARKERS)


def _smaller_preset(name: str) -> str | None:
    from gptwiz.planning.presets import PRESET_ORDER

    if name in PRESET_ORDER and PRESET_ORDER.index(name) > 0:
        return PRESET_ORDER[PRESET_ORDER.index(name) - 1]
    return None


@dataclass
class _Plan:
    """The settled settings of a probe, before its first attempt."""
    preset: Any                 # gptwiz.planning.presets.Preset with the overrides applied
    dataset_dir: str
    full_iters: int
    paths: RunPaths | None      # the named run's folder, if any
    device: str                 # resolved without creating a CUDA context here
    preset_learning_rate: float # the preset's own rate, before --learning_rate: the advice may go back to it


def _plan(opts: ProbeOptions, scratch: Path) -> _Plan:
    """Validate everything before starting anything; a UsageError names the bad value. `scratch`: the probe's
    private temporary folder."""
    from gptwiz.training.device import resolve_device
    from gptwiz.training.options import (
        TrainOptions,
        check_options,
        holds_only_a_probe,
        resolve_data,
        resolve_run_config,
    )

    if not isinstance(opts.iters, int) or opts.iters < MIN_ITERS:
        raise UsageError(f"invalid --iters {shown(opts.iters)}: a probe needs at least {MIN_ITERS} iterations to "
                         "judge a loss curve")
    most = BOUNDS["max_iters"].high  # the probe's iterations are its trainer's max_iters
    if opts.iters > most:
        raise UsageError(f"invalid --iters {shown(opts.iters)}: must be a whole number from {MIN_ITERS} to {most}")
    if opts.memory_limit_gb is not None and not 0 < opts.memory_limit_gb <= MAX_MEMORY_LIMIT_GB:
        raise UsageError(f"invalid --memory_limit_gb {shown(opts.memory_limit_gb)}: must be a number of GB above 0 "
                         f"and at most {MAX_MEMORY_LIMIT_GB:g}")
    paths = None
    if opts.model_name is not None:
        paths = run_paths(opts.runs_dir, opts.model_name)
        if paths.root.exists() and any(paths.root.iterdir()) and not holds_only_a_probe(paths):
            raise UsageError(f"run '{opts.model_name}' already exists in {paths.root} and is not a probe; "
                             "choose another --model_name for the probe")
        owner = lock_owner(paths)
        if owner:
            raise UsageError(f"run '{opts.model_name}' is being probed or trained by process {owner} right now; "
                             "wait for it or choose another --model_name")
    if opts.max_iters is not None and not (isinstance(opts.max_iters, int) and opts.max_iters > 0):
        raise UsageError(f"invalid --max_iters {shown(opts.max_iters)}: must be a positive whole number")
    check_bound("max_iters", opts.max_iters)
    # The trainer's own validation, for a folder that does not exist (it writes nothing but the token cache).
    # dtype "auto" would ask CUDA for bf16 support, which creates a CUDA context in this process, holding
    # memory the child may need; the child resolves it instead.
    check = TrainOptions(config_file=opts.config_file, model_name="probe-check", input_file=opts.input_file,
                         dataset_dir=opts.dataset_dir, max_iters=opts.iters, learning_rate=opts.learning_rate,
                         batch_size=opts.batch_size, block_size=opts.block_size, grad_accum=opts.grad_accum,
                         device=opts.device, dtype="float32" if opts.dtype == "auto" else opts.dtype, compile=False,
                         seed=opts.seed, runs_dir=str(scratch / "check"),  # (never made: nothing is written there)
                         data_dir=opts.data_dir, probe=True)
    from gptwiz.planning.presets import load_preset

    check_options(check)  # every number in its range, before the refusal let through below can hide one
    try:
        cfg, _ = resolve_run_config(check)
        dataset_dir = cfg.data["dataset_dir"]
    except UsageError:
        # The trainer refuses data shorter than one block as bad input; to the probe it is a verdict
        # (fail, with a block size that fits), so only that refusal is let through, to _data_too_small.
        block = opts.block_size or load_preset(opts.config_file).model.block_size
        dataset_dir = resolve_data(check)["dataset_dir"]
        if _data_too_small(dataset_dir, block) is None:
            raise
    own = load_preset(opts.config_file)
    preset = own.with_overrides(
        learning_rate=opts.learning_rate, batch_size=opts.batch_size, block_size=opts.block_size,
        grad_accum=opts.grad_accum, max_iters=opts.max_iters)
    return _Plan(preset=preset, dataset_dir=dataset_dir, full_iters=preset.train.max_iters,
                 paths=paths, device=resolve_device(opts.device), preset_learning_rate=own.train.learning_rate)


def _data_too_small(dataset_dir: str, block_size: int) -> int | None:
    """The smallest split's longest shard, in tokens, if it cannot hold one block; None if it can."""
    from gptwiz.data.dataset import TokenDataset

    dataset = TokenDataset(dataset_dir)
    longest = min(max((len(a) for s in dataset.sources for a in getattr(s, split)), default=0)
                  for split in ("train", "val"))
    return longest if longest < block_size + 1 else None


def _nvml_memory(device: str) -> Any:
    """The card's memory (total, used) as the driver sees it: no CUDA context needed in this process."""
    try:
        import pynvml

        pynvml.nvmlInit()
        index = int(device.split(":")[1]) if ":" in device else 0
        return pynvml.nvmlDeviceGetMemoryInfo(pynvml.nvmlDeviceGetHandleByIndex(index))
    except Exception:
        return None


def _rss(pid: int) -> int:
    try:
        import psutil

        return int(psutil.Process(pid).memory_info().rss)
    except Exception:
        return 0


def _stop_child(proc: subprocess.Popen[bytes], grace: float) -> None:
    """SIGTERM asks the trainer to finish its step and leave; past the grace period it is killed."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(grace)
    except (subprocess.TimeoutExpired, KeyboardInterrupt):  # too slow, or a second Ctrl-C: no more waiting
        proc.kill()
        proc.wait()


@dataclass
class _AttemptRun:
    attempt: Attempt
    records: list[dict[str, Any]] = field(default_factory=list)
    config: dict[str, Any] | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    status: dict[str, Any] = field(default_factory=dict)
    nvml_peak: int | None = None
    startup_s: float | None = None


def _run_attempt(opts: ProbeOptions, plan: _Plan, batch_size: int, grad_accum: int, number: int, scratch: Path,
                 on_progress: Callable[[ProbeProgress], None], should_cancel: Callable[[], bool]) -> _AttemptRun:
    from gptwiz.training.options import TrainOptions

    paths = plan.paths or run_paths(scratch / "runs", "probe")
    paths.root.mkdir(parents=True, exist_ok=True)
    # A previous attempt's or probe's files (the folder holds nothing else): the dashboard starts over.
    for stale in (paths.metrics, paths.status, paths.probe):
        stale.unlink(missing_ok=True)
    child_opts = TrainOptions(
        config_file=opts.config_file, model_name=paths.name, dataset_dir=plan.dataset_dir, max_iters=opts.iters,
        learning_rate=plan.preset.train.learning_rate, batch_size=batch_size, block_size=plan.preset.model.block_size,
        grad_accum=grad_accum, device=opts.device, dtype=opts.dtype, compile=opts.compile, seed=opts.seed,
        runs_dir=str(paths.root.parent.resolve()), data_dir=str(Path(opts.data_dir).resolve()), quiet=True, probe=True)
    detail_path = scratch / f"detail-{number}.json"
    spec_path = scratch / f"spec-{number}.json"
    spec_path.write_text(json.dumps({"options": asdict(child_opts), "full_iters": plan.full_iters,
                                     "detail_path": str(detail_path), "parent_pid": os.getpid()}))
    log_path = scratch / f"child-{number}.log"
    run = _AttemptRun(Attempt(batch_size, grad_accum, "failed", 0))
    limit = int(opts.memory_limit_gb * 2**30) if opts.memory_limit_gb else None
    cuda = plan.device.startswith("cuda")
    killed_for: str | None = None
    reader = MetricsReader(paths.metrics)
    started = time.monotonic()

    def collect() -> None:
        for rec in reader.read_new():
            if rec.get("type") != "probe":
                continue
            if not run.records and run.startup_s is None:
                run.startup_s = max(0.0, time.monotonic() - started - float(rec.get("elapsed_s", 0.0)))
            run.records.append(rec)
            eta = probe_eta([float(r.get("dt_s") or 0.0) for r in run.records], opts.iters)
            on_progress(ProbeProgress(iter=int(rec["iter"]), iters=opts.iters, batch_size=batch_size,
                                      grad_accum=grad_accum, attempt=number, loss=rec.get("loss"),
                                      tokens_per_sec=rec.get("tokens_per_sec"),
                                      peak_mem_bytes=rec.get("peak_mem_bytes"),
                                      eta_s=eta.seconds if eta else None, sec_per_iter=eta.sec_per_iter if eta else None,
                                      eta_rough=eta.rough if eta else False))

    with open(log_path, "wb") as log:
        # Its own session: a Ctrl-C in the terminal reaches this process, which then stops the child itself.
        proc = subprocess.Popen([sys.executable, "-m", "gptwiz.training.probe", "--child", str(spec_path)],
                                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
        try:
            while proc.poll() is None:
                collect()
                if cuda:
                    info = _nvml_memory(plan.device)
                    if info is not None:
                        run.nvml_peak = max(run.nvml_peak or 0, int(info.used))
                if limit:
                    # The trainer's own figure (CUDA: reserved + context; CPU: peak RSS), and on CPU the RSS
                    # between records too, since one step can allocate far past the limit.
                    peak = max([int(r.get("peak_mem_bytes") or 0) for r in run.records[-1:]]
                               + ([] if cuda else [_rss(proc.pid)]))
                    if peak > limit:
                        killed_for = (f"peak memory {peak / 2**30:.2f} GB crossed --memory_limit_gb "
                                      f"{opts.memory_limit_gb:g}")
                        proc.kill()
                        proc.wait()
                        break
                if should_cancel():
                    _stop_child(proc, _STOP_GRACE_S)
                    run.attempt.outcome = "cancelled"
                    break
                time.sleep(_POLL_S)
        finally:
            _stop_child(proc, _STOP_GRACE_S)
    collect()
    run.config = read_json(paths.config)
    run.status = read_json(paths.status) or {}
    run.detail = read_json(detail_path) or {}
    run.attempt.iters = len(run.records)
    if run.attempt.outcome == "cancelled":
        return run
    if "usage_error" in run.detail:
        raise UsageError(run.detail["usage_error"])
    state = run.detail.get("state") or run.status.get("state")
    error = run.detail.get("error") or run.status.get("error")
    if killed_for:
        run.attempt.outcome, run.attempt.detail = "oom", killed_for
    elif state == "finished":
        run.attempt.outcome = "ok"
    elif state == "diverged":
        run.attempt.outcome, run.attempt.detail = "diverged", error
    elif state == "stopped":  # asked to stop from outside (`gptwiz stop NAME`, a SIGTERM): cancelled, not failed
        run.attempt.outcome = "cancelled"
        run.attempt.detail = f"the trainer was stopped (gptwiz stop or SIGTERM) after {len(run.records)} iterations"
    elif is_oom_message(error):
        run.attempt.outcome, run.attempt.detail = "oom", error
    elif proc.returncode == -signal.SIGKILL:
        run.attempt.outcome = "oom"
        run.attempt.detail = "the trainer was killed (SIGKILL), most likely by the kernel's out-of-memory killer"
    else:
        tail = log_path.read_text(errors="replace").strip().splitlines()[-1:] if log_path.exists() else []
        run.attempt.outcome = "failed"
        run.attempt.detail = error or (tail[0] if tail else f"the trainer exited with status {proc.returncode}")
    return run


def _device_total(device: str, detail: dict[str, Any]) -> int | None:
    if device.startswith("cuda"):
        if detail.get("device_memory_total"):
            return int(detail["device_memory_total"])
        info = _nvml_memory(device)
        return int(info.total) if info is not None else None
    import psutil

    return int(psutil.virtual_memory().total)


def _estimate(model: Any, batch_size: int, block_size: int, dtype: str, device: str, grad_accum: int,
              compiled: bool) -> int | None:
    """`gptwiz estimate`'s figure for the same settings: the whole process's peak, as the probe measures it.
    A probe writes no checkpoint, so the checkpoint's moment is left out of the estimate as it is of the run."""
    from gptwiz.planning.memory import estimate_memory

    est = estimate_memory(model, batch_size=batch_size, block_size=block_size, dtype=dtype,
                          device_type="cuda" if device.startswith("cuda") else "cpu", grad_accum=grad_accum,
                          compiled=compiled, checkpoints=False)
    return int(est.total)


def run_probe(opts: ProbeOptions, on_progress: Callable[[ProbeProgress], None] | None = None,
              should_cancel: Callable[[], bool] | None = None) -> ProbeResult:
    """Probe a preset on the real data: train `opts.iters` iterations in a child process, measure, judge.

    Raises UsageError for bad options before anything starts. `on_progress` is called in the calling
    thread after every iteration; `should_cancel` is polled a few times a second and, when it returns
    True, the child is stopped and the result's verdict is "cancelled".
    """
    on_progress = on_progress or (lambda p: None)
    should_cancel = should_cancel or (lambda: False)
    with scratch_folder() as scratch:
        return _probe(opts, scratch, on_progress, should_cancel)


def _probe(opts: ProbeOptions, scratch: Path, on_progress: Callable[[ProbeProgress], None],
           should_cancel: Callable[[], bool]) -> ProbeResult:
    plan = _plan(opts, scratch)
    preset = plan.preset
    batch, accum, block = preset.train.batch_size, preset.train.grad_accum, preset.model.block_size
    base = dict(iters_requested=opts.iters, full_run_iters=plan.full_iters, block_size=block,
                learning_rate=preset.train.learning_rate, preset=preset.name,
                run_dir=str(plan.paths.root) if plan.paths else None,
                memory_kind="cuda" if plan.device.startswith("cuda") else "cpu_rss",
                input_file=opts.input_file, dataset_dir=opts.dataset_dir)

    too_small = _data_too_small(plan.dataset_dir, block)
    if too_small is not None:
        facts = ProbeFacts(learning_rate=preset.train.learning_rate, batch_size=batch, grad_accum=accum,
                           block_size=block, data_tokens=too_small)
        return _finish(plan, _empty_result(judge(facts), batch, accum, [], base))

    attempts: list[Attempt] = []
    number = 0
    while True:
        number += 1
        run = _run_attempt(opts, plan, batch, accum, number, scratch, on_progress, should_cancel)
        attempts.append(run.attempt)
        if run.attempt.outcome != "oom":
            break
        smaller = shrink_batch(batch, accum)
        if smaller is None:
            break
        on_progress(ProbeProgress(iter=0, iters=opts.iters, batch_size=smaller[0], grad_accum=smaller[1],
                                  attempt=number + 1,
                                  message=f"out of memory at --batch_size {batch} ({run.attempt.detail}); "
                                          f"retrying at --batch_size {smaller[0]} --grad_accum {smaller[1]}"))
        batch, accum = smaller
    return _finish(plan, _result(opts, plan, run, attempts, base))


# --- the probe's temporary folder ----------------------------------------------------------------

SCRATCH_PREFIX = "gptwiz-probe-"
_SCRATCH_LOCK = "lock"
_UNLOCKED_GRACE_S = 60.0  # a folder without its lock file yet may be a probe starting this instant


@contextlib.contextmanager
def scratch_folder() -> Iterator[Path]:
    """A private temporary folder for one probe: mkdtemp's (mode 0700, a name nobody can have made before), with
    a lock held on a file in it while the probe lives. Folders of probes that were killed (no clean-up ran)
    are removed first: their lock is free, since the kernel drops a lock with its holder."""
    remove_stale_scratch()
    while True:
        folder = Path(tempfile.mkdtemp(prefix=SCRATCH_PREFIX))
        try:
            fd = os.open(folder / _SCRATCH_LOCK, os.O_CREAT | os.O_RDWR | os.O_NOFOLLOW, 0o600)
        except OSError:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        # Another probe's clean-up may take the lock in the instant before this does, and remove the folder
        # as a dead probe's: then the lock file has no name left (no links), and another folder is made.
        fcntl.flock(fd, fcntl.LOCK_EX)
        if os.fstat(fd).st_nlink:
            break
        os.close(fd)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        os.close(fd)


def remove_stale_scratch(root: Path | None = None) -> list[Path]:
    """Remove the temporary folders of this user's probes that died without cleaning up; the folders removed."""
    root = Path(root or tempfile.gettempdir())
    removed = []
    try:
        entries = [e for e in os.scandir(root) if e.name.startswith(SCRATCH_PREFIX)]
    except OSError:
        return removed
    for entry in entries:
        try:
            info = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        # Only a real folder of this user's: another user's (or a link planted there) is not ours to remove.
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or _scratch_in_use(Path(entry.path), info):
            continue
        shutil.rmtree(entry.path, ignore_errors=True)
        removed.append(Path(entry.path))
    return removed


def _scratch_in_use(folder: Path, info: os.stat_result) -> bool:
    try:
        fd = os.open(folder / _SCRATCH_LOCK, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return time.time() - info.st_mtime < _UNLOCKED_GRACE_S
    except OSError:
        return True  # unreadable: leave it
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:  # held: its probe is alive
        return True
    finally:
        os.close(fd)
    return False


def _empty_result(judgement: Judgement, batch: int, accum: int, attempts: list[Attempt],
                  base: dict[str, Any], **extra: Any) -> ProbeResult:
    fields_ = dict(verdict=judgement.verdict, advice=judgement.advice, reasons=judgement.reasons,
                   loss_verdict=judgement.loss, loss_unjudged_reason=judgement.loss_unjudged,
                   iters=0, losses=[], loss_first=None,
                   loss_last=None, loss_slope=None, relative_drop=None, loss_noise=None, warmup_iters=None,
                   tokens_per_sec=None, sec_per_iter=None, warmup_s=None, startup_s=None, projected_full_run_s=None,
                   peak_memory_bytes=None, device_memory_total_bytes=None, estimate_bytes=None, batch_size=batch,
                   grad_accum=accum, device=None, dtype=None, compile=None, cuda=None, attempts=attempts)
    fields_.update(base)
    fields_.update(extra)
    return ProbeResult(**fields_)


def _result(opts: ProbeOptions, plan: _Plan, run: _AttemptRun, attempts: list[Attempt],
            base: dict[str, Any]) -> ProbeResult:
    from gptwiz.training.options import RunConfig

    preset = plan.preset
    a = run.attempt
    cfg = RunConfig.from_json(run.config) if run.config else None
    device = cfg.device if cfg else plan.device
    losses = [float(r["loss"]) for r in run.records]
    stats: CurveStats | None = None
    tm: Timing | None = None
    warmup = None
    if losses:
        warmup = warmup_iterations(len(losses), cfg.warmup_iters if cfg else 0)
        stats = curve_stats(losses, warmup)
        tm = timing([float(r["dt_s"]) for r in run.records], warmup)
    projected = None
    if tm is not None and tm.sec_per_iter > 0:
        # The full run at the probe's measured rate (gptwiz.planning.timing: its evaluations, checkpoints and start).
        run_plan = preset_plan(preset, device_type="cuda" if device.startswith("cuda") else "cpu",
                               dtype=cfg.dtype if cfg else "float32", batch_size=a.batch_size, grad_accum=a.grad_accum,
                               max_iters=plan.full_iters, compiled=cfg.compile if cfg else None)
        tokens_per_iter = a.batch_size * a.grad_accum * preset.model.block_size
        projected = from_probe_rate(run_plan, tokens_per_iter / tm.sec_per_iter).seconds
    peaks = [int(r.get("peak_mem_bytes") or 0) for r in run.records]
    peak = max(peaks + [int(run.status.get("peak_mem_bytes") or 0)]) or None
    if peak and not device.startswith("cuda"):
        peak = max(peak, int(run.detail.get("peak_rss") or 0))
    total = _device_total(device, run.detail)
    cuda_detail = None
    if device.startswith("cuda"):
        cuda_detail = {k: int(v) for k, v in (("max_memory_allocated", run.detail.get("max_memory_allocated")),
                                              ("max_memory_reserved", run.detail.get("max_memory_reserved")),
                                              ("nvml_used_peak", run.nvml_peak)) if v is not None}
    estimate = None
    if cfg is not None:
        estimate = _estimate(cfg.model, a.batch_size, cfg.model.block_size, cfg.dtype, device, a.grad_accum,
                             cfg.compile)
    facts = ProbeFacts(
        learning_rate=preset.train.learning_rate, batch_size=a.batch_size, grad_accum=a.grad_accum,
        block_size=preset.model.block_size, stats=stats, peak_memory_bytes=peak, device_memory_total_bytes=total,
        projected_full_run_s=projected, sec_per_iter=tm.sec_per_iter if tm else None,
        diverged=a.outcome == "diverged", oom_at_batch_1=a.outcome == "oom",
        smaller_preset=_smaller_preset(preset.name),
        error=a.detail if a.outcome == "failed" else None,
        preset_learning_rate=plan.preset_learning_rate, lr_warmup=cfg.warmup_iters if cfg else 0,
        cancelled=a.outcome == "cancelled", iters_requested=opts.iters,
    )
    return _empty_result(
        judge(facts), a.batch_size, a.grad_accum, attempts, base,
        iters=len(losses), losses=losses,
        loss_first=stats.loss_first if stats else None, loss_last=stats.loss_last if stats else None,
        loss_slope=stats.slope if stats else None, relative_drop=stats.relative_drop if stats else None,
        loss_noise=stats.noise if stats else None, warmup_iters=warmup,
        tokens_per_sec=(cfg.tokens_per_iter / tm.sec_per_iter) if tm and cfg else None,
        sec_per_iter=tm.sec_per_iter if tm else None, warmup_s=tm.warmup_s if tm else None,
        startup_s=run.startup_s, projected_full_run_s=projected, peak_memory_bytes=peak,
        device_memory_total_bytes=total, estimate_bytes=estimate, device=device,
        dtype=cfg.dtype if cfg else None, compile=cfg.compile if cfg else None, cuda=cuda_detail,
        memory_kind="cuda" if device.startswith("cuda") else "cpu_rss",
        error=a.detail if a.outcome in ("failed", "oom") else None,
    )


def _finish(plan: _Plan, result: ProbeResult) -> ProbeResult:
    """With a run name, the result is also kept as runs/<name>/probe.json (not for a cancelled probe)."""
    if plan.paths is not None and result.verdict != "cancelled":
        from gptwiz.common.atomic import atomic_write_json

        plan.paths.root.mkdir(parents=True, exist_ok=True)
        atomic_write_json(plan.paths.probe, result.to_json())
    return result


# --- the command line ---------------------------------------------------------------------------

def render(result: ProbeResult) -> Any:
    """The verdict panel: what was measured, what it means, what to change."""
    from rich.panel import Panel
    from rich.table import Table


    colour = {"pass": "green", "warn": "yellow", "fail": "red", "cancelled": "grey50"}.get(result.verdict, "white")
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    r = result
    if r.losses:
        table.add_row("loss", f"{r.loss_first:.3f} -> {r.loss_last:.3f} ({100 * (r.relative_drop or 0):.0f}% lower), "
                              f"slope {r.loss_slope:+.4f}/iter, noise {100 * (r.loss_noise or 0):.1f}%")
        table.add_row("speed", f"{r.sec_per_iter:.3f} s/iter, {fmt.count(r.tokens_per_sec)} tokens/s once warm; "
                               f"warm-up {r.warmup_s:.1f} s ({r.warmup_iters} iterations)"
                               + (f", start-up {r.startup_s:.1f} s" if r.startup_s is not None else ""))
        table.add_row("full run", f"{r.full_run_iters} iterations: about {fmt.duration(r.projected_full_run_s)} "
                                  "(evaluations included)")
    if r.peak_memory_bytes:
        share = (f" ({100 * r.peak_memory_bytes / r.device_memory_total_bytes:.0f}%)"
                 if r.device_memory_total_bytes else "")
        table.add_row("memory", f"peak {fmt.gib(r.peak_memory_bytes)} ({r.memory_kind}) of {fmt.gib(r.device_memory_total_bytes)}"
                                f"{share}; estimate {fmt.gib(r.estimate_bytes)}")
    if r.cuda:
        table.add_row("cuda", ", ".join(f"{k} {fmt.gib(v)}" for k, v in r.cuda.items()))
    table.add_row("settings", f"{r.preset}: --batch_size {r.batch_size} --grad_accum {r.grad_accum} "
                              f"(effective {r.batch_size * r.grad_accum}), block {r.block_size}, "
                              f"--learning_rate {fmt.learning_rate(r.learning_rate)}"
                              + (f", {r.device} {r.dtype}{' compiled' if r.compile else ''}" if r.device else ""))
    if len(r.attempts) > 1:
        table.add_row("attempts", "; ".join(f"batch {a.batch_size} x {a.grad_accum}: {a.outcome}" for a in r.attempts))
    for i, reason in enumerate(r.reasons):
        table.add_row("why" if i == 0 else "", reason)
    for item in r.advice:
        table.add_row("[bold]advice[/]", str(item))
    if r.run_dir:
        table.add_row("saved", str(Path(r.run_dir) / "probe.json"))
    return Panel(table, title=f"probe: [bold {colour}]{r.verdict.upper()}[/]", border_style=colour, expand=False)


def _exit_code(result: ProbeResult) -> int:
    """1 for a fail, and for a probe stopped from outside (`gptwiz stop`: no verdict to go on); else 0."""
    return 1 if result.verdict in ("fail", "cancelled") else 0


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def run_cli(opts: ProbeOptions, as_json: bool) -> int:
    """`gptwiz probe`: a progress bar, then the verdict panel (or one JSON object). Exit 1 on a fail verdict or
    when the probe was stopped from outside (no verdict)."""
    # SIGTERM and SIGHUP (a closed terminal) leave as Ctrl-C does, through run_probe's clean-up: the child is
    # stopped, not orphaned, and the temporary folder removed.
    signals = [signal.SIGTERM] + ([signal.SIGHUP] if hasattr(signal, "SIGHUP") else [])
    previous = {sig: signal.signal(sig, _interrupt) for sig in signals}
    try:
        return _run_cli(opts, as_json)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _run_cli(opts: ProbeOptions, as_json: bool) -> int:
    if as_json:
        result = run_probe(opts)
        print(json.dumps(result.to_json(), indent=2))
        return _exit_code(result)
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    console = Console()
    progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("loss [cyan]{task.fields[loss]}[/] {task.fields[tps]} tok/s mem {task.fields[mem]}"),
                        TimeRemainingColumn(), console=console, transient=True)
    task = progress.add_task(f"probe {opts.config_file}", total=opts.iters, loss=fmt.UNKNOWN, tps=fmt.UNKNOWN, mem=fmt.UNKNOWN)

    def on_progress(p: ProbeProgress) -> None:
        if p.message:
            progress.console.print(p.message, highlight=False)
            progress.reset(task, total=p.iters, loss=fmt.UNKNOWN, tps=fmt.UNKNOWN, mem=fmt.UNKNOWN)
            return
        progress.update(task, completed=p.iter, loss=f"{p.loss:.4f}" if p.loss is not None else fmt.UNKNOWN,
                        tps=fmt.count(p.tokens_per_sec or None), mem=fmt.gib(p.peak_mem_bytes or None))

    with progress:
        result = run_probe(opts, on_progress)
    console.print(render(result))
    return _exit_code(result)


if __name__ == "__main__":
    if sys.argv[1:2] != ["--child"] or len(sys.argv) != 3:
        print("usage: python -m gptwiz.training.probe --child SPEC.json (started by `gptwiz probe`)", file=sys.stderr)
        raise SystemExit(2)
    raise SystemExit(_child_main(sys.argv[2]))
