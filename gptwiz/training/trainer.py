"""The training loop and everything it writes into the run folder.

`train` trains one `ResolvedRun` (gptwiz.training.resolve); the run folder is the only thing viewers see. The
loop is short: its collaborators own their parts and their schedules: the folder's lock and log
(run_lifecycle), status.json and its heartbeat (status_writer), the checkpoints (checkpointer), the model and
its optimizer (build), the batches (batches) and the evaluation's loss (loss_estimate).
"""

from __future__ import annotations

import math
import os
import time
import traceback
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from gptwiz.common.atomic import atomic_write_json
from gptwiz.common.errors import UsageError
from gptwiz.common.schedule import eval_batches_at, evaluation_due, lr_at
from gptwiz.data.tokenizer import keep_run_tokenizer
from gptwiz.runs.jsonfile import read_json
from gptwiz.runs.metrics import MetricsWriter, trim_metrics
from gptwiz.runs.status import now_iso
from gptwiz.training.batches import Batches
from gptwiz.training.build import Built, Resumed, build, finish_model
from gptwiz.training.checkpoint import find_checkpoint
from gptwiz.training.checkpointer import Checkpointer
from gptwiz.training.device import MemoryMeter, peak_flops
from gptwiz.training.distributed import agree, grad_sync, injected_failure, mean_across_ranks, report_rank_error
from gptwiz.training.loss_estimate import estimate_loss
from gptwiz.training.options import ResolvedRun, TrainResult
from gptwiz.training.quality_record import finish_record, start_record
from gptwiz.training.ranks import DistContext
from gptwiz.training.reporting import Reporter
from gptwiz.training.run_lifecycle import FolderUnwritable, RunFolderLease, describe_failure, run_logger
from gptwiz.training.status_writer import StatusWriter
from gptwiz.training.stop_request import StopRequest
from gptwiz.training.tuning_notice import predicted_time, sft_notice

# AdamW's weight decay beyond which a divergence is put down to it rather than to the learning rate.
USUAL_MAX_WEIGHT_DECAY = 1.0


class Trainer:
    """One training run, in this process; under torchrun, this process's rank of it.

    Every rank trains; only rank 0 writes the run folder (config, status, metrics, log, checkpoints).
    `run` holds the run folder while `_train` runs: `_build` makes the model, `_start` the loop's bookkeeping,
    and the loop itself is one iteration a pass of named phases.
    """

    def __init__(self, run: ResolvedRun, reporter: Reporter | None = None,
                 should_stop: Callable[[], bool] | None = None, dist: DistContext | None = None):
        # What to train, where it goes, and who hears of it.
        self.cfg, self.paths, self.duties = run.cfg, run.paths, run.duties
        self.reporter = reporter or Reporter()
        self.resume = run.resume  # run() clears it for a run killed before its first checkpoint
        self.should_stop = should_stop or (lambda: False)
        self.stop = StopRequest()  # SIGINT/SIGTERM, listened to while run() runs
        self.dist = dist or DistContext()
        self.main = self.dist.is_main
        self.log = run_logger(self.cfg.name, self.dist.rank)
        self.metrics: MetricsWriter | None = None  # rank 0's metrics.jsonl, open while training
        self.status = StatusWriter(self.paths, self.main, self._progress, name=self.cfg.name, pid=os.getpid(),
                                   started_at=now_iso(), error=None, probe=self.cfg.probe,
                                   world_size=self.dist.world_size)
        self.checkpointer = Checkpointer(self.cfg, self.paths, self.dist, self.status, self._say)

        # Progress: what a checkpoint keeps and status.json reports.
        self.iter_num = 0
        self.best_val = float("inf")
        self.last_loss: float | None = None
        self.evaluated_at = -1                  # the iteration last evaluated; -1: none yet
        self.evaluated_val: float | None = None  # the validation loss measured then

        # Made by _build and _start, for the loop (nothing reads them before).
        self.built: Built                        # runtime, dataset, model, optimizer
        self.batches: Batches
        self.scaler: Any = None                  # torch.amp.GradScaler, active under float16 only
        self.meter: MemoryMeter
        self.flops_peak = 0.0                    # FLOP/s of one device, for MFU
        self.flops_per_iter = 0.0
        self.source_counts = np.zeros(0, dtype=np.int64)  # sequences drawn from each data source
        self.t_start = 0.0                       # time.perf_counter() when the loop started
        self.fail_at: int | None = None          # the test-only injected failure's iteration (gptwiz.common.faults)

    def _progress(self) -> dict[str, Any]:
        return {"iter": self.iter_num, "max_iters": self.cfg.train.max_iters, "last_loss": self.last_loss}

    def _say(self, message: str) -> None:
        if self.main:
            self.log.info(message)
            self.reporter.log(message)

    def _write(self, record: dict[str, Any]) -> None:
        if self.metrics is not None:
            self.metrics.write(record)

    def _result(self, state: str, best: float | None, error: str | None) -> TrainResult:
        return TrainResult(state, self.iter_num, self.cfg.train.max_iters, self.last_loss, best, error,
                           self.paths.root)

    # -- the run folder's lifetime --

    def run(self) -> TrainResult:
        try:
            with RunFolderLease(self.paths, self.main, self.duties.restores_folder, self.log) as lease, \
                    self.stop.listening():
                result = self._run_in(lease)
        except FolderUnwritable as exc:  # a full or read-only disk: the run never began, and leaves no folder
            result = self._result("failed", None, describe_failure(exc.cause, resumable=self.resume))
        if self.main:
            self.reporter.end(result)
        return result

    def _run_in(self, lease: RunFolderLease) -> TrainResult:
        if self.resume:
            # Killed before its first checkpoint: start over, with the run's own settings.
            self.resume = find_checkpoint(self.paths) is not None
        try:
            lease.open_log()
            if self.main:
                # Also on resume: a --max_iters given then is the run's length from now on, so that the next
                # --resume (after a kill, say) runs to the same final iteration, and viewers draw its schedule.
                atomic_write_json(self.paths.config, self.cfg.to_json())
                keep_run_tokenizer(self.paths.root, self.cfg.data)
            state = self._train()
            best = self.best_val if math.isfinite(self.best_val) else None
            self.status.set(state, best_val_loss=best)
            return self._result(state, best, self.status.error)
        except UsageError as exc:
            self._fail(str(exc), lease)
            raise
        except BaseException as exc:
            self.log.info("training failed:\n%s", traceback.format_exc())
            refused = lease.failed_before_first_step(self._records_written())
            message = describe_failure(exc, resumable=self.resume or not refused)
            self._fail(message, lease)
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            return self._result("failed", None, message)
        finally:
            if self.metrics is not None:
                self.metrics.close()

    def _records_written(self) -> int:
        return self.metrics.written if self.metrics is not None else 0

    def _fail(self, message: str, lease: RunFolderLease) -> None:
        """Record the failure; a run that failed before its first step instead leaves its folder as it found it,
        so that the same command, once corrected, starts it afresh."""
        self.status.fields["error"] = message
        report_rank_error(self.dist, message)
        if lease.failed_before_first_step(self._records_written()):
            lease.put_back()
            return
        try:
            self.status.set("failed")
        except OSError:
            pass

    # -- setting up --

    def _build(self) -> Built:
        """The runtime, the dataset, the (wrapped, maybe compiled) model and its optimizer, with resumed or
        initial state."""
        built = self.built = build(self.cfg, self.paths, self.dist, self.resume, self._say)
        if built.resumed is not None:
            self._continue_from(built.resumed)
        finish_model(built, self.cfg, self.dist, self.iter_num, self._say)
        return built

    def _continue_from(self, resumed: Resumed) -> None:
        state = resumed.state
        self.iter_num = int(state["iter"])
        self.best_val = float(state.get("best_val_loss", float("inf")))
        own_val = state.get("val_loss")
        self.evaluated_val = own_val if isinstance(own_val, float) else None
        if self.main:
            trim_metrics(self.paths.metrics, self.iter_num)
            self.best_val = self.checkpointer.reconcile_best(resumed.path, state, self.best_val)
        self.status.fields["started_at"] = (read_json(self.paths.status) or {}).get("started_at", now_iso())
        self._say(f"resumed {self.cfg.name} from {resumed.path.name} at iteration {self.iter_num}")

    def _start(self, built: Built) -> None:
        """Open metrics.jsonl, set up what the loop measures with, and announce the run."""
        cfg, runtime = self.cfg, built.runtime
        if self.main and not self.resume:
            # A fresh run starts its own metrics.jsonl: a probe's records may be there (its results stay in probe.json).
            self.paths.metrics.unlink(missing_ok=True)
        self.metrics = MetricsWriter(self.paths.metrics) if self.main else None
        self.batches = Batches(cfg, built.dataset, runtime)
        self.scaler = torch.amp.GradScaler(enabled=(runtime.dtype == "float16"))
        self.meter = MemoryMeter(runtime)
        self.flops_peak = peak_flops(runtime)
        self.flops_per_iter = built.raw_model.flops_per_token() * cfg.tokens_per_iter
        self.status.phase("training")
        if self.main:
            self.reporter.start(cfg, self.iter_num)
            if not self.resume and self.duties.evaluates:
                start_record(self.paths, cfg, built.dataset, self.log)
        self._say(f"training {cfg.name}: preset {cfg.preset}, {cfg.params / 1e6:.1f}M parameters, {cfg.device} "
                  f"{cfg.dtype}{' compiled' if cfg.compile else ''}"
                  f"{f', {self.dist.world_size} processes' if self.dist.enabled else ''}"
                  f"{' (FSDP)' if self.dist.fsdp else ''}, iterations {self.iter_num}..{cfg.train.max_iters}")
        sft = cfg.data.get("sft")
        if sft:
            self._say(sft_notice(sft, cfg, predicted_time(cfg, runtime) if self.main else None))
        self.t_start = time.perf_counter()
        self.checkpointer.restart_clock()
        self.source_counts = np.zeros(len(built.dataset.sources), dtype=np.int64)
        # A checkpoint without its own validation loss (a stop during the evaluation of its iteration) has that
        # evaluation still to do.
        self.evaluated_at = self.iter_num if self.resume and self.evaluated_val is not None else -1
        self.fail_at = injected_failure(self.dist)

    # -- the loop --

    def _train(self) -> str:
        """Train to max_iters, or until asked to stop, or until the loss diverges; the run's final state."""
        self._start(self._build())
        while self.iter_num < self.cfg.train.max_iters:
            if self._evaluation_due() and not self._evaluate():
                return self._finish("stopped")  # asked to stop during the evaluation, on every rank
            stop, checkpoint_due = self._agree_on_stop_and_checkpoint()
            if stop:
                return self._finish("stopped")
            if checkpoint_due and self.duties.checkpoints:
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
            self.status.heartbeat()
        if self.duties.evaluates and self.evaluated_at != self.iter_num and not self._evaluate():
            return self._finish("stopped")  # the final weights' evaluation (and checkpoint), interrupted: --resume does it
        return self._finish("finished")

    def _evaluation_due(self) -> bool:
        return (self.duties.evaluates and evaluation_due(self.iter_num, self.cfg.train.eval_interval)
                and self.evaluated_at != self.iter_num)

    def _evaluate(self) -> bool:
        """Evaluate, record it, and checkpoint (ckpt_best.pt too if the validation loss improved); False, with
        nothing recorded, when a stop was agreed before the evaluation finished."""
        t0 = time.perf_counter()
        per_split = self._eval_batches()
        losses = estimate_loss(self.built.model, self.batches, self.dist, self.status, per_split,
                               announce_now=self.paths.ckpt_last.exists(), stop_requested=self._stop_requested)
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
        """Batches of each split this evaluation measures (gptwiz.common.schedule.eval_batches_at)."""
        return eval_batches_at(self.iter_num, self.cfg.train.eval_iters, from_scratch=not self.cfg.init_from)

    def _checkpoint(self, best: bool) -> None:
        val = self.evaluated_val if self.evaluated_at == self.iter_num else None
        self.checkpointer.save(self.built.state_owner(self.dist.fsdp), self.built.optimizer, iter_num=self.iter_num,
                               best_val=self.best_val, val_loss=val, best=best)

    def _stop_requested(self) -> bool:
        """This rank's own wish to stop (a signal, or the caller's should_stop); ranks agree on it before acting."""
        return self.stop.requested or self.should_stop()

    def _agree_on_stop_and_checkpoint(self) -> tuple[bool, bool]:
        """(stop now, checkpoint now), the same on every rank: one that stops or checkpoints alone leaves the
        others waiting forever in the next collective."""
        stop, checkpoint_due = agree([self._stop_requested(), self.checkpointer.due()], self.dist)
        return stop, checkpoint_due

    def _fail_if_injected(self) -> None:
        if self.fail_at is not None and self.iter_num >= self.fail_at:
            raise RuntimeError(f"injected failure of rank {self.dist.rank} at iteration {self.iter_num}")

    def _set_learning_rate(self) -> float:
        cfg = self.cfg
        lr = lr_at(self.iter_num, learning_rate=cfg.train.learning_rate, min_lr=cfg.train.min_lr,
                   warmup_iters=cfg.warmup_iters, decay_iters=cfg.train.max_iters)
        for group in self.built.optimizer.param_groups:
            group["lr"] = lr
        return lr

    def _train_step(self) -> float:
        """One optimizer step over grad_accum micro-batches; their mean loss, averaged over the ranks."""
        model, optimizer, runtime = self.built.model, self.built.optimizer, self.built.runtime
        accum = self.cfg.train.grad_accum
        loss_sum = torch.zeros((), device=runtime.device)
        for micro in range(accum):
            # Micro-step m of rank r is global micro-step r * accum + m: N ranks with accumulation A
            # see the batches of one process with accumulation N * A.
            x, y, src = self.batches.get("train", (self.iter_num, self.dist.rank * accum + micro))
            self.source_counts += np.bincount(src, minlength=len(self.source_counts))
            with grad_sync(model, self.dist, sync=(micro == accum - 1)):
                with runtime.autocast():
                    loss = model(x, y) / accum
                self.scaler.scale(loss).backward()
            loss_sum += loss.detach().float()
        if self.cfg.train.grad_clip > 0:
            self.scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), self.cfg.train.grad_clip)
        self.scaler.step(optimizer)
        self.scaler.update()
        optimizer.zero_grad(set_to_none=True)
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
        self.status.fields["error"] = msg
        self._say(msg)

    def _record_step(self, loss: float, lr: float, dt: float) -> None:
        cfg = self.cfg
        record = {"type": self.duties.record_kind, "iter": self.iter_num, "loss": loss, "lr": lr,
                  "tokens_per_sec": cfg.tokens_per_iter / dt,
                  "mfu": self.flops_per_iter / dt / (self.flops_peak * self.dist.world_size),
                  "dt_s": dt, "elapsed_s": time.perf_counter() - self.t_start,
                  "peak_mem_bytes": self.meter.peak_bytes(), "time": time.time(),
                  "world_size": self.dist.world_size,
                  "source_counts": {s.name: int(c) for s, c in zip(self.built.dataset.sources, self.source_counts)}}
        self._write(record)
        if self.main:
            self.reporter.step(record)

    def _finish(self, state: str) -> str:
        if state == "stopped" and self.duties.checkpoints:
            self._checkpoint(best=False)
            self._say(f"stopped at iteration {self.iter_num}; checkpoint written (continue with --resume)")
        if state == "finished" and self.main and self.duties.evaluates:
            val = self.evaluated_val if self.evaluated_at == self.iter_num else None
            finish_record(self.paths, self.iter_num, val, self.log)
        if state == "finished":
            self._say(f"finished at iteration {self.iter_num}"
                      + (f", best val loss {self.best_val:.4f}" if math.isfinite(self.best_val) else ""))
        self.status.fields["peak_mem_bytes"] = self.meter.peak_bytes()
        return state


def train(run: ResolvedRun, reporter: Reporter | None = None, should_stop: Callable[[], bool] | None = None,
          dist: DistContext | None = None) -> TrainResult:
    """Train a resolved run in this process: under torchrun, this process's rank of it (`dist`, from
    gptwiz.training.distributed.process_group)."""
    return Trainer(run, reporter, should_stop=should_stop, dist=dist).run()
