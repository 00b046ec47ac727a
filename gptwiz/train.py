"""The training loop and everything it writes into the run folder.

`resolve_run_config` turns command-line options into one fully resolved `RunConfig` (validating
everything before anything is written); `Trainer.run` trains it. The run folder (runfolder.py) is
the only thing viewers see.
"""

from __future__ import annotations

import logging
import math
import os
import signal
import time
import traceback
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np

from gptwiz import __version__
from gptwiz.errors import UsageError
from gptwiz.presets import ModelConfig, Preset, TrainConfig, count_params, load_preset
from gptwiz.runfolder import (MetricsWriter, RunLock, RunPaths, now_iso, read_json, resolve_run, run_paths,
                              trim_metrics, write_status)
from gptwiz.schedule import effective_warmup, lr_at

# Seeds for the fixed evaluation batches, apart from any training iteration's.
_VAL_STREAM, _TRAIN_EVAL_STREAM = 1_000_000_007, 1_000_000_009


@dataclass
class TrainOptions:
    """What the user asked for, as given on the command line (None: take the preset's value)."""
    config_file: str | None = None
    model_name: str = "run"
    input_file: str | None = None
    dataset_dir: str | None = None
    max_iters: int | None = None
    learning_rate: float | None = None
    batch_size: int | None = None
    block_size: int | None = None
    grad_accum: int | None = None
    eval_interval: int | None = None
    eval_iters: int | None = None
    dropout: float | None = None
    init_from_model: str | None = None
    device: str = "auto"
    dtype: str = "auto"
    compile: bool | None = None
    resume: bool = False
    seed: int = 1337
    runs_dir: str = "runs"
    data_dir: str = "data"
    quiet: bool = False
    ckpt_interval_s: float = 300.0
    probe: bool = False  # a validation probe: no evaluation, no checkpoints, "probe" records
    nproc: int = 1      # processes on this machine (torchrun); WORLD_SIZE from torchrun wins
    fsdp: bool = False  # shard parameters, gradients and optimizer state instead of replicating them


@dataclass
class RunConfig:
    """Everything a run needs, fully resolved; stored as the run's config.json."""
    name: str
    preset: str
    preset_path: str
    model: ModelConfig
    train: TrainConfig
    warmup_iters: int
    data: dict[str, Any]
    device: str
    dtype: str
    compile: bool
    seed: int
    init_from: str | None
    params: int
    tokens_per_iter: int
    ckpt_interval_s: float = 300.0
    probe: bool = False
    world_size: int = 1
    fsdp: bool = False
    created_at: str = field(default_factory=now_iso)
    gptwiz_version: str = __version__

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["train"]["betas"] = list(self.train.betas)
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "RunConfig":
        data = dict(data)
        data["model"] = ModelConfig(**data["model"])
        train = dict(data["train"])
        train["betas"] = tuple(train["betas"])
        data["train"] = TrainConfig(**train)
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass
class TrainResult:
    state: str
    iter: int
    max_iters: int
    last_loss: float | None
    best_val_loss: float | None
    error: str | None
    run_dir: Path

    @property
    def exit_code(self) -> int:
        return {"finished": 0, "stopped": 0, "diverged": 3}.get(self.state, 1)


# --- resolving options into a RunConfig --------------------------------------------------------------

def _positive(name: str, value: Any, kind: type = int) -> None:
    if value is not None and (not isinstance(value, (int, float)) or value <= 0):
        raise UsageError(f"invalid --{name} {value!r}: must be a positive {'whole number' if kind is int else 'number'}")


def check_options(opts: TrainOptions) -> None:
    for name in ("max_iters", "batch_size", "block_size", "grad_accum", "eval_interval", "eval_iters"):
        _positive(name, getattr(opts, name))
    if opts.learning_rate is not None and not 0 < opts.learning_rate < 1:
        raise UsageError(f"invalid --learning_rate {opts.learning_rate!r}: must lie in (0, 1), e.g. 3e-4")
    if opts.dropout is not None and not 0 <= opts.dropout < 1:
        raise UsageError(f"invalid --dropout {opts.dropout!r}: must lie in [0, 1)")
    if not opts.ckpt_interval_s > 0:  # also NaN
        raise UsageError(f"invalid --ckpt_interval_s {opts.ckpt_interval_s!r}: must be a positive number of seconds")
    if not 0 <= opts.seed < 2**32:  # numpy's seed sequences take no negative numbers
        raise UsageError(f"invalid --seed {opts.seed!r}: must be a whole number from 0 to 4294967295")


def capped_eval_iters(train: TrainConfig) -> int:
    """The preset's eval_iters, cut down for short runs so evaluating costs about a third of the training
    between two evaluations at most (an evaluation batch is a forward pass, a third of a training step, on
    two splits). A 100-iteration check of a big preset should not spend most of its time evaluating."""
    steps_between = min(train.eval_interval, train.max_iters)
    return max(1, min(train.eval_iters, steps_between * train.grad_accum // 2))


def resolve_data(opts: TrainOptions) -> dict[str, Any]:
    """The dataset folder to train from: a prepared one, or the token cache of --input_file."""
    from gptwiz.dataset import cache_text_file, manifest_checksum, read_manifest

    if bool(opts.input_file) == bool(opts.dataset_dir):
        raise UsageError("give exactly one of --input_file FILE (a text file) or --dataset_dir DIR (from `gptwiz prepare`)")
    if opts.input_file:
        dataset_dir = cache_text_file(opts.input_file, opts.data_dir)
        kind = "input_file"
    else:
        dataset_dir = Path(opts.dataset_dir)
        kind = "dataset_dir"
    manifest = read_manifest(dataset_dir)
    return {
        "kind": kind,
        "input_file": str(Path(opts.input_file).resolve()) if opts.input_file else None,
        "dataset_dir": str(Path(dataset_dir).resolve()),
        "manifest": str((Path(dataset_dir) / "manifest.json").resolve()),
        "manifest_checksum": manifest_checksum(Path(dataset_dir)),
        "sources": [{"name": s["name"], "weight": s["weight"]} for s in manifest["sources"]],
        "train_tokens": manifest["totals"].get("train_tokens"),
        "val_tokens": manifest["totals"].get("val_tokens"),
    }


def check_data_fits_block(opts: TrainOptions, data: dict[str, Any], block_size: int) -> None:
    """Refuse, before anything is written, data that cannot fill one training and one validation block."""
    from gptwiz.dataset import TokenDataset

    try:
        TokenDataset(data["dataset_dir"]).check_block(block_size)
    except UsageError:
        if not opts.input_file:
            raise
        total = (data.get("train_tokens") or 0) + (data.get("val_tokens") or 0)
        raise UsageError(
            f"--input_file {opts.input_file} holds {total} tokens, too few for one block of {block_size + 1} tokens "
            f"in both its train (90%) and val (10%) parts: use a longer file (at least {10 * (block_size + 1)} "
            "tokens) or a smaller --block_size") from None


# What `gptwiz probe --model_name NAME` leaves in runs/NAME/ (and a detached trainer's console.log).
_PROBE_FILES = {"config.json", "status.json", "metrics.jsonl", "train.log", "probe.json", "lock", "console.log"}


def holds_only_a_probe(paths: RunPaths) -> bool:
    """True for a folder holding nothing but a probe's files (no checkpoint, a config marked probe or none):
    a run of the same name may start in it, as the probe was its rehearsal."""
    names = {p.name for p in paths.root.iterdir()}
    if not names <= _PROBE_FILES:
        return False
    if "config.json" not in names:
        return True
    return bool((read_json(paths.config) or {}).get("probe"))


def resolve_run_config(opts: TrainOptions, check_exists: bool = True) -> tuple[RunConfig, RunPaths]:
    """Validate every option and settle every setting; writes nothing but the token cache."""
    from gptwiz.device import resolve_device, resolve_runtime

    check_options(opts)
    paths = run_paths(opts.runs_dir, opts.model_name)
    if opts.resume:
        saved = read_json(paths.config)
        if saved is None:
            raise UsageError(f"--resume: run '{opts.model_name}' has no config.json in {paths.root} (nothing to resume)")
        from gptwiz.checkpoint import find_checkpoint

        # A run killed before its first checkpoint resumes from iteration 0 (Trainer.run); a probe's folder does not.
        if find_checkpoint(paths) is None and saved.get("probe"):
            raise UsageError(f"--resume: run '{opts.model_name}' has no checkpoint in {paths.root} (nothing to resume)")
        cfg = RunConfig.from_json(saved)
        if opts.max_iters is not None:
            cfg = replace(cfg, train=replace(cfg.train, max_iters=opts.max_iters),
                          warmup_iters=min(cfg.warmup_iters, opts.max_iters // 10) if opts.max_iters < cfg.train.max_iters
                          else cfg.warmup_iters)
        # Unless told otherwise, a resumed run keeps the precision and compile choice it started with, so that
        # it continues exactly as it would have (a run started on a GPU may still continue on a CPU).
        import torch

        device = opts.device if opts.device != "auto" or not cfg.device.startswith("cuda") or torch.cuda.is_available() \
            else "cpu"
        dtype = opts.dtype if opts.dtype != "auto" else cfg.dtype
        if dtype == "float16" and not resolve_device(device).startswith("cuda"):
            dtype = "auto"
        runtime = resolve_runtime(device, dtype, cfg.compile if opts.compile is None else opts.compile, cfg.train.max_iters)
        # A run may resume on another number of processes: the global batch follows the new count.
        ws = world_size()
        return replace(cfg, device=runtime.device, dtype=runtime.dtype, compile=runtime.compile, world_size=ws,
                       fsdp=opts.fsdp, tokens_per_iter=cfg.tokens_per_iter // cfg.world_size * ws), paths

    if not opts.config_file:
        raise UsageError("--config_file is required: a preset name (tiny, small, 150M, ...) or a path to a preset JSON file")
    # console.log is the stdout of a detached trainer (gptwiz/detach.py), opened just before this check runs.
    if check_exists and (paths.root.exists() and any(p.name != "console.log" for p in paths.root.iterdir())
            and not holds_only_a_probe(paths)):
        raise UsageError(f"run '{opts.model_name}' already exists in {paths.root}: add --resume to continue it, "
                         "or choose another --model_name")
    preset: Preset = load_preset(opts.config_file)
    preset = preset.with_overrides(
        max_iters=opts.max_iters, learning_rate=opts.learning_rate, batch_size=opts.batch_size,
        block_size=opts.block_size, grad_accum=opts.grad_accum, eval_interval=opts.eval_interval,
        eval_iters=opts.eval_iters, dropout=opts.dropout,
    )
    train = preset.train
    if opts.learning_rate is not None and train.min_lr > train.learning_rate:
        train = replace(train, min_lr=train.learning_rate / 10)
    if opts.eval_iters is None:
        train = replace(train, eval_iters=capped_eval_iters(train))
    init_from = None
    if opts.init_from_model:
        source = resolve_run(opts.init_from_model, opts.runs_dir)
        from gptwiz.checkpoint import find_checkpoint

        if find_checkpoint(source) is None:
            raise UsageError(f"--init_from_model {opts.init_from_model}: run '{source.name}' has no checkpoint yet")
        source_cfg = read_json(source.config) or {}
        src_model = source_cfg.get("model", {})
        for key in ("n_layer", "n_head", "n_embd", "vocab_size", "bias"):
            if key in src_model and src_model[key] != getattr(preset.model, key):
                raise UsageError(f"--init_from_model {opts.init_from_model}: its {key} is {src_model[key]}, "
                                 f"the preset {preset.name}'s is {getattr(preset.model, key)}; use a preset of the same architecture")
        if src_model.get("block_size", 0) < preset.model.block_size:
            raise UsageError(f"--init_from_model {opts.init_from_model}: it was trained with block_size "
                             f"{src_model.get('block_size')}, shorter than {preset.model.block_size}")
        init_from = str(source.root.resolve())
    data = resolve_data(opts)
    check_data_fits_block(opts, data, preset.model.block_size)
    runtime = resolve_runtime(opts.device, opts.dtype, opts.compile, train.max_iters)
    cfg = RunConfig(
        name=paths.name, preset=preset.name, preset_path=str(Path(preset.path).resolve()),
        model=preset.model, train=train, warmup_iters=effective_warmup(train.warmup_iters, train.max_iters),
        data=data, device=runtime.device, dtype=runtime.dtype, compile=runtime.compile, seed=opts.seed,
        init_from=init_from, params=count_params(preset.model),
        tokens_per_iter=train.batch_size * train.grad_accum * preset.model.block_size * world_size(),
        ckpt_interval_s=opts.ckpt_interval_s, probe=opts.probe, world_size=world_size(), fsdp=opts.fsdp,
    )
    return cfg, paths


# --- the trainer ---------------------------------------------------------------------------------

class Reporter:
    """What the console sees of a run; the run folder gets everything regardless."""

    def start(self, cfg: RunConfig, start_iter: int) -> None: ...
    def step(self, record: dict[str, Any]) -> None: ...
    def eval(self, record: dict[str, Any]) -> None: ...
    def log(self, message: str) -> None: ...
    def end(self, result: TrainResult) -> None: ...


class _StopRequest:
    """SIGINT/SIGTERM only set a flag: the loop finishes its step and checkpoints before leaving."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict[int, Any] = {}

    def install(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread: the caller handles stopping
                pass

    def _handle(self, signum: int, frame: Any) -> None:
        self.requested = True

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


class Trainer:
    """One training run, in this process; under torchrun, this process's rank of it.

    Every rank trains; only rank 0 writes the run folder (config, status, metrics, log, checkpoints).
    """

    def __init__(self, cfg: RunConfig, paths: RunPaths, reporter: Reporter | None = None, resume: bool = False,
                 should_stop: Callable[[], bool] | None = None, dist: Any = None):
        from gptwiz.distributed import DistContext

        self.cfg = cfg
        self.paths = paths
        self.reporter = reporter or Reporter()
        self.resume = resume
        self.should_stop = should_stop or (lambda: False)
        self.dist = dist or DistContext()
        self.main = self.dist.is_main
        self.log = logging.getLogger(f"gptwiz.train.{cfg.name}.{self.dist.rank}")
        self._status_fields: dict[str, Any] = {"name": cfg.name, "pid": os.getpid(), "started_at": now_iso(),
                                               "error": None, "probe": cfg.probe, "world_size": self.dist.world_size}
        self.iter_num = 0
        self.best_val = float("inf")
        self.last_loss: float | None = None

    # -- data --

    def _batch(self, dataset: Any, split: str, stream: tuple[int, ...]) -> tuple[Any, Any, Any]:
        """The batch of a (seed, stream) pair: the data order is a pure function of the iteration, so a
        resumed run, or N ranks splitting the same micro-steps, see exactly the batches of one process."""
        import torch

        rng = np.random.default_rng([self.cfg.seed, *stream])
        x, y, src = dataset.batch(split, self.cfg.train.batch_size, self.cfg.model.block_size, rng)
        x, y = torch.from_numpy(x), torch.from_numpy(y)
        if self.runtime.device_type == "cuda":
            # Pinned host memory lets the copy overlap with the GPU still working on the previous step.
            x = x.pin_memory().to(self.runtime.device, non_blocking=True)
            y = y.pin_memory().to(self.runtime.device, non_blocking=True)
        return x, y, src

    def _estimate_loss(self, model: Any, dataset: Any) -> dict[str, float]:
        """Mean loss over fixed batches of each split; the ranks share the batches out."""
        import torch

        from gptwiz.distributed import mean_across_ranks

        out = {}
        model.eval()
        with torch.no_grad():
            for split, stream in (("train", _TRAIN_EVAL_STREAM), ("val", _VAL_STREAM)):
                total = torch.zeros(2, device=self.runtime.device)
                for k in range(self.dist.rank, self.cfg.train.eval_iters, self.dist.world_size):
                    x, y, _ = self._batch(dataset, split, (stream, k))
                    with self.runtime.autocast():
                        _, loss = model(x, y)
                    total += torch.stack([loss.float(), torch.ones((), device=loss.device)])
                total = mean_across_ranks(total, self.dist)
                out[split] = float(total[0] / total[1])
        model.train()
        return out

    # -- the run folder (rank 0 only) --

    def _status(self, state: str, **extra: Any) -> None:
        if not self.main:
            return
        self._status_fields.update(extra)
        self._status_fields.update(state=state, iter=self.iter_num, max_iters=self.cfg.train.max_iters,
                                   last_loss=self.last_loss)
        write_status(self.paths, self._status_fields)

    def _say(self, message: str) -> None:
        if self.main:
            self.log.info(message)
            self.reporter.log(message)

    def _write(self, record: dict[str, Any]) -> None:
        if self.main:
            self.metrics.write(record)

    def _checkpoint(self, model: Any, optimizer: Any, best: bool) -> None:
        from gptwiz.checkpoint import save_checkpoint
        from gptwiz.distributed import full_state

        # Under FSDP gathering the whole state is a collective: every rank takes part, rank 0 writes.
        model_state, optim_state = full_state(model if self.dist.fsdp else self.raw_model, optimizer, self.dist.fsdp)
        if self.main:
            kwargs = dict(iter_num=self.iter_num, best_val_loss=self.best_val, config=self.cfg.to_json())
            save_checkpoint(self.paths.ckpt_last, model_state=model_state, optimizer_state=optim_state, **kwargs)
            if best:
                save_checkpoint(self.paths.ckpt_best, model_state=model_state, optimizer_state=None, **kwargs)
        self.last_ckpt_time = time.monotonic()

    # -- setting up --

    def _build(self) -> tuple[Any, Any, Any]:
        """The dataset, the (wrapped, maybe compiled) model and its optimizer, with resumed or initial state."""
        import torch

        from gptwiz.checkpoint import load_run_checkpoint
        from gptwiz.dataset import TokenDataset
        from gptwiz.device import Runtime, configure_backends
        from gptwiz.distributed import load_full_state, wrap_model
        from gptwiz.model import GPT

        cfg, paths = self.cfg, self.paths
        device = cfg.device
        if self.dist.enabled and device.startswith("cuda"):
            device = f"cuda:{self.dist.local_rank}"
        self.runtime = Runtime(device, cfg.dtype, cfg.compile)
        configure_backends(self.runtime)
        dataset = TokenDataset(cfg.data["dataset_dir"])
        if dataset.checksum != cfg.data["manifest_checksum"]:
            self._say(f"warning: the dataset {dataset.dir} changed since this run started (manifest checksum differs)")
        dataset.check_block(cfg.model.block_size)

        torch.manual_seed(cfg.seed)  # the same initial weights on every rank
        model = GPT(cfg.model).to(self.runtime.device)
        self.raw_model = model
        state = None
        if self.resume:
            ckpt_path, state = load_run_checkpoint(paths, prefer="last", map_location="cpu", warn=self._say)
            if state.get("optimizer") is None:
                self._say(f"{ckpt_path.name} holds no optimizer state: the optimizer starts afresh")
            self.iter_num = int(state["iter"])
            self.best_val = float(state.get("best_val_loss", float("inf")))
        elif cfg.init_from:
            src_path, src = load_run_checkpoint(RunPaths(Path(cfg.init_from)), prefer="best", map_location="cpu")
            weights = src["model"]
            # A source trained with a longer context has more positions than this run needs.
            weights["transformer.wpe.weight"] = weights["transformer.wpe.weight"][: cfg.model.block_size]
            model.load_state_dict(weights)
            self._say(f"initialised weights from {src_path} (iteration {src['iter']}); fresh optimizer and schedule")
        model = wrap_model(model, self.dist, self.runtime.device)
        # Fused AdamW does not take FSDP's sharded tensors everywhere; the for-each kernel does.
        optimizer = (model if self.dist.fsdp else self.raw_model).configure_optimizer(
            cfg.train.weight_decay, cfg.train.learning_rate, cfg.train.betas,
            "fsdp" if self.dist.fsdp else self.runtime.device_type)
        if state is not None:
            load_full_state(model if self.dist.fsdp else self.raw_model, optimizer, state["model"],
                            state.get("optimizer"), self.dist.fsdp)
            torch.set_rng_state(state["torch_rng"].cpu())
            if self.main:
                trim_metrics(paths.metrics, self.iter_num)
            self._status_fields["started_at"] = (read_json(paths.status) or {}).get("started_at", now_iso())
            self._say(f"resumed {cfg.name} from {ckpt_path.name} at iteration {self.iter_num}")
        torch.manual_seed(cfg.seed + 1000 * self.dist.rank + self.iter_num)  # different dropout masks per rank
        if self.runtime.compile:
            self._say("compiling the model with torch.compile (the first iterations are slow)")
            model = torch.compile(model)
        return dataset, model, optimizer

    # -- the loop --

    def _train(self) -> str:
        import torch

        from gptwiz.device import MemoryMeter, peak_flops
        from gptwiz.distributed import agree, grad_sync, injected_failure, mean_across_ranks

        cfg = self.cfg
        dataset, model, optimizer = self._build()
        if self.main and not self.resume:
            # A fresh run starts its own metrics.jsonl: a probe's records may be there (its results stay in probe.json).
            self.paths.metrics.unlink(missing_ok=True)
        self.metrics = MetricsWriter(self.paths.metrics) if self.main else None
        scaler = torch.amp.GradScaler(enabled=(self.runtime.dtype == "float16"))
        meter = MemoryMeter(self.runtime)
        flops_peak = peak_flops(self.runtime)
        flops_per_iter = self.raw_model.flops_per_token() * cfg.tokens_per_iter
        self._status("running")
        if self.main:
            self.reporter.start(cfg, self.iter_num)
        self._say(f"training {cfg.name}: preset {cfg.preset}, {cfg.params / 1e6:.1f}M parameters, {cfg.device} "
                  f"{cfg.dtype}{' compiled' if cfg.compile else ''}"
                  f"{f', {self.dist.world_size} processes' if self.dist.enabled else ''}"
                  f"{' (FSDP)' if self.dist.fsdp else ''}, iterations {self.iter_num}..{cfg.train.max_iters}")
        t_start = time.perf_counter()
        self.last_ckpt_time = time.monotonic()
        last_status_time = 0.0
        source_counts = np.zeros(len(dataset.sources), dtype=np.int64)
        evaluated_at = self.iter_num if self.resume else -1
        accum = cfg.train.grad_accum
        fail_at = injected_failure(self.dist)

        def evaluate() -> None:
            nonlocal evaluated_at
            evaluated_at = self.iter_num
            losses = self._estimate_loss(model, dataset)
            improved = losses["val"] < self.best_val
            self.best_val = min(self.best_val, losses["val"])
            record = {"type": "eval", "iter": self.iter_num, "train_loss": losses["train"], "val_loss": losses["val"],
                      "best_val_loss": self.best_val, "time": time.time()}
            self._write(record)
            if self.main:
                self.reporter.eval(record)
            self._say(f"eval iter {self.iter_num}: train loss {losses['train']:.4f}, val loss {losses['val']:.4f}")
            self._checkpoint(model, optimizer, best=improved)

        state = "finished"
        while self.iter_num < cfg.train.max_iters:
            if not cfg.probe and self.iter_num % cfg.train.eval_interval == 0 and evaluated_at != self.iter_num:
                evaluate()
            # Every rank must stop, and checkpoint, at the same step, or the others wait forever.
            stop, ckpt_due = agree([self.stop.requested or self.should_stop(),
                                    time.monotonic() - self.last_ckpt_time > cfg.ckpt_interval_s], self.dist)
            if stop:
                state = "stopped"
                break
            if ckpt_due and not cfg.probe:
                self._checkpoint(model, optimizer, best=False)
            if fail_at is not None and self.iter_num >= fail_at:
                raise RuntimeError(f"injected failure of rank {self.dist.rank} at iteration {self.iter_num}")
            lr = lr_at(self.iter_num, learning_rate=cfg.train.learning_rate, min_lr=cfg.train.min_lr,
                       warmup_iters=cfg.warmup_iters, decay_iters=cfg.train.max_iters)
            for group in optimizer.param_groups:
                group["lr"] = lr
            t0 = time.perf_counter()
            loss_sum = torch.zeros((), device=self.runtime.device)
            for micro in range(accum):
                # Micro-step m of rank r is global micro-step r * accum + m: N ranks with accumulation A
                # see the batches of one process with accumulation N * A.
                x, y, src = self._batch(dataset, "train", (self.iter_num, self.dist.rank * accum + micro))
                source_counts += np.bincount(src, minlength=len(source_counts))
                with grad_sync(model, self.dist, sync=(micro == accum - 1)):
                    with self.runtime.autocast():
                        _, loss = model(x, y)
                        loss = loss / accum
                    scaler.scale(loss).backward()
                loss_sum += loss.detach().float()
            if cfg.train.grad_clip > 0:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.train.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)
            loss_value = float(mean_across_ranks(loss_sum, self.dist))  # syncs: dt below is the real step time
            dt = time.perf_counter() - t0
            if not math.isfinite(loss_value):
                msg = (f"loss became {loss_value} at iteration {self.iter_num + 1}; kept the last good checkpoint "
                       f"(try a lower --learning_rate than {cfg.train.learning_rate:g})")
                self._status_fields["error"] = msg
                self._say(msg)
                return "diverged"
            self.iter_num += 1
            self.last_loss = loss_value
            record = {"type": "probe" if cfg.probe else "train", "iter": self.iter_num, "loss": loss_value, "lr": lr,
                      "tokens_per_sec": cfg.tokens_per_iter / dt, "mfu": flops_per_iter / dt / (flops_peak * self.dist.world_size),
                      "dt_s": dt, "elapsed_s": time.perf_counter() - t_start,
                      "peak_mem_bytes": meter.peak_bytes(), "time": time.time(),
                      "world_size": self.dist.world_size,
                      "source_counts": {s.name: int(c) for s, c in zip(dataset.sources, source_counts)}}
            self._write(record)
            if self.main:
                self.reporter.step(record)
            if time.monotonic() - last_status_time > 1.0:
                self._status("running")
                last_status_time = time.monotonic()
        else:
            if not cfg.probe and evaluated_at != self.iter_num:
                evaluate()
        if state == "stopped" and not cfg.probe:
            self._checkpoint(model, optimizer, best=False)
            self._say(f"stopped at iteration {self.iter_num}; checkpoint written (continue with --resume)")
        if state == "finished":
            self._say(f"finished at iteration {self.iter_num}"
                      + (f", best val loss {self.best_val:.4f}" if math.isfinite(self.best_val) else ""))
        self._status_fields["peak_mem_bytes"] = meter.peak_bytes()
        return state

    def run(self) -> TrainResult:
        cfg, paths = self.cfg, self.paths
        lock = RunLock(paths)
        handler = None
        if self.main:
            paths.root.mkdir(parents=True, exist_ok=True)
            lock.acquire()
            from gptwiz.atomic import remove_temp_files

            remove_temp_files(paths.root)  # what a trainer killed mid-write left; the lock says none is writing
            handler = logging.FileHandler(paths.log, encoding="utf-8")
            handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%Y-%m-%d %H:%M:%S"))
            self.log.addHandler(handler)
            self.log.setLevel(logging.INFO)
            self.log.propagate = False
        self.stop = _StopRequest()
        self.stop.install()
        self.metrics = None
        if self.resume:
            from gptwiz.checkpoint import find_checkpoint

            # Killed before its first checkpoint: start over, with the run's own settings.
            self.resume = find_checkpoint(paths) is not None
        try:
            if self.main:
                from gptwiz.atomic import atomic_write_json

                # Also on resume: a --max_iters given then is the run's length from now on, so that the next
                # --resume (after a kill, say) runs to the same final iteration, and viewers draw its schedule.
                atomic_write_json(paths.config, cfg.to_json())
            state = self._train()
            best = self.best_val if math.isfinite(self.best_val) else None
            self._status(state, best_val_loss=best)
            result = TrainResult(state, self.iter_num, cfg.train.max_iters, self.last_loss, best,
                                 self._status_fields.get("error"), paths.root)
        except UsageError as exc:
            self._fail(str(exc))
            raise
        except BaseException as exc:
            message = _describe(exc)
            self.log.info("training failed:\n%s", traceback.format_exc())
            self._fail(message)
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            result = TrainResult("failed", self.iter_num, cfg.train.max_iters, self.last_loss, None, message, paths.root)
        finally:
            self.stop.restore()
            if self.metrics is not None:
                self.metrics.close()
            lock.release()
            if handler is not None:
                self.log.removeHandler(handler)
                handler.close()
        if self.main:
            self.reporter.end(result)
        return result

    def _fail(self, message: str) -> None:
        self._status_fields["error"] = message
        from gptwiz.distributed import report_rank_error

        report_rank_error(self.dist, message)
        try:
            self._status("failed")
        except OSError:
            pass


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if isinstance(exc, OSError) and exc.errno == 28:
        return f"no space left on the disk while writing ({exc.filename or 'a file'}); free some space and --resume"
    return f"{exc.__class__.__name__}: {text}" if text else exc.__class__.__name__


def world_size() -> int:
    from gptwiz.distributed import env_world_size

    return env_world_size()


def train(opts: TrainOptions, reporter: Reporter | None = None,
          should_stop: Callable[[], bool] | None = None) -> TrainResult:
    if world_size() <= 1:
        cfg, paths = resolve_run_config(opts)
        return Trainer(cfg, paths, reporter, resume=opts.resume, should_stop=should_stop).run()
    # Under torchrun: rank 0 settles the configuration (and builds the token cache) before the others
    # read it, so they never race on the cache or see the run folder half made.
    import torch.distributed as dist

    from gptwiz.device import resolve_device
    from gptwiz.distributed import init_distributed, shutdown

    device_type = "cuda" if resolve_device(opts.device).startswith("cuda") else "cpu"
    ctx = init_distributed(device_type, opts.fsdp)
    try:
        if ctx.is_main:
            cfg, paths = resolve_run_config(opts)
        dist.barrier()
        if not ctx.is_main:
            cfg, paths = resolve_run_config(opts, check_exists=False)
        dist.barrier()
        return Trainer(cfg, paths, reporter, resume=opts.resume, should_stop=should_stop, dist=ctx).run()
    finally:
        shutdown(ctx)
