"""This machine's matmul speed at a GPT's shapes: what time predictions (gptwiz.planning.timing) and MFU start from.

A few seconds, once per machine, device, dtype and thread count; the result is cached in
$XDG_CACHE_HOME/gptwiz/throughput.json (default ~/.cache), written atomically. A cache file that cannot be read or
holds something else is ignored and rewritten.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch.nn import functional as F

from gptwiz.common.atomic import atomic_write_json
from gptwiz.common.safe_read import read_json_file
from gptwiz.planning.hardware import AMX_FLAG, cpu_flags
from gptwiz.planning.timing import Throughput

# The presets' widths (n_embd): a model of another width is interpolated between them.
WIDTHS = (192, 384, 768, 1024, 1280)
# Rows of the measured matmuls (tokens of a micro-batch): enough for the rate to settle, few enough to be quick.
ROWS = 512
# The LM head's matmul, cut to this many vocabulary columns: the rate a FLOP is the same, the time a fraction.
HEAD_COLUMNS = 8192
SECONDS_PER_SHAPE = 0.12
SWEEPS = 2
# A dtype this CPU has no fast kernels for (bf16 without AVX-512 BF16 or AMX: about 1 GFLOP/s) would take minutes to
# measure at every width: past this many seconds, the widths not yet measured take the widest measured one's rate.
MEASURE_BUDGET_S = 5.0
CACHE_VERSION = 4
# What a trainer's process imports before it can build anything: timed in a fresh interpreter, the start of every
# run on this machine (it differs three times over between machines, so no constant fits them all).
TRAINER_MODULE = "gptwiz.training.trainer"
START_READINGS = 2


def cache_file() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "gptwiz" / "throughput.json"


def machine_key(device: str, dtype: str) -> str:
    """What the measurement depends on: the device (CPU cores or the card's name), the threads, dtype and torch."""
    if device.startswith("cuda"):
        where = f"cuda:{torch.cuda.get_device_name(device)}"
    else:
        where = f"cpu:{os.cpu_count()}:{torch.backends.cpu.get_cpu_capability()}"
    return f"v{CACHE_VERSION}:{where}:{torch.get_num_threads()}:{dtype}:{torch.__version__}"


def _read_cache(path: Path) -> dict[str, Any]:
    try:
        data = read_json_file(path)  # within the depth limit of every JSON gptwiz reads
    except OSError:  # missing, or not JSON (UnreadableFile)
        return {}
    return data if isinstance(data, dict) else {}


def _best_rate(m: int, k: int, n: int, device: str, dtype: torch.dtype, seconds: float) -> float:
    """Best FLOP/s of an (m x k) @ (k x n) matmul over `seconds`."""
    a = torch.randn(m, k, dtype=dtype, device=device)
    b = torch.randn(k, n, dtype=dtype, device=device)
    return 2 * m * k * n / _best_time(lambda: a @ b, device, seconds)


def _best_time(fn: Callable[[], Any], device: str, seconds: float) -> float:
    """Best seconds of one call of `fn` over `seconds` (after one warm-up call)."""
    cuda = device.startswith("cuda")

    def once() -> float:
        if cuda:
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        fn()
        if cuda:
            torch.cuda.synchronize(device)
        return time.perf_counter() - t0

    first = once()  # the warm-up
    if first >= seconds:
        return first  # a slow kernel: one call is a reading, and a second would only add its long wait
    best, deadline = once(), time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        best = min(best, once())
    return best


def _vocab_seconds(rows: int, device: str, seconds: float) -> float:
    """Seconds an element of float32 cross-entropy takes, forward and backward (the loss's vocabulary passes)."""
    logits = torch.randn(rows, HEAD_COLUMNS, device=device, requires_grad=True)
    targets = torch.randint(0, HEAD_COLUMNS, (rows,), device=device)
    return _best_time(lambda: F.cross_entropy(logits, targets).backward(), device, seconds) / logits.numel()


def _elementwise_seconds(rows: int, device: str, dtype: torch.dtype, seconds: float) -> float:
    """Seconds an element of a GELU takes in the dtype, forward and backward (a block's memory-bound passes)."""
    x = torch.randn(rows, 4 * 768, device=device, dtype=dtype, requires_grad=True)
    grad = torch.randn_like(x)
    return _best_time(lambda: F.gelu(x, approximate="tanh").backward(grad), device, seconds) / x.numel()


def start_seconds() -> float:
    """Seconds a fresh Python takes to import the trainer (torch included), best of a few readings; 0 where no
    child process can run (the time model then takes its constant)."""
    best = 0.0
    for _ in range(START_READINGS):
        t0 = time.perf_counter()
        try:
            done = subprocess.run([sys.executable, "-c", f"import {TRAINER_MODULE}"], capture_output=True,
                                  timeout=120, check=False)
        except (OSError, subprocess.TimeoutExpired):
            return 0.0
        if done.returncode:
            return 0.0
        elapsed = time.perf_counter() - t0
        best = min(best, elapsed) if best else elapsed
    return best


def measure(device: str, dtype: str, seconds_per_shape: float = SECONDS_PER_SHAPE) -> Throughput:
    """Measure now (no cache): the head's and a block's matmul at each preset width, the loss's and an
    elementwise pass's speed."""
    dt = getattr(torch, dtype)
    rows = ROWS * 8 if device.startswith("cuda") else ROWS  # a card needs bigger tensors to reach its rate
    head: dict[int, float] = {}
    layer: dict[int, float] = {}
    vocab_s = elementwise_s = float("inf")
    deadline = time.perf_counter() + MEASURE_BUDGET_S
    # Two sweeps, the best of each kept: a moment of other work on the cores spoils one reading, not the figure.
    for sweep in range(SWEEPS):
        if sweep and time.perf_counter() > deadline:
            break
        with torch.no_grad():
            for w in WIDTHS:
                if head and w not in head and time.perf_counter() > deadline:
                    widest = max(head)
                    head[w], layer[w] = head[widest], layer[widest]
                    continue
                head[w] = max(head.get(w, 0.0), _best_rate(rows, w, HEAD_COLUMNS, device, dt, seconds_per_shape))
                layer[w] = max(layer.get(w, 0.0), _best_rate(rows, w, 4 * w, device, dt, seconds_per_shape))
        vocab_s = min(vocab_s, _vocab_seconds(rows, device, 2 * seconds_per_shape))
        elementwise_s = min(elementwise_s, _elementwise_seconds(rows, device, dt, 2 * seconds_per_shape))
    device_type = "cuda" if device.startswith("cuda") else "cpu"
    return Throughput(device_type=device_type, dtype=dtype, head=tuple(sorted(head.items())),
                      layer=tuple(sorted(layer.items())), vocab_s=vocab_s, elementwise_s=elementwise_s,
                      threads=torch.get_num_threads(), source=f"measured on {machine_key(device, dtype)}",
                      amx=device_type == "cpu" and AMX_FLAG in cpu_flags(), start_s=start_seconds())


def best_of(a: Throughput, b: Throughput) -> Throughput:
    """The faster reading of each figure of two measurements of the same machine: other work on its cores only
    ever slows a reading down, so the best one is the machine's."""
    def pairs(x: tuple[tuple[int, float], ...], y: tuple[tuple[int, float], ...]) -> tuple[tuple[int, float], ...]:
        other = dict(y)
        return tuple((w, max(v, other.get(w, 0.0))) for w, v in x)

    starts = [x.start_s for x in (a, b) if x.start_s > 0]
    return replace(a, head=pairs(a.head, b.head), layer=pairs(a.layer, b.layer), vocab_s=min(a.vocab_s, b.vocab_s),
                   elementwise_s=min(a.elementwise_s, b.elementwise_s), start_s=min(starts, default=0.0))


def machine_throughput(device: str = "cpu", dtype: str = "float32", *, refresh: bool = False) -> Throughput:
    """This machine's Throughput for the device and dtype: from the cache, else measured (a few seconds) and cached.
    refresh: measure again, keeping the best of this and the cached reading (a busy moment spoils no figure)."""
    path = cache_file()
    key = machine_key(device, dtype)
    known = _read_cache(path)
    if not refresh and key in known:
        try:
            return Throughput.from_json(known[key])
        except ValueError:
            pass  # malformed: measure again and overwrite it
    result = measure(device, dtype)
    if refresh and key in known:
        try:
            result = best_of(result, Throughput.from_json(known[key]))
        except ValueError:
            pass
    known[key] = result.to_json()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(path, known)
    except OSError:
        pass  # a read-only home: measure again next time
    return result


def measured_start_s(device_type: str, dtype: str) -> float:
    """The import time cached with this machine's speeds for the device kind and dtype, without measuring
    anything (0 where none is cached): a probe prices its projection's start with it."""
    device = "cuda" if device_type == "cuda" else "cpu"
    try:
        return Throughput.from_json(_read_cache(cache_file())[machine_key(device, dtype)]).start_s
    except (KeyError, ValueError, RuntimeError):
        return 0.0


def cpu_throughput_measured_apart(dtype: str) -> Throughput:
    """machine_throughput on the CPU, measured (when not cached) in a child process: a trainer's peak memory, which
    its probe reports and the memory estimate is checked against, is then its own and not the measurement's."""
    if machine_key("cpu", dtype) not in _read_cache(cache_file()):
        code = "import sys; from gptwiz.training.throughput import machine_throughput as m; m('cpu', sys.argv[1])"
        try:
            subprocess.run([sys.executable, "-c", code, dtype], capture_output=True, timeout=300, check=False)
        except (OSError, subprocess.TimeoutExpired):
            pass  # measured here below, as a read-only cache also has it
    return machine_throughput("cpu", dtype)


__all__ = ["machine_throughput", "cpu_throughput_measured_apart", "measured_start_s", "measure", "best_of",
           "cache_file", "machine_key", "WIDTHS"]
