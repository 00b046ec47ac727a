"""What the user asked for, and the one fully resolved `RunConfig` it becomes.

`resolve_run_config` validates every option and settles every setting before anything is written
(only the token cache of --input_file is built). No torch at import: the CLI validates with it and
`gptwiz --help` must stay fast.
"""

from __future__ import annotations

import errno
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from gptwiz import __version__
from gptwiz.common.errors import UsageError
from gptwiz.common.files import check_folder
from gptwiz.common.schedule import effective_warmup
from gptwiz.model.config import ModelConfig, count_params
from gptwiz.planning.policy import CKPT_INTERVAL_S, run_eval_iters
from gptwiz.planning.presets import Preset, TrainConfig, check_bound, load_preset, shown
from gptwiz.planning.recommend import SFT_LEARNING_RATE
from gptwiz.runs.folder import RunPaths, check_run_files, now_iso, read_json, resolve_run, run_paths
from gptwiz.training.saved_config import RESUME_ADVICE, check_saved_config, read_saved_config, required_fields


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
    ckpt_interval_s: float = CKPT_INTERVAL_S
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
    ckpt_interval_s: float = CKPT_INTERVAL_S
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
    def from_json(cls, data: Any, source: str = "config.json", advice: str = RESUME_ADVICE) -> RunConfig:
        """A config.json read back; a UsageError naming `source` and the key when any key is missing or wrong."""
        check_saved_config(data, source, required_fields(cls), advice)
        data = dict(data)
        data["model"] = ModelConfig(**data["model"])
        train = dict(data["train"])
        if "betas" in train:
            train["betas"] = tuple(float(b) for b in train["betas"])
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
    """The preset's eval_iters, cut down for short runs (gptwiz.planning.policy.run_eval_iters, which the time
    predictions use too)."""
    return run_eval_iters(train.eval_iters, train.eval_interval, train.max_iters, train.grad_accum)


def resolve_data(opts: TrainOptions) -> dict[str, Any]:
    """The dataset folder to train from: a prepared one, or the token cache of --input_file."""
    from gptwiz.data.cache import cache_text_file
    from gptwiz.data.manifest import is_sft, manifest_checksum, read_manifest

    if bool(opts.input_file) == bool(opts.dataset_dir):
        raise UsageError("give exactly one of --input_file FILE (a text file) or --dataset_dir DIR (from `gptwiz prepare`)")
    if opts.input_file:
        # Checked for writing only once the cache turns out to need building: a ready one reads from anywhere.
        check_folder(opts.data_dir, "--data_dir", write=False)
        try:
            dataset_dir = cache_text_file(opts.input_file, opts.data_dir)
        except OSError as exc:
            if exc.errno not in (errno.EROFS, errno.EACCES, errno.EPERM):
                raise
            raise UsageError(f"invalid --data_dir {opts.data_dir}: the token cache of --input_file cannot be written "
                             f"there ({exc.strerror}); give a writable --data_dir") from None
        kind = "input_file"
    else:
        dataset_dir = Path(opts.dataset_dir)
        kind = "dataset_dir"
    manifest = read_manifest(dataset_dir)
    data = {
        "kind": kind,
        "input_file": str(Path(opts.input_file).resolve()) if opts.input_file else None,
        "dataset_dir": str(Path(dataset_dir).resolve()),
        "manifest": str((Path(dataset_dir) / "manifest.json").resolve()),
        "manifest_checksum": manifest_checksum(Path(dataset_dir)),
        "sources": [{"name": s["name"], "weight": s["weight"]} for s in manifest["sources"]],
        "train_tokens": manifest["totals"].get("train_tokens"),
        "val_tokens": manifest["totals"].get("val_tokens"),
    }
    if is_sft(manifest):
        sft = manifest["sft"]
        data["sft"] = {"template": sft["template"], "train_examples": sft["train_examples"],
                       "val_examples": sft["val_examples"]}
    return data


def check_data_fits_block(opts: TrainOptions, data: dict[str, Any], block_size: int) -> None:
    """Refuse, before anything is written, data that cannot fill one training and one validation block."""
    from gptwiz.data.dataset import open_dataset

    try:
        open_dataset(data["dataset_dir"]).check_block(block_size)
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
    from gptwiz.training.device import resolve_device, resolve_runtime

    check_options(opts)
    check_folder(opts.runs_dir, "--runs_dir", write=True)
    paths = run_paths(opts.runs_dir, opts.model_name)
    if paths.root.exists() and not paths.root.is_dir():
        raise UsageError(f"invalid --model_name {opts.model_name}: {paths.root} is a file, not a run folder; "
                         "remove it or choose another --model_name")
    check_run_files(paths)  # a FIFO or a folder where the trainer reads or writes a file: refused now, not mid-run
    if opts.resume:
        # Everything the trainer will use is checked here, before it writes a byte: a refused resume changes nothing.
        saved = read_saved_config(paths.config)
        if saved is None:
            raise UsageError(f"--resume: run '{opts.model_name}' has no config.json in {paths.root} (nothing to resume)")
        from gptwiz.training.checkpoint import find_checkpoint

        cfg = RunConfig.from_json(saved, str(paths.config))
        # A run killed before its first checkpoint resumes from iteration 0 (Trainer.run); a probe's folder does not.
        if find_checkpoint(paths) is None and cfg.probe:
            raise UsageError(f"--resume: run '{opts.model_name}' has no checkpoint in {paths.root} (nothing to resume)")
        check_resumed_data(cfg)
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
    # console.log is the stdout of a detached trainer (gptwiz/runs/launch.py), opened just before this check runs.
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
        check_run_files(source)  # its checkpoint and config are read: never a FIFO
        from gptwiz.training.checkpoint import find_checkpoint

        if find_checkpoint(source) is None:
            raise UsageError(f"--init_from_model {opts.init_from_model}: run '{source.name}' has no checkpoint yet")
        # Its architecture, from its config.json checked as a resume checks it (a source without one is not
        # compared: loading its weights then says whether they fit).
        advice = "fix or restore it, or choose another --init_from_model"
        prefix = f"--init_from_model {opts.init_from_model}: "
        source_saved = read_saved_config(source.config, advice, prefix)
        if source_saved is not None:
            src_model = RunConfig.from_json(source_saved, f"{prefix}{source.config}", advice).model
            for key in ("n_layer", "n_head", "n_embd", "vocab_size", "bias"):
                if getattr(src_model, key) != getattr(preset.model, key):
                    raise UsageError(f"--init_from_model {opts.init_from_model}: its {key} is {getattr(src_model, key)}, "
                                     f"the preset {preset.name}'s is {getattr(preset.model, key)}; use a preset of the same architecture")
            if src_model.block_size < preset.model.block_size:
                raise UsageError(f"--init_from_model {opts.init_from_model}: it was trained with block_size "
                                 f"{src_model.block_size}, shorter than {preset.model.block_size}")
        init_from = str(source.root.resolve())
    data = resolve_data(opts)
    if "sft" in data:
        train = sft_learning_rate(opts, train)
        data["sft"]["learning_rate"] = "given" if opts.learning_rate is not None else "default"
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


def sft_learning_rate(opts: TrainOptions, train: TrainConfig) -> TrainConfig:
    """The training settings of a run on an instruction dataset: SFT_LEARNING_RATE (the guide's, as recommend
    offers it) unless --learning_rate was given, min_lr following it as it follows a given one. A base model's
    rate (3e-4 for tiny) would soon undo what the base learned."""
    if opts.learning_rate is not None:
        return train
    train = replace(train, learning_rate=SFT_LEARNING_RATE)
    return replace(train, min_lr=SFT_LEARNING_RATE / 10) if train.min_lr > SFT_LEARNING_RATE else train


def check_resumed_data(cfg: RunConfig) -> None:
    """The dataset a resumed run trains on must still be there and fill a block, as when it started."""
    from gptwiz.data.dataset import open_dataset

    try:
        open_dataset(cfg.data["dataset_dir"]).check_block(cfg.model.block_size)
    except UsageError as exc:
        raise UsageError(f"--resume: run '{cfg.name}' trains on {cfg.data['dataset_dir']}, which cannot be used "
                         f"now: {exc}") from None


def world_size() -> int:
    from gptwiz.training.distributed import env_world_size  # torch-free, but keeps distributed off the CLI's path

    return env_world_size()
