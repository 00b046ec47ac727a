"""What this machine runs fastest: device, precision, compile, and the numbers MFU and memory are measured against."""

from __future__ import annotations

import os
import resource
import sys
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

import torch

from gptwiz.common.errors import UsageError
from gptwiz.common.inert import quote
from gptwiz.planning.hardware import FAST_BF16_FLAGS, cpu_flags
from gptwiz.planning.policy import auto_dtype, check_dtype, resolve_compile
from gptwiz.planning.timing import Throughput
from gptwiz.training.throughput import cpu_throughput_measured_apart, machine_throughput

# Dense bf16 tensor-core peaks (FLOP/s) of common cards, for MFU.
_GPU_BF16_PEAK = {
    "H200": 989e12, "H100": 989e12, "H800": 989e12, "GH200": 989e12, "A100": 312e12, "A800": 312e12,
    "L40S": 362e12, "L40": 181e12, "A6000": 155e12, "A10G": 70e12, "A10": 125e12, "L4": 121e12,
    "4090": 165e12, "3090": 71e12, "3080": 59e12, "T4": 65e12, "V100": 125e12, "1660": 10e12,
}


@dataclass(frozen=True)
class Runtime:
    device: str          # "cpu" or "cuda" (or "cuda:N")
    dtype: str           # "float32", "bfloat16" or "float16"
    compile: bool

    @property
    def device_type(self) -> str:
        return "cuda" if self.device.startswith("cuda") else "cpu"

    def autocast(self) -> AbstractContextManager[Any]:
        if self.dtype == "float32":
            return nullcontext()
        return torch.autocast(device_type=self.device_type, dtype=getattr(torch, self.dtype))


def cpu_has_fast_bf16() -> bool:
    """AVX-512 BF16 or AMX: only then is CPU bf16 autocast faster than float32."""
    return bool(cpu_flags() & FAST_BF16_FLAGS)


def resolve_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError(f"--device {device}: no CUDA GPU is available here (valid: auto, cpu)")
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise UsageError(f"invalid --device {quote(device)} (valid: auto, cpu, cuda, cuda:N)")
    return device


def resolve_dtype(dtype: str, device: str) -> str:
    cuda = device.startswith("cuda")
    if dtype == "auto":
        # Only the fact of the device in use: asking CUDA about bf16 creates a CUDA context.
        return auto_dtype("cuda" if cuda else "cpu", cuda_bf16=cuda and torch.cuda.is_bf16_supported(),
                          cpu_bf16=not cuda and cpu_has_fast_bf16())
    check_dtype(dtype)
    if dtype == "float16" and not cuda:
        raise UsageError("--dtype float16 needs a CUDA GPU (on CPU use bfloat16 or float32)")
    return dtype


def resolve_runtime(device: str, dtype: str, compile_flag: bool | None, iters_to_run: int) -> Runtime:
    dev = resolve_device(device)
    resolved = resolve_dtype(dtype, dev)
    return Runtime(device=dev, dtype=resolved, compile=resolve_compile(compile_flag, dev, resolved, iters_to_run))


def configure_backends(runtime: Runtime) -> None:
    if runtime.device_type == "cuda":
        # TF32 for the float32 matmuls that autocast leaves alone: ~8x the throughput, ample precision.
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True


def peak_flops(runtime: Runtime) -> float:
    """The FLOP/s MFU is measured against: the card's bf16 peak, or this CPU's measured matmul peak
    (gptwiz.training.throughput, the measurement the time predictions use)."""
    if runtime.device_type == "cuda":
        name = torch.cuda.get_device_name(runtime.device)
        for key, value in _GPU_BF16_PEAK.items():
            if key in name:
                return value if runtime.dtype != "float32" else value / 2  # TF32 runs at half the bf16 rate
        return 100e12
    return device_throughput(runtime).peak()


def device_throughput(runtime: Runtime) -> Throughput:
    """The run's device's measured speed (cached after the first time), as `gptwiz estimate` prices runs with it."""
    if runtime.device_type == "cuda":
        return machine_throughput(runtime.device, runtime.dtype)
    return cpu_throughput_measured_apart(runtime.dtype)


def cpu_peak_rss_bytes() -> int:
    """This process's own peak resident memory. On Linux that is VmHWM, the high-water mark of the memory this
    program mapped: ru_maxrss also keeps the peak of the process that started it (a fork and exec carries it
    over), so a trainer launched by a big parent (a test runner, the terminal app) would report the parent's
    peak. Elsewhere ru_maxrss, in KiB (bytes on macOS)."""
    try:
        with open("/proc/self/status", "rb") as status:
            for line in status:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1]) * 1024  # "VmHWM:  123456 kB"
    except (OSError, ValueError, IndexError):
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


class MemoryMeter:
    """The training process's whole peak on its device: CPU peak RSS, or CUDA reserved memory plus the context."""

    def __init__(self, runtime: Runtime):
        self.runtime = runtime
        self.cuda_context = 0
        if runtime.device_type == "cuda":
            torch.cuda.init()
            torch.cuda.reset_peak_memory_stats(runtime.device)
            free, total = torch.cuda.mem_get_info(runtime.device)
            # Whatever the card holds for this process beyond the allocator's pool is the context.
            self.cuda_context = max(0, _nvml_process_used(runtime.device) - torch.cuda.memory_reserved(runtime.device))

    def peak_bytes(self) -> int:
        if self.runtime.device_type == "cuda":
            return int(torch.cuda.max_memory_reserved(self.runtime.device) + self.cuda_context)
        return cpu_peak_rss_bytes()

    def detail(self) -> dict[str, int]:
        if self.runtime.device_type == "cuda":
            return {"max_memory_allocated": int(torch.cuda.max_memory_allocated(self.runtime.device)),
                    "max_memory_reserved": int(torch.cuda.max_memory_reserved(self.runtime.device)),
                    "cuda_context": int(self.cuda_context)}
        return {"peak_rss": cpu_peak_rss_bytes()}


def _nvml_process_used(device: str) -> int:
    """Card memory held by this process according to the driver; falls back to a typical context size."""
    try:
        import pynvml  # optional dependency (NVIDIA's bindings); absent, the typical size stands

        pynvml.nvmlInit()
        index = torch.device(device).index or 0
        handle = pynvml.nvmlDeviceGetHandleByIndex(index)
        for proc in pynvml.nvmlDeviceGetComputeRunningProcesses(handle):
            if proc.pid == os.getpid() and proc.usedGpuMemory:
                return int(proc.usedGpuMemory)
    except Exception:
        pass
    return 500 * 2**20
