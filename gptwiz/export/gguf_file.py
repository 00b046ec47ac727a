"""A run's checkpoint as one GGUF file, the format llama.cpp (and Ollama, LM Studio, llama-cpp-python) loads.

Written with the `gguf` package, llama.cpp's own writer, in the layout llama.cpp's converter
(convert_hf_to_gguf.py, class GPT2Model) gives the Hugging Face folder `gptwiz export` writes:

- architecture "gpt2": gpt2.context_length (the block size), embedding_length, feed_forward_length (4 x the
  width), block_count, attention.head_count, attention.layer_norm_epsilon; general.file_type, general.name
  (the run's name), general.size_label, general.sampling.temp and .top_k (`gptwiz sample`'s defaults, which
  the converter takes from generation_config.json);
- tensors by llama.cpp's names (token_embd, position_embd, blk.N.attn_norm, attn_qkv, attn_output, ffn_norm,
  ffn_up, ffn_down, output_norm), in gptwiz's own nn.Linear (out, in) layout, which is the one the converter
  turns GPT-2's Conv1D weights back into. No `output` tensor: the LM head is tied to the embedding, and
  llama.cpp's gpt2 loader uses token_embd when output is absent, as it does for OpenAI's GPT-2;
- the file type decides the 2-D weights only: norms, biases and position_embd stay f32, as the converter keeps
  them; a q8_0 weight whose rows are not whole blocks of 32 is written f16, as the converter falls back;
- the run's tokenizer, GPT-2's or its own byte-level BPE (the same kind, with GPT-2's pre-tokenizer regex):
  tokenizer.ggml.model "gpt2", pre "gpt-2" (the pre-tokenizer llama.cpp matches to GPT-2's), tokens,
  token_type (<|endoftext|>, the last id, a control token), merges, bos/eos/unk <|endoftext|>, no BOS added
  (gptwiz adds none); for an instruction-tuned run, tokenizer.chat_template.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from gptwiz.common.errors import UsageError
from gptwiz.data.bpe import ByteVocab
from gptwiz.model.config import ModelConfig

LAYER_NORM_EPS = 1e-5  # torch's LayerNorm default, which gptwiz's model uses
_STEM_MAX = 100  # the longest run name gptwiz gives a run (gptwiz.runs.paths)


@dataclass(frozen=True)
class GgufFacts:
    name: str                    # the run's name: general.name
    config: ModelConfig
    outtype: str                 # one of gptwiz.export.formats.OUTTYPES
    temperature: float
    top_k: int
    chat_template: str | None = None  # Jinja, for an instruction-tuned run


def load_gguf() -> Any:
    """The gguf package, or a one-line refusal naming how to install it."""
    try:
        import gguf  # lazy: an optional dependency (the `export` extra), and numpy-heavy for `gptwiz --help`
    except ImportError:
        raise UsageError("--format gguf needs the gguf package (llama.cpp's GGUF writer): pip install gguf, or "
                         "pip install 'gptwiz[export]'") from None
    if not hasattr(gguf.GGUFWriter, "add_sampling_temp"):  # the general.sampling keys came with gguf 0.18
        raise UsageError("--format gguf needs gguf 0.18 or newer (an older one is installed): "
                         "pip install -U gguf, or pip install -U 'gptwiz[export]'")
    return gguf


def gguf_file_name(run_name: str) -> str:
    """`<run name>.gguf`; a run folder's name that is no run name gptwiz would give (a folder renamed by hand)
    has each character other than a letter, a digit, '.', '_' or '-' written as '_'."""
    stem = re.sub(r"[^A-Za-z0-9._-]", "_", run_name)[:_STEM_MAX].lstrip(".") or "model"
    return f"{stem}.gguf"


def _file_type(gguf: Any, outtype: str) -> Any:
    types = {"f32": gguf.LlamaFileType.ALL_F32, "f16": gguf.LlamaFileType.MOSTLY_F16,
             "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0}
    return types[outtype]


def _weight_type(gguf: Any, name: str, ndim: int, outtype: str) -> Any:
    """The type the converter stores a tensor in (its prepare_tensors)."""
    q = gguf.GGMLQuantizationType
    if ndim <= 1 or name.endswith("_norm.weight") or not name.endswith(".weight") or name == "position_embd.weight":
        return q.F32
    return {"f32": q.F32, "f16": q.F16, "q8_0": q.Q8_0}[outtype]


def gguf_tensors(gguf: Any, config: ModelConfig, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """gptwiz.export.tensors.full_tensors' tensors by llama.cpp's names (through the gguf package's own map)."""
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.GPT2, config.n_layer)
    out = {}
    for name, tensor in tensors.items():
        mapped = names.get_name(name, try_suffixes=(".weight", ".bias"))
        if mapped is None:
            raise ValueError(f"no GGUF name for the tensor {name}")
        out[mapped] = tensor
    return out


def _add_tensors(gguf: Any, writer: Any, tensors: dict[str, torch.Tensor], outtype: str) -> None:
    for name, tensor in tensors.items():
        data = tensor.numpy()
        qtype = _weight_type(gguf, name, data.ndim, outtype)
        try:
            stored = gguf.quants.quantize(data, qtype)
        except gguf.QuantError:  # rows that are not whole q8_0 blocks
            qtype = gguf.GGMLQuantizationType.F16
            stored = gguf.quants.quantize(data, qtype)
        writer.add_tensor(name, stored, raw_dtype=qtype)


def _add_vocab(gguf: Any, writer: Any, vocab: ByteVocab, chat_template: str | None) -> None:
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("gpt-2")
    writer.add_token_list(vocab.tokens)
    eot = vocab.eot_token
    control, normal = gguf.TokenType.CONTROL, gguf.TokenType.NORMAL
    writer.add_token_types([control if i == eot else normal for i in range(len(vocab.tokens))])
    writer.add_token_merges(vocab.merges)
    writer.add_bos_token_id(eot)
    writer.add_eos_token_id(eot)
    writer.add_unk_token_id(eot)
    writer.add_add_bos_token(False)
    if chat_template is not None:
        writer.add_chat_template(chat_template)


def write_gguf(path: Path, facts: GgufFacts, tensors: dict[str, torch.Tensor], vocab: ByteVocab) -> None:
    """Write the GGUF file at `path` (a new file) from full_tensors' tensors."""
    gguf = load_gguf()
    c = facts.config
    writer = gguf.GGUFWriter(path=None, arch=gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.GPT2])
    _add_tensors(gguf, writer, gguf_tensors(gguf, c, tensors), facts.outtype)
    writer.add_type(gguf.GGUFType.MODEL)
    writer.add_name(facts.name)
    writer.add_size_label(gguf.size_label(*writer.get_total_parameter_count()))
    writer.add_sampling_temp(facts.temperature)
    writer.add_sampling_top_k(facts.top_k)
    writer.add_block_count(c.n_layer)
    writer.add_context_length(c.block_size)
    writer.add_embedding_length(c.n_embd)
    writer.add_feed_forward_length(4 * c.n_embd)
    writer.add_head_count(c.n_head)
    writer.add_layer_norm_eps(LAYER_NORM_EPS)
    writer.add_file_type(_file_type(gguf, facts.outtype))
    _add_vocab(gguf, writer, vocab, facts.chat_template)
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    try:
        writer.write_header_to_file(path=path)
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file(progress=False)
    finally:
        writer.close()
