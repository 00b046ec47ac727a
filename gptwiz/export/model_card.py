"""The README.md model card of an exported folder: what the model is and how it was made, from the run's files."""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field
from typing import Any

from gptwiz.common import fmt
from gptwiz.common.commands import fold_command
from gptwiz.common.inert import inert
from gptwiz.data.chat_template import ASSISTANT_HEADER, TEMPLATE_NAME, USER_HEADER
from gptwiz.data.sizes import bits_per_byte


@dataclass(frozen=True)
class CardFacts:
    name: str
    run_config: dict[str, Any]           # the run's config.json
    checkpoint: str                      # ckpt_best.pt or ckpt_last.pt
    iteration: int
    params: int                          # of the exported model
    train_loss: float | None = None      # the evaluation of the checkpoint's iteration, where metrics.jsonl has it
    val_loss: float | None = None
    data_bytes: int | None = None        # the dataset's UTF-8 bytes and tokens, for bits per byte
    data_tokens: int | None = None
    export_command: str = ""
    sources: list[dict[str, Any]] = field(default_factory=list)
    tokenizer: str = "GPT-2"             # gptwiz.export.tokenizer_files.ExportVocab's name: GPT-2 or bpe:N
    n_vocab: int = 50257                 # its tokens


def tokenizer_text(name: str, n_vocab: int) -> str:
    """The card's tokenizer row: GPT-2's, or a BPE the run's data was prepared with (`gptwiz prepare --tokenizer
    bpe:N`), which its tokenizer.json holds."""
    if name == "GPT-2":
        return f"GPT-2's (tiktoken gpt2, {n_vocab:,} tokens)"
    return f"a byte-level BPE of its own ({name}: {n_vocab:,} tokens, GPT-2's pre-tokenizer), trained by gptwiz " \
           "prepare"


def train_command(config: dict[str, Any]) -> str:
    """A `gptwiz train` command that trains this run again from its config.json: the preset and every setting
    it resolved to (the original command line is not recorded; these are its effective values)."""
    words = ["gptwiz", "train", "--config_file", str(config.get("preset_path") or config.get("preset") or "?"),
             "--model_name", str(config.get("name", "run"))]
    data = config.get("data") or {}
    if data.get("kind") == "input_file" and data.get("input_file"):
        words += ["--input_file", str(data["input_file"])]
    elif data.get("dataset_dir"):
        words += ["--dataset_dir", str(data["dataset_dir"])]
    model, train = config.get("model") or {}, config.get("train") or {}
    for key, section in (("block_size", model), ("dropout", model), ("batch_size", train), ("grad_accum", train),
                         ("learning_rate", train), ("max_iters", train), ("eval_interval", train),
                         ("eval_iters", train)):
        if key in section:
            words += [f"--{key}", fmt.number(section[key])]
    for key in ("device", "dtype", "seed"):
        if config.get(key) is not None:
            words += [f"--{key}", str(config[key])]
    if config.get("init_from"):
        words += ["--init_from_model", str(config["init_from"])]
    if int(config.get("world_size") or 1) > 1:
        words += ["--nproc", str(config["world_size"])]
    if config.get("fsdp"):
        words.append("--fsdp")
    return shlex.join(words)


def _loss(value: float | None) -> str:
    return f"{value:.4f}" if value is not None else "not recorded"


def tuned_template(config: dict[str, Any]) -> str | None:
    """The chat template the run was instruction-tuned with (its config.json's data.sft), or None."""
    sft = (config.get("data") or {}).get("sft")
    return str(sft.get("template")) if isinstance(sft, dict) else None


def _prompt_section(template: str) -> str:
    if template != TEMPLATE_NAME:
        return f"""
## Prompt format

Instruction-tuned with chat template {template}, which this gptwiz does not know.
"""
    prompt = f"{USER_HEADER}What is the capital of France?\n\n{ASSISTANT_HEADER}"
    return f"""
## Prompt format

Instruction-tuned (gptwiz chat template {template}): the loss was taken over the answers only. Prompt it as it was
trained, and stop at the end-of-text token (`<|endoftext|>`, id 50256) that closes every answer:

```
{USER_HEADER}{{message}}

{ASSISTANT_HEADER}{{answer}}<|endoftext|>
```

An optional `### System:\n{{text}}\n\n` goes first; further turns follow the end-of-text after `\n\n`, each
part of the prompt tokenized on its own. In Python: `prompt = {prompt!r}`, then
`model.generate(ids, max_new_tokens=100, eos_token_id=50256)`.
"""


def model_card(facts: CardFacts) -> str:
    """The card's Markdown. It holds outside text (the run's name, preset, files, sources) and a terminal may
    `cat` it: every character but newline and tab that a terminal could act on is shown as its escape."""
    return inert(_card(facts), multiline=True)


def _card(facts: CardFacts) -> str:
    cfg = facts.run_config
    model, train = cfg.get("model") or {}, cfg.get("train") or {}
    data = cfg.get("data") or {}
    bpb = bits_per_byte(facts.val_loss, facts.data_tokens, facts.data_bytes)
    sources = ", ".join(f"{s.get('name', '?')} (weight {fmt.number(s.get('weight'))})"
                        for s in (facts.sources or data.get("sources") or [])) or "not recorded"
    tokens = f"{fmt.count(data.get('train_tokens'))} train, {fmt.count(data.get('val_tokens'))} validation"
    bpb_text = (f"{bpb:.4f} (the validation loss in bits, times the dataset's {fmt.count(facts.data_tokens)} "
                f"tokens over its {fmt.bytes_(facts.data_bytes)} of UTF-8 text)" if bpb is not None else "not measured")
    rows = [
        ("preset", str(cfg.get("preset", "?"))),
        ("parameters", f"{fmt.count(facts.params)} ({facts.params:,}; the embedding is tied to the LM head)"),
        ("architecture", f"GPT-2: {model.get('n_layer')} layers, {model.get('n_head')} heads, {model.get('n_embd')} "
                         f"wide, context {model.get('block_size')} tokens"),
        ("tokenizer", tokenizer_text(facts.tokenizer, facts.n_vocab)),
        ("data", sources),
        *([("instruction tuning", f"chat template {tuned_template(cfg)}, loss over the answers only (see Prompt "
                                  "format)")] if tuned_template(cfg) else []),
        ("tokens", tokens),
        ("iterations", f"{facts.iteration:,} of {fmt.count(train.get('max_iters'))} ({facts.checkpoint})"),
        ("train loss", _loss(facts.train_loss)),
        ("validation loss", _loss(facts.val_loss)),
        ("bits per byte", bpb_text),
        ("trained on", f"{cfg.get('device', '?')}, {cfg.get('dtype', '?')}, {cfg.get('world_size') or 1} process(es)"
                       + (", FSDP" if cfg.get("fsdp") else "")),
    ]
    table = "\n".join(f"| {k} | {v} |" for k, v in rows)
    trained = "\n".join(fold_command(train_command(cfg), 100))
    exported = "\n".join(fold_command(facts.export_command, 100)) if facts.export_command else ""
    # model_name: the run's, which llama.cpp's converter takes for the GGUF's general.name (before the folder's).
    return f"""---
model_name: {json.dumps(facts.name, ensure_ascii=False)}
library_name: transformers
pipeline_tag: text-generation
tags:
- gptwiz
- gpt2
---

# {facts.name}

A GPT-2 model trained with gptwiz {cfg.get("gptwiz_version", "")}, exported to the Hugging Face GPT-2 format.

| | |
|---|---|
{table}

## Use

```python
from transformers import AutoTokenizer, GPT2LMHeadModel

tokenizer = AutoTokenizer.from_pretrained("path/to/this/folder")
model = GPT2LMHeadModel.from_pretrained("path/to/this/folder")
ids = tokenizer("To be, or not to be", return_tensors="pt").input_ids
print(tokenizer.decode(model.generate(ids, max_new_tokens=50, do_sample=True)[0]))
```

The model has no positions beyond {model.get("block_size")} tokens: prompt and answer together must fit.
{_prompt_section(tuned_template(cfg) or "") if tuned_template(cfg) else ""}
## How it was made

Trained (the run's settings, as its config.json records them):

```
{trained}
```
""" + (f"""
Exported:

```
{exported}
```
""" if exported else "")
