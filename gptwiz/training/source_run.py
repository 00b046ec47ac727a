"""The run a new run starts from (--init_from_model): its folder, the checkpoint its weights are taken from (the
rule `gptwiz sample` follows, or --init_checkpoint), and the preset the new run follows when --config_file is
left out: the base's own, with the base's architecture and context.

Light at import (no torch): the CLI resolves options before it knows whether anything will train.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from gptwiz.common.errors import UsageError
from gptwiz.common.inert import quote
from gptwiz.data.tokenizer import data_tokenizer, same_tokenizer_or_refuse
from gptwiz.model.config import ModelConfig
from gptwiz.planning.presets import Preset, load_preset
from gptwiz.runs.checkpoints import CHECKPOINT_CHOICES, CheckpointChoice, choose_checkpoint
from gptwiz.runs.paths import check_run_files, resolve_run
from gptwiz.training.options import RunConfig
from gptwiz.training.saved_config import read_saved_config

# The vocabulary follows the data's tokenizer, whose match with the base's is checked on its own.
_ARCHITECTURE = ("n_layer", "n_head", "n_embd", "bias")


@dataclass(frozen=True)
class SourceRun:
    """The --init_from_model run: where it is, what it was, and which checkpoint gives the weights."""
    given: str                      # as the user wrote it, for messages
    folder: Path
    name: str
    checkpoint: CheckpointChoice
    model: ModelConfig | None       # from its config.json (None: it has none, and is not compared)
    preset: str | None              # its preset's name, and the path it was read from
    preset_path: str | None
    batch_size: int | None          # the micro-batch it trained with: one that fitted this kind of machine
    tokenizer: tuple[str, str | None] = ("gpt2", None)  # its data's tokenizer: name and SHA-256 (a BPE's)

    @property
    def prefix(self) -> str:
        return f"--init_from_model {self.given}: "


def source_run(given: str | None, which: str, runs_dir: str) -> SourceRun | None:
    """The source run named by --init_from_model, its checkpoint chosen by `which` (auto, best or last) and its
    config.json checked; None without the flag."""
    if which not in CHECKPOINT_CHOICES:
        raise UsageError(f"invalid --init_checkpoint {quote(which)}: must be auto, best or last")
    if not given:
        if which != "auto":
            raise UsageError("--init_checkpoint chooses the checkpoint of --init_from_model: give --init_from_model "
                             "BASE too, or leave --init_checkpoint out")
        return None
    paths = resolve_run(given, runs_dir)
    check_run_files(paths)  # its checkpoint and config are read: never a FIFO
    prefix = f"--init_from_model {given}: "
    try:
        choice = choose_checkpoint(paths, which)
    except UsageError as exc:
        raise UsageError(f"{prefix}{str(exc).replace('--checkpoint', '--init_checkpoint')}") from None
    if choice.info.iter is None:
        raise UsageError(f"{prefix}its {choice.info.name} cannot be read; fix or restore it, or choose another "
                         "--init_from_model")
    saved = read_saved_config(paths.config, "fix or restore it, or choose another --init_from_model", prefix)
    cfg = None
    if saved is not None:
        cfg = RunConfig.from_json(saved, f"{prefix}{paths.config}", "fix or restore it, or choose another "
                                  "--init_from_model")
    return SourceRun(given, paths.root.resolve(), paths.name, choice, cfg.model if cfg else None,
                     cfg.preset if cfg else None, cfg.preset_path if cfg else None,
                     cfg.train.batch_size if cfg else None, data_tokenizer(cfg.data) if cfg else ("gpt2", None))


def check_base_tokenizer(source: SourceRun | None, data: dict[str, Any], dataset_dir: str) -> None:
    """A base's weights know its own tokenizer's ids only: refuse data prepared with another."""
    if source is not None:
        same_tokenizer_or_refuse(source.tokenizer, data_tokenizer(data),
                                 f"--init_from_model {source.given} and --dataset_dir {dataset_dir}")


def followed_preset(config_file: str | None, source: SourceRun | None) -> Preset:
    """The preset a new run trains with: --config_file's; without it, the base's own (its architecture, context
    and dropout as the base trained them), so that tuning a base needs no preset named."""
    if config_file:
        preset = load_preset(config_file)
        if source is not None:
            check_architecture(source, preset)
        return preset
    if source is None:
        raise UsageError("--config_file is required: a preset name (tiny, small, 150M, ...) or a path to a preset "
                         "JSON file (with --init_from_model BASE it may be left out: the run follows its base)")
    if source.model is None or source.preset is None:
        raise UsageError(f"{source.prefix}run {quote(source.name)} has no config.json to say its preset; give "
                         "--config_file with the base's preset")
    preset = _base_preset(source)
    return replace(preset, model=source.model)


def _base_preset(source: SourceRun) -> Preset:
    """The base's preset: from where it was read when that file is still there, else by its name."""
    assert source.preset is not None
    for candidate in (source.preset_path, source.preset):
        if candidate and (candidate == source.preset or Path(candidate).is_file()):
            try:
                return load_preset(candidate)
            except UsageError:
                continue
    raise UsageError(f"{source.prefix}its preset {quote(source.preset)} cannot be found now; give --config_file "
                     "with a preset of its architecture")


def check_architecture(source: SourceRun, preset: Preset) -> None:
    """Refuse a preset whose model the base's weights do not fit, saying which preset would."""
    if source.model is None:
        return  # a source without config.json: loading its weights says whether they fit
    for key in _ARCHITECTURE:
        if getattr(source.model, key) != getattr(preset.model, key):
            base = f"preset {quote(source.preset)}" if source.preset else "another preset"
            raise UsageError(f"{source.prefix}its {key} is {getattr(source.model, key)}, the preset "
                             f"{preset.name}'s is {getattr(preset.model, key)}: the base was trained with {base}; "
                             "leave --config_file out (a run from --init_from_model follows its base) or give the "
                             "base's preset")


def check_context(source: SourceRun | None, block_size: int) -> None:
    """A run cannot have more positions than its base learned."""
    if source is not None and source.model is not None and source.model.block_size < block_size:
        raise UsageError(f"{source.prefix}it was trained with block_size {source.model.block_size}, shorter than "
                         f"{block_size}; give --block_size {source.model.block_size} or less")
