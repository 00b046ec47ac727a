"""The files of a GGUF export (`gptwiz export --format gguf`): `<run name>.gguf` and the Ollama Modelfile beside
it, with the chat template of an instruction-tuned run in both."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from gptwiz.data.bpe import ByteVocab
from gptwiz.export.chat_templates import jinja_template, known_template
from gptwiz.export.gguf_file import GgufFacts, gguf_file_name, write_gguf
from gptwiz.export.modelfile import MODELFILE, ModelfileFacts, modelfile
from gptwiz.model.config import ModelConfig
from gptwiz.training.chat import run_template


@dataclass(frozen=True)
class GgufExport:
    run_name: str
    run_config: dict[str, Any]   # the run's config.json (whether it was instruction-tuned, and how)
    config: ModelConfig
    outtype: str
    temperature: float
    top_k: int
    # The run's tokenizer's (gptwiz.export.tokenizer_files.export_vocab), read before the folder is made: a missing
    # tokenizer is refused with nothing written.
    vocab: ByteVocab


def gguf_folder(facts: GgufExport, tensors: dict[str, torch.Tensor]) -> tuple[list[str], Callable[[Path], None]]:
    """The export's file names, and the function that writes them into a folder (`tensors`: full_tensors')."""
    template = run_template(facts.run_config)
    tuned = known_template(template)
    name = gguf_file_name(facts.run_name)
    gguf_facts = GgufFacts(name=facts.run_name, config=facts.config, outtype=facts.outtype,
                           temperature=facts.temperature, top_k=facts.top_k,
                           chat_template=jinja_template() if tuned else None)
    text = modelfile(ModelfileFacts(run_name=facts.run_name, gguf_name=name, block_size=facts.config.block_size,
                                    temperature=facts.temperature, top_k=facts.top_k, template=template))

    def fill(folder: Path) -> None:
        write_gguf(folder / name, gguf_facts, tensors, facts.vocab)
        with open(folder / MODELFILE, "x", encoding="utf-8") as f:
            f.write(text)

    return [name, MODELFILE], fill
