"""The `hardware`, `estimate` and `recommend` commands: turn flags into calls of the pure modules
(hardware.py, memory.py, recommend.py) and print the result as JSON or rich text.

Nothing here imports torch: these commands answer in well under a second.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path
from typing import Any

from gptwiz.errors import UsageError
from gptwiz.hardware import HardwareReport, detect_hardware
from gptwiz.sizes import DatasetSize, measure_dataset, parse_size


def training_dtype(report: HardwareReport, device_type: str) -> str:
    """What `--dtype auto` resolves to, by the rule of gptwiz.device.resolve_dtype, read from NVML
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


# --- gptwiz hardware ---------------------------------------------------------------------------------

def run_hardware(as_json: bool) -> int:
    report = detect_hardware()
    if as_json:
        print(json.dumps(report.to_json(), indent=2))
        return 0
    from rich.console import Console

    from gptwiz.render import hardware_table

    Console().print(hardware_table(report))
    return 0


# --- gptwiz estimate ---------------------------------------------------------------------------------

def run_estimate(config_file: str, batch_size: int | None, block_size: int | None, grad_accum: int | None,
                 dtype: str, device: str, compiled: bool, as_json: bool) -> int:
    from gptwiz.memory import estimate_memory
    from gptwiz.presets import load_preset

    preset = load_preset(config_file)
    report = detect_hardware() if "auto" in (device, dtype) else None
    device_type, dtype = resolve_device_dtype(report or _no_hardware(), device, dtype)
    est = estimate_memory(preset.model, batch_size=batch_size or preset.train.batch_size,
                          block_size=block_size or preset.model.block_size, dtype=dtype, device_type=device_type,
                          grad_accum=grad_accum or preset.train.grad_accum, compiled=compiled)
    if as_json:
        print(json.dumps({"preset": preset.name, **est.to_json(), "guide_vram_gb": preset.guide_vram_gb}, indent=2))
        return 0
    from rich.console import Console

    from gptwiz.render import estimate_table

    Console().print(estimate_table(est, preset.name, guide_vram_gb=preset.guide_vram_gb))
    return 0


def _no_hardware() -> HardwareReport:
    """Stands in when device and dtype are both given: nothing needs detecting."""
    return HardwareReport(gpus=[], cpu_count=1, cpu_name="", ram_total_bytes=0, ram_available_bytes=0, cpu_bf16=False)


# --- gptwiz recommend --------------------------------------------------------------------------------

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


def run_recommend(use_case: str, vram_gb: str | None, dataset_size: str | None, dataset: str | None,
                  gpus: int | None, model_name: str, as_json: bool) -> int:
    from gptwiz.recommend import USE_CASES, recommend

    if use_case not in USE_CASES:
        valid = ", ".join(f"{k} ({v[0]})" for k, v in USE_CASES.items())
        raise UsageError(f"unknown use case {use_case!r} (valid: {valid})")
    vram = parse_vram(vram_gb)
    size_bytes = parse_size(dataset_size) if dataset_size is not None else None
    measured = measure_dataset(dataset) if dataset is not None else None
    report = detect_hardware()
    if vram is None:
        vram = round(report.vram_gb, 2)
    gpu_count = gpus if gpus is not None else max(1, report.gpu_count)
    if vram == 0 and gpus is not None and gpus > 1:
        raise UsageError(f"--gpus {gpus} with no GPU: give --vram-gb for the cards too")
    if vram == 0:
        gpu_count = 1
    device_type = "cuda" if vram > 0 else "cpu"
    rec = recommend(use_case, vram, measured.bytes if measured else size_bytes, gpu_count,
                    dataset_tokens=measured.tokens if measured and measured.tokens_exact else None,
                    ram_gb=report.ram_available_bytes / 2**30 if device_type == "cpu" else None,
                    dtype=training_dtype(report, device_type))
    data_arg, note = data_hint(measured)
    commands = rec.phase_commands(model_name, data_arg)
    if as_json:
        out: dict[str, Any] = rec.to_json()
        out["command"] = commands[0]
        out["commands"] = commands
        out["dataset"] = measured.to_json() if measured else ({"bytes": size_bytes} if size_bytes is not None else None)
        if note:
            out["prepare_first"] = note
        print(json.dumps(out, indent=2))
        return 0
    from rich.console import Console

    from gptwiz.render import recommendation_view

    Console().print(recommendation_view(rec, commands, note))
    return 0


# --- the presets table's estimate column ----------------------------------------------------------------

def preset_estimate(preset: Any) -> int:
    """The peak for training the preset as it stands on one CUDA card in bf16: what the guide's VRAM
    column tries to say."""
    from gptwiz.memory import estimate_memory

    return estimate_memory(preset.model, batch_size=preset.train.batch_size, dtype="bfloat16", device_type="cuda",
                           grad_accum=preset.train.grad_accum).total


__all__ = ["run_hardware", "run_estimate", "run_recommend", "preset_estimate", "training_dtype",
           "resolve_device_dtype", "parse_vram", "data_hint"]
