"""`gptwiz export`: a run's checkpoint as a Hugging Face GPT-2 model folder (config.json, model.safetensors,
generation_config.json, the run's tokenizer files, GPT-2's or its own byte-level BPE's, and a model card) or, with
--format gguf, as a GGUF file for llama.cpp with an Ollama Modelfile beside it (gptwiz.export.gguf_folder); either
written into a temporary sibling and renamed into place, one export at a time per folder (gptwiz.export.target).

gptwiz's model keeps GPT-2's tensor names, stored as nn.Linear (out, in): the Hugging Face model's Conv1D holds
the four projection matrices as (in, out), so those are transposed (gptwiz.export.tensors gives the rest: zero
biases where the preset has none, the vocabulary's padding rows dropped).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from gptwiz.common.errors import UsageError
from gptwiz.common.files import check_folder
from gptwiz.common.inert import quote
from gptwiz.data.tokenizer import run_tokenizer
from gptwiz.export.chat_templates import jinja_template, known_template
from gptwiz.export.formats import DEFAULT_OUTTYPE, FORMATS, OUTTYPES
from gptwiz.export.gguf_file import load_gguf
from gptwiz.export.gguf_folder import GgufExport, gguf_folder
from gptwiz.export.model_card import CardFacts, model_card
from gptwiz.export.modelfile import MODELFILE
from gptwiz.export.safetensors_file import write_safetensors
from gptwiz.export.target import ExportTarget, check_name, is_model_folder
from gptwiz.export.tensors import full_tensors
from gptwiz.export.tokenizer_files import TOKENIZER_FILES, ExportVocab, export_vocab, tokenizer_files
from gptwiz.model.config import ModelConfig
from gptwiz.planning.presets import shown
from gptwiz.runs.checkpoints import CHECKPOINT_CHOICES
from gptwiz.runs.jsonfile import read_json
from gptwiz.runs.metrics import read_metrics
from gptwiz.runs.paths import RunPaths, resolve_run
from gptwiz.training.chat import run_template
from gptwiz.training.run_model import load_run_model
from gptwiz.training.saved_config import read_run_facts

# Conv1D layers: their weight is (in, out) in the Hugging Face model.
_CONV1D = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")
WEIGHTS_FILE = "model.safetensors"
# Every file of an exported folder.
MODEL_FILES = (WEIGHTS_FILE, "config.json", "generation_config.json", "README.md", *TOKENIZER_FILES)
# `gptwiz sample`'s defaults, which both formats carry for programs that sample from the model.
TEMPERATURE = 0.8
TOP_K = 200


@dataclass(frozen=True)
class ExportOptions:
    model_name: str
    out: str
    checkpoint: str = "auto"  # best, last, or auto (gptwiz.runs.checkpoints.choose)
    runs_dir: str = "runs"
    overwrite: bool = False
    format: str = "hf"  # hf or gguf
    outtype: str | None = None  # gguf only: f32, f16 (the default) or q8_0


@dataclass(frozen=True)
class ExportResult:
    out: Path
    checkpoint: str
    iteration: int
    params: int
    files: list[str]


def gpt2_config(config: ModelConfig, tok: ExportVocab, name: str | None = None) -> dict[str, Any]:
    """GPT2Config's fields for the model (transformers' names and defaults where gptwiz has no value), its
    vocabulary the run's tokenizer's `tok` (the embedding's padding rows are not exported); `name`, the run's, as
    `_name_or_path`, where Hugging Face configs keep the model's name."""
    return {
        **({"_name_or_path": name} if name is not None else {}),
        "architectures": ["GPT2LMHeadModel"],
        "model_type": "gpt2",
        "vocab_size": tok.n_vocab,
        "n_positions": config.block_size,
        "n_ctx": config.block_size,
        "n_embd": config.n_embd,
        "n_layer": config.n_layer,
        "n_head": config.n_head,
        "n_inner": None,  # 4 * n_embd
        "activation_function": "gelu_new",  # the tanh approximation gptwiz's MLP uses
        "resid_pdrop": config.dropout,
        "embd_pdrop": config.dropout,
        "attn_pdrop": config.dropout,
        "layer_norm_epsilon": 1e-5,  # torch's LayerNorm default, which gptwiz's model uses
        "initializer_range": 0.02,
        "scale_attn_weights": True,
        "scale_attn_by_inverse_layer_idx": False,
        "reorder_and_upcast_attn": False,
        "tie_word_embeddings": True,
        "bos_token_id": tok.eot_token,
        "eos_token_id": tok.eot_token,
        "use_cache": True,
        "torch_dtype": "float32",
        "dtype": "float32",
    }


def generation_config(block_size: int, eot: int) -> dict[str, Any]:
    """`gptwiz sample`'s sampling, so that generate() continues text the way gptwiz does. Its length is
    max_length, prompt and answer together, at the block size: the model has no positions beyond it, and
    `gptwiz sample`'s 200 new tokens (max_new_tokens) would run past them after any prompt into a smaller block.
    A caller's own max_new_tokens still takes precedence, as transformers documents. `eot`: the tokenizer's
    <|endoftext|>, which begins, ends and pads."""
    return {"bos_token_id": eot, "eos_token_id": eot, "pad_token_id": eot, "do_sample": True,
            "temperature": TEMPERATURE, "top_k": TOP_K, "max_length": block_size}


def gpt2_tensors(config: ModelConfig, model_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The checkpoint's weights as GPT2LMHeadModel's state dict (float32, the tied LM head left to the embedding)."""
    return _conv1d(full_tensors(config, model_state))


def _conv1d(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {name: t.t().contiguous() if name.endswith(_CONV1D) else t for name, t in tensors.items()}


def _check_format(opts: ExportOptions) -> None:
    if opts.format not in FORMATS:
        raise UsageError(f"invalid --format {shown(opts.format)}: must be hf (the default) or gguf")
    if opts.outtype is not None and opts.format != "gguf":
        raise UsageError(f"--outtype {shown(opts.outtype)} is for --format gguf only; a Hugging Face folder "
                         "(--format hf) is always float32")
    if opts.outtype is not None and opts.outtype not in OUTTYPES:
        raise UsageError(f"invalid --outtype {shown(opts.outtype)}: must be f32, f16 (the default) or q8_0")
    if opts.format == "gguf":
        load_gguf()


def check_export_options(opts: ExportOptions) -> Path:
    """The folder to write, refused in one line before anything is read: a name the filesystem cannot hold, one
    that is there and not empty (unless --overwrite, and then only a model folder, never a folder of something
    else), a file, a link. Checked again once the folder's lock is held (another export may have written it)."""
    if opts.checkpoint not in CHECKPOINT_CHOICES:
        raise UsageError(f"invalid --checkpoint {shown(opts.checkpoint)}: must be best or last (or auto, the default)")
    _check_format(opts)
    if not opts.out or not opts.out.strip():
        raise UsageError("invalid --out '': give the folder to write the model into")
    out = Path(opts.out)
    check_folder(out.parent if str(out.parent) else Path("."), "--out", write=True)
    check_name(out, opts.out)
    given = quote(opts.out)
    if out.is_symlink():
        raise UsageError(f"invalid --out {given}: it is a symlink; give the folder itself")
    if os.path.lexists(out):
        if not out.is_dir():
            raise UsageError(f"invalid --out {given}: it is a file, not a folder; give a new or empty folder")
        if any(out.iterdir()):
            if not opts.overwrite:
                raise UsageError(f"--out {given} exists and is not empty; give a new or empty folder, "
                                 "or --overwrite to replace the model folder in it")
            if not is_model_folder(out):
                raise UsageError(f"--out {given} is not a model folder (it has neither the config.json of a GPT-2 "
                                 "model nor a GGUF export's Modelfile and .gguf); --overwrite replaces only an "
                                 "earlier export: remove it yourself or give another")
    if out.resolve() == Path.cwd().resolve():
        raise UsageError(f"invalid --out {given}: it is the current folder; give a folder of its own")
    return out


def _eval_at(paths: RunPaths, iteration: int) -> dict[str, Any]:
    """The evaluation record of `iteration` in metrics.jsonl, or {} when it has none."""
    evals = [r for r in read_metrics(paths.metrics) if r.get("type") == "eval" and r.get("iter") == iteration]
    return evals[-1] if evals else {}


def _finite(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) \
        and value == value and abs(value) != float("inf") else None


def _data_size(run_config: dict[str, Any]) -> tuple[int | None, int | None]:
    """The dataset's UTF-8 bytes and tokens, from its manifest, where it is still there."""
    manifest = (run_config.get("data") or {}).get("manifest")
    sources = (read_json(Path(manifest)) or {}).get("sources") if isinstance(manifest, str) else None
    if not isinstance(sources, list) or not sources:
        return None, None
    try:
        nbytes = sum(int(s["bytes"]) - int(s.get("skipped_bytes", 0)) for s in sources)
        tokens = sum(int(s["train_tokens"]) + int(s["val_tokens"]) for s in sources)
    except (KeyError, TypeError, ValueError):
        return None, None
    return (nbytes, tokens) if nbytes > 0 and tokens > 0 else (None, None)


def export_run(opts: ExportOptions, command: str = "", warn: Callable[[str], None] | None = None,
               note: Callable[[str], None] | None = None) -> ExportResult:
    """Export the checkpoint the rule of gptwiz.runs.checkpoints picks (or the one asked for); `warn` hears of a
    damaged checkpoint passed over, `note` which checkpoint is exported; `command` goes into the model card."""
    out = check_export_options(opts)
    paths = resolve_run(opts.model_name, opts.runs_dir)
    target = ExportTarget(out, (*MODEL_FILES, MODELFILE), suffixes=(".gguf",))  # either format's leftovers
    with target.claimed():
        check_export_options(opts)  # again, under the lock: an export that just ended may have written it
        return _export(opts, paths, target, command, warn, note)


def _export(opts: ExportOptions, paths: RunPaths, target: ExportTarget, command: str,
            warn: Callable[[str], None] | None, note: Callable[[str], None] | None) -> ExportResult:
    run_config = read_run_facts(paths.config)  # each key the model card reads, checked first: refused in one line
    # The tokenizer before the weights: a missing or altered tokenizer.json, or no GPT-2 files offline, is refused
    # with nothing loaded or written.
    tok = export_vocab(run_tokenizer(paths.root, run_config))
    loaded = load_run_model(paths, opts.checkpoint, "cpu", warn=warn, note=note)
    path, iteration, config = loaded.path, loaded.iteration, loaded.config
    tensors = full_tensors(loaded.config, loaded.model.state_dict(), tok.n_vocab, tok.name)
    del loaded
    params = sum(t.numel() for t in tensors.values())
    if opts.format == "gguf":
        facts = GgufExport(run_name=paths.name, run_config=run_config, config=config,
                           outtype=opts.outtype or DEFAULT_OUTTYPE, temperature=TEMPERATURE, top_k=TOP_K,
                           vocab=tok.vocab)
        names, fill = gguf_folder(facts, tensors)
    else:
        card = _card(paths, run_config, path.name, iteration, params, command, tok)
        names, fill = _hf_folder(paths.name, run_config, config, _conv1d(tensors), card, tok)
    target.write(fill, replace=opts.overwrite)
    return ExportResult(target.out, path.name, iteration, params, sorted(names))


def _card(paths: RunPaths, run_config: dict[str, Any], checkpoint: str, iteration: int, params: int,
          command: str, tok: ExportVocab) -> str:
    ev = _eval_at(paths, iteration)
    nbytes, ntokens = _data_size(run_config)
    return model_card(CardFacts(
        name=paths.name, run_config=run_config, checkpoint=checkpoint, iteration=iteration, params=params,
        train_loss=_finite(ev.get("train_loss")), val_loss=_finite(ev.get("val_loss")),
        data_bytes=nbytes, data_tokens=ntokens, export_command=command, tokenizer=tok.name, n_vocab=tok.n_vocab))


def _hf_folder(name: str, run_config: dict[str, Any], config: ModelConfig, tensors: dict[str, torch.Tensor],
               card: str, tok: ExportVocab) -> tuple[list[str], Callable[[Path], None]]:
    """The Hugging Face folder's file names, and the function that writes them into a folder."""
    template = run_template(run_config)
    texts: dict[str, bytes] = {
        "config.json": _json(gpt2_config(config, tok, name)),
        "generation_config.json": _json(generation_config(config.block_size, tok.eot_token)),
        **tokenizer_files(tok, config.block_size, jinja_template() if known_template(template) else None),
        "README.md": card.encode("utf-8"),
    }

    def fill(folder: Path) -> None:
        write_safetensors(folder / WEIGHTS_FILE, tensors, {"format": "pt"})
        for file_name, data in texts.items():
            with open(folder / file_name, "xb") as f:
                f.write(data)

    return [WEIGHTS_FILE, *texts], fill


def _json(data: object) -> bytes:
    return (json.dumps(data, indent=2) + "\n").encode("utf-8")
