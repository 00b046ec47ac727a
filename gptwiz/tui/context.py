"""What the app's screens need from the outside world, in one place so tests can replace any of it
(a fake hardware report, a frozen clock, a fake device sampler) and snapshots come out the same every time."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gptwiz.runs.folder import RunPaths
from gptwiz.tui.devicestats import DeviceSampler


def default_sample_text(paths: RunPaths, checkpoint: str = "auto") -> list[str]:
    """A few lines from the run's checkpoint `checkpoint` (best, last or auto: gptwiz.runs.checkpoints), on the CPU
    so a full card is left alone."""
    from gptwiz.training.sample import SampleOptions, sample

    return sample(SampleOptions(model_name=str(paths.root), runs_dir=str(paths.root.parent), max_new_tokens=80,
                                num_samples=2, device="cpu", checkpoint=checkpoint))


def default_run_probe(opts: Any, on_progress: Callable[[Any], None], should_cancel: Callable[[], bool]) -> Any:
    from gptwiz.training.probe import run_probe

    return run_probe(opts, on_progress=on_progress, should_cancel=should_cancel)


def default_detect_hardware() -> Any:
    from gptwiz.planning.hardware import detect_hardware

    return detect_hardware()


def default_measure_throughput(device_type: str, dtype: str) -> Any:
    from gptwiz.wizard.services import measure_throughput

    return measure_throughput(device_type, dtype)


@dataclass
class AppContext:
    runs_dir: Path = Path("runs")
    data_dir: Path = Path("data")
    cwd: Path | None = None                       # where launched trainers run (None: this process's cwd)
    clock: Callable[[], float] = time.time
    detect_hardware: Callable[[], Any] = default_detect_hardware
    device_sampler: Callable[[], DeviceSampler] = DeviceSampler
    sample_text: Callable[[RunPaths, str], list[str]] = default_sample_text  # (run, best or last)
    run_probe: Callable[[Any, Callable[[Any], None], Callable[[], bool]], Any] = default_run_probe
    # (device type, dtype) -> gptwiz.planning.timing.Throughput or None: the speed the times are predicted from
    measure_throughput: Callable[[str, str], Any] = default_measure_throughput
    probe_iters: int = 100                        # the guide's "quick validation run"
    poll_interval_s: float = 0.25                 # metrics and status: a few times a second
    device_interval_s: float = 1.0                # NVML / psutil readings
    chart_interval_s: float = 1.0                 # chart redraws: plotext is the costly part
    extra: dict[str, Any] = field(default_factory=dict)
