"""What the user asked for (`TrainOptions`), and the one fully resolved `RunConfig` it becomes.

gptwiz.training.resolve turns the one into the other, once per process, into the `ResolvedRun` the trainer
trains. No torch at import: the CLI validates with these and `gptwiz --help` must stay fast.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from gptwiz import __version__
from gptwiz.common.errors import UsageError
from gptwiz.common.schedule import CKPT_INTERVAL_S, run_eval_iters
from gptwiz.model.config import ModelConfig
from gptwiz.planning.presets import TrainConfig, check_bound, shown
from gptwiz.runs.paths import RunPaths
from gptwiz.runs.status import now_iso
from gptwiz.training.saved_config import RESUME_ADVICE, load_saved_config


@dataclass
class TrainOptions:
    """What the user asked for, as given on the command line (None: take the preset's value)."""
    config_file: str | None = None
    model_name: str = "run"
    input_file: str | None = None
    dataset_dir: str | None = None
    tokenizer: str | None = None  # --input_file's token cache: gpt2, bpe:N or a folder (None: gpt2)
    max_iters: int | None = None
    learning_rate: float | None = None
    batch_size: int | None = None
    block_size: int | None = None
    grad_accum: int | None = None
    eval_interval: int | None = None
    eval_iters: int | None = None
    dropout: float | None = None
    optimizer: str | None = None
    init_from_model: str | None = None
    init_checkpoint: str = "auto"  # which of the source run's checkpoints (gptwiz.runs.checkpoints.choose)
    device: str = "auto"
    dtype: str = "auto"
    compile: bool | None = None
    resume: bool = False
    seed: int = 1337
    runs_dir: str = "runs"
    data_dir: str = "data"
    quiet: bool = False
    ckpt_interval_s: float = CKPT_INTERVAL_S
    nproc: int = 1      # processes on this machine (torchrun); WORLD_SIZE from torchrun wins
    fsdp: bool = False  # shard parameters, gradients and optimizer state instead of replicating them
    # What the run does besides training, set once by whoever builds the options (a probe does none of it).
    evaluates: bool = True        # evaluate every eval_interval and at the end, checkpointing after each
    checkpoints: bool = True      # checkpoint every ckpt_interval_s and when stopped
    restores_folder: bool = True  # a run that fails before its first step puts its folder back as it found it
    record_kind: str = "train"    # its step records' "type"; "probe" also marks its config.json and status.json


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
    ckpt_interval_s: float = CKPT_INTERVAL_S
    # The source run's checkpoint the weights came from: "ckpt_last.pt" or "ckpt_best.pt", and its iteration.
    init_checkpoint: str | None = None
    init_iter: int | None = None
    probe: bool = False  # a probe's rehearsal (TrainOptions.record_kind "probe"): a run may start over its folder
    world_size: int = 1
    fsdp: bool = False
    created_at: str = field(default_factory=now_iso)
    gptwiz_version: str = __version__

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["train"]["betas"] = list(self.train.betas)
        return out

    @classmethod
    def from_json(cls, data: Any, source: str = "config.json", advice: str = RESUME_ADVICE) -> RunConfig:
        """A config.json read back; a UsageError naming `source` and the key when any key is missing or wrong."""
        return load_saved_config(cls, data, source, advice)


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


@dataclass(frozen=True)
class RunDuties:
    """What a run does besides training (the TrainOptions fields of the same names)."""
    evaluates: bool = True
    checkpoints: bool = True
    restores_folder: bool = True
    record_kind: str = "train"

    @classmethod
    def of(cls, opts: TrainOptions) -> RunDuties:
        return cls(opts.evaluates, opts.checkpoints, opts.restores_folder, opts.record_kind)


@dataclass(frozen=True)
class ResolvedRun:
    """A run ready to train: its settled config, its folder, whether it resumes, and its duties."""
    cfg: RunConfig
    paths: RunPaths
    resume: bool
    duties: RunDuties = RunDuties()


# --- checking options -------------------------------------------------------------------------------

def _positive(name: str, value: Any, kind: type = int) -> None:
    if value is not None and (not isinstance(value, (int, float)) or value <= 0):
        raise UsageError(f"invalid --{name} {shown(value)}: must be a positive "
                         f"{'whole number' if kind is int else 'number'}")


MAX_NPROC = 1024  # processes on one machine: more than any machine has cores or GPUs


def check_options(opts: TrainOptions) -> None:
    """Every number given is within its range (gptwiz.planning.presets.BOUNDS), before anything starts."""
    for name in ("max_iters", "batch_size", "block_size", "grad_accum", "eval_interval", "eval_iters"):
        _positive(name, getattr(opts, name))
        check_bound(name, getattr(opts, name))
    if opts.learning_rate is not None and not 0 < opts.learning_rate < 1:
        raise UsageError(f"invalid --learning_rate {shown(opts.learning_rate)}: must lie in (0, 1), e.g. 3e-4")
    if opts.dropout is not None and not 0 <= opts.dropout < 1:
        raise UsageError(f"invalid --dropout {shown(opts.dropout)}: must lie in [0, 1)")
    if not opts.ckpt_interval_s > 0:  # also NaN; infinity is valid: no checkpoints by time, only at evaluations
        raise UsageError(f"invalid --ckpt_interval_s {shown(opts.ckpt_interval_s)}: "
                         "must be a positive number of seconds")
    if not 0 <= opts.seed < 2**32:  # numpy's seed sequences take no negative numbers
        raise UsageError(f"invalid --seed {shown(opts.seed)}: must be a whole number from 0 to 4294967295")
    if not 1 <= opts.nproc <= MAX_NPROC:
        raise UsageError(f"invalid --nproc {shown(opts.nproc)}: must be a whole number from 1 to {MAX_NPROC}")


def capped_eval_iters(train: TrainConfig) -> int:
    """The preset's eval_iters, cut down for short runs (gptwiz.common.schedule.run_eval_iters, which the time
    predictions use too)."""
    return run_eval_iters(train.eval_iters, train.eval_interval, train.max_iters, train.grad_accum)
