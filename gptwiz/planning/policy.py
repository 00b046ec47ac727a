"""Planning rules shared by the commands, the wizard and the trainer: what `--dtype auto` means, what the device
and dtype flags resolve to, a VRAM figure as the user types it, the flags a measured dataset becomes, and the
presets table's estimate. Pure, and without torch.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from gptwiz.common.errors import UsageError
from gptwiz.data.sizes import DatasetSize
from gptwiz.planning.hardware import HardwareReport
from gptwiz.planning.memory import DTYPES, estimate_memory

# More memory than any card has: a bigger figure is a slip (bytes or MB typed as GB).
MAX_VRAM_GB = 4096


def auto_dtype(device_type: str, *, cuda_bf16: bool = False, cpu_bf16: bool = False) -> str:
    """What `--dtype auto` means, from the facts of the device it trains on: bf16 on a CUDA card that supports
    it (Ampere and newer), else float16 (the same memory); on a CPU, bf16 with AVX-512 BF16 or AMX, else float32."""
    if device_type == "cuda":
        return "bfloat16" if cuda_bf16 else "float16"
    return "bfloat16" if cpu_bf16 else "float32"


def check_dtype(dtype: str) -> str:
    """A dtype given by name (not 'auto'), or the UsageError that lists the valid ones."""
    if dtype not in DTYPES:
        raise UsageError(f"invalid --dtype {dtype!r} (valid: auto, {', '.join(DTYPES)})")
    return dtype


def training_dtype(report: HardwareReport, device_type: str) -> str:
    """auto_dtype with the facts read from NVML and /proc/cpuinfo (gptwiz.training.device reads them from torch);
    with several cards, bf16 only if every one has it."""
    return auto_dtype(device_type, cuda_bf16=not report.gpus or all(g.bf16 for g in report.gpus),
                      cpu_bf16=report.cpu_bf16)


def resolve_device_dtype(report: HardwareReport, device: str, dtype: str) -> tuple[str, str]:
    if device not in ("auto", "cpu", "cuda"):
        raise UsageError(f"invalid --device {device!r} (valid: auto, cpu, cuda; cuda also plans for a GPU this machine lacks)")
    device_type = ("cuda" if report.gpus else "cpu") if device == "auto" else device
    if dtype == "auto":
        return device_type, training_dtype(report, device_type)
    return device_type, check_dtype(dtype)


def no_hardware() -> HardwareReport:
    """Stands in when device and dtype are both given: nothing needs detecting."""
    return HardwareReport(gpus=[], cpu_count=1, cpu_name="", ram_total_bytes=0, ram_available_bytes=0, cpu_bf16=False)


def parse_vram(text: str | None) -> float | None:
    """The memory of one card in GB: '24', '24GB' or '24 GiB' -> 24.0; 0 means no GPU. None or blank -> None
    (use what was detected). Raises UsageError for anything else."""
    if text is None or not text.strip():
        return None
    number = text.strip().lower().removesuffix("gib").removesuffix("gb").strip()
    try:
        value = float(number)
    except ValueError:
        raise UsageError(f"invalid --vram-gb {text!r}: expected a number of GB such as 6, 24 or 40 (0: no GPU)") from None
    if not 0 <= value <= MAX_VRAM_GB:  # NaN, and a number so long it reads as infinity, too
        shown = text if len(text) <= 40 else f"{text[:12]}...{text[-4:]} ({len(text)} characters)"
        why = "more than any card has; " if value > MAX_VRAM_GB else ""
        raise UsageError(f"invalid --vram-gb {shown!r}: {why}must be a number of GB from 0 to {MAX_VRAM_GB} "
                         "(0: no GPU)")
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
    return estimate_memory(preset.model, batch_size=preset.train.batch_size, dtype="bfloat16", device_type="cuda",
                           grad_accum=preset.train.grad_accum).total


__all__ = ["auto_dtype", "check_dtype", "training_dtype", "resolve_device_dtype", "no_hardware", "parse_vram", "data_hint",
           "preset_estimate", "MAX_VRAM_GB"]
