"""The probe's child process: the real trainer, run as a probe, alone in its process so that its memory is
measured alone and an out-of-memory or a crash cannot take the probe down.

Started by gptwiz.training.probe.attempt as `python -m gptwiz.training.probe.child --child SPEC.json`. It dies with
the probe, however the probe ends (`die_with_parent`), and leaves what only it can know (the card's own peaks,
the process's peak RSS) in the spec's detail file. For tests it reads GPTWIZ_PROBE_FAKE_OOM_ABOVE_BATCH=N
(gptwiz.common.faults): every forward pass of a micro-batch larger than N raises the CUDA out-of-memory error,
on any device.

A process of its own: torch and the trainer are imported at the top, as this module is never imported by the probe.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from gptwiz.common.atomic import atomic_write_json
from gptwiz.common.errors import UsageError
from gptwiz.common.faults import FAKE_OOM_ENV, fake_oom_above_batch
from gptwiz.model.gpt import GPT
from gptwiz.training.device import cpu_peak_rss_bytes, resolve_compile, resolve_device, resolve_dtype
from gptwiz.training.options import TrainOptions
from gptwiz.training.probe.attempt import STOP_GRACE_S
from gptwiz.training.probe.trainer_options import probe_train_options
from gptwiz.training.resolve import resolve_options
from gptwiz.training.trainer import train

_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
_PARENT_CHECK_S = 0.5


def child_train_options(spec: dict[str, Any]) -> TrainOptions:
    """The trainer's options for this probe: the spec's settings, compiled as the full run would be, not as a run
    of the probe's few iterations would (that is what is measured)."""
    opts = probe_train_options(**spec["settings"])
    device = resolve_device(opts.device)
    compile_flag = resolve_compile(opts.compile, device, resolve_dtype(opts.dtype, device), int(spec["full_iters"]))
    return replace(opts, compile=compile_flag)


def child_main(spec_path: str) -> int:
    """Run the trainer as a probe, then leave what only this process can know in the spec's detail file."""
    spec = json.loads(Path(spec_path).read_text())
    if spec.get("parent_pid"):
        die_with_parent(int(spec["parent_pid"]))
    fake_oom_above = fake_oom_above_batch()
    if fake_oom_above is not None:
        _inject_fake_oom(fake_oom_above)
    try:
        opts = child_train_options(spec)
        device = resolve_device(opts.device)
        result = train(resolve_options(opts))
    except UsageError as exc:
        atomic_write_json(spec["detail_path"], {"usage_error": str(exc)})
        return 2
    detail: dict[str, Any] = {"state": result.state, "error": result.error}
    if device.startswith("cuda"):
        detail.update(max_memory_allocated=int(torch.cuda.max_memory_allocated(device)),
                      max_memory_reserved=int(torch.cuda.max_memory_reserved(device)),
                      device_memory_total=int(torch.cuda.get_device_properties(device).total_memory))
    else:
        detail["peak_rss"] = cpu_peak_rss_bytes()
    atomic_write_json(spec["detail_path"], detail)
    return result.exit_code


def die_with_parent(parent_pid: int) -> None:
    """The child ends when the probe that started it does, however the probe ends (SIGKILL included, which runs
    no clean-up there): on Linux the kernel sends the child SIGTERM as its parent dies (PR_SET_PDEATHSIG);
    everywhere, a thread sees it re-parented and does the same. SIGTERM makes the trainer stop after its step;
    one that does not stop within the grace period is ended."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
        except (OSError, AttributeError):  # no prctl in this libc: the thread below still watches
            pass

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(_PARENT_CHECK_S)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(STOP_GRACE_S)
        os._exit(128 + int(signal.SIGTERM))

    # Started after prctl, so that a parent which died before it (no death signal then) is seen at once.
    threading.Thread(target=watch, name="probe-parent-watch", daemon=True).start()


def _inject_fake_oom(above: int) -> None:
    """Make every forward pass of more than `above` sequences fail as a CUDA out-of-memory would."""
    real_forward = GPT.forward

    def forward(self: Any, idx: Any, targets: Any = None) -> Any:
        if idx.shape[0] > above:
            raise torch.cuda.OutOfMemoryError(
                f"CUDA out of memory (injected by {FAKE_OOM_ENV}={above} for a micro-batch of {idx.shape[0]})")
        return real_forward(self, idx, targets)

    GPT.forward = forward  # type: ignore[method-assign]


if __name__ == "__main__":
    if sys.argv[1:2] != ["--child"] or len(sys.argv) != 3:
        print("usage: python -m gptwiz.training.probe.child --child SPEC.json (started by `gptwiz probe`)",
              file=sys.stderr)
        raise SystemExit(2)
    raise SystemExit(child_main(sys.argv[2]))
