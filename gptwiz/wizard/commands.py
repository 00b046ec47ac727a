"""The shell lines that carry out a plan: `gptwiz train` (and, for instruction tuning, `gptwiz prepare --sft`)
for a recommendation and its phases, and for the wizard's answers.

Planning returns structured data (the preset, its knobs, the phases with their settings); the text a user
copies into a shell, quoted, is built here, for the `recommend` command, the app and the plain prompts alike.
Folding a line to a width for display is gptwiz.common.commands'.
"""

from __future__ import annotations

import shlex
from typing import Any

from gptwiz.common.errors import UsageError
from gptwiz.planning.phases import Phase
from gptwiz.planning.presets import load_preset
from gptwiz.planning.recommendation import Recommendation
from gptwiz.wizard.state import WizardState, prepared_dir_for

DEFAULT_MODEL_NAME = "my_model"
DEFAULT_DATA = ["--input_file", "YOUR_TEXT.txt"]
DEFAULT_DOMAIN_DATA = ["--dataset_dir", "YOUR_DOMAIN_DATA"]
SFT_SOURCE = "chat:YOUR_EXAMPLES.jsonl"


def _flag_value(value: float | int) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _join(parts: list[str]) -> str:
    return " ".join(shlex.quote(p) for p in parts)


def train_command(rec: Recommendation, model_name: str = DEFAULT_MODEL_NAME, data_arg: str | None = None) -> str:
    """The `gptwiz train` line that trains this pick (data_arg: '--input_file X' or '--dataset_dir D'), with the
    settings that differ from the preset's own."""
    preset = load_preset(rec.preset)
    parts = ["gptwiz", "train", "--config_file", rec.preset, "--model_name", model_name]
    parts += shlex.split(data_arg) if data_arg else DEFAULT_DATA
    if rec.gpu_count > 1:
        parts += ["--nproc", str(rec.gpu_count)]
    overrides = [("batch_size", rec.batch_size, preset.train.batch_size),
                 ("grad_accum", rec.grad_accum, preset.train.grad_accum),
                 ("learning_rate", rec.learning_rate, preset.train.learning_rate),
                 ("dropout", rec.dropout, preset.model.dropout),
                 ("block_size", rec.block_size, preset.model.block_size)]
    for name, value, default in overrides:
        if value is not None and value != default:
            parts += [f"--{name}", _flag_value(value)]
    parts += ["--max_iters", str(rec.max_iters)]
    return _join(parts)


def sft_prepare_command(rec: Recommendation, model_name: str = DEFAULT_MODEL_NAME) -> str:
    """The `gptwiz prepare --sft` line that makes the instruction dataset, at the base model's context."""
    return shlex.join(["gptwiz", "prepare", "--sft", "--source", SFT_SOURCE, "--out_dir", _sft_dir(model_name),
                       "--block_size", str(rec.block_size)])


def phase_train_command(rec: Recommendation, phase: Phase, model_name: str = DEFAULT_MODEL_NAME,
                        domain_data_arg: str | None = None) -> str:
    """The `gptwiz train` line of a phase 2, started from the base run `<model_name>_base`. Instruction tuning
    names no preset and no length: it follows its base, and sizes itself from its examples."""
    if phase.sft:
        data = shlex.split(domain_data_arg) if domain_data_arg else ["--dataset_dir", _sft_dir(model_name)]
        return _join(["gptwiz", "train", "--model_name", model_name, *data, "--init_from_model",
                      _base_name(model_name)])
    preset = load_preset(phase.preset)
    parts = ["gptwiz", "train", "--config_file", phase.preset, "--model_name", model_name]
    parts += shlex.split(domain_data_arg) if domain_data_arg else DEFAULT_DOMAIN_DATA
    parts += ["--init_from_model", _base_name(model_name), "--learning_rate", f"{phase.learning_rate:g}",
              "--max_iters", str(phase.max_iters)]
    if rec.batch_size != preset.train.batch_size:
        parts += ["--batch_size", str(rec.batch_size)]
    if rec.grad_accum != 1:
        parts += ["--grad_accum", str(rec.grad_accum)]
    return _join(parts)


def phase_commands(rec: Recommendation, model_name: str = DEFAULT_MODEL_NAME, data_arg: str | None = None,
                   domain_data_arg: str | None = None) -> list[str]:
    """The lines that carry out the recommendation in order. One run: its line. For `domain`: the base run, then
    the Phase 2 domain-adaptation run started from it. For `chat`: the base run, then the instruction dataset's
    preparation and the tuning run started from the base."""
    if not rec.phases:
        return [train_command(rec, model_name, data_arg)]
    out = [train_command(rec, _base_name(model_name), data_arg)]
    for phase in rec.phases[1:]:
        if phase.sft:
            out.append(sft_prepare_command(rec, model_name))
        out.append(phase_train_command(rec, phase, model_name, domain_data_arg))
    return out


def recommendation_json(rec: Recommendation, commands: list[str]) -> dict[str, Any]:
    """The recommendation as `gptwiz recommend --json` prints it: its fields, with "command" (the first line, in
    its place before "estimate") and "commands" (all of them)."""
    data = rec.to_json()
    estimate = data.pop("estimate")
    data["command"] = commands[0]
    data["estimate"] = estimate
    data["commands"] = commands
    return data


def wizard_command_line(state: WizardState, name: str | None = None) -> str:
    """The `gptwiz train` line that does what the wizard will launch (a placeholder for unprepared data)."""
    try:
        data = state.data_args()
    except UsageError:
        data = ["--dataset_dir", str(prepared_dir_for(state.dataset.path, state.data_dir))] if state.dataset else \
            list(DEFAULT_DATA)
    return "gptwiz " + shlex.join(state.train_args(name, data))


def _base_name(model_name: str) -> str:
    return f"{model_name}_base"


def _sft_dir(model_name: str) -> str:
    return f"data/{model_name}_sft"


__all__ = ["SFT_SOURCE", "train_command", "sft_prepare_command", "phase_train_command", "phase_commands",
           "recommendation_json", "wizard_command_line"]
