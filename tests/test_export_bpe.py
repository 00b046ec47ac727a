"""`gptwiz export` of a run trained on a byte-level BPE of its own (`gptwiz prepare --tokenizer bpe:N`): the
Hugging Face folder loads offline in transformers with the run's token ids (its fast tokenizer, and GPT2Tokenizer
from vocab.json and merges.txt alone) and its model's logits, and the GGUF carries the run's vocabulary, merges and end-of-text id.

The BPE has 1,000 tokens, so the model's table is padded to 1,024 rows: the export must drop the 24 padding rows
(a multiple of 64 such as 1,024 would leave nothing to drop)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import SHAKESPEARE, assert_one_line_error, build_once, run_cli, session_folder
from test_export import TRICKY_TEXTS

from gptwiz.data.bpe import BpeTokenizer, load_bpe
from gptwiz.export.tokenizer_files import gpt2_vocab, merges_txt, tiktoken_cache_dir, vocab_json
from gptwiz.model.gpt import GPT
from gptwiz.training.checkpoint import check_model_state, load_checkpoint

N_TOKENS = 1000  # the BPE's tokens; <|endoftext|> is the last, 999
EOT = N_TOKENS - 1
PADDED = 1024  # the model's vocab_size: N_TOKENS rounded up to a multiple of 64
CORPUS_CHARS = 300_000
# Text where tokenizers that split differently show it (accents, CJK, emoji, runs of spaces and newlines).
TEXTS = [*TRICKY_TEXTS, "two  spaces,\n\n\nthree newlines\n", "Ünïcødé ☃ — 'tis “quoted”\r\n"]


@dataclass(frozen=True)
class BpeExports:
    run: Path        # runs/r, trained 10 iterations on the BPE
    hf: Path         # `gptwiz export r --checkpoint best`
    gguf: Path       # `gptwiz export r --format gguf --outtype f32 --checkpoint best`


@pytest.fixture(scope="module")
def bpe_exports(tmp_path_factory) -> BpeExports:
    """Shakespeare's first 300 KB prepared with a 1,000-token BPE, a tiny run trained on it for 10 iterations on the
    CPU, and that run exported in both formats, each by the real CLI; once a session (`build_once`)."""
    root = session_folder(tmp_path_factory) / "bpe-exports"
    build_once(root, _build_exports)
    return BpeExports(run=root / "runs" / "r", hf=root / "hf", gguf=root / "gguf")


def _build_exports(root: Path) -> None:
    corpus = root / "shakespeare.txt"
    corpus.write_text(SHAKESPEARE.read_text(encoding="utf-8")[:CORPUS_CHARS], encoding="utf-8")
    run_cli(["prepare", "--source", f"s:{corpus}", "--out_dir", str(root / "data"), "--tokenizer", f"bpe:{N_TOKENS}",
             "--block_size", "64", "--quiet"], cwd=root, check=True)
    run_cli(["train", "--config_file", "tiny", "--dataset_dir", str(root / "data"), "--model_name", "r",
             "--runs_dir", str(root / "runs"), "--max_iters", "10", "--eval_interval", "10", "--eval_iters", "2",
             "--batch_size", "4", "--block_size", "64", "--device", "cpu", "--no-compile", "--quiet"],
            cwd=root, check=True)
    run = root / "runs" / "r"
    run_cli(["export", str(run), "--out", str(root / "hf"), "--checkpoint", "best"], cwd=root, check=True)
    run_cli(["export", str(run), "--out", str(root / "gguf"), "--format", "gguf", "--outtype", "f32",
             "--checkpoint", "best"], cwd=root, check=True)


def run_bpe(run: Path) -> BpeTokenizer:
    return load_bpe(run / "tokenizer.json")


def run_model(run: Path) -> GPT:
    path = run / "ckpt_best.pt"
    state = load_checkpoint(path)
    model = GPT(check_model_state(path, state))
    model.load_state_dict(state["model"])
    return model.eval()


def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


@pytest.mark.slow
def test_the_folder_holds_the_runs_vocabulary(bpe_exports):
    assert run_bpe(bpe_exports.run).n_vocab == N_TOKENS
    assert json.loads((bpe_exports.run / "config.json").read_text())["model"]["vocab_size"] == PADDED
    folder = bpe_exports.hf
    config = json.loads((folder / "config.json").read_text())
    assert config["vocab_size"] == N_TOKENS and config["bos_token_id"] == config["eos_token_id"] == EOT
    generation = json.loads((folder / "generation_config.json").read_text())
    assert generation["bos_token_id"] == generation["eos_token_id"] == generation["pad_token_id"] == EOT
    decoder = json.loads((folder / "tokenizer_config.json").read_text())["added_tokens_decoder"]
    assert list(decoder) == [str(EOT)] and decoder[str(EOT)]["content"] == "<|endoftext|>"
    bpe = run_bpe(bpe_exports.run)
    assert (folder / "tokenizer.json").read_bytes() == bpe.data  # the run's own, as it made it
    assert json.loads((folder / "vocab.json").read_text()) == {t: i for i, t in enumerate(bpe.vocab.tokens)}
    lines = (folder / "merges.txt").read_text(encoding="utf-8").split("\n")
    assert lines[0] == "#version: 0.2" and lines[1:] == [*bpe.vocab.merges, ""]
    card = (folder / "README.md").read_text()
    assert f"| tokenizer | a byte-level BPE of its own (bpe:{N_TOKENS}: 1,000 tokens" in card


@pytest.mark.slow
def test_transformers_loads_it_offline_with_the_runs_ids_and_logits(bpe_exports, monkeypatch, tmp_path):
    """The fast tokenizer (tokenizer.json) and GPT2Tokenizer from vocab.json and merges.txt alone give the run's
    ids, and the model's logits over the 1,000 tokens are gptwiz's (float32, within 1e-4)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer, GPT2Tokenizer  # lazy: a test-only dependency

    offline(monkeypatch)
    folder = bpe_exports.hf
    fast = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    # Without tokenizer.json, which GPT2Tokenizer would read first (transformers 5 has no Python-only tokenizer
    # left: its "slow" GPT2Tokenizer builds the same BPE from vocab.json and merges.txt).
    for name in ("vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(folder / name, tmp_path / name)
    slow = GPT2Tokenizer.from_pretrained(tmp_path, local_files_only=True)
    assert fast.is_fast
    bpe = run_bpe(bpe_exports.run)
    unseen = SHAKESPEARE.read_text(encoding="utf-8")[CORPUS_CHARS:CORPUS_CHARS + 5000]
    for text in [*TEXTS, unseen]:
        ids = bpe.encode_ordinary(text)
        assert fast(text)["input_ids"] == ids, text
        assert slow(text)["input_ids"] == ids, text
        assert fast.decode(ids) == text and slow.decode(ids) == text
    assert fast.eos_token_id == slow.eos_token_id == EOT and len(fast) == len(slow) == N_TOKENS
    # Each token's own text, which takes every merge that makes it: a merge missing or out of rank shows here.
    pieces = [bpe.decode([i]) for i in range(EOT)]
    assert [fast(t)["input_ids"] for t in pieces] == [slow(t)["input_ids"] for t in pieces] \
        == [bpe.encode_ordinary(t) for t in pieces]

    theirs = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True).eval()
    ours = run_model(bpe_exports.run)
    block = ours.config.block_size
    stream = bpe.encode_ordinary(unseen)
    rows = [torch.tensor([stream[i * block:(i + 1) * block] for i in range(4)])]
    rows += [torch.tensor([bpe.encode_ordinary(text)[:block]]) for text in TEXTS]
    with torch.no_grad():
        for x in rows:
            expected = ours.logits(x)[..., :N_TOKENS]
            got = theirs(x).logits
            assert got.shape == expected.shape
            assert (got - expected).abs().max().item() < 1e-4


@pytest.mark.slow
def test_the_gguf_carries_the_runs_vocabulary(bpe_exports):
    gguf = pytest.importorskip("gguf")
    from test_export_gguf import read  # lazy: it imports gguf at its top, which this module's other tests need not

    bpe = run_bpe(bpe_exports.run)
    assert sorted(os.listdir(bpe_exports.gguf)) == ["Modelfile", "r.gguf"]
    fields, tensors = read(bpe_exports.gguf / "r.gguf")
    assert fields["tokenizer.ggml.model"] == "gpt2" and fields["tokenizer.ggml.pre"] == "gpt-2"
    assert fields["tokenizer.ggml.tokens"] == bpe.vocab.tokens and len(bpe.vocab.tokens) == N_TOKENS
    assert fields["tokenizer.ggml.merges"] == bpe.vocab.merges
    types = fields["tokenizer.ggml.token_type"]
    assert types[EOT] == gguf.TokenType.CONTROL and set(types[:EOT]) == {gguf.TokenType.NORMAL}
    assert fields["tokenizer.ggml.bos_token_id"] == fields["tokenizer.ggml.eos_token_id"] == EOT
    assert fields["tokenizer.ggml.unknown_token_id"] == EOT and fields["tokenizer.ggml.add_bos_token"] is False
    embedding = tensors["token_embd.weight"]
    assert tuple(int(n) for n in embedding.shape) == (192, N_TOKENS)  # ggml's order: (width, tokens)
    wte = run_model(bpe_exports.run).transformer.wte.weight.detach()[:N_TOKENS].numpy()
    assert np.array_equal(np.asarray(embedding.data).reshape(wte.shape), wte)


@pytest.mark.slow
def test_a_run_whose_tokenizer_was_altered_is_refused_with_nothing_written(bpe_exports, tmp_path):
    """tokenizer.json is read (and checked against the run's record of it) before anything is written."""
    run = Path(shutil.copytree(bpe_exports.run, tmp_path / "runs" / "changed"))
    spec = json.loads((run / "tokenizer.json").read_text(encoding="utf-8"))
    spec["model"]["merges"] = spec["model"]["merges"][::-1]
    (run / "tokenizer.json").write_text(json.dumps(spec), encoding="utf-8")
    for extra in ([], ["--format", "gguf"]):
        proc = run_cli(["export", "changed", "--out", str(tmp_path / "out"), *extra], cwd=tmp_path)
        assert_one_line_error(proc, "tokenizer.json", "SHA-256")
    assert sorted(os.listdir(tmp_path)) == ["runs"]


def test_vocab_files_are_written_as_gpt2s_own():
    """vocab_json and merges_txt, which make a BPE run's vocab.json and merges.txt, give GPT-2's files byte for
    byte from GPT-2's vocabulary (tiktoken's cache of OpenAI's encoder.json and vocab.bpe)."""
    vocab = gpt2_vocab()
    base = "https://openaipublic.blob.core.windows.net/gpt-2/encodings/main/"
    for made, name in ((vocab_json(vocab), "encoder.json"), (merges_txt(vocab), "vocab.bpe")):
        assert made == (tiktoken_cache_dir() / hashlib.sha1((base + name).encode()).hexdigest()).read_bytes(), name
