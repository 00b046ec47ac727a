"""What this machine runs fastest: device, precision, compile, and the numbers MFU and memory are measured against."""

from __future__ import annotations

import json
import os
import resource
import time
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from gptwiz.common.errors import UsageError
from gptwiz.planning.policy import auto_dtype, check_dtype

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
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError(f"--device {device}: no CUDA GPU is available here (valid: auto, cpu)")
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise UsageError(f"invalid --device {device!r} (valid: auto, cpu, cuda, cuda:N)")
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


# Below these many iterations, compiling (about a minute on a GPU, several on a 2-core CPU) costs
# more than the ~1.3x per-iteration speed-up gains back.
COMPILE_MIN_ITERS = {"cuda": 300, "cpu": 1500}


def resolve_compile(compile_flag: bool | None, device: str, dtype: str, iters_to_run: int) -> bool:
    """--compile/--no-compile as given; by default, compile where it is faster and the run pays it back."""
    if compile_flag is not None:
        return compile_flag
    device_type = "cuda" if device.startswith("cuda") else "cpu"
    if device_type == "cpu" and dtype == "float32":
        # Eager float32 with the sliced loss (gptwiz.model.loss) beat compiled float32 on a 2-core AVX2 CPU:
        # 1.35x against 1.03x the plain loop (README, "Training speed on this 2-core CPU").
        return False
    return iters_to_run >= COMPILE_MIN_ITERS[device_type]


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
    """The FLOP/s MFU is measured against: the card's bf16 peak, or this CPU's measured matmul peak."""
    if runtime.device_type == "cuda":
        name = torch.cuda.get_device_name(runtime.device)
        for key, value in _GPU_BF16_PEAK.items():
            if key in name:
                return value if runtime.dtype != "float32" else value / 2  # TF32 runs at half the bf16 rate
        return 100e12
    return measured_cpu_matmul_peak(runtime.dtype)


def _cache_file() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "gptwiz" / "cpu_peak_flops.json"


def measured_cpu_matmul_peak(dtype: str, n: int = 1024, seconds: float = 0.3) -> float:
    """Best FLOP/s of a square matmul on this CPU, measured once per machine and dtype, then cached."""
    key = f"{os.cpu_count()}:{torch.get_num_threads()}:{dtype}:{torch.__version__}"
    cache = _cache_file()
    try:
        known = json.loads(cache.read_text())
        if key in known:
            return float(known[key])
    except (OSError, ValueError):
        known = {}
    dt = getattr(torch, dtype)
    a, b = torch.randn(n, n, dtype=dt), torch.randn(n, n, dtype=dt)
    a @ b
    best, deadline = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        t0 = time.perf_counter()
        a @ b
        best = max(best, 2 * n ** 3 / (time.perf_counter() - t0))
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        known[key] = best
        cache.write_text(json.dumps(known))
    except OSError:
        pass
    return best


def cpu_peak_rss_bytes() -> int:
    """This process's peak resident memory (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


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
        import pynvml

        pynvml.nvmlInit()
        index = torch.device(device).index or 0
        handle = pynvml.nvmlDeviceGetHandleByIndex(index)
        for proc in pynvml.nvmlDeviceGetComputeRunningProcesses(handle):
            if proc.pid == os.getpid() and proc.usedGpuMemory:
                return int(proc.usedGpuMemory)
    except Exception:
        pass
    return 500 * 2**20
