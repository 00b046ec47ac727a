"""What the planning commands share: the dtype `--dtype auto` means, the flags a measured dataset
becomes, and the presets table's estimate. Pure, and without torch.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path
from typing import Any

from gptwiz.common.errors import UsageError
from gptwiz.planning.hardware import HardwareReport, detect_hardware
from gptwiz.data.sizes import DatasetSize, measure_dataset, parse_size


def training_dtype(report: HardwareReport, device_type: str) -> str:
    """What `--dtype auto` resolves to, by the rule of gptwiz.training.device.resolve_dtype, read from NVML
    and /proc/cpuinfo instead of torch: bf16 on Ampere and newer cards (float16 on older ones, which
    costs the same memory), bf16 on CPUs with AVX-512 BF16 or AMX, else float32."""
    if device_type == "cuda":
        return "bfloat16" if not report.gpus or all(g.bf16 for g in report.gpus) else "float16"
    return "bfloat16" if report.cpu_bf16 else "float32"


def resolve_device_dtype(report: HardwareReport, device: str, dtype: str) -> tuple[str, str]:
    if device not in ("auto", "cpu", "cuda"):
        raise UsageError(f"invalid --device {device!r} (valid: auto, cpu, cuda; cuda also plans for a GPU this machine lacks)")
    device_type = ("cuda" if report.gpus else "cpu") if device == "auto" else device
    if dtype == "auto":
        return device_type, training_dtype(report, device_type)
    if dtype not in ("float32", "bfloat16", "float16"):
        raise UsageError(f"invalid --dtype {dtype!r} (valid: auto, float32, bfloat16, float16)")
    return device_type, dtype


def no_hardware() -> HardwareReport:
    """Stands in when device and dtype are both given: nothing needs detecting."""
    return HardwareReport(gpus=[], cpu_count=1, cpu_name="", ram_total_bytes=0, ram_available_bytes=0, cpu_bf16=False)


def parse_vram(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        raise UsageError(f"invalid --vram-gb {text!r}: expected a number of GB such as 6, 24 or 40 (0: no GPU)") from None
    if not math.isfinite(value) or value < 0:
        raise UsageError(f"invalid --vram-gb {text!r}: must be zero or more (0: no GPU)")
    return value


def data_hint(size: DatasetSize | None) -> tuple[str | None, str | None]:
    """(the train command's data flag, a note such as the prepare command to run first)."""
    if size is None:
        return None, None
    path = Path(size.path)
    if size.kind == "prepared":
        folder = path.parent if path.name == "manifest.json" else path
        return f"--dataset_dir {folder}", None
    if size.kind == "file":
        return f"--input_file {path}", None
    if size.kind == "glob":
        pattern = size.path
    else:
        suffix = Counter(p.suffix.lower() for p in path.rglob("*") if p.is_file()).most_common(1)
        pattern = f"{path}/**/*{suffix[0][0] if suffix else '.txt'}"
    out_dir = f"data/{path.name.strip('*?[]') or 'dataset'}_shards" if size.kind == "folder" else "data/my_shards"
    return f"--dataset_dir {out_dir}", f"first: gptwiz prepare --source docs:'{pattern}' --out_dir {out_dir}"


# --- the presets table's estimate column ----------------------------------------------------------------

def preset_estimate(preset: Any) -> int:
    """The peak for training the preset as it stands on one CUDA card in bf16: what the guide's VRAM
    column tries to say."""
    from gptwiz.planning.memory import estimate_memory

    return estimate_memory(preset.model, batch_size=preset.train.batch_size, dtype="bfloat16", device_type="cuda",
                           grad_accum=preset.train.grad_accum).total


__all__ = ["preset_estimate", "training_dtype", "resolve_device_dtype", "no_hardware", "parse_vram", "data_hint"]
