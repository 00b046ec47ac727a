"""Peak training memory, from first principles: what a user must have free to train a preset.

The figure means the training process's WHOLE peak on its device, exactly what
gptwiz.training.device.MemoryMeter measures and the trainer records as `peak_mem_bytes`: on CPU the process's
peak resident memory (Python and the torch runtime included), on CUDA `torch.cuda.max_memory_reserved`
plus the CUDA context. It is built from the tensors train.py holds at its worst moment, for the GPT in
model.py (fp32 master weights, AdamW, optional autocast, SDPA attention, tied embeddings):

* weights: fp32 master weights, 4 bytes a parameter (autocast never changes the parameters' dtype);
* optimizer: AdamW's two fp32 moments, 8 bytes a parameter (with --optimizer muon, the blocks' matrices keep
  Muon's one fp32 momentum instead: 4 bytes);
* grads: fp32 gradients, 4 bytes a parameter. They do not exist during the loss's backward, the peak
  of the small presets: the trainer frees them (zero_grad(set_to_none=True)) after every step; only
  with gradient accumulation do they live through the next micro-batch;
* autocast: under bf16/fp16 autocast each matmul casts its fp32 weight to a 2-byte copy, which
  autocast caches for the forward and autograd keeps for the backward (grad_input = grad @ W);
* activations: the tensors autograd saves for the backward (see _saved_per_token_layer);
* logits: the (tokens x vocabulary) tensors around the loss, the largest item of the small presets
  because the vocabulary has 50304 columns (see _LOGIT_TENSORS); eager training on a CPU computes the
  loss in slices instead (gptwiz.model.loss), which holds two slices and the head's weight gradient;
  a compiled CPU run holds one such tensor, whose gradient inductor writes over it;
* checkpoint (CPU only): save_checkpoint serializes weights and optimizer state into an in-memory
  buffer before writing it, so for a moment the process holds them twice; for small batches this
  is the CPU peak;
* evaluation: one micro-batch's no-grad forward (no activations kept): a moment of the run, measured
  below the training step on a CPU;
* allocator: memory held beyond live tensors (see _cpu_rss and _cuda_reserved);
* runtime: Python with torch, numpy and gptwiz loaded (CPU), and the compiler when compiled, or the
  CUDA context.

The peak is the largest of the moments estimate_memory lists; their terms overlap rather than add, and
`overlap` says how much the separate terms count twice. The tensor accounting is exact (checked
against torch's saved-tensor hooks and profiler memory timeline); the two allocator constants were
fitted to real training runs on this project's CPU machine (torch 2.13, glibc malloc): 22 runs of
tiny, small and 150M at batch 1-32, block 16-256, bf16 and fp32, gradient accumulation 1-3, all
within ±5% (docs/benchmarks.md, "Memory estimate"), before the eager CPU loss was sliced; with it,
tiny runs came out 10-12.5% over (not refitted yet), small ones 2.5-3%. A trainer's own peak (VmHWM) varies
from run to run by several percent on a CPU: the allocator's heap, not the tensors, differs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any

from gptwiz.common.errors import UsageError
from gptwiz.common.inert import quote
from gptwiz.model.config import ModelConfig, count_params
from gptwiz.model.loss_plan import GLIBC_MMAP_MAX, slice_rows, uses_sliced_loss

MiB = 2**20
GiB = 2**30

DTYPES = ("float32", "bfloat16", "float16")
DEVICE_TYPES = ("cpu", "cuda")

# --- constants, each measured here (CPU) or taken from the CUDA allocator's documented behaviour ---

# The trainer process before its first tensor: peak RSS of Python with torch, numpy and gptwiz
# imported (221 MiB, `python -m gptwiz train` up to model construction), plus the code pages that
# load lazily once training runs (oneDNN's JIT kernels, BLAS, autograd): the file-backed part of
# the RSS grows by 24 MiB over the first steps.
CPU_RUNTIME_BYTES = 245 * MiB
# torch.compile's own process memory: importing dynamo and inductor adds 115 MiB of resident memory (peak RSS
# of `import torch._dynamo, torch._inductor.compile_fx` after torch, torch 2.13), and the compiled graphs, their
# generated kernels and guards stay loaded for the whole run. Its graphs' tensors are counted as the eager
# ones, but for the loss (_COMPILED_CPU_LOGIT_TENSORS).
CPU_COMPILE_BYTES = 116 * MiB
# The heap's high-water mark over its live peak (fragmentation: freed holes that later, differently
# sized tensors cannot reuse) and its floor (thread arenas of the OpenMP workers, the evaluation
# pass, the data loader, and torch.distributed.checkpoint, which the trainer imports for its first
# checkpoint: 46 MiB): fitted to 22 real runs (tiny, small, 150M; see the module docstring).
CPU_HEAP_FRAGMENTATION = 1.5
CPU_HEAP_FLOOR_BYTES = 105 * MiB
# gptwiz.training.checkpoint.save_checkpoint serializes the whole state into an io.BytesIO before writing it,
# so a checkpoint holds weights and optimizer state twice for a moment. (Streaming torch.save into
# atomic_write's temporary file would remove this term; then set this to False.)
CHECKPOINT_IN_MEMORY = True
# The CUDA context (driver state, cuBLAS and kernel images) outside PyTorch's caching allocator;
# MemoryMeter reads it from NVML and falls back to the same 500 MiB.
CUDA_CONTEXT_BYTES = 500 * MiB
# PyTorch's caching allocator never returns blocks during training and rounds large ones to 2 MiB:
# reserved memory runs some 10% over the allocated peak (not yet measured here: no GPU).
CUDA_RESERVED_OVER_ALLOCATED = 1.10

# The vocabulary-sized tensors alive at the start of the loss's backward, as (name, bytes per element
# as a function of the compute dtype's bytes `a`): the logits the model returns, in the compute dtype
# (the trainer's `_` keeps them until the next forward); log_softmax's saved fp32 output (the model
# upcasts the logits for the loss: the fp32 copy itself is freed once log_softmax has run); and in the
# backward nll_loss's fp32 gradient and log_softmax's fp32 input gradient, created before either
# frees. 14 bytes a (token, vocabulary entry) under autocast, 16 in fp32: measured exactly with
# torch.profiler's memory timeline.
_LOGIT_TENSORS = (("logits", lambda a: a), ("log_softmax", lambda a: 4), ("nll grad", lambda a: 4),
                  ("log_softmax grad", lambda a: 4))
# Under torch.compile, inductor fuses the upcast, log_softmax and nll_loss and their backward into
# kernels that keep only per-row statistics: what remains is the logits and one fp32 gradient
# (measured: 6 bytes an element under bf16, from compiled tiny runs at batch 8 and 32).
_COMPILED_LOGIT_TENSORS = (("logits", lambda a: a), ("fused loss grad", lambda a: 4))
# On a CPU (torch 2.13, read from inductor's generated code and measured), the backward writes that gradient
# over the logits themselves: AOT autograd donates the tensors saved for the backward, and inductor reuses the
# logits' buffer, dead once the fused softmax backward has read it (`buf1 = mm_16; del mm_16  # reuse`). One
# (tokens x vocabulary) tensor in the compute dtype remains, fp32 and bf16 alike. (Not yet read on CUDA, whose
# figure above stands until it is measured on a card.)
_COMPILED_CPU_LOGIT_TENSORS = (("logits, then their gradient in place", lambda a: a),)
# The sliced loss (gptwiz.model.loss) holds at most two float32 slices of logits at once (a slice's logits and
# their softmax), each under glibc's mmap ceiling, so heap memory.
_SLICE_TENSORS = 2


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes of each term and the peak (`total`). The terms are the sizes of the things the process
    holds at some point; `overlap` is what they count twice because not all are held at once."""
    params: int
    weights: int
    grads: int
    optimizer: int
    activations: int
    logits: int
    autocast: int
    checkpoint: int
    allocator: int
    runtime: int
    overlap: int
    total: int
    peak_phase: str
    device_type: str
    dtype: str
    batch_size: int
    block_size: int
    grad_accum: int
    compiled: bool = False
    optimizer_name: str = "adamw"

    def lines(self) -> list[tuple[str, int]]:
        """(label, bytes) for display; the lines above the total add up to it."""
        runtime = "Python + torch runtime" if self.device_type == "cpu" else "CUDA context"
        out = [
            ("weights (fp32)", self.weights),
            ("gradients (fp32)", self.grads),
            ("optimizer state (fp32 moments)", self.optimizer),
            ("activations saved for backward", self.activations),
            ("logits and loss over the vocabulary", self.logits),
        ]
        if self.autocast:
            out.append((f"autocast {self.dtype} weight copies", self.autocast))
        if self.checkpoint:
            out.append(("checkpoint buffer (weights + optimizer)", self.checkpoint))
        out += [("allocator overhead", self.allocator), (runtime, self.runtime)]
        if self.overlap:
            out.append(("not held at the same time", -self.overlap))
        out.append((f"total (peak: {self.peak_phase})", self.total))
        return out

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        keys = ("weights", "grads", "optimizer", "activations", "logits", "autocast", "checkpoint",
                "allocator", "runtime", "overlap", "total")
        return {
            "params": self.params,
            "bytes": {k: data[k] for k in keys},
            "peak_phase": self.peak_phase,
            **{k: data[k] for k in ("device_type", "dtype", "batch_size", "block_size", "grad_accum", "compiled")},
            "optimizer": self.optimizer_name,
        }


def _saved_per_token_layer(c: int, h: int, t: int, a: int, dropout: bool, device_type: str) -> int:
    """Bytes autograd saves per token in one transformer block, checked tensor by tensor with
    torch.autograd.graph.saved_tensors_hooks (tests/test_memory.py).

    c = n_embd, h = n_head, t = block_size, a = bytes of the compute dtype (2 under autocast, 4 in fp32).
    """
    saved = (
        2 * 8             # the two LayerNorms' mean and rstd (fp32)
        + 2 * 4 * c       # the two LayerNorms' inputs: the residual stream stays fp32 under autocast
        + 2 * a * c       # the inputs of attn.c_attn and mlp.c_fc (LayerNorm outputs in the compute dtype)
        + 3 * a * c       # q, k and v for the attention kernel (views of c_attn's output)
        + a * c           # the attention output (also attn.c_proj's input: one storage)
        + 4 * h           # the fused attention kernel's log-sum-exp per head (fp32)
        + 4 * a * c       # the GELU's input (mlp.c_fc's output)
        + 4 * a * c       # mlp.c_proj's input (the GELU's output)
    )
    if dropout:
        # Residual dropout keeps its masks: on CPU in the input's dtype, on CUDA one byte each.
        saved += 2 * (a if device_type == "cpu" else 1) * c
        if device_type == "cpu":
            # PyTorch's CPU flash-attention kernel has no dropout, so SDPA falls back to the math
            # kernel: it upcasts q, k, v to fp32 copies and keeps the (T x T) attention probabilities,
            # the dropout mask and the dropped probabilities in fp32 for every head: 12 bytes a score,
            # which makes CPU training memory quadratic in the context. CUDA's flash and
            # memory-efficient kernels apply dropout inside the kernel and stay linear.
            saved += 12 * h * t - 4 * h + (12 - 3 * a) * c
    return saved


def _saved_per_token_once(c: int, a: int, dropout: bool, device_type: str, sliced_loss: bool) -> int:
    """Bytes saved per token outside the blocks: ln_f's input and statistics, the LM head's input (or,
    with the sliced loss, the fp32 gradient of that input, which it computes in the forward), token ids
    and targets (int64), and the embedding dropout's mask."""
    saved = 4 * c + 8 + (4 if sliced_loss else a) * c + 16
    if dropout:
        saved += (4 if device_type == "cpu" else 1) * c
    return saved


@dataclass(frozen=True)
class _Group:
    """Tensors that live and die together: total bytes and the largest single tensor's bytes (which
    decides whether glibc serves them from the heap or from fresh mappings)."""
    name: str
    nbytes: int
    largest: int


def _check(batch_size: int, block_size: int | None, dtype: str, device_type: str, grad_accum: int) -> None:
    if dtype not in DTYPES:
        raise UsageError(f"invalid dtype {quote(dtype)} for the estimate (valid: {', '.join(DTYPES)}; resolve 'auto' first)")
    if device_type not in DEVICE_TYPES:
        raise UsageError(f"invalid device type {quote(device_type)} (valid: {', '.join(DEVICE_TYPES)})")
    if dtype == "float16" and device_type == "cpu":
        raise UsageError("dtype float16 trains on CUDA only (on CPU use bfloat16 or float32)")
    for name, value in (("batch_size", batch_size), ("grad_accum", grad_accum), ("block_size", block_size)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value <= 0):
            raise UsageError(f"invalid {name} {value!r}: must be a positive whole number")


def estimate_memory(model: ModelConfig, *, batch_size: int, block_size: int | None = None, dtype: str = "float32",
                    device_type: str = "cpu", grad_accum: int = 1, compiled: bool = False,
                    checkpoints: bool = True, evaluates: bool = True, optimizer: str = "adamw") -> MemoryEstimate:
    """The training process's peak memory on its device for this model and these settings (bytes).

    checkpoints=False and evaluates=False for a run that writes no checkpoint and evaluates nothing (a
    probe): the checkpoint buffer (on CPU) and the evaluation's forward are then no moments of the run.
    """
    _check(batch_size, block_size, dtype, device_type, grad_accum)
    t = block_size or model.block_size
    cfg = replace(model, block_size=t)
    p = count_params(cfg)
    c, h, n_layer, v = cfg.n_embd, cfg.n_head, cfg.n_layer, cfg.vocab_size
    a = 4 if dtype == "float32" else 2
    n = batch_size * t  # tokens in one micro-batch
    dropout = cfg.dropout > 0
    cpu = device_type == "cpu"

    embed = v * c  # the tied token embedding / LM head matrix
    block_matrices = n_layer * 12 * c * c  # the blocks' weight matrices: Muon's, with --optimizer muon
    layer_matmul = block_matrices + (n_layer * 13 * c if cfg.bias else 0)
    weights, grads = 4 * p, 4 * p
    moments = 8 * p - (4 * block_matrices if optimizer == "muon" else 0)
    per_layer = _saved_per_token_layer(c, h, t, a, dropout, device_type)
    sliced = uses_sliced_loss(device_type, compiled)
    activations = n * (n_layer * per_layer + _saved_per_token_once(c, a, dropout, device_type, sliced))
    act_largest = max(n * 4 * c * a, batch_size * h * t * t * 4 if (cpu and dropout) else 0)
    logit_groups = _loss_groups(n, v, c, a, sliced, compiled, cpu)
    logits = sum(g.nbytes for g in logit_groups)
    autocast_groups = [_Group("autocast layers", 2 * layer_matmul, 2 * 4 * c * c),
                       _Group("autocast embedding", 2 * embed, 2 * embed)] if a == 2 else []
    autocast = sum(g.nbytes for g in autocast_groups)
    grad_groups = [_Group("layer grads", 4 * (p - embed), 4 * 4 * c * c),
                   _Group("embedding grad", 4 * embed, 4 * embed)]

    phases: dict[str, list[_Group]] = {
        # The start of the loss's backward: every activation saved, the vocabulary-sized tensors at
        # their largest, no gradients yet (unless accumulating over micro-batches).
        "loss backward": [_Group("activations", activations, act_largest), *autocast_groups, *logit_groups,
                          *(grad_groups if grad_accum > 1 else [])],
        # The end of the backward: every gradient exists. The tied embedding's gradient arrives twice
        # (from the LM head and from the token lookup): the second is a transient (vocab x n_embd)
        # fp32 tensor, and without autocast the LM head's transposed gradient is also copied to the
        # weight's layout (measured with torch.profiler's memory timeline).
        "end of backward": [*grad_groups, *[_Group("embedding grad transient", 4 * embed, 4 * embed)]
                            * (1 if a == 2 or sliced else 2)],
    }
    checkpoint = 0
    if cpu and checkpoints and CHECKPOINT_IN_MEMORY:
        # A checkpoint: torch.save writes weights and optimizer state into a BytesIO buffer (a copy
        # of both, grown by realloc, so one mapping) while the last step's logits are still held (the
        # sliced loss keeps none, and a compiled backward frees its own). On CUDA the buffer is host
        # memory and does not count against the card.
        checkpoint = weights + moments
        phases["checkpoint save"] = [_Group("checkpoint buffer", checkpoint, checkpoint),
                                     *([] if sliced or compiled else logit_groups[:1])]
    if evaluates:
        # An evaluation batch: the same micro-batch forward under no_grad, so no activations are kept
        # (measured on a CPU: below the training step, eager and compiled alike).
        phases["evaluation"] = _evaluation_groups(n, v, a, sliced, compiled)

    if cpu:
        peak_phase, live, allocator = _cpu_rss(phases, weights + moments)
        runtime = CPU_RUNTIME_BYTES + (CPU_COMPILE_BYTES if compiled else 0)
    else:
        peak_phase, live, allocator = _cuda_reserved(phases, weights + moments)
        runtime = CUDA_CONTEXT_BYTES
    total = live + allocator + runtime
    parts = weights + grads + moments + activations + logits + autocast + checkpoint + allocator + runtime
    return MemoryEstimate(params=p, weights=weights, grads=grads, optimizer=moments, activations=activations,
                          logits=logits, autocast=autocast, checkpoint=checkpoint, allocator=int(allocator),
                          runtime=runtime, overlap=int(parts - total), total=int(total), peak_phase=peak_phase,
                          device_type=device_type, dtype=dtype, batch_size=batch_size, block_size=t,
                          grad_accum=grad_accum, compiled=compiled, optimizer_name=optimizer)


def _loss_groups(n: int, v: int, c: int, a: int, sliced: bool, compiled: bool, cpu: bool) -> list[_Group]:
    """The vocabulary-sized tensors of a training step's loss (n tokens, vocabulary v, compute dtype a bytes)."""
    if sliced:
        # The slices, and the head's fp32 weight gradient, which the loss's forward accumulates.
        one_slice = 4 * min(n, slice_rows(v)) * v
        return [_Group("loss slices", _SLICE_TENSORS * one_slice, one_slice),
                _Group("head weight grad", 4 * v * c, 4 * v * c)]
    sizes: tuple[tuple[str, Callable[[int], int]], ...] = (
        (_COMPILED_CPU_LOGIT_TENSORS if cpu else _COMPILED_LOGIT_TENSORS) if compiled else _LOGIT_TENSORS)
    return [_Group(name, n * v * size(a), n * v * size(a)) for name, size in sizes]


def _evaluation_groups(n: int, v: int, a: int, sliced: bool, compiled: bool) -> list[_Group]:
    """What an evaluation batch's no-grad forward holds at its largest beyond the tensors of a training step's
    forward (its layers' transients are a subset of the activations a step keeps): the loss over the
    vocabulary. The sliced loss's no-grad path keeps one slice's logits (and their fp32 copy under autocast)
    and softmax; a compiled forward fuses the upcast, log-softmax and loss into kernels that read the logits
    alone; the textbook loss holds the logits, their fp32 copy under autocast and log_softmax's output."""
    if sliced:
        rows = min(n, slice_rows(v))
        return [_Group("evaluation slice", rows * v * (8 + (a if a == 2 else 0)), 4 * rows * v)]
    per_element = a if compiled else a + (4 if a == 2 else 0) + 4
    return [_Group("evaluation logits", n * v * per_element, n * v * a)]


def unmeasured_moment(model: ModelConfig, *, batch_size: int, block_size: int | None = None, dtype: str = "float32",
                      device_type: str = "cpu", grad_accum: int = 1, compiled: bool = False) -> tuple[str, int] | None:
    """The full run's moment that a probe (no evaluation, no checkpoint) never reaches, where it peaks above the
    training step: ("checkpoint" or "evaluation", the bytes it adds to the step's peak); None where the step is
    the run's peak."""
    def total(checkpoints: bool, evaluates: bool) -> int:
        return estimate_memory(model, batch_size=batch_size, block_size=block_size, dtype=dtype,
                               device_type=device_type, grad_accum=grad_accum, compiled=compiled,
                               checkpoints=checkpoints, evaluates=evaluates).total
    step = total(False, False)
    moment, peak = max((("checkpoint", total(True, False)), ("evaluation", total(False, True))), key=lambda m: m[1])
    return (moment, peak - step) if peak > step else None


def _cpu_rss(phases: dict[str, list[_Group]], persistent: int) -> tuple[str, int, int]:
    """(peak phase, live bytes at it, allocator bytes) for a CPU process's resident memory.

    Weights and moments live throughout. Transient tensors under glibc's mmap ceiling come from the
    heap, whose resident size never drops below its high-water mark (times fragmentation); larger
    ones are mappings that come and go with the phase. So the resident peak is the heap's high-water
    mark plus the largest phase's mapped tensors, not the largest phase's live tensors.
    """
    def split(groups: list[_Group]) -> tuple[int, int]:
        heap = sum(g.nbytes for g in groups if g.largest < GLIBC_MMAP_MAX)
        return heap, sum(g.nbytes for g in groups) - heap

    heap_high = max(split(gs)[0] for gs in phases.values())
    peak_phase = max(phases, key=lambda k: split(phases[k])[1])
    heap_live, mapped = split(phases[peak_phase])
    allocator = CPU_HEAP_FLOOR_BYTES + CPU_HEAP_FRAGMENTATION * heap_high - heap_live
    return peak_phase, persistent + heap_live + mapped, int(allocator)


def _cuda_reserved(phases: dict[str, list[_Group]], persistent: int) -> tuple[str, int, int]:
    """(peak phase, live bytes at it, allocator bytes) for CUDA reserved memory: the caching
    allocator keeps every block, so reserved memory follows the allocated peak plus rounding."""
    peak_phase = max(phases, key=lambda k: sum(g.nbytes for g in phases[k]))
    live = persistent + sum(g.nbytes for g in phases[peak_phase])
    return peak_phase, live, int((CUDA_RESERVED_OVER_ALLOCATED - 1) * live)


def fits(estimate: MemoryEstimate, available_bytes: float, headroom: float = 0.9) -> bool:
    """Whether the estimate fits in `headroom` of the memory (the guide's margin for other processes
    and for the estimate's own error)."""
    return estimate.total <= headroom * available_bytes


__all__ = ["MemoryEstimate", "estimate_memory", "unmeasured_moment", "fits", "MiB", "GiB", "DTYPES", "DEVICE_TYPES"]
