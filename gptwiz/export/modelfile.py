"""The Ollama Modelfile written beside a GGUF export: `ollama create NAME -f DIR/Modelfile` makes an Ollama model
of the run that generates as `gptwiz sample` (or, for an instruction-tuned run, `gptwiz chat`) does."""

from __future__ import annotations

from dataclasses import dataclass

from gptwiz.common.inert import inert
from gptwiz.data.bpe import EOT_TEXT
from gptwiz.export.chat_templates import known_template, ollama_template

MODELFILE = "Modelfile"
# A pretrained run continues the text it is given; Ollama's default template is this too, said here so that
# nothing Ollama guesses from the GGUF wraps the prompt.
PLAIN_TEMPLATE = "{{ .Prompt }}"


@dataclass(frozen=True)
class ModelfileFacts:
    run_name: str
    gguf_name: str         # the GGUF's file name, in the same folder
    block_size: int
    temperature: float
    top_k: int
    template: str | None   # the chat template the run was instruction-tuned with (its data.sft), or None


def _number(value: float) -> str:
    return f"{value:g}"


def modelfile(facts: ModelfileFacts) -> str:
    """The Modelfile's text. num_ctx is the block size: the model has no positions beyond it, so a prompt and
    its answer together must fit, and Ollama must not give it a longer context."""
    stem = facts.gguf_name.removesuffix(".gguf")
    tuned = known_template(facts.template)
    template = ollama_template() if tuned else PLAIN_TEMPLATE
    if tuned:
        kind = f"instruction-tuned with gptwiz's chat template {facts.template}"
    elif facts.template is not None:
        kind = f"instruction-tuned with chat template {inert(facts.template)}, which this gptwiz does not know: " \
               "prompts go in as they are"
    else:
        kind = "pretrained: it continues the prompt"
    return (f"# The gptwiz run {inert(facts.run_name)} ({kind}), for Ollama:\n"
            f"#   ollama create {stem} -f Modelfile\n"
            f"FROM ./{facts.gguf_name}\n"
            f"PARAMETER num_ctx {facts.block_size}\n"
            f"PARAMETER temperature {_number(facts.temperature)}\n"
            f"PARAMETER top_k {facts.top_k}\n"
            f'PARAMETER stop "{EOT_TEXT}"\n'
            f'TEMPLATE """{template}"""\n')
