"""Live readings for the dashboard's device panel: every GPU through NVML (gptwiz.planning.hardware), or the
training process's CPU and RAM through psutil. Called from the dashboard's poll thread, never the event loop."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psutil

from gptwiz.planning.hardware import read_gpu_stats
from gptwiz.tui.widgets.device_panel import DeviceReading, GpuCard, ProcessUsage


def card_from_stats(stats: Any) -> GpuCard:
    """One gptwiz.planning.hardware.GpuStats as the panel's GpuCard."""
    return GpuCard(index=stats.index, name=stats.name, memory_used_bytes=stats.memory_used_bytes,
                   memory_total_bytes=stats.memory_total_bytes, utilization_pct=stats.utilization_percent,
                   temperature_c=stats.temperature_c, power_w=stats.power_w)


def default_gpu_stats() -> list[Any]:
    return list(read_gpu_stats())  # [] without NVML or a driver: the CPU view


class DeviceSampler:
    """Keeps the psutil.Process between readings: CPU percent is measured between two calls."""

    def __init__(self, gpu_stats: Callable[[], list[Any]] = default_gpu_stats):
        self.gpu_stats = gpu_stats
        self._proc: Any = None
        self._pid = 0

    def read(self, pid: int, running: bool) -> DeviceReading:
        cards = tuple(card_from_stats(s) for s in self.gpu_stats())
        if cards:
            return DeviceReading(gpus=cards)
        # `running` comes from the run's lock (gptwiz.runs.lock.lock_owner), and pid is its holder's.
        usage = self._process_usage(pid) if running and pid > 0 else None
        if usage is None:  # not running, or it ended since the lock was read
            return DeviceReading(note="the trainer is not running: no live CPU/RAM reading")
        return DeviceReading(process=usage)

    def _process_usage(self, pid: int) -> ProcessUsage | None:
        try:
            if self._proc is None or self._pid != pid:
                self._proc, self._pid = psutil.Process(pid), pid
                self._proc.cpu_percent(None)  # the first call only starts the measurement
            with self._proc.oneshot():
                cpu = self._proc.cpu_percent(None)
                rss = self._proc.memory_info().rss
            vm = psutil.virtual_memory()
            return ProcessUsage(pid=pid, cpu_pct=cpu, rss_bytes=rss, ram_total_bytes=vm.total,
                                ram_available_bytes=vm.available, cpu_count=psutil.cpu_count() or 1)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            self._proc = None
            return None
