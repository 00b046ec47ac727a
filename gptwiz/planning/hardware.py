"""What this machine has to train on: NVIDIA GPUs through NVML, else cores and RAM.

NVML (the `nvidia-ml-py` package, imported as `pynvml`) answers without starting CUDA, so this
module never imports torch: `gptwiz hardware` and the wizard's first screen stay fast. Every NVML
call goes through an `nvml` object (the pynvml module by default) so tests can hand in a fake card,
two cards or a broken driver. A machine without the library or the driver is a CPU machine, not an
error.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

GiB = 2**30
T = TypeVar("T")


@dataclass(frozen=True)
class GpuInfo:
    index: int
    name: str
    memory_total_bytes: int
    memory_free_bytes: int
    compute_capability: str | None  # "8.0"; None where NVML cannot tell
    bf16: bool                      # Ampere (compute capability 8.0) and newer do bf16 in hardware

    @property
    def memory_total_gb(self) -> float:
        return self.memory_total_bytes / GiB


@dataclass(frozen=True)
class HardwareReport:
    gpus: list[GpuInfo]
    cpu_count: int
    cpu_name: str
    ram_total_bytes: int
    ram_available_bytes: int
    cpu_bf16: bool
    driver_version: str | None = None
    cuda_version: str | None = None      # the newest CUDA the driver supports, e.g. "12.4"
    nvml_error: str | None = None        # why no GPU was found (no library, no driver, ...)
    warnings: list[str] = field(default_factory=list)

    @property
    def gpu_count(self) -> int:
        return len(self.gpus)

    @property
    def vram_gb(self) -> float:
        """The card memory a training process can count on, in GiB: the smallest card's (each
        data-parallel worker holds the whole model); 0 on a CPU machine."""
        return min((g.memory_total_gb for g in self.gpus), default=0.0)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["gpu_count"] = self.gpu_count
        data["vram_gb"] = round(self.vram_gb, 2)
        return data


def training_ram_bytes(report: HardwareReport | None = None) -> int:
    """The RAM a plan for training on the CPU is checked against, and shown as ("865 MiB of 19.4 GiB"): what is
    available (psutil's `available`: free memory plus the cache the kernel can drop) when `report` was detected,
    or now without one; not the total. Other programs hold the rest, and a run that counts on it swaps or is
    killed; a card is planned against its total because nothing else lives there. Every front-end (the wizard,
    plain mode, `gptwiz recommend`, the probe's share of memory) takes the figure from here."""
    if report is not None:
        return int(report.ram_available_bytes)
    import psutil  # lazy: as in detect_hardware

    return int(psutil.virtual_memory().available)


@dataclass(frozen=True)
class GpuStats:
    """A live reading of one card, for dashboards; None where the card does not report a value."""
    index: int
    name: str
    memory_used_bytes: int
    memory_total_bytes: int
    utilization_percent: int | None
    temperature_c: int | None
    power_w: float | None
    power_limit_w: float | None


def _load_nvml() -> Any:
    import pynvml  # lazy: only when GPUs are looked for (nvidia-ml-py, pure Python; its C library loads at nvmlInit)

    return pynvml


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _optional(call: Callable[[], T]) -> T | None:
    """One NVML query that some cards and drivers do not support (NVMLError_NotSupported, ...)."""
    try:
        return call()
    except Exception:
        return None


def _cuda_version(nvml: Any) -> str | None:
    raw = _optional(nvml.nvmlSystemGetCudaDriverVersion)
    if not raw:
        return None
    return f"{int(raw) // 1000}.{int(raw) % 1000 // 10}"


def _read_gpus(nvml: Any) -> tuple[list[GpuInfo], str | None, str | None]:
    gpus = []
    for i in range(int(nvml.nvmlDeviceGetCount())):
        handle = nvml.nvmlDeviceGetHandleByIndex(i)
        mem = nvml.nvmlDeviceGetMemoryInfo(handle)
        cc = _optional(lambda: nvml.nvmlDeviceGetCudaComputeCapability(handle))
        gpus.append(GpuInfo(
            index=i, name=_text(nvml.nvmlDeviceGetName(handle)),
            memory_total_bytes=int(mem.total), memory_free_bytes=int(mem.free),
            compute_capability=f"{cc[0]}.{cc[1]}" if cc else None,
            bf16=bool(cc and int(cc[0]) >= 8),
        ))
    driver = _optional(nvml.nvmlSystemGetDriverVersion)
    return gpus, _text(driver) if driver is not None else None, _cuda_version(nvml)


# The CPU flags under which bf16 autocast on a CPU is faster than float32; AMX's also runs bf16 matmuls on tiles.
FAST_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})
AMX_FLAG = "amx_bf16"


def _cpuinfo_text(cpuinfo_path: str) -> str | None:
    try:
        return Path(cpuinfo_path).read_text(errors="replace")
    except OSError:
        return None


def cpu_flags(cpuinfo_path: str = "/proc/cpuinfo") -> frozenset[str]:
    """The CPU's feature flags (the first core's; empty where /proc/cpuinfo cannot be read)."""
    text = _cpuinfo_text(cpuinfo_path) or ""
    line = next((line for line in text.splitlines() if line.startswith("flags")), "")
    return frozenset(line.split(":", 1)[1].split()) if ":" in line else frozenset()


def cpu_info(cpuinfo_path: str = "/proc/cpuinfo") -> tuple[str, bool]:
    """The CPU's model name, and whether it does bf16 well (FAST_BF16_FLAGS: the test that decides whether
    training uses bf16 autocast on CPU, gptwiz.training.device.cpu_has_fast_bf16)."""
    text = _cpuinfo_text(cpuinfo_path)
    if text is None:
        return "unknown CPU", False
    name = next((line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name")),
                "unknown CPU")
    return name, bool(cpu_flags(cpuinfo_path) & FAST_BF16_FLAGS)


def detect_hardware(nvml: Any | None = None, cpuinfo_path: str = "/proc/cpuinfo") -> HardwareReport:
    """GPUs (through `nvml`, the pynvml module unless a fake is given), cores, RAM and CPU bf16."""
    import psutil  # lazy: only once the hardware is detected, off the --help path

    vm = psutil.virtual_memory()
    cpu_name, cpu_bf16 = cpu_info(cpuinfo_path)

    def report(gpus: list[GpuInfo], **nvml_facts: Any) -> HardwareReport:
        return HardwareReport(gpus=gpus, cpu_count=os.cpu_count() or 1, cpu_name=cpu_name,
                              ram_total_bytes=int(vm.total), ram_available_bytes=int(vm.available),
                              cpu_bf16=cpu_bf16, **nvml_facts)

    try:
        nvml = nvml if nvml is not None else _load_nvml()
    except ImportError as exc:
        return report([], nvml_error=f"nvidia-ml-py is not installed ({exc})")
    try:
        nvml.nvmlInit()
    except Exception as exc:  # NVMLError_LibraryNotFound, _DriverNotLoaded, ...: no usable NVIDIA driver
        return report([], nvml_error=f"no NVIDIA driver ({_text(exc) or exc.__class__.__name__})")
    try:
        gpus, driver, cuda = _read_gpus(nvml)
    except Exception as exc:  # a driver that loads but fails on the first query: report it, train on CPU
        return report([], nvml_error=f"NVML failed ({exc.__class__.__name__}: {_text(exc)})")
    finally:
        _optional(nvml.nvmlShutdown)
    warnings = []
    if len({g.memory_total_bytes for g in gpus}) > 1:
        warnings.append("the GPUs differ in memory: recommendations use the smallest card")
    return report(gpus, driver_version=driver, cuda_version=cuda, warnings=warnings)


def read_gpu_stats(nvml: Any | None = None) -> list[GpuStats]:
    """Live memory, utilisation, temperature and power of every card; [] without NVML or a driver."""
    try:
        nvml = nvml if nvml is not None else _load_nvml()
        nvml.nvmlInit()
    except Exception:
        return []
    try:
        stats = []
        for i in range(int(nvml.nvmlDeviceGetCount())):
            handle = nvml.nvmlDeviceGetHandleByIndex(i)
            mem = nvml.nvmlDeviceGetMemoryInfo(handle)
            util = _optional(lambda: nvml.nvmlDeviceGetUtilizationRates(handle))
            temp = _optional(lambda: nvml.nvmlDeviceGetTemperature(handle, getattr(nvml, "NVML_TEMPERATURE_GPU", 0)))
            power = _optional(lambda: nvml.nvmlDeviceGetPowerUsage(handle))  # milliwatts
            limit = _optional(lambda: nvml.nvmlDeviceGetEnforcedPowerLimit(handle))
            stats.append(GpuStats(
                index=i, name=_text(nvml.nvmlDeviceGetName(handle)),
                memory_used_bytes=int(mem.used), memory_total_bytes=int(mem.total),
                utilization_percent=int(util.gpu) if util is not None else None,
                temperature_c=int(temp) if temp is not None else None,
                power_w=power / 1000 if power is not None else None,
                power_limit_w=limit / 1000 if limit is not None else None,
            ))
        return stats
    except Exception:
        return []
    finally:
        _optional(nvml.nvmlShutdown)


__all__ = ["GpuInfo", "HardwareReport", "GpuStats", "detect_hardware", "read_gpu_stats", "cpu_info",
           "training_ram_bytes"]
