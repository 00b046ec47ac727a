"""The memory figures the probe reads from outside its child: the card's as the driver sees it (no CUDA context
in this process, which would hold memory the child may need), a process's resident size, and the total."""

from __future__ import annotations

from typing import Any

import psutil
import pynvml  # nvidia-ml-py: pure Python, cheap to import; the C library loads at nvmlInit

from gptwiz.planning.hardware import training_ram_bytes


def nvml_memory(device: str) -> Any:
    """The card's memory (total, used) as the driver sees it; None without a driver or such a card."""
    try:
        pynvml.nvmlInit()
        index = int(device.split(":")[1]) if ":" in device else 0
        return pynvml.nvmlDeviceGetMemoryInfo(pynvml.nvmlDeviceGetHandleByIndex(index))
    except Exception:
        return None


def process_rss(pid: int) -> int:
    """The resident size of process `pid` in bytes; 0 when it cannot be read (it has ended, say)."""
    try:
        return int(psutil.Process(pid).memory_info().rss)
    except Exception:
        return 0


def device_total(device: str, detail: dict[str, Any]) -> int | None:
    """The memory of `device` in bytes: the child's own figure for a card (`detail`), else the driver's; for the
    CPU the RAM a plan counts on (training_ram_bytes: what is available, read once the child has ended)."""
    if device.startswith("cuda"):
        if detail.get("device_memory_total"):
            return int(detail["device_memory_total"])
        info = nvml_memory(device)
        return int(info.total) if info is not None else None
    return training_ram_bytes()
