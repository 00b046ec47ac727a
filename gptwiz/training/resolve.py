"""TrainOptions resolved, once, into the `ResolvedRun` a trainer trains: every option validated and every setting
settled before anything is written (only the token cache of --input_file is built).

Light at import (no torch, no numpy): the CLI imports it before it knows whether anything will train. The steps:
the run folder (`_run_folder`), then a resumed run's saved config (`_resumed_config`) or a new run's preset, source
run and data (`_new_config`), and last the device, precision and compile choice.
"""

from __future__ import annotations

import errno
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

from gptwiz.common.errors import UsageError
from gptwiz.common.files import check_folder
from gptwiz.common.inert import quote
from gptwiz.common.schedule import effective_warmup
from gptwiz.data.tokenizer import GPT2_VOCAB_SIZE, data_tokenizer, folder_tokenizer, same_tokenizer_or_refuse
from gptwiz.model.config import count_params, padded_vocab
from gptwiz.planning.phases import SFT_LEARNING_RATE
from gptwiz.planning.policy import run_dropout
from gptwiz.planning.presets import Preset, TrainConfig
from gptwiz.planning.tuning import TuningPlan, TuningShape, tuning_plan
from gptwiz.runs.jsonfile import read_json
from gptwiz.runs.paths import RunPaths, check_run_files, run_paths
from gptwiz.training.options import (
    ResolvedRun,
    RunConfig,
    RunDuties,
    TrainOptions,
    capped_eval_iters,
    check_options,
)
from gptwiz.training.ranks import env_world_size
from gptwiz.training.saved_config import read_saved_config
from gptwiz.training.source_run import (
    SourceRun,
    check_base_tokenizer,
    check_context,
    followed_preset,
    source_run,
)


def resolve_options(opts: TrainOptions, check_exists: bool = True) -> ResolvedRun:
    """Validate every option and settle every setting; writes nothing but the token cache. `check_exists`: refuse
    a new run whose folder holds another run (False for the ranks after the first, which see rank 0's start)."""
    paths = _run_folder(opts)
    if opts.resume:
        cfg = _resumed_config(opts, paths)
    else:
        cfg = _new_config(opts, paths, check_exists)
    return ResolvedRun(cfg, paths, opts.resume, RunDuties.of(opts))


def _run_folder(opts: TrainOptions) -> RunPaths:
    """The run's folder, once the options are in range and nothing in the way of its files."""
    check_options(opts)
    check_folder(opts.runs_dir, "--runs_dir", write=True)
    paths = run_paths(opts.runs_dir, opts.model_name)
    if paths.root.exists() and not paths.root.is_dir():
        raise UsageError(f"invalid --model_name {opts.model_name}: {paths.root} is a file, not a run folder; "
                         "remove it or choose another --model_name")
    check_run_files(paths)  # a FIFO or a folder where the trainer reads or writes a file: refused now, not mid-run
    return paths


def _resumed_config(opts: TrainOptions, paths: RunPaths) -> RunConfig:
    """A resumed run's saved config, with what this command may change: max_iters, device, dtype, compile and
    the number of processes. Everything the trainer will use is checked here, before it writes a byte: a refused
    resume changes nothing."""
    from gptwiz.training.checkpoint import find_checkpoint  # lazy: torch, once a resume is checked

    saved = read_saved_config(paths.config)
    if saved is None:
        raise UsageError(f"--resume: run {quote(opts.model_name)} has no config.json in {paths.root} (nothing to resume)")
    cfg = RunConfig.from_json(saved, str(paths.config))
    # A run killed before its first checkpoint resumes from iteration 0 (Trainer.run); a probe's folder does not.
    if find_checkpoint(paths) is None and cfg.probe:
        raise UsageError(f"--resume: run {quote(opts.model_name)} has no checkpoint in {paths.root} (nothing to resume)")
    check_resumed_data(cfg)
    if opts.optimizer is not None and opts.optimizer != cfg.train.optimizer:
        raise UsageError(f"--resume: run {quote(opts.model_name)} trains with --optimizer {cfg.train.optimizer}, whose "
                         f"state its checkpoint holds; it cannot continue with --optimizer {opts.optimizer} (drop the "
                         "flag, or start a new run)")
    if opts.max_iters is not None:
        cfg = replace(cfg, train=replace(cfg.train, max_iters=opts.max_iters),
                      warmup_iters=min(cfg.warmup_iters, opts.max_iters // 10) if opts.max_iters < cfg.train.max_iters
                      else cfg.warmup_iters)
    return _resumed_runtime(opts, cfg)


def _resumed_runtime(opts: TrainOptions, cfg: RunConfig) -> RunConfig:
    """Unless told otherwise, a resumed run keeps the precision and compile choice it started with, so that it
    continues exactly as it would have (a run started on a GPU may still continue on a CPU)."""
    import torch  # lazy: torch only once a run is resolved, never on the CLI's --help path

    from gptwiz.training.device import resolve_device, resolve_runtime  # lazy: imports torch
    from gptwiz.training.optimizers import check_optimizer  # lazy: imports torch

    device = opts.device if opts.device != "auto" or not cfg.device.startswith("cuda") or torch.cuda.is_available() \
        else "cpu"
    dtype = opts.dtype if opts.dtype != "auto" else cfg.dtype
    if dtype == "float16" and not resolve_device(device).startswith("cuda"):
        dtype = "auto"
    runtime = resolve_runtime(device, dtype, cfg.compile if opts.compile is None else opts.compile, cfg.train.max_iters)
    check_optimizer(cfg.train.optimizer, opts.fsdp)
    # A run may resume on another number of processes: the global batch follows the new count.
    ws = env_world_size()
    return replace(cfg, device=runtime.device, dtype=runtime.dtype, compile=runtime.compile, world_size=ws,
                   fsdp=opts.fsdp, tokens_per_iter=cfg.tokens_per_iter // cfg.world_size * ws)


def _new_config(opts: TrainOptions, paths: RunPaths, check_exists: bool) -> RunConfig:
    """A new run's config: the preset (the base's, with --init_from_model and no --config_file) with the options'
    overrides, its source run's and data's checks passed; an instruction dataset sizes what was not given."""
    from gptwiz.training.device import resolve_runtime  # lazy: imports torch
    from gptwiz.training.optimizers import check_optimizer, preset_optimizer  # lazy: imports torch

    # console.log is the stdout of a detached trainer (gptwiz/runs/launch.py), opened just before this check runs.
    if check_exists and (paths.root.exists() and any(p != paths.console for p in paths.root.iterdir())
            and not holds_only_a_probe(paths)):
        raise UsageError(f"run {quote(opts.model_name)} already exists in {paths.root}: add --resume to continue it, "
                         "or choose another --model_name")
    source = source_run(opts.init_from_model, opts.init_checkpoint, opts.runs_dir)
    base = followed_preset(opts.config_file, source)
    data, dataset = open_data(opts)
    check_base_tokenizer(source, data, data["dataset_dir"])
    base = vocab_of_data(base, data)
    tuning = tuning_of(opts, base, source, dataset.manifest) if "sft" in data else None
    preset, train = _preset_train(opts, base, tuning)
    check_context(source, preset.model.block_size)
    if tuning is not None:
        train = sft_learning_rate(opts, train)
        data["sft"]["learning_rate"] = "given" if opts.learning_rate is not None else "default"
        data["sft"]["sized"] = {"epochs": tuning.epochs, "batch_size": tuning.batch_size,
                                "max_iters": tuning.max_iters, "block_size": tuning.block_size}
    check_data_fits_block(opts, data, dataset, preset.model.block_size)
    if opts.dropout is None and tuning is None:
        preset = _one_pass_dropout(preset, train, data)
    # Instruction tuning steps at the guide's SFT rate, an AdamW rate: Muon's updates, scaled to AdamW's typical
    # size rather than its first steps', barely move a base at 2e-5 in a tuning run's few hundred steps.
    own = train.optimizer if tuning is None else "adamw"
    runtime = resolve_runtime(opts.device, opts.dtype, opts.compile, train.max_iters)
    train = replace(train, optimizer=preset_optimizer(own, opts.optimizer, opts.fsdp, runtime.device))
    check_optimizer(train.optimizer, opts.fsdp)
    return RunConfig(
        name=paths.name, preset=preset.name, preset_path=str(Path(preset.path).resolve()),
        model=preset.model, train=train, warmup_iters=effective_warmup(train.warmup_iters, train.max_iters),
        data=data, device=runtime.device, dtype=runtime.dtype, compile=runtime.compile, seed=opts.seed,
        init_from=str(source.folder) if source else None, params=count_params(preset.model),
        tokens_per_iter=train.batch_size * train.grad_accum * preset.model.block_size * env_world_size(),
        ckpt_interval_s=opts.ckpt_interval_s,
        init_checkpoint=source.checkpoint.info.name if source else None,
        init_iter=source.checkpoint.info.iter if source else None,
        probe=opts.record_kind == "probe", world_size=env_world_size(), fsdp=opts.fsdp,
    )


def tuning_of(opts: TrainOptions, preset: Preset, source: SourceRun | None, manifest: dict[str, Any]) -> TuningPlan:
    """An instruction dataset's run: the settings not given, sized from its examples (gptwiz.planning.tuning)."""
    sft = manifest["sft"]
    shape = TuningShape(train_examples=int(sft.get("train_examples") or 1),
                        answer_tokens=int(sft.get("train_trained_tokens") or 0),
                        data_block=int(sft["block_size"]), base_block=preset.model.block_size,
                        batch_cap=(source.batch_size if source and source.batch_size else preset.train.batch_size))
    return tuning_plan(shape, opts.batch_size, opts.block_size, opts.max_iters, opts.eval_interval)


def _preset_train(opts: TrainOptions, preset: Preset, tuning: TuningPlan | None = None) -> tuple[Preset, TrainConfig]:
    """The preset with the options' overrides (an instruction dataset's sized settings where none was given), and
    its training settings as this run uses them."""
    sized: TuningPlan | TrainOptions = tuning or opts  # the dataset's sizes keep whatever was given
    preset = preset.with_overrides(
        max_iters=sized.max_iters, learning_rate=opts.learning_rate, batch_size=sized.batch_size,
        block_size=sized.block_size, grad_accum=opts.grad_accum, eval_interval=sized.eval_interval,
        eval_iters=opts.eval_iters, dropout=opts.dropout, optimizer=opts.optimizer,
    )
    train = preset.train
    if opts.learning_rate is not None and train.min_lr > train.learning_rate:
        train = replace(train, min_lr=train.learning_rate / 10)
    if opts.eval_iters is None:
        train = replace(train, eval_iters=capped_eval_iters(train))
    return preset, train


def _one_pass_dropout(preset: Preset, train: TrainConfig, data: dict[str, Any]) -> Preset:
    """The preset's dropout, or none for a run that sees its training tokens at most once (policy.run_dropout)."""
    run_tokens = train.max_iters * train.batch_size * train.grad_accum * preset.model.block_size * env_world_size()
    dropout = run_dropout(preset.model.dropout, run_tokens, data.get("train_tokens"))
    return preset.with_overrides(dropout=dropout)


def vocab_of_data(preset: Preset, data: dict[str, Any]) -> Preset:
    """The preset with the embedding table of the data's tokenizer: a BPE of the user's own sets it (padded);
    GPT-2's data keeps the preset's (at least GPT-2's ids, as the bound of every preset has it)."""
    tokens = data.get("tokenizer_tokens")
    if data_tokenizer(data)[1] is None or not isinstance(tokens, int):
        if preset.model.vocab_size < GPT2_VOCAB_SIZE:
            raise UsageError(f"the preset's vocab_size {preset.model.vocab_size} is smaller than the GPT-2 tokenizer's "
                             f"{GPT2_VOCAB_SIZE} ids, which this data is tokenized with: give at least {GPT2_VOCAB_SIZE}")
        return preset
    return replace(preset, model=replace(preset.model, vocab_size=padded_vocab(tokens)))


def resolve_data(opts: TrainOptions) -> dict[str, Any]:
    """The dataset folder to train from: a prepared one, or the token cache of --input_file."""
    return open_data(opts)[0]


def open_data(opts: TrainOptions) -> tuple[dict[str, Any], Any]:
    """resolve_data's record, and the dataset opened for it (its manifest read once, for the block check too)."""
    from gptwiz.data.cache import cache_text_file  # lazy: numpy, off the CLI's --help path
    from gptwiz.data.dataset import open_dataset  # lazy: numpy, as above
    from gptwiz.data.manifest import is_sft  # lazy: numpy, as above

    if bool(opts.input_file) == bool(opts.dataset_dir):
        raise UsageError("give exactly one of --input_file FILE (a text file) or --dataset_dir DIR (from `gptwiz prepare`)")
    if opts.tokenizer is not None and not opts.input_file:
        raise UsageError(f"--tokenizer {quote(opts.tokenizer)} is for --input_file: a dataset keeps the tokenizer it "
                         "was prepared with (`gptwiz prepare --tokenizer`)")
    if opts.input_file:
        # Checked for writing only once the cache turns out to need building: a ready one reads from anywhere.
        check_folder(opts.data_dir, "--data_dir", write=False)
        try:
            dataset_dir = cache_text_file(opts.input_file, opts.data_dir, tokenizer=opts.tokenizer or "gpt2")
        except OSError as exc:
            if exc.errno not in (errno.EROFS, errno.EACCES, errno.EPERM):
                raise
            raise UsageError(f"invalid --data_dir {opts.data_dir}: the token cache of --input_file cannot be written "
                             f"there ({exc.strerror}); give a writable --data_dir") from None
        kind = "input_file"
    else:
        dataset_dir = Path(opts.dataset_dir or "")
        kind = "dataset_dir"
    dataset = open_dataset(dataset_dir)
    manifest = dataset.manifest
    data = {
        "kind": kind,
        "input_file": str(Path(opts.input_file).resolve()) if opts.input_file else None,
        "dataset_dir": str(Path(dataset_dir).resolve()),
        "manifest": str((Path(dataset_dir) / "manifest.json").resolve()),
        "manifest_checksum": dataset.checksum,
        "sources": [{"name": s["name"], "weight": s["weight"]} for s in manifest["sources"]],
        "train_tokens": manifest["totals"].get("train_tokens"),
        "val_tokens": manifest["totals"].get("val_tokens"),
        "tokenizer": manifest.get("tokenizer") or "gpt2",
        "tokenizer_sha256": manifest.get("tokenizer_sha256"),
        "tokenizer_tokens": manifest.get("vocab_size"),
    }
    if data["tokenizer_sha256"] is not None:
        folder_tokenizer(dataset_dir, data["tokenizer_sha256"])  # a damaged or swapped tokenizer.json: refused now
    if is_sft(manifest):
        sft = manifest["sft"]
        data["sft"] = {"template": sft["template"], "train_examples": sft["train_examples"],
                       "val_examples": sft["val_examples"]}
    return data, dataset


def check_data_fits_block(opts: TrainOptions, data: dict[str, Any], dataset: Any, block_size: int) -> None:
    """Refuse, before anything is written, data that cannot fill one training and one validation block."""
    try:
        dataset.check_block(block_size)
    except UsageError:
        if not opts.input_file:
            raise
        total = (data.get("train_tokens") or 0) + (data.get("val_tokens") or 0)
        raise UsageError(
            f"--input_file {opts.input_file} holds {total} tokens, too few for one block of {block_size + 1} tokens "
            f"in both its train (90%) and val (10%) parts: use a longer file (at least {10 * (block_size + 1)} "
            "tokens) or a smaller --block_size") from None


def holds_only_a_probe(paths: RunPaths) -> bool:
    """True for a folder holding nothing but a probe's files (no checkpoint, a config marked probe or none):
    a run of the same name may start in it, as the probe was its rehearsal."""
    names = {p.name for p in paths.root.iterdir()}
    if not names <= {p.name for p in paths.probe_files()}:
        return False
    if paths.config.name not in names:
        return True
    return bool((read_json(paths.config) or {}).get("probe"))


def sft_learning_rate(opts: TrainOptions, train: TrainConfig) -> TrainConfig:
    """The training settings of a run on an instruction dataset: SFT_LEARNING_RATE (the guide's, as recommend
    offers it) unless --learning_rate was given, min_lr following it as it follows a given one. A base model's
    rate (1e-3 for tiny) would soon undo what the base learned."""
    if opts.learning_rate is not None:
        return train
    train = replace(train, learning_rate=SFT_LEARNING_RATE)
    return replace(train, min_lr=SFT_LEARNING_RATE / 10) if train.min_lr > SFT_LEARNING_RATE else train


def check_resumed_data(cfg: RunConfig) -> None:
    """The dataset a resumed run trains on must still be there and fill a block, as when it started."""
    from gptwiz.data.dataset import open_dataset  # lazy: numpy, off the CLI's --help path

    input_file = cfg.data.get("input_file") if cfg.data.get("kind") == "input_file" else None
    if isinstance(input_file, str) and not os.path.lexists(input_file):
        raise UsageError(f"--resume: run {quote(cfg.name)} was trained on --input_file {quote(input_file)}, which "
                         "does not exist now: put it back where it was, or start a new run on another file "
                         f"(--init_from_model {quote(cfg.name)} keeps its weights)")
    try:
        dataset = open_dataset(cfg.data["dataset_dir"])
        dataset.check_block(cfg.model.block_size)
        same_tokenizer_or_refuse(data_tokenizer(cfg.data), data_tokenizer(dataset.manifest),
                                 f"run {quote(cfg.name)} and its --dataset_dir as prepared now")
    except UsageError as exc:
        raise UsageError(f"--resume: run {quote(cfg.name)} trains on {cfg.data['dataset_dir']}, which cannot be used "
                         f"now: {exc}") from None
