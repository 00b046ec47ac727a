"""How long a run and its probe will take, predicted before anything runs. Pure: no torch, no files.

The prediction is work divided by speed. Work: the model's training FLOPs per token
(gptwiz.model.config.training_flops_per_token, the count the trainer's MFU uses) times the tokens of every
step, plus the evaluations' forward passes. Speed: this machine's matmul FLOP/s at the model's own shapes
(`Throughput`, measured once per machine by gptwiz.training.throughput and passed in) times an efficiency
per device kind, fitted from real runs of the trainer (`COST_MODEL`, which also counts the loss's and the
blocks' memory-bound passes at their measured speeds; benchmarks/eta_accuracy.py checks and refits it).
Evaluations and checkpoints are counted and priced by gptwiz.common.schedule, as the dashboard's ETA counts
them. Fixed costs (process start, model build, torch.compile) are added on top. After a probe, its measured
tokens/s replaces the predicted speed (`from_probe_rate`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any

from gptwiz.common.errors import UsageError
from gptwiz.common.schedule import (
    CKPT_INTERVAL_S,
    FIRST_EVAL_ITERS,
    EvalSchedule,
    TimeLeft,
    checkpoint_seconds,
    eval_batch_share,
    run_eval_iters,
    time_left,
)
from gptwiz.model.config import ModelConfig, count_params, training_flops_per_token
from gptwiz.planning.fixed_costs import compile_seconds, start_seconds
from gptwiz.planning.knobs import Knobs
from gptwiz.planning.policy import PROBE_ITERS, probe_iters, resolve_compile
from gptwiz.planning.presets import Preset, load_preset


@dataclass(frozen=True)
class CostModel:
    """Seconds a training token costs, as multiples of measured rates (Throughput): the model's matmul FLOPs at
    the measured matmul speed, the loss's vocabulary-wide passes at the measured cross-entropy speed (V elements
    a token), a block's elementwise work (LayerNorm, GELU, dropout, residuals, casts, attention: n_layer x n_embd
    elements a token) at the measured elementwise speed, and the optimizer's step (AdamW, the gradient's norm
    and zeroing: passes over every parameter once an iteration, whatever the batch) at the same elementwise
    speed, shared by the iteration's tokens. Each coefficient is fitted on real runs of the trainer: how many
    such passes a step really makes, or how much faster or slower than measured."""
    matmul: float
    vocab: float
    elementwise: float
    fitted_on: str
    optimizer: float = 0.0


# Per device kind, and per dtype and matrix unit where those change how a step uses the measured rates. Refit
# with `python benchmarks/eta_accuracy.py --fit` on a quiet machine. On a 2-core CPU most of a small GPT's step
# is memory-bound work and per-iteration work, which the other terms carry; the matmul coefficient says how much
# slower the step's matmuls (small, cold, transposed, cast) run than the quick measurement's.
COST_MODEL: dict[str, CostModel] = {
    # float32 on a CPU, and the fallback for any CPU without a fit of its own (an AVX2-only one included).
    "cpu": CostModel(1.18, 0.0, 65.3, "fitted (least squares over the runs' probe-measured rates, all within 6%) on "
                                      "eight runs: tiny at batch 4 and 8, small at batch 2, 4 and 8, block 256, "
                                      "float32, from two passes of the benchmark on a 2-core AMD EPYC with AVX-512 "
                                      "(no AMX), torch 2.13; the vocabulary and optimizer terms fitted to nothing"),
    "cpu:float32:amx": CostModel(0.224, 5.25, 78.6, "fitted (least squares, all within 4%) on tiny at batch 4 and "
                                                    "small at batch 8, block 256, float32 and bfloat16 eager, on a "
                                                    "2-core Intel Xeon with AMX and AVX-512 BF16, torch 2.13, in quiet "
                                                    "moments of a machine shared with other jobs (the same fit "
                                                    "predicted the AMD CPU's float32 runs 20-42% short)"),
    # bf16 on a CPU with AVX-512 BF16 (no AMX): the measured matmul rate is about 4.5 times float32's; inside a
    # step the matmuls reach a quarter of it.
    "cpu:bfloat16": CostModel(4.01, 3.86, 0.0, "fitted (least squares over the runs' probe-measured rates; 12% "
                                               "rms, 12 of 14 within 18%) on fourteen runs: tiny at batch 4 and 8, "
                                               "small at batch 2, 4 and 8, block 256, bfloat16, from three passes of "
                                               "the benchmark on a 2-core AMD EPYC with AVX-512 BF16 (no AMX), torch "
                                               "2.13; the elementwise and optimizer terms fitted to nothing: within "
                                               "the runs' noise (small at batch 8 ran at 536, 752 and 914 tokens/s)"),
    # bf16 on a CPU with AMX: the measured matmul rate is many times float32's, yet the steps take about as long
    # as float32's, so AMX gets its own fit.
    "cpu:bfloat16:amx": CostModel(14.2, 0.93, 1.39, "fitted (least squares over the runs' probe-measured rates) on "
                                                    "tiny at batch 4 and 8 and small at batch 2 and 8, block 256, "
                                                    "bfloat16, on a quiet 2-core Intel Xeon with AMX and AVX-512 BF16, "
                                                    "torch 2.13, then scaled by 0.87 to the middle of the same "
                                                    "machine's speeds on a second run (they varied by 20-30% between "
                                                    "runs); fitted before the optimizer's term, 0 here as on the "
                                                    "CPU without AMX"),
    "cuda": CostModel(2.5, 3.0, 40.0, "an assumption (no card measured yet): matmuls at 40% of the cuBLAS rate "
                                      "measured, the loss and elementwise passes at the CPU fit's order"),
}

@dataclass(frozen=True)
class Throughput:
    """This machine's speeds for one device kind and dtype. Matmul FLOP/s per model width (n_embd), at the two
    shapes that carry a GPT's FLOPs: the LM head (tokens x width by width x vocabulary) and a block's matmuls
    (tokens x width by width x 4 width); and the seconds an element of the two other kinds of work takes:
    the loss's cross-entropy over the vocabulary (forward and backward, float32) and an elementwise pass
    (GELU forward and backward, in the dtype)."""
    device_type: str
    dtype: str
    head: tuple[tuple[int, float], ...]     # (width, FLOP/s)
    layer: tuple[tuple[int, float], ...]
    vocab_s: float                          # seconds an element of cross-entropy, forward and backward
    elementwise_s: float                    # seconds an element of an elementwise pass, forward and backward
    threads: int = 0
    source: str = "measured"
    amx: bool = False                       # a CPU with AMX tiles (Intel's: its own cost models, per dtype)
    # A named card's prior (gptwiz.planning.gpus), not a measurement: the card's name, and its data-sheet peak.
    # Its rates are the whole step's model FLOP/s (peak x efficiency): no cost model applies.
    prior: str = ""
    peak_flops: float = 0.0
    start_s: float = 0.0                    # a fresh process's import of the trainer (0: not measured)

    def rate(self, model: ModelConfig) -> float:
        """Matmul FLOP/s at this model's shapes: the two shapes' rates weighted by the FLOPs each carries."""
        head_flops = model.vocab_size * model.n_embd
        layer_flops = 12 * model.n_layer * model.n_embd ** 2
        head, layer = _at_width(self.head, model.n_embd), _at_width(self.layer, model.n_embd)
        return (head_flops + layer_flops) / (head_flops / head + layer_flops / layer)

    def peak(self) -> float:
        """The best matmul rate measured (a prior's data-sheet peak): what MFU is measured against."""
        return self.peak_flops or max(v for _, v in (*self.head, *self.layer))

    def to_json(self) -> dict[str, Any]:
        return {"device_type": self.device_type, "dtype": self.dtype, "threads": self.threads, "source": self.source,
                "amx": self.amx,
                "head": [list(p) for p in self.head], "layer": [list(p) for p in self.layer],
                "vocab_s": self.vocab_s, "elementwise_s": self.elementwise_s, "start_s": self.start_s}

    @classmethod
    def from_json(cls, data: Any) -> Throughput:
        """The inverse of to_json; ValueError for anything malformed (a cache file written by hand, say)."""
        try:
            pairs = {k: tuple((int(w), float(v)) for w, v in data[k]) for k in ("head", "layer")}
            out = cls(device_type=str(data["device_type"]), dtype=str(data["dtype"]), threads=int(data["threads"]),
                      source=str(data.get("source", "measured")), vocab_s=float(data["vocab_s"]),
                      amx=data.get("amx", False) is True,
                      elementwise_s=float(data["elementwise_s"]), head=pairs["head"], layer=pairs["layer"],
                      start_s=float(data.get("start_s", 0.0)))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not a throughput record: {exc}") from None
        values = [v for _, v in (*out.head, *out.layer)] + [out.vocab_s, out.elementwise_s]
        widths = [w for w, _ in (*out.head, *out.layer)]
        if not out.head or not out.layer or out.device_type not in COST_MODEL or \
                not (math.isfinite(out.start_s) and out.start_s >= 0) or \
                not all(math.isfinite(v) and v > 0 for v in values) or not all(w > 0 for w in widths):
            raise ValueError("not a throughput record: empty, an unknown device, or a figure that is not positive")
        return out


def _at_width(table: tuple[tuple[int, float], ...], width: int) -> float:
    """The rate at `width`, interpolated in log-width between the measured ones (the end values beyond them)."""
    points = sorted(table)
    if width <= points[0][0]:
        return points[0][1]
    for (w0, r0), (w1, r1) in zip(points, points[1:]):
        if width <= w1:
            f = math.log(width / w0) / math.log(w1 / w0)
            return r0 + f * (r1 - r0)
    return points[-1][1]


@dataclass(frozen=True)
class RunPlan:
    """What a run's time depends on. eval_iters: the batches of each split an evaluation runs (the trainer's,
    after gptwiz.common.schedule.run_eval_iters); compiled: None for the trainer's own choice (resolve_compile)."""
    model: ModelConfig           # block_size: the run's
    batch_size: int
    grad_accum: int
    max_iters: int
    eval_interval: int
    eval_iters: int
    device_type: str
    dtype: str
    gpu_count: int = 1
    compiled: bool | None = None
    from_scratch: bool = True             # from random weights: a short evaluation at iteration 0
    preset_eval_iters: int = 0            # the preset's eval_iters before run_eval_iters cut it (0: eval_iters)
    ckpt_interval_s: float = CKPT_INTERVAL_S

    def __post_init__(self) -> None:
        if not self.preset_eval_iters:
            object.__setattr__(self, "preset_eval_iters", self.eval_iters)

    @property
    def first_eval_iters(self) -> int:
        """The batches of each split of the evaluation at iteration 0."""
        return min(self.eval_iters, FIRST_EVAL_ITERS) if self.from_scratch else self.eval_iters

    @property
    def schedule(self) -> EvalSchedule:
        return EvalSchedule(self.eval_interval, self.eval_iters, self.from_scratch,
                            self.ckpt_interval_s)

    @property
    def compiles(self) -> bool:
        return resolve_compile(self.compiled, self.device_type, self.dtype, self.max_iters)

    @property
    def tokens_per_iter(self) -> int:
        return self.batch_size * self.grad_accum * self.gpu_count * self.model.block_size


@dataclass(frozen=True)
class RunTime:
    """A predicted wall time, in seconds, with its parts and what it comes from."""
    seconds: float
    tokens_per_sec: float
    basis: str
    iters: int
    step_s: float        # one iteration (all micro-batches, all cards)
    train_s: float       # iters x step_s
    eval_s: float
    checkpoint_s: float
    startup_s: float     # process start and model build, and torch.compile where the run compiles
    compiled: bool

    def to_json(self) -> dict[str, Any]:
        return {k: (round(v, 2) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def check_plan(plan: RunPlan) -> None:
    for name in ("batch_size", "grad_accum", "max_iters", "eval_interval", "eval_iters", "gpu_count"):
        value = getattr(plan, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise UsageError(f"invalid {name} {value!r}: must be a positive whole number")


def cost_model(device_type: str, dtype: str, amx: bool = False) -> CostModel:
    """The device kind's cost model, or its dtype's (and matrix unit's) own where one was fitted."""
    keys = ([f"{device_type}:{dtype}:amx"] if amx else []) + [f"{device_type}:{dtype}", device_type]
    return next(COST_MODEL[k] for k in keys if k in COST_MODEL)


def token_cost_terms(plan: RunPlan, throughput: Throughput) -> tuple[float, float, float, float]:
    """The four measured costs of one training token on one card, in seconds, before COST_MODEL's coefficients:
    matmul FLOPs at the measured rate, the loss's vocabulary passes, a block's elementwise passes, and the
    optimizer's pass over every parameter shared by an iteration's tokens (each card steps its own copy)."""
    model = plan.model
    tokens_per_card = plan.tokens_per_iter // plan.gpu_count
    return (training_flops_per_token(model) / throughput.rate(model), model.vocab_size * throughput.vocab_s,
            model.n_layer * model.n_embd * throughput.elementwise_s,
            count_params(model) * throughput.elementwise_s / tokens_per_card)


def predicted_tokens_per_sec(plan: RunPlan, throughput: Throughput) -> float:
    """Training tokens a second of the whole run (every card): one over the cost model's seconds a token."""
    if throughput.prior:
        return plan.gpu_count * throughput.rate(plan.model) / training_flops_per_token(plan.model)
    c = cost_model(plan.device_type, plan.dtype, throughput.amx)
    mm, vocab, elem, opt = token_cost_terms(plan, throughput)
    return plan.gpu_count / (c.matmul * mm + c.vocab * vocab + c.elementwise * elem + c.optimizer * opt)


def predict_time_left(plan: RunPlan, *, iter: int, step_s: float, evaluated_to: int = -1) -> TimeLeft:
    """What is left of the run from `iter` at `step_s` an iteration, its evaluations up to `evaluated_to` done:
    its steps, evaluations and checkpoints, priced as the dashboard's ETA prices them before it has measured any."""
    return time_left(plan.schedule, iter=iter, max_iters=plan.max_iters, step_s=step_s,
                     eval_batch_s=step_s * eval_batch_share(plan.device_type, plan.dtype) / plan.grad_accum,
                     ckpt_s=checkpoint_seconds(count_params(plan.model)),
                     best_ckpt_s=checkpoint_seconds(count_params(plan.model), best=True), evaluated_to=evaluated_to)


def _assemble(plan: RunPlan, tokens_per_sec: float, basis: str, *, iters: int, evaluate: bool,
              import_s: float = 0.0, probed: bool = False) -> RunTime:
    """The run's time at `tokens_per_sec`: `iters` steps, with its evaluations and checkpoints where `evaluate`;
    `import_s`: the machine's measured import time (0: not measured); `probed`: a probe of the same shape has
    compiled its training step already."""
    check_plan(plan)
    if not (tokens_per_sec > 0 and math.isfinite(tokens_per_sec)):
        raise UsageError(f"invalid throughput {tokens_per_sec!r} tokens/s: must be a positive number")
    step_s = plan.tokens_per_iter / tokens_per_sec
    if evaluate:
        # One eval batch is one micro-batch's forward on each card, on each of the two splits.
        left = predict_time_left(replace(plan, max_iters=iters), iter=0, step_s=step_s)
        train_s, eval_s, checkpoint_s = left.train_s, left.eval_s, left.checkpoint_s
    else:
        train_s, eval_s, checkpoint_s = iters * step_s, 0.0, 0.0
    compiled = plan.compiles
    compile_s = compile_seconds(plan.device_type, plan.model.n_layer, training=not probed,
                                evaluation=evaluate) if compiled else 0.0
    startup_s = start_seconds(plan.device_type, count_params(plan.model), import_s) + compile_s
    seconds = train_s + eval_s + checkpoint_s + startup_s
    return RunTime(seconds=seconds, tokens_per_sec=tokens_per_sec, basis=basis, iters=iters, step_s=step_s,
                   train_s=train_s, eval_s=eval_s, checkpoint_s=checkpoint_s, startup_s=startup_s, compiled=compiled)


def _predicted_basis(plan: RunPlan, throughput: Throughput) -> str:
    tps = predicted_tokens_per_sec(plan, throughput) / plan.gpu_count
    mfu = tps * training_flops_per_token(plan.model) / throughput.peak()
    if throughput.prior:
        return (f"prior, no {throughput.prior} measured: {throughput.source}: {mfu:.0%} at this model's width; "
                f"{training_flops_per_token(plan.model) / 1e6:.0f} MFLOP a token")
    return (f"predicted from this {'CPU' if plan.device_type == 'cpu' else 'GPU'}'s measured {plan.dtype} speeds "
            f"({throughput.rate(plan.model) / 1e9:,.0f} GFLOP/s matmul) and the {plan.device_type} cost model: "
            f"{training_flops_per_token(plan.model) / 1e6:.0f} MFLOP a token at {mfu:.0%} MFU")


def predict_run_time(plan: RunPlan, throughput: Throughput) -> RunTime:
    """The whole run's wall time: its steps, evaluations, checkpoints, start and compilation."""
    return _assemble(plan, predicted_tokens_per_sec(plan, throughput), _predicted_basis(plan, throughput),
                     iters=plan.max_iters, evaluate=True, import_s=throughput.start_s)


def predict_probe_time(plan: RunPlan, throughput: Throughput, iters: int = PROBE_ITERS) -> RunTime:
    """`gptwiz probe`'s wall time: `iters` steps of the trainer (never more than the run's, probe_iters), no
    evaluation, no checkpoint, compiled when the full run would be (the probe measures what the run will do)."""
    return _assemble(plan, predicted_tokens_per_sec(plan, throughput), _predicted_basis(plan, throughput),
                     iters=probe_iters(plan.max_iters, iters), evaluate=False, import_s=throughput.start_s)


def from_probe_rate(plan: RunPlan, tokens_per_sec: float, import_s: float = 0.0) -> RunTime:
    """The run's wall time at a probe's measured training speed (probe.json's tokens_per_sec); `import_s` the
    machine's measured import time where the caller has it."""
    return _assemble(plan, tokens_per_sec, f"measured by the probe: {tokens_per_sec:,.0f} tokens/s",
                     iters=plan.max_iters, evaluate=True, import_s=import_s, probed=True)


def with_iters(plan: RunPlan, max_iters: int) -> RunPlan:
    eval_iters = run_eval_iters(plan.preset_eval_iters, plan.eval_interval, max_iters, plan.grad_accum)
    return replace(plan, max_iters=max_iters, eval_iters=eval_iters)


def iters_within(plan: RunPlan, throughput: Throughput, seconds: float) -> int:
    """The most iterations, up to the plan's, whose predicted run fits in `seconds` (0 when not even one does)."""
    return _most_iters(plan, seconds, lambda p: predict_run_time(p, throughput).seconds)


def iters_at_rate(plan: RunPlan, tokens_per_sec: float, seconds: float, import_s: float = 0.0) -> int:
    """The most iterations, up to the plan's, whose run at `tokens_per_sec` fits in `seconds` (0: not one)."""
    return _most_iters(plan, seconds, lambda p: from_probe_rate(p, tokens_per_sec, import_s).seconds)


def round_iters(n: int) -> int:
    """A round number of iterations at or below n (two significant digits), so the run still fits."""
    if n < 100:
        return n
    scale = 10 ** (len(str(n)) - 2)
    return n // scale * scale


def _most_iters(plan: RunPlan, seconds: float, run_seconds: Callable[[RunPlan], float]) -> int:
    """Bisection over the run's length: run time grows with its iterations."""
    def fits(n: int) -> bool:
        return run_seconds(with_iters(plan, n)) <= seconds

    if fits(plan.max_iters):
        return plan.max_iters
    if not fits(1):
        return 0
    low, high = 1, plan.max_iters
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (mid, high) if fits(mid) else (low, mid)
    return low


def preset_plan(preset: Preset, *, device_type: str, dtype: str, batch_size: int | None = None,
                block_size: int | None = None, grad_accum: int | None = None, max_iters: int | None = None,
                dropout: float | None = None, compiled: bool | None = None, gpu_count: int = 1) -> RunPlan:
    """A preset with some settings changed, as `gptwiz train` would run it (None: the preset's value)."""
    p = preset.with_overrides(block_size=block_size, dropout=dropout)
    t = p.train
    accum = grad_accum or t.grad_accum
    iters = max_iters or t.max_iters
    eval_iters = run_eval_iters(t.eval_iters, t.eval_interval, iters, accum)
    return RunPlan(model=p.model, batch_size=batch_size or t.batch_size, grad_accum=accum, max_iters=iters,
                   eval_interval=t.eval_interval, eval_iters=eval_iters, preset_eval_iters=t.eval_iters,
                   device_type=device_type, dtype=dtype, gpu_count=gpu_count, compiled=compiled)


def knobs_plan(knobs: Knobs, *, device_type: str, dtype: str, gpu_count: int = 1, presets_dir: Any = None,
               vocab_size: int | None = None) -> RunPlan:
    """preset_plan for a wizard's knobs; `vocab_size`: the data's own tokenizer's (None: the preset's)."""
    preset = load_preset(knobs.preset, presets_dir) if presets_dir is not None else load_preset(knobs.preset)
    preset = preset.with_overrides(vocab_size=vocab_size)
    return preset_plan(preset, device_type=device_type, dtype=dtype,
                       batch_size=knobs.batch_size, block_size=knobs.block_size, grad_accum=knobs.grad_accum,
                       max_iters=knobs.max_iters, dropout=knobs.dropout, gpu_count=gpu_count)


__all__ = ["CostModel", "COST_MODEL", "cost_model", "token_cost_terms", "Throughput", "RunPlan", "RunTime",
           "predict_run_time", "predict_probe_time", "predict_time_left", "from_probe_rate", "predicted_tokens_per_sec",
           "iters_within", "with_iters", "PROBE_ITERS", "preset_plan", "knobs_plan"]
