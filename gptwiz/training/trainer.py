"""The training loop and everything it writes into the run folder.

`Trainer.run` trains one resolved `RunConfig` (options.py); the run folder (runs/folder.py) is the
only thing viewers see.
"""

from __future__ import annotations

import errno
import logging
import math
import os
import signal
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from gptwiz.common.atomic import atomic_write_json, remove_temp_files
from gptwiz.common.errors import UsageError
from gptwiz.common.files import AppendFile, open_append, write_failure
from gptwiz.common.schedule import lr_at
from gptwiz.planning.policy import FIRST_EVAL_ITERS
from gptwiz.runs.folder import (
    FolderBefore,
    MetricsWriter,
    RunLock,
    RunPaths,
    missing_folders,
    now_iso,
    read_json,
    remove_empty_folders,
    trim_metrics,
    write_status,
)
from gptwiz.training.options import RunConfig, TrainOptions, TrainResult, resolve_run_config, world_size

if TYPE_CHECKING:  # device.py imports torch, which the trainer imports only once it trains
    from gptwiz.training.device import MemoryMeter, Runtime

# AdamW's weight decay beyond which a divergence is put down to it rather than to the learning rate.
USUAL_MAX_WEIGHT_DECAY = 1.0

# Seeds for the fixed evaluation batches, apart from any training iteration's.
_VAL_STREAM, _TRAIN_EVAL_STREAM = 1_000_000_007, 1_000_000_009


# status.json's heartbeat: at most once a second, during training steps and evaluations alike.
HEARTBEAT_S = 1.0


# --- the trainer ---------------------------------------------------------------------------------

class Reporter:
    """What the console sees of a run; the run folder gets everything regardless."""

    def start(self, cfg: RunConfig, start_iter: int) -> None: ...
    def step(self, record: dict[str, Any]) -> None: ...
    def eval(self, record: dict[str, Any]) -> None: ...
    def log(self, message: str) -> None: ...
    def end(self, result: TrainResult) -> None: ...


class _StopRequest:
    """SIGINT/SIGTERM only set a flag: the loop finishes its step (or drops the evaluation under way, at its next
    batch) and checkpoints before leaving."""

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
    `run` sets up the run folder and its lock, `_build` the model, `_start` the loop's bookkeeping; `_train`
    is the loop itself, one iteration a pass of named phases.
    """

    def __init__(self, cfg: RunConfig, paths: RunPaths, reporter: Reporter | None = None, resume: bool = False,
                 should_stop: Callable[[], bool] | None = None, dist: Any = None):
        from gptwiz.training.distributed import DistContext

        # What to train, where it goes, and who hears of it.
        self.cfg = cfg
        self.paths = paths
        self.reporter = reporter or Reporter()
        self.resume = resume  # run() clears it for a run killed before its first checkpoint
        self.should_stop = should_stop or (lambda: False)
        self.stop = _StopRequest()  # SIGINT/SIGTERM, listened to while run() runs
        self.dist = dist or DistContext()
        self.main = self.dist.is_main
        self.log = logging.getLogger(f"gptwiz.training.trainer.{cfg.name}.{self.dist.rank}")
        self.metrics: MetricsWriter | None = None  # rank 0's metrics.jsonl, open while training
        self._status_fields: dict[str, Any] = {"name": cfg.name, "pid": os.getpid(), "started_at": now_iso(),
                                               "error": None, "probe": cfg.probe, "world_size": self.dist.world_size}

        # Progress: what a checkpoint keeps and status.json reports.
        self.iter_num = 0
        self.best_val = float("inf")
        self.last_loss: float | None = None

        # Made by _build: where and how to compute, the data, the model (raw_model as built; model wrapped
        # for DDP/FSDP and maybe compiled, what the steps run) and its optimizer.
        self.runtime: Runtime | None = None
        self.dataset: Any = None
        self.raw_model: Any = None
        self.model: Any = None
        self.optimizer: Any = None

        # Made by _start, for the loop.
        self.scaler: Any = None                 # torch.amp.GradScaler, active under float16 only
        self.meter: MemoryMeter | None = None
        self.flops_peak = 0.0                   # FLOP/s of one device, for MFU
        self.flops_per_iter = 0.0
        self.source_counts = np.zeros(0, dtype=np.int64)  # sequences drawn from each data source
        self.t_start = 0.0                      # time.perf_counter() when the loop started
        self.last_ckpt_time = 0.0               # time.monotonic() of the last checkpoint (or of the start)
        self.last_status_time = 0.0             # time.monotonic() of the last status.json heartbeat
        self.evaluated_at = -1                  # the iteration last evaluated; -1: none yet
        self.evaluated_val: float | None = None  # the validation loss measured then
        self.fail_at: int | None = None         # the test-only injected failure's iteration (gptwiz.common.faults)

    # -- data --

    def _batch(self, split: str, stream: tuple[int, ...]) -> tuple[Any, Any, Any]:
        """The batch of a (seed, stream) pair: the data order is a pure function of the iteration, so a
        resumed run, or N ranks splitting the same micro-steps, see exactly the batches of one process."""
        import torch

        rng = np.random.default_rng([self.cfg.seed, *stream])
        x, y, src = self.dataset.batch(split, self.cfg.train.batch_size, self.cfg.model.block_size, rng)
        x, y = torch.from_numpy(x), torch.from_numpy(y)
        if self.runtime.device_type == "cuda":
            # Pinned host memory lets the copy overlap with the GPU still working on the previous step.
            x = x.pin_memory().to(self.runtime.device, non_blocking=True)
            y = y.pin_memory().to(self.runtime.device, non_blocking=True)
        return x, y, src

    # -- the run folder (rank 0 only) --

    def _status(self, state: str, **extra: Any) -> None:
        if not self.main:
            return
        self._status_fields.update(extra)
        if state != "running":  # what the trainer is busy with says nothing once it has ended
            self._status_fields.update(phase=None, eval_done=None, eval_total=None)
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

    def _phase(self, phase: str, now: bool = False, **extra: Any) -> None:
        """What the run is busy with ("training", "evaluating", "checkpointing"), in status.json at once when `now`
        (the start of an evaluation after the first), else at most once a second like every heartbeat: the start's
        status is not rewritten before the run's first checkpoint exists."""
        self._status_fields.update(phase=phase, **{"eval_done": None, "eval_total": None, **extra})
        if now or time.monotonic() - self.last_status_time > HEARTBEAT_S:
            self._status("running")
            self.last_status_time = time.monotonic()

    def _checkpoint(self, best: bool) -> None:
        from gptwiz.training.checkpoint import save_checkpoint
        from gptwiz.training.distributed import full_state

        t0 = time.perf_counter()
        self._phase("checkpointing")
        # Under FSDP gathering the whole state is a collective: every rank takes part, rank 0 writes.
        model_state, optim_state = full_state(self.model if self.dist.fsdp else self.raw_model, self.optimizer,
                                              self.dist.fsdp)
        if self.main:
            # The weights' own validation loss goes with them: it says which checkpoint holds the best
            # (_reconcile_best). ckpt_last.pt is written first, so that a kill while ckpt_best.pt is written
            # leaves the best weights in ckpt_last.pt, where a resume finds them.
            val = self.evaluated_val if self.evaluated_at == self.iter_num else None
            kwargs = dict(iter_num=self.iter_num, best_val_loss=self.best_val, config=self.cfg.to_json(), val_loss=val)
            save_checkpoint(self.paths.ckpt_last, model_state=model_state, optimizer_state=optim_state, **kwargs)
            if best:
                save_checkpoint(self.paths.ckpt_best, model_state=model_state, optimizer_state=None, **kwargs)
        self.last_ckpt_time = time.monotonic()
        # How long one took: viewers count the checkpoints still to come in their ETA.
        self._phase("training", ckpt_s=round(time.perf_counter() - t0, 3))

    # -- setting up --

    def _build(self) -> None:
        """The runtime, the dataset, the (wrapped, maybe compiled) model and its optimizer, with resumed or
        initial state."""
        import torch

        from gptwiz.data.dataset import open_dataset
        from gptwiz.model.gpt import GPT
        from gptwiz.model.loss import training_loss
        from gptwiz.training.checkpoint import load_run_checkpoint
        from gptwiz.training.device import Runtime, configure_backends
        from gptwiz.training.distributed import load_full_state, wrap_model

        cfg, paths = self.cfg, self.paths
        device = cfg.device
        if self.dist.enabled and device.startswith("cuda"):
            device = f"cuda:{self.dist.local_rank}"
        runtime = self.runtime = Runtime(device, cfg.dtype, cfg.compile)
        configure_backends(runtime)
        self.dataset = open_dataset(cfg.data["dataset_dir"])
        if self.dataset.checksum != cfg.data["manifest_checksum"]:
            self._say(f"warning: the dataset {self.dataset.dir} changed since this run started "
                      "(manifest checksum differs)")
        self.dataset.check_block(cfg.model.block_size)

        torch.manual_seed(cfg.seed)  # the same initial weights on every rank
        # The loss, chosen once for the run's training and evaluation alike, by the rule the memory
        # estimate follows (gptwiz.model.loss_plan): sliced for eager training on a CPU, else the textbook one.
        model = GPT(cfg.model, loss_fn=training_loss(runtime.device_type, runtime.compile)).to(runtime.device)
        self.raw_model = model
        state = None
        if self.resume:
            ckpt_path, state = load_run_checkpoint(paths, prefer="last", map_location="cpu", warn=self._say)
            if state.get("optimizer") is None:
                self._say(f"{ckpt_path.name} holds no optimizer state: the optimizer starts afresh")
            self.iter_num = int(state["iter"])
            self.best_val = float(state.get("best_val_loss", float("inf")))
            own_val = state.get("val_loss")
            self.evaluated_val = own_val if isinstance(own_val, float) else None
        elif cfg.init_from:
            src_path, src = load_run_checkpoint(RunPaths(Path(cfg.init_from)), prefer="best", map_location="cpu")
            weights = src["model"]
            # A source trained with a longer context has more positions than this run needs.
            weights["transformer.wpe.weight"] = weights["transformer.wpe.weight"][: cfg.model.block_size]
            model.load_state_dict(weights)
            self._say(f"initialised weights from {src_path} (iteration {src['iter']}); fresh optimizer and schedule")
        model = wrap_model(model, self.dist, runtime.device)
        # Fused AdamW where torch has the kernel (CUDA and CPU), but not under FSDP: the fused kernel does not
        # take its sharded tensors everywhere.
        fused = runtime.device_type in ("cuda", "cpu") and not self.dist.fsdp
        self.optimizer = (model if self.dist.fsdp else self.raw_model).configure_optimizer(
            cfg.train.weight_decay, cfg.train.learning_rate, cfg.train.betas, fused=fused)
        if state is not None:
            load_full_state(model if self.dist.fsdp else self.raw_model, self.optimizer, state["model"],
                            state.get("optimizer"), self.dist.fsdp)
            torch.set_rng_state(state["torch_rng"].cpu())
            if self.main:
                trim_metrics(paths.metrics, self.iter_num)
                self._reconcile_best(ckpt_path, state)
            self._status_fields["started_at"] = (read_json(paths.status) or {}).get("started_at", now_iso())
            self._say(f"resumed {cfg.name} from {ckpt_path.name} at iteration {self.iter_num}")
        torch.manual_seed(cfg.seed + 1000 * self.dist.rank + self.iter_num)  # different dropout masks per rank
        if runtime.compile:
            self._say("compiling the model with torch.compile (the first iterations are slow)")
            model = torch.compile(model)
        self.model = model

    def _reconcile_best(self, resumed_from: Path, state: dict[str, Any]) -> None:
        """On resume: ckpt_best.pt must hold the weights of the best validation loss the run records. A kill
        while it was being written leaves an older one (or none); the weights of that best are then those just
        resumed (ckpt_last.pt is written first), and ckpt_best.pt is rewritten from them. Where they are lost,
        the best recorded becomes what ckpt_best.pt does hold, so that a later evaluation replaces it."""
        from gptwiz.training.checkpoint import read_checkpoint_summary, save_checkpoint

        best_path = self.paths.ckpt_best
        if resumed_from == best_path or not math.isfinite(self.best_val):
            return  # resumed from the best itself, or nothing evaluated yet
        held = read_checkpoint_summary(best_path)
        held_best = held["val_loss"] if held is not None and held["val_loss"] is not None else float("inf")
        if held_best <= self.best_val:
            if held_best < self.best_val:
                self._say(f"{best_path.name} holds a val loss of {held_best:.4f}, below the {self.best_val:.4f} "
                          f"{resumed_from.name} records: that is the best from now on")
                self.best_val = held_best
            return
        had = (f"held iteration {held['iter']}" + (f" (val loss {held_best:.4f})" if math.isfinite(held_best) else "")
               if held is not None else "was missing or unreadable")
        own = state.get("val_loss")
        if isinstance(own, float) and own == self.best_val:
            save_checkpoint(best_path, model_state=state["model"], optimizer_state=None, iter_num=self.iter_num,
                            best_val_loss=self.best_val, config=self.cfg.to_json(), val_loss=own)
            self._say(f"{best_path.name} {had} instead of the weights of the best val loss {self.best_val:.4f}: "
                      f"rewritten from {resumed_from.name} (iteration {self.iter_num}), which holds them")
            return
        self._say(f"warning: {best_path.name} {had}, and no checkpoint holds the weights of the best val loss "
                  f"{self.best_val:.4f}; the best is now "
                  + (f"{held_best:.4f}, that of {best_path.name}" if math.isfinite(held_best)
                     else "the next evaluation's"))
        self.best_val = held_best

    def _start(self) -> None:
        """Open metrics.jsonl, set up what the loop measures with, and announce the run."""
        import torch

        from gptwiz.training.device import MemoryMeter, peak_flops
        from gptwiz.training.distributed import injected_failure

        cfg = self.cfg
        if self.main and not self.resume:
            # A fresh run starts its own metrics.jsonl: a probe's records may be there (its results stay in probe.json).
            self.paths.metrics.unlink(missing_ok=True)
        self.metrics = MetricsWriter(self.paths.metrics) if self.main else None
        self.scaler = torch.amp.GradScaler(enabled=(self.runtime.dtype == "float16"))
        self.meter = MemoryMeter(self.runtime)
        self.flops_peak = peak_flops(self.runtime)
        self.flops_per_iter = self.raw_model.flops_per_token() * cfg.tokens_per_iter
        self._phase("training")
        if self.main:
            self.reporter.start(cfg, self.iter_num)
        self._say(f"training {cfg.name}: preset {cfg.preset}, {cfg.params / 1e6:.1f}M parameters, {cfg.device} "
                  f"{cfg.dtype}{' compiled' if cfg.compile else ''}"
                  f"{f', {self.dist.world_size} processes' if self.dist.enabled else ''}"
                  f"{' (FSDP)' if self.dist.fsdp else ''}, iterations {self.iter_num}..{cfg.train.max_iters}")
        sft = cfg.data.get("sft")
        if sft:
            self._say(_sft_notice(sft, cfg))
        self.t_start = time.perf_counter()
        self.last_ckpt_time = time.monotonic()
        self.source_counts = np.zeros(len(self.dataset.sources), dtype=np.int64)
        # A checkpoint without its own validation loss (a stop during the evaluation of its iteration) has that
        # evaluation still to do.
        self.evaluated_at = self.iter_num if self.resume and self.evaluated_val is not None else -1
        self.fail_at = injected_failure(self.dist)

    # -- the loop --

    def _train(self) -> str:
        """Train to max_iters, or until asked to stop, or until the loss diverges; the run's final state."""
        self._build()
        self._start()
        cfg = self.cfg
        state = "finished"
        while self.iter_num < cfg.train.max_iters:
            if self._evaluation_due() and not self._evaluate():
                state = "stopped"  # asked to stop during the evaluation, on every rank
                break
            stop, checkpoint_due = self._agree_on_stop_and_checkpoint()
            if stop:
                state = "stopped"
                break
            if checkpoint_due and not cfg.probe:
                self._checkpoint(best=False)
            self._fail_if_injected()
            lr = self._set_learning_rate()
            t0 = time.perf_counter()
            loss = self._train_step()  # synchronises with the device: dt is the step's real time
            dt = time.perf_counter() - t0
            if not math.isfinite(loss):
                self._diverged(loss)
                return "diverged"
            self.iter_num += 1
            self.last_loss = loss
            self._record_step(loss, lr, dt)
            self._heartbeat()
        if state == "finished" and not cfg.probe and self.evaluated_at != self.iter_num and not self._evaluate():
            state = "stopped"  # the final weights' evaluation (and checkpoint), interrupted: --resume does it
        return self._finish(state)

    def _evaluation_due(self) -> bool:
        return (not self.cfg.probe and self.iter_num % self.cfg.train.eval_interval == 0
                and self.evaluated_at != self.iter_num)

    def _evaluate(self) -> bool:
        """Evaluate, record it, and checkpoint (ckpt_best.pt too if the validation loss improved); False, with
        nothing recorded, when a stop was agreed before the evaluation finished."""
        t0 = time.perf_counter()
        per_split = self._eval_batches()
        losses = self._estimate_loss(per_split)
        if losses is None:
            return False
        eval_s = time.perf_counter() - t0
        self.evaluated_at = self.iter_num
        self.evaluated_val = losses["val"]
        improved = losses["val"] < self.best_val
        self.best_val = min(self.best_val, losses["val"])
        record = {"type": "eval", "iter": self.iter_num, "train_loss": losses["train"], "val_loss": losses["val"],
                  "best_val_loss": self.best_val, "batches": 2 * per_split, "eval_s": round(eval_s, 3),
                  "time": time.time()}
        self._write(record)
        if self.main:
            self.reporter.eval(record)
        self._say(f"eval iter {self.iter_num}: train loss {losses['train']:.4f}, val loss {losses['val']:.4f}")
        self._checkpoint(best=improved)
        return True

    def _eval_batches(self) -> int:
        """Batches of each split this evaluation measures: eval_iters, but only a few at iteration 0 of a run from
        random weights. From --init_from_model weights the loss at iteration 0 is the one to beat: measured whole."""
        if self.iter_num == 0 and not self.cfg.init_from:
            return min(self.cfg.train.eval_iters, FIRST_EVAL_ITERS)
        return self.cfg.train.eval_iters

    def _estimate_loss(self, per_split: int) -> dict[str, float] | None:
        """Mean loss over `per_split` fixed batches of each split, the ranks sharing them out; None when a stop
        was agreed between two batches (the partial evaluation is dropped). status.json keeps its heartbeat,
        with the batches done."""
        import torch

        from gptwiz.training.distributed import agree, mean_across_ranks

        world, rank = self.dist.world_size, self.dist.rank
        # Every rank goes through the same rounds (one batch each, or none at the end) and so asks the same
        # number of times whether to stop: a rank that left the evaluation alone would hang the others.
        rounds = -(-per_split // world)
        total_batches = 2 * per_split
        self._phase("evaluating", now=self.paths.ckpt_last.exists(), eval_done=0, eval_total=total_batches)
        out = {}
        self.model.eval()
        try:
            with torch.no_grad():
                for index, (split, stream) in enumerate((("train", _TRAIN_EVAL_STREAM), ("val", _VAL_STREAM))):
                    total = torch.zeros(2, device=self.runtime.device)
                    for r in range(rounds):
                        if agree([self._stop_requested()], self.dist)[0]:
                            return None
                        k = r * world + rank
                        if k < per_split:
                            x, y, _ = self._batch(split, (stream, k))
                            with self.runtime.autocast():
                                loss = self.model(x, y)
                            total += torch.stack([loss.float(), torch.ones((), device=loss.device)])
                        if time.monotonic() - self.last_status_time > HEARTBEAT_S:
                            done = index * per_split + min(per_split, (r + 1) * world)
                            self._phase("evaluating", eval_done=done, eval_total=total_batches)
                    total = mean_across_ranks(total, self.dist)
                    out[split] = float(total[0] / total[1])
        finally:
            self.model.train()
        return out

    def _stop_requested(self) -> bool:
        """This rank's own wish to stop (a signal, or the caller's should_stop); ranks agree on it before acting."""
        return self.stop.requested or self.should_stop()

    def _agree_on_stop_and_checkpoint(self) -> tuple[bool, bool]:
        """(stop now, checkpoint now), the same on every rank: one that stops or checkpoints alone leaves the
        others waiting forever in the next collective."""
        from gptwiz.training.distributed import agree

        stop, checkpoint_due = agree([self._stop_requested(),
                                      time.monotonic() - self.last_ckpt_time > self.cfg.ckpt_interval_s], self.dist)
        return stop, checkpoint_due

    def _fail_if_injected(self) -> None:
        if self.fail_at is not None and self.iter_num >= self.fail_at:
            raise RuntimeError(f"injected failure of rank {self.dist.rank} at iteration {self.iter_num}")

    def _set_learning_rate(self) -> float:
        cfg = self.cfg
        lr = lr_at(self.iter_num, learning_rate=cfg.train.learning_rate, min_lr=cfg.train.min_lr,
                   warmup_iters=cfg.warmup_iters, decay_iters=cfg.train.max_iters)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        return lr

    def _train_step(self) -> float:
        """One optimizer step over grad_accum micro-batches; their mean loss, averaged over the ranks."""
        import torch

        from gptwiz.training.distributed import grad_sync, mean_across_ranks

        accum = self.cfg.train.grad_accum
        loss_sum = torch.zeros((), device=self.runtime.device)
        for micro in range(accum):
            # Micro-step m of rank r is global micro-step r * accum + m: N ranks with accumulation A
            # see the batches of one process with accumulation N * A.
            x, y, src = self._batch("train", (self.iter_num, self.dist.rank * accum + micro))
            self.source_counts += np.bincount(src, minlength=len(self.source_counts))
            with grad_sync(self.model, self.dist, sync=(micro == accum - 1)):
                with self.runtime.autocast():
                    loss = self.model(x, y) / accum
                self.scaler.scale(loss).backward()
            loss_sum += loss.detach().float()
        if self.cfg.train.grad_clip > 0:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.train.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        return float(mean_across_ranks(loss_sum, self.dist))

    def _diverged(self, loss: float) -> None:
        train = self.cfg.train
        if train.weight_decay > USUAL_MAX_WEIGHT_DECAY:
            # AdamW scales every matrix by (1 - lr * weight_decay) a step: past 1 that flips its sign and grows
            # it, which no learning rate small enough to train with cures.
            advice = (f"its weight_decay {train.weight_decay:g} is far above the usual range of 0 to "
                      f"{USUAL_MAX_WEIGHT_DECAY:g}, where the presets use 0.1: lower weight_decay in the preset")
        else:
            advice = f"try a lower --learning_rate than {train.learning_rate:g}"
        msg = f"loss became {loss} at iteration {self.iter_num + 1}; kept the last good checkpoint ({advice})"
        self._status_fields["error"] = msg
        self._say(msg)

    def _record_step(self, loss: float, lr: float, dt: float) -> None:
        cfg = self.cfg
        record = {"type": "probe" if cfg.probe else "train", "iter": self.iter_num, "loss": loss, "lr": lr,
                  "tokens_per_sec": cfg.tokens_per_iter / dt,
                  "mfu": self.flops_per_iter / dt / (self.flops_peak * self.dist.world_size),
                  "dt_s": dt, "elapsed_s": time.perf_counter() - self.t_start,
                  "peak_mem_bytes": self.meter.peak_bytes(), "time": time.time(),
                  "world_size": self.dist.world_size,
                  "source_counts": {s.name: int(c) for s, c in zip(self.dataset.sources, self.source_counts)}}
        self._write(record)
        if self.main:
            self.reporter.step(record)

    def _heartbeat(self) -> None:
        """status.json at most once a second: viewers see the iteration advance without a write per step."""
        if time.monotonic() - self.last_status_time > HEARTBEAT_S:
            self._phase("training")

    def _finish(self, state: str) -> str:
        if state == "stopped" and not self.cfg.probe:
            self._checkpoint(best=False)
            self._say(f"stopped at iteration {self.iter_num}; checkpoint written (continue with --resume)")
        if state == "finished":
            self._say(f"finished at iteration {self.iter_num}"
                      + (f", best val loss {self.best_val:.4f}" if math.isfinite(self.best_val) else ""))
        self._status_fields["peak_mem_bytes"] = self.meter.peak_bytes()
        return state

    def run(self) -> TrainResult:
        cfg, paths = self.cfg, self.paths
        lock = RunLock(paths)
        handler: _LogFileHandler | None = None
        before: FolderBefore | None = None
        if self.main:
            made = missing_folders(paths.root)
            try:
                paths.root.mkdir(parents=True, exist_ok=True)
                lock.acquire()
            except OSError as exc:  # a full or read-only disk: the run never began, and leaves no folder
                remove_empty_folders(made)
                result = TrainResult("failed", self.iter_num, cfg.train.max_iters, None, None,
                                     _describe(exc, resumable=self.resume), paths.root)
                self.reporter.end(result)
                return result
            except BaseException:
                remove_empty_folders(made)
                raise
            # What the folder held, to put back if the run fails before its first step. Not for a probe: its
            # parent reads what a failed attempt left.
            before = None if cfg.probe else FolderBefore.take(paths, made)
            remove_temp_files(paths.root)  # what a trainer killed mid-write left; the lock says none is writing
        self.stop.install()
        if self.resume:
            from gptwiz.training.checkpoint import find_checkpoint

            # Killed before its first checkpoint: start over, with the run's own settings.
            self.resume = find_checkpoint(paths) is not None
        put_back = False
        try:
            if self.main:
                self.log.setLevel(logging.INFO)
                self.log.propagate = False
                handler = _LogFileHandler(open_append(paths.log))
                self.log.addHandler(handler)
                # Also on resume: a --max_iters given then is the run's length from now on, so that the next
                # --resume (after a kill, say) runs to the same final iteration, and viewers draw its schedule.
                atomic_write_json(paths.config, cfg.to_json())
            state = self._train()
            best = self.best_val if math.isfinite(self.best_val) else None
            self._status(state, best_val_loss=best)
            result = TrainResult(state, self.iter_num, cfg.train.max_iters, self.last_loss, best,
                                 self._status_fields.get("error"), paths.root)
        except UsageError as exc:
            put_back = self._fail(str(exc), before)
            raise
        except BaseException as exc:
            self.log.info("training failed:\n%s", traceback.format_exc())
            refused = self._before_first_step(before)
            message = _describe(exc, resumable=self.resume or not refused)
            put_back = self._fail(message, before)
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            result = TrainResult("failed", self.iter_num, cfg.train.max_iters, self.last_loss, None, message, paths.root)
        finally:
            self.stop.restore()
            if self.metrics is not None:
                self.metrics.close()
            if handler is not None:
                self.log.removeHandler(handler)
                handler.close()
            lock.release()
            if put_back and before is not None:
                remove_empty_folders(before.made)
        if self.main:
            self.reporter.end(result)
        return result

    def _before_first_step(self, before: FolderBefore | None) -> bool:
        """Whether the run failed before anything a later command needs: no record, no checkpoint of its own."""
        return (before is not None and (self.metrics is None or self.metrics.written == 0)
                and not before.wrote_checkpoint())

    def _fail(self, message: str, before: FolderBefore | None = None) -> bool:
        """Record the failure; a run that failed before its first step instead leaves its folder as it found it
        (True then), so that the same command, once corrected, starts it afresh."""
        self._status_fields["error"] = message
        from gptwiz.training.distributed import report_rank_error

        report_rank_error(self.dist, message)
        if before is not None and self._before_first_step(before):
            before.restore()
            return True
        try:
            self._status("failed")
        except OSError:
            pass
        return False


class _LogFileHandler(logging.Handler):
    """train.log, appended through open_append (never through a link). A line the disk has no room for is
    dropped: the failure reaches the user as the run's own one-line error, not as logging's report of it."""

    def __init__(self, file: AppendFile):
        super().__init__()
        self.file = file
        self.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%Y-%m-%d %H:%M:%S"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.file.write((self.format(record) + "\n").encode("utf-8", "backslashreplace"))
        except Exception:  # a full disk, a closed file: never "--- Logging error ---" and a traceback
            pass

    def close(self) -> None:
        self.file.close()
        super().close()


def _sft_notice(sft: dict[str, Any], cfg: RunConfig) -> str:
    """What the log says of a run on an instruction dataset: how it is trained, its learning rate and whence."""
    lr = f"learning rate {cfg.train.learning_rate:g}" + (
        " (instruction tuning's default; --learning_rate sets another)" if sft.get("learning_rate") == "default" else "")
    text = (f"instruction tuning (template {sft.get('template')}): one example a row, padded; the loss is over the "
            f"answers' tokens only; {lr}")
    if not cfg.init_from:
        text += ("; warning: no --init_from_model, so the model starts from random weights and learns the answers "
                 "alone, with no language to draw on; tune a base model with --init_from_model BASE")
    return text


def _describe(exc: BaseException, resumable: bool = True) -> str:
    failure = write_failure(exc)
    if failure is not None:
        if isinstance(exc, OSError) and exc.errno == errno.EROFS:
            return failure
        return f"{failure}; free some space and {'--resume' if resumable else 'start the run again'}"
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{exc.__class__.__name__}: {text}" if text else exc.__class__.__name__


def train(opts: TrainOptions, reporter: Reporter | None = None,
          should_stop: Callable[[], bool] | None = None) -> TrainResult:
    if world_size() <= 1:
        cfg, paths = resolve_run_config(opts)
        return Trainer(cfg, paths, reporter, resume=opts.resume, should_stop=should_stop).run()
    # Under torchrun: rank 0 settles the configuration (and builds the token cache) before the others
    # read it, so they never race on the cache or see the run folder half made.
    import torch.distributed as dist

    from gptwiz.training.device import resolve_device
    from gptwiz.training.distributed import init_distributed, shutdown

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
