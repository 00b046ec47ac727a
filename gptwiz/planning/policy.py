"""Planning rules shared by the commands, the wizard and the trainer: what `--dtype auto` means, what the device
and dtype flags resolve to, whether a run compiles, the one memory figure of a run, a VRAM figure as the user
types it, the flags a measured dataset becomes, and the presets table's estimate. Pure, and without torch.
When a run evaluates and checkpoints, and what that costs, is gptwiz.common.schedule's.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from gptwiz.common.errors import UsageError
from gptwiz.common.inert import quote
from gptwiz.data.sizes import DatasetSize
from gptwiz.model.config import ModelConfig
from gptwiz.planning.hardware import HardwareReport
from gptwiz.planning.knobs import Knobs
from gptwiz.planning.memory import DTYPES, MemoryEstimate, estimate_memory
from gptwiz.planning.presets import load_preset

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
        raise UsageError(f"invalid --dtype {quote(dtype)} (valid: auto, {', '.join(DTYPES)})")
    return dtype


def training_dtype(report: HardwareReport, device_type: str) -> str:
    """auto_dtype with the facts read from NVML and /proc/cpuinfo (gptwiz.training.device reads them from torch);
    with several cards, bf16 only if every one has it."""
    return auto_dtype(device_type, cuda_bf16=not report.gpus or all(g.bf16 for g in report.gpus),
                      cpu_bf16=report.cpu_bf16)


def resolve_device_dtype(report: HardwareReport, device: str, dtype: str) -> tuple[str, str]:
    if device not in ("auto", "cpu", "cuda"):
        raise UsageError(f"invalid --device {quote(device)} "
                         "(valid: auto, cpu, cuda; cuda also plans for a GPU this machine lacks)")
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
        raise UsageError(f"invalid --vram-gb {quote(text)}: "
                         "expected a number of GB such as 6, 24 or 40 (0: no GPU)") from None
    if not 0 <= value <= MAX_VRAM_GB:  # NaN, and a number so long it reads as infinity, too
        shown = text if len(text) <= 40 else f"{text[:12]}...{text[-4:]} ({len(text)} characters)"
        why = "more than any card has; " if value > MAX_VRAM_GB else ""
        raise UsageError(f"invalid --vram-gb {quote(shown)}: {why}must be a number of GB from 0 to {MAX_VRAM_GB} "
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


# --- compiling -----------------------------------------------------------------------------------------

# Below these many iterations, compiling costs more than its per-iteration speed-up gains back. On a CPU in bf16 a
# compiled step of a small preset takes half to two thirds of the eager one and the first compilation pays for
# itself within about 80 iterations (benchmarks/compile_cost.py; docs/benchmarks.md#compilation): 300 leaves a
# margin for a slower CPU. On a GPU, compiling takes about a minute.
COMPILE_MIN_ITERS = {"cuda": 300, "cpu": 300}


def resolve_compile(compile_flag: bool | None, device: str, dtype: str, iters_to_run: int) -> bool:
    """--compile/--no-compile as given; by default, compile where it is faster and the run pays it back.
    The trainer decides with this, and the memory and time predictions follow the same choice."""
    if compile_flag is not None:
        return compile_flag
    device_type = "cuda" if device.startswith("cuda") else "cpu"
    if device_type == "cpu" and dtype == "float32":
        # Eager float32 with the sliced loss (gptwiz.model.loss) beat compiled float32 on a 2-core AVX2 CPU:
        # 1.35x against 1.03x the plain loop (README, "Training speed on this 2-core CPU").
        return False
    return iters_to_run >= COMPILE_MIN_ITERS[device_type]


# --- dropout ----------------------------------------------------------------------------------------------

def run_dropout(preset_dropout: float, run_tokens: int, train_tokens: int | None) -> float:
    """The dropout a run trains with when none is given: none for a run that sees each training token at most
    once (it cannot overfit, and dropout only slows it: docs/benchmarks.md, the race), the preset's for one that
    repeats its data, or whose data's size is unknown."""
    if train_tokens and run_tokens <= train_tokens:
        return 0.0
    return preset_dropout


# --- the probe's length ----------------------------------------------------------------------------------

# The guide's "Testing Your Choice": train 100 iterations and watch the loss, the memory and the speed.
PROBE_ITERS = 100


def probe_iters(run_iters: int | None, asked: int = PROBE_ITERS) -> int:
    """The iterations a probe of a run of `run_iters` trains: `asked` (the guide's 100), but never more than the
    run itself; a run that short is its own probe (probing it trains all of it). None: the run's length is not
    known. The wizard, plain mode, `gptwiz probe` and the predicted probe times all count with this."""
    return asked if run_iters is None else max(1, min(asked, run_iters))


# --- the one memory figure ---------------------------------------------------------------------------------

def run_memory(model: ModelConfig, *, batch_size: int, grad_accum: int, max_iters: int, device_type: str,
               dtype: str, block_size: int | None = None, compiled: bool | None = None,
               optimizer: str = "adamw") -> MemoryEstimate:
    """The peak memory of a training run the way the trainer will run it: compiled or not as resolve_compile
    decides for its iterations (unless `compiled` says), checkpoints on. Every figure shown for a set of knobs
    (recommend, the wizard, plain mode, `estimate`, `presets`) comes from here."""
    return estimate_memory(model, batch_size=batch_size, block_size=block_size, dtype=dtype, device_type=device_type,
                           grad_accum=grad_accum,
                           compiled=resolve_compile(compiled, device_type, dtype, max_iters), checkpoints=True,
                           optimizer=optimizer)


def knobs_memory(knobs: Knobs, device_type: str, dtype: str, presets_dir: Any = None,
                 vocab_size: int | None = None) -> MemoryEstimate:
    """run_memory for a wizard's knobs (the preset with its context length and dropout changed, and the data's own
    tokenizer's vocabulary where it has one)."""
    preset = load_preset(knobs.preset, presets_dir) if presets_dir is not None else load_preset(knobs.preset)
    model = preset.with_overrides(block_size=knobs.block_size, dropout=knobs.dropout, vocab_size=vocab_size).model
    return run_memory(model, batch_size=knobs.batch_size, grad_accum=knobs.grad_accum, max_iters=knobs.max_iters,
                      device_type=device_type, dtype=dtype, block_size=knobs.block_size,
                      optimizer=preset.train.optimizer)


# --- the presets table's estimate column ----------------------------------------------------------------

def preset_memory(preset: Any) -> MemoryEstimate:
    """The estimate for training the preset as it stands on one CUDA card in bf16: what the guide's VRAM column
    tries to say."""
    return run_memory(preset.model, batch_size=preset.train.batch_size, grad_accum=preset.train.grad_accum,
                      max_iters=preset.train.max_iters, dtype="bfloat16", device_type="cuda",
                      optimizer=preset.train.optimizer)


def preset_estimate(preset: Any) -> int:
    """preset_memory's peak, in bytes."""
    return preset_memory(preset).total


__all__ = ["auto_dtype", "check_dtype", "training_dtype", "resolve_device_dtype", "no_hardware", "parse_vram",
           "data_hint", "preset_memory", "preset_estimate", "MAX_VRAM_GB", "COMPILE_MIN_ITERS", "resolve_compile", "run_memory",
           "knobs_memory", "PROBE_ITERS", "probe_iters"]
