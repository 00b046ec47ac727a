"""What the app's screens need from the outside world, in one place so tests can replace any of it
(a fake hardware report, a frozen clock, a fake device sampler) and snapshots come out the same every time; and
what the screens share through the app (Shared): these services and the wizard's answers."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, cast

from gptwiz.planning.hardware import detect_hardware
from gptwiz.runs.paths import RunPaths
from gptwiz.tui.devicestats import DeviceSampler
from gptwiz.tui.sampling import SampleFeed, default_sample_text
from gptwiz.wizard.state import WizardState


def default_run_probe(opts: Any, on_progress: Callable[[Any], None], should_cancel: Callable[[], bool]) -> Any:
    from gptwiz.training.probe import run_probe  # lazy: the probe (numpy, then torch) loads when a probe starts

    return run_probe(opts, on_progress=on_progress, should_cancel=should_cancel)


def default_detect_hardware() -> Any:
    return detect_hardware()


def default_measure_throughput(device_type: str, dtype: str) -> Any:
    from gptwiz.wizard.services import measure_throughput  # lazy: the planner loads with the recommendation

    return measure_throughput(device_type, dtype)


@dataclass
class AppContext:
    runs_dir: Path = Path("runs")
    data_dir: Path = Path("data")
    cwd: Path | None = None                       # where launched trainers run (None: this process's cwd)
    clock: Callable[[], float] = time.time
    detect_hardware: Callable[[], Any] = default_detect_hardware
    device_sampler: Callable[[], DeviceSampler] = DeviceSampler
    # (run, best or last, the feed it writes its progress into) -> the texts: the dashboard's g (gptwiz.tui.sampling)
    sample_text: Callable[[RunPaths, str, SampleFeed], list[str]] = default_sample_text
    run_probe: Callable[[Any, Callable[[Any], None], Callable[[], bool]], Any] = default_run_probe
    # (device type, dtype) -> gptwiz.planning.timing.Throughput or None: the speed the times are predicted from
    measure_throughput: Callable[[str, str], Any] = default_measure_throughput
    probe_iters: int = 100                        # the guide's "quick validation run"
    poll_interval_s: float = 0.25                 # metrics and status: a few times a second
    device_interval_s: float = 1.0                # NVML / psutil readings
    chart_interval_s: float = 1.0                 # chart redraws: plotext is the costly part
    extra: dict[str, Any] = field(default_factory=dict)


class Shared(Protocol):
    """What every screen may read from the app it is shown in: the services above and the wizard's answers so far
    (one WizardState, replaced by a fresh one when a launch ends the wizard). Screens read it, and ask the app for
    anything else through gptwiz.tui.messages; nothing here is for calling."""

    context: AppContext
    wizard: WizardState


def shared(app: object) -> Shared:
    """The app a screen is shown in, as what the screens share (gptwiz.tui.app.GptwizApp has both)."""
    return cast(Shared, app)
