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
    if opts.ckpt_interval_s <= 0:
        raise UsageError(f"invalid --ckpt_interval_s {opts.ckpt_interval_s!r}: must be a positive number of seconds")


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


def resolve_run_config(opts: TrainOptions) -> tuple[RunConfig, RunPaths]:
    """Validate every option and settle every setting; writes nothing but the token cache."""
    from gptwiz.device import resolve_runtime

    check_options(opts)
    paths = run_paths(opts.runs_dir, opts.model_name)
    if opts.resume:
        saved = read_json(paths.config)
        if saved is None:
            raise UsageError(f"--resume: run '{opts.model_name}' has no config.json in {paths.root} (nothing to resume)")
        from gptwiz.checkpoint import find_checkpoint

        if find_checkpoint(paths) is None:
            raise UsageError(f"--resume: run '{opts.model_name}' has no checkpoint in {paths.root} (nothing to resume)")
        cfg = RunConfig.from_json(saved)
        if opts.max_iters is not None:
            cfg = replace(cfg, train=replace(cfg.train, max_iters=opts.max_iters),
                          warmup_iters=min(cfg.warmup_iters, opts.max_iters // 10) if opts.max_iters < cfg.train.max_iters
                          else cfg.warmup_iters)
        runtime = resolve_runtime(opts.device, opts.dtype, opts.compile, cfg.train.max_iters)
        return replace(cfg, device=runtime.device, dtype=runtime.dtype, compile=runtime.compile), paths

    if not opts.config_file:
        raise UsageError("--config_file is required: a preset name (tiny, small, 150M, ...) or a path to a preset JSON file")
    if paths.root.exists() and any(paths.root.iterdir()):
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
    runtime = resolve_runtime(opts.device, opts.dtype, opts.compile, train.max_iters)
    cfg = RunConfig(
        name=paths.name, preset=preset.name, preset_path=str(Path(preset.path).resolve()),
        model=preset.model, train=train, warmup_iters=effective_warmup(train.warmup_iters, train.max_iters),
        data=data, device=runtime.device, dtype=runtime.dtype, compile=runtime.compile, seed=opts.seed,
        init_from=init_from, params=count_params(preset.model),
        tokens_per_iter=train.batch_size * train.grad_accum * preset.model.block_size,
        ckpt_interval_s=opts.ckpt_interval_s, probe=opts.probe,
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
    def __init__(self, cfg: RunConfig, paths: RunPaths, reporter: Reporter | None = None, resume: bool = False,
                 should_stop: Callable[[], bool] | None = None):
        self.cfg = cfg
        self.paths = paths
        self.reporter = reporter or Reporter()
        self.resume = resume
        self.should_stop = should_stop or (lambda: False)
        self.log = logging.getLogger(f"gptwiz.train.{cfg.name}")

    # -- helpers --

    def _batch(self, dataset: Any, split: str, stream: tuple[int, ...]) -> tuple[Any, Any, Any]:
        import torch

        rng = np.random.default_rng([self.cfg.seed, *stream])
        x, y, src = dataset.batch(split, self.cfg.train.batch_size, self.cfg.model.block_size, rng)
        x, y = torch.from_numpy(x), torch.from_numpy(y)
        if self.runtime.device_type == "cuda":
            # Pinned host memory lets the copy overlap with the GPU still working on the previous step.
            x, y = x.pin_memory().to(self.runtime.device, non_blocking=True), y.pin_memory().to(self.runtime.device, non_blocking=True)
        return x, y, src

    def _estimate_loss(self, model: Any, dataset: Any) -> dict[str, float]:
        import torch

        out = {}
        model.eval()
        with torch.no_grad():
            for split, stream in (("train", _TRAIN_EVAL_STREAM), ("val", _VAL_STREAM)):
                losses = []
                for k in range(self.cfg.train.eval_iters):
                    x, y, _ = self._batch(dataset, split, (stream, k))
                    with self.runtime.autocast():
                        _, loss = model(x, y)
                    losses.append(loss.item())
                out[split] = float(np.mean(losses))
        model.train()
        return out

    def _status(self, state: str, iter_num: int, **extra: Any) -> None:
        self._status_fields.update(extra)
        self._status_fields.update(state=state, iter=iter_num, max_iters=self.cfg.train.max_iters)
        write_status(self.paths, self._status_fields)

    def _say(self, message: str) -> None:
        self.log.info(message)
        self.reporter.log(message)

    # -- the run --

    def run(self) -> TrainResult:
        import torch

        from gptwiz.checkpoint import load_run_checkpoint, save_checkpoint
        from gptwiz.dataset import TokenDataset
        from gptwiz.device import MemoryMeter, Runtime, configure_backends, peak_flops
        from gptwiz.model import GPT

        cfg, paths = self.cfg, self.paths
        paths.root.mkdir(parents=True, exist_ok=True)
        lock = RunLock(paths)
        lock.acquire()
        handler = logging.FileHandler(paths.log, encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%Y-%m-%d %H:%M:%S"))
        self.log.addHandler(handler)
        self.log.setLevel(logging.INFO)
        self.log.propagate = False
        stop = _StopRequest()
        stop.install()
        self._status_fields: dict[str, Any] = {"name": cfg.name, "pid": os.getpid(), "started_at": now_iso(),
                                               "error": None, "probe": cfg.probe}
        iter_num, last_loss, best_val = 0, None, float("inf")
        try:
            self.runtime = Runtime(cfg.device, cfg.dtype, cfg.compile)
            configure_backends(self.runtime)
            torch.manual_seed(cfg.seed)
            dataset = TokenDataset(cfg.data["dataset_dir"])
            if dataset.checksum != cfg.data["manifest_checksum"]:
                self._say(f"warning: the dataset {dataset.dir} changed since this run started (manifest checksum differs)")
            dataset.check_block(cfg.model.block_size)
            model = GPT(cfg.model).to(self.runtime.device)
            optimizer = model.configure_optimizer(cfg.train.weight_decay, cfg.train.learning_rate,
                                                  cfg.train.betas, self.runtime.device_type)
            if self.resume:
                ckpt_path, state = load_run_checkpoint(paths, prefer="last", map_location=self.runtime.device)
                model.load_state_dict(state["model"])
                if state.get("optimizer") is not None:
                    optimizer.load_state_dict(state["optimizer"])
                iter_num = int(state["iter"])
                best_val = float(state.get("best_val_loss", float("inf")))
                torch.set_rng_state(state["torch_rng"].cpu())
                trim_metrics(paths.metrics, iter_num)
                self._status_fields["started_at"] = (read_json(paths.status) or {}).get("started_at", now_iso())
                self._say(f"resumed {cfg.name} from {ckpt_path.name} at iteration {iter_num}")
            else:
                from gptwiz.atomic import atomic_write_json

                atomic_write_json(paths.config, cfg.to_json())
                if cfg.init_from:
                    src_path, state = load_run_checkpoint(RunPaths(Path(cfg.init_from)), prefer="best")
                    weights = state["model"]
                    if weights["transformer.wpe.weight"].shape[0] != cfg.model.block_size:
                        weights["transformer.wpe.weight"] = weights["transformer.wpe.weight"][: cfg.model.block_size]
                    model.load_state_dict(weights)
                    self._say(f"initialised weights from {src_path} (iteration {state['iter']}); fresh optimizer and schedule")
            raw_model = model
            if self.runtime.compile:
                self._say("compiling the model with torch.compile (the first iterations are slow)")
                model = torch.compile(model)
            scaler = torch.amp.GradScaler(enabled=(self.runtime.dtype == "float16"))
            meter = MemoryMeter(self.runtime)
            flops_peak = peak_flops(self.runtime)
            flops_per_iter = raw_model.flops_per_token() * cfg.tokens_per_iter
            metrics = MetricsWriter(paths.metrics)
            self._status("running", iter_num, last_loss=None)
            self.reporter.start(cfg, iter_num)
            self._say(f"training {cfg.name}: preset {cfg.preset}, {cfg.params / 1e6:.1f}M parameters, "
                      f"{cfg.device} {cfg.dtype}{' compiled' if cfg.compile else ''}, iterations {iter_num}..{cfg.train.max_iters}")

            t_start = time.perf_counter()
            last_ckpt_time = time.monotonic()
            last_status_time = 0.0
            source_counts = np.zeros(len(dataset.sources), dtype=np.int64)
            state_name = "finished"

            def checkpoint(best: bool) -> None:
                nonlocal last_ckpt_time
                save_checkpoint(paths.ckpt_last, model=raw_model, optimizer=optimizer, iter_num=iter_num,
                                best_val_loss=best_val, config=cfg.to_json())
                if best:
                    save_checkpoint(paths.ckpt_best, model=raw_model, optimizer=None, iter_num=iter_num,
                                    best_val_loss=best_val, config=cfg.to_json())
                last_ckpt_time = time.monotonic()

            evaluated_at = iter_num if self.resume else -1

            def evaluate() -> None:
                nonlocal best_val, evaluated_at
                evaluated_at = iter_num
                losses = self._estimate_loss(model, dataset)
                improved = losses["val"] < best_val
                best_val = min(best_val, losses["val"])
                record = {"type": "eval", "iter": iter_num, "train_loss": losses["train"], "val_loss": losses["val"],
                          "best_val_loss": best_val, "time": time.time()}
                metrics.write(record)
                self.reporter.eval(record)
                self._say(f"eval iter {iter_num}: train loss {losses['train']:.4f}, val loss {losses['val']:.4f}")
                checkpoint(best=improved)

            while iter_num < cfg.train.max_iters:
                if not cfg.probe and iter_num % cfg.train.eval_interval == 0 and evaluated_at != iter_num:
                    evaluate()
                if stop.requested or self.should_stop():
                    state_name = "stopped"
                    break
                lr = lr_at(iter_num, learning_rate=cfg.train.learning_rate, min_lr=cfg.train.min_lr,
                           warmup_iters=cfg.warmup_iters, decay_iters=cfg.train.max_iters)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                t0 = time.perf_counter()
                loss_sum = 0.0
                for micro in range(cfg.train.grad_accum):
                    x, y, src = self._batch(dataset, "train", (iter_num, micro))
                    source_counts += np.bincount(src, minlength=len(source_counts))
                    with self.runtime.autocast():
                        _, loss = model(x, y)
                        loss = loss / cfg.train.grad_accum
                    scaler.scale(loss).backward()
                    loss_sum += loss.detach()
                if cfg.train.grad_clip > 0:
                    scaler.unscale_(optimizer)
                    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.train.grad_clip)
                scaler.step(optimizer)
                scaler.update()
                optimizer.zero_grad(set_to_none=True)
                loss_value = float(loss_sum)  # syncs with the device: dt below is the real step time
                dt = time.perf_counter() - t0
                if not math.isfinite(loss_value):
                    state_name = "diverged"
                    msg = (f"loss became {loss_value} at iteration {iter_num + 1}; kept the last good checkpoint "
                           f"(try a lower --learning_rate than {cfg.train.learning_rate:g})")
                    self._status_fields["error"] = msg
                    self._say(msg)
                    break
                iter_num += 1
                last_loss = loss_value
                tokens_per_sec = cfg.tokens_per_iter / dt
                record = {"type": "probe" if cfg.probe else "train", "iter": iter_num, "loss": loss_value, "lr": lr,
                          "tokens_per_sec": tokens_per_sec, "mfu": flops_per_iter / dt / flops_peak,
                          "dt_s": dt, "elapsed_s": time.perf_counter() - t_start,
                          "peak_mem_bytes": meter.peak_bytes(), "time": time.time(),
                          "source_counts": {s.name: int(c) for s, c in zip(dataset.sources, source_counts)}}
                metrics.write(record)
                self.reporter.step(record)
                if time.monotonic() - last_status_time > 1.0:
                    self._status("running", iter_num, last_loss=last_loss)
                    last_status_time = time.monotonic()
                if not cfg.probe and time.monotonic() - last_ckpt_time > cfg.ckpt_interval_s:
                    checkpoint(best=False)
            else:
                if not cfg.probe and evaluated_at != iter_num:
                    evaluate()
            if state_name == "stopped" and not cfg.probe:
                checkpoint(best=False)
                self._say(f"stopped at iteration {iter_num}; checkpoint written (continue with --resume)")
            metrics.close()
            if state_name == "finished":
                self._say(f"finished at iteration {iter_num}" + (f", best val loss {best_val:.4f}" if math.isfinite(best_val) else ""))
            self._status(state_name, iter_num, last_loss=last_loss,
                         best_val_loss=best_val if math.isfinite(best_val) else None,
                         peak_mem_bytes=meter.peak_bytes())
            result = TrainResult(state_name, iter_num, cfg.train.max_iters, last_loss,
                                 best_val if math.isfinite(best_val) else None, self._status_fields.get("error"), paths.root)
        except UsageError as exc:
            self._fail(str(exc), iter_num)
            raise
        except BaseException as exc:
            message = _describe(exc)
            self.log.info("training failed:\n%s", traceback.format_exc())
            self._fail(message, iter_num)
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            result = TrainResult("failed", iter_num, cfg.train.max_iters, last_loss, None, message, paths.root)
        finally:
            stop.restore()
            lock.release()
            self.log.removeHandler(handler)
            handler.close()
        self.reporter.end(result)
        return result

    def _fail(self, message: str, iter_num: int) -> None:
        self._status_fields["error"] = message
        try:
            self._status("failed", iter_num)
        except OSError:
            pass


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if isinstance(exc, OSError) and exc.errno == 28:
        return f"no space left on the disk while writing ({exc.filename or 'a file'}); free some space and --resume"
    return f"{exc.__class__.__name__}: {text}" if text else exc.__class__.__name__


def train(opts: TrainOptions, reporter: Reporter | None = None,
          should_stop: Callable[[], bool] | None = None) -> TrainResult:
    cfg, paths = resolve_run_config(opts)
    return Trainer(cfg, paths, reporter, resume=opts.resume, should_stop=should_stop).run()
