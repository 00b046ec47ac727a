"""`gptwiz export`: the folder loads in transformers with gptwiz's logits and tiktoken's token ids, it says how the
model was made, and it is written whole or not at all."""

from __future__ import annotations

import errno
import json
import os
import shutil
from pathlib import Path

import pytest
import test_train
import torch
from conftest import SHAKESPEARE, assert_one_line_error, build_once, run_cli, session_folder

from gptwiz.common.errors import UsageError, WriteFailed
from gptwiz.export import hf
from gptwiz.export.hf import ExportOptions, export_run
from gptwiz.model.gpt import GPT
from gptwiz.training.checkpoint import check_model_state, load_checkpoint

tiny_run = test_train.tiny_run  # the session's one trained tiny run (50 iterations on Shakespeare)

# Accents, CJK, emoji (with a skin-tone modifier: several code points), tabs, runs of spaces and of newlines,
# contractions, a no-break space and digits: where a tokenizer that splits differently from tiktoken shows it.
TRICKY_TEXTS = [
    "Café, naïve façade; Ærøskøbing — señor Müller's œuvre.",
    "日本語のテキスト、中文文本和한국어 텍스트。",
    "Emoji 😀👍🏽🇫🇷 and 👩‍👩‍👧 families",
    "\ttabs\t\tand\t \tmixed\n\n\n   runs  of    spaces     end   ",
    "they'll we've I'm it's 'quoted' 12345 3.14159 \u00a0nbsp\u2003em space",
    "  leading spaces\r\nwindows lines\r\n",
]


def export_and_compare(run: Path, out: Path, cwd: Path, *extra: str) -> None:
    """Export `run` by the real CLI and check the folder in transformers: logits of real text equal gptwiz's
    model's (float32, within 1e-4) over GPT-2's 50,257 tokens."""
    from transformers import GPT2LMHeadModel

    proc = run_cli(["export", str(run), "--out", str(out), *extra], cwd=cwd, check=True)
    assert "exported ckpt_" in proc.stdout and "gptwiz export: using ckpt_" in proc.stderr, proc
    theirs = GPT2LMHeadModel.from_pretrained(out, local_files_only=True).eval()
    name = proc.stdout.split("exported ", 1)[1].split(" ", 1)[0]
    path = run / name
    state = load_checkpoint(path)
    ours = GPT(check_model_state(path, state))
    ours.load_state_dict(state["model"])
    ours.eval()
    from gptwiz.data.tokenizer import get_encoding

    block = ours.config.block_size
    ids = get_encoding().encode_ordinary(SHAKESPEARE.read_text(encoding="utf-8")[:20_000])
    x = torch.tensor([ids[i * block:(i + 1) * block] for i in range(4)])
    with torch.no_grad():
        expected = ours.logits(x)[..., :50257]
        got = theirs(x).logits
    assert got.shape == expected.shape
    assert (got - expected).abs().max().item() < 1e-4


@pytest.fixture(scope="module")
def exported(tiny_run, tmp_path_factory) -> Path:
    """The tiny run exported and compared once a session (`build_once`), whichever worker runs these tests."""
    root = build_once(session_folder(tmp_path_factory) / "hf-export",
                      lambda folder: export_and_compare(tiny_run.run, folder / "drop-hf", tiny_run.cwd))
    return root / "drop-hf"


@pytest.mark.slow
def test_export_loads_in_transformers_with_the_same_logits(exported):
    files = sorted(p.name for p in exported.iterdir())
    assert files == ["README.md", "config.json", "generation_config.json", "merges.txt", "model.safetensors",
                     "special_tokens_map.json", "tokenizer.json", "tokenizer_config.json", "vocab.json"]
    config = json.loads((exported / "config.json").read_text())
    assert config["model_type"] == "gpt2" and config["architectures"] == ["GPT2LMHeadModel"]
    assert (config["n_layer"], config["n_head"], config["n_embd"], config["n_positions"]) == (4, 4, 192, 64)
    assert config["vocab_size"] == 50257 and config["tie_word_embeddings"] is True
    assert config["activation_function"] == "gelu_new"


@pytest.mark.slow
def test_exported_weights_are_in_conv1d_layout(exported):
    from safetensors.torch import load_file

    tensors = load_file(exported / "model.safetensors")
    assert tensors["transformer.h.0.attn.c_attn.weight"].shape == (192, 3 * 192)  # (in, out)
    assert tensors["transformer.h.0.mlp.c_fc.weight"].shape == (192, 4 * 192)
    assert tensors["transformer.wte.weight"].shape == (50257, 192)
    assert not tensors["transformer.h.3.mlp.c_proj.bias"].any()  # the preset has no biases: zeros
    assert "lm_head.weight" not in tensors  # tied to the embedding


@pytest.mark.slow
def test_exported_tokenizer_gives_tiktokens_ids(exported):
    from transformers import AutoTokenizer

    from gptwiz.data.tokenizer import get_encoding

    tokenizer = AutoTokenizer.from_pretrained(exported, local_files_only=True)
    enc = get_encoding()
    for text in [*TRICKY_TEXTS, SHAKESPEARE.read_text(encoding="utf-8")[:5000]]:
        ids = enc.encode_ordinary(text)
        assert tokenizer(text)["input_ids"] == ids, text
        assert tokenizer.decode(ids) == text
    assert tokenizer.eos_token_id == 50256


@pytest.mark.slow
def test_tokenizer_json_gives_tiktokens_ids_offline(exported, monkeypatch):
    """tokenizer.json, read by the tokenizers library itself and by transformers' fast tokenizer, splits real
    text (and runs of spaces, newlines, CJK, emoji) into tiktoken's ids, and <|endoftext|> is its one special."""
    from tokenizers import Tokenizer
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    from gptwiz.data.tokenizer import get_encoding

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    enc = get_encoding()
    raw = Tokenizer.from_file(str(exported / "tokenizer.json"))
    fast = PreTrainedTokenizerFast(tokenizer_file=str(exported / "tokenizer.json"))
    auto = AutoTokenizer.from_pretrained(exported, local_files_only=True)
    assert auto.is_fast and fast.is_fast
    texts = [*TRICKY_TEXTS, "two  spaces,\n\n\nthree newlines", "a<|endoftext|>b <|endoftext|>\n",
             SHAKESPEARE.read_text(encoding="utf-8")[:20_000]]
    for text in texts:
        ids = enc.encode(text, allowed_special={"<|endoftext|>"})
        assert raw.encode(text).ids == ids, text
        assert fast(text)["input_ids"] == ids and auto(text)["input_ids"] == ids, text
        assert raw.decode(ids, skip_special_tokens=False) == text
    assert raw.token_to_id("<|endoftext|>") == 50256 and raw.get_vocab_size() == 50257


@pytest.mark.slow
def test_generate_with_the_exports_own_defaults_stays_within_the_positions(exported, monkeypatch):
    """generation_config.json's length fits the model: the defaults alone never ask for a position past the block
    (with `gptwiz sample`'s 200 new tokens they did, after any prompt, and generate() failed on an index)."""
    from transformers import AutoTokenizer, GPT2LMHeadModel

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model = GPT2LMHeadModel.from_pretrained(exported, local_files_only=True).eval()
    tokenizer = AutoTokenizer.from_pretrained(exported, local_files_only=True)
    ids = tokenizer("To be, or not to be", return_tensors="pt").input_ids
    for seed in range(3):
        torch.manual_seed(seed)
        out = model.generate(ids, attention_mask=torch.ones_like(ids))
        assert ids.shape[1] < out.shape[1] <= model.config.n_positions == 64
        assert out[0, :ids.shape[1]].tolist() == ids[0].tolist()


@pytest.mark.slow
def test_the_run_name_is_the_models_name_not_the_folders(exported):
    """The folder is drop-hf; config.json and the card's metadata name the run, and llama.cpp's converter, reading
    this folder, names its GGUF after the run (it falls back to the folder's name only when they do not)."""
    gguf = pytest.importorskip("gguf")

    assert json.loads((exported / "config.json").read_text())["_name_or_path"] == "drop"
    assert (exported / "README.md").read_text().split("---\n")[1].startswith('model_name: "drop"\n')
    assert gguf.Metadata.load(None, exported, None, 0).name == "drop"


@pytest.mark.slow
def test_model_card_says_how_the_model_was_made(exported, tiny_run):
    card = (exported / "README.md").read_text()
    # The losses of the run's evaluation at the checkpoint's iteration, its last.
    last = [json.loads(line) for line in (tiny_run.run / "metrics.jsonl").read_text().splitlines()
            if json.loads(line).get("type") == "eval"][-1]
    for fragment in ("| preset | tiny |", "| iterations | 50 of 50", "| data | tinyshakespeare (weight 1) |",
                     f"validation loss | {last['val_loss']:.4f}", f"train loss | {last['train_loss']:.4f}",
                     "| bits per byte | ", "gptwiz train --config_file",
                     "--max_iters 50", "--input_file", "gptwiz export ", f"--out {exported}"):
        assert fragment in card, fragment
    assert "not measured" not in card and "not recorded" not in card


@pytest.mark.slow
def test_a_folder_that_is_not_empty_is_refused_unless_overwrite(exported, tiny_run, tmp_path):
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "notes.txt").write_text("mine")
    proc = run_cli(["export", str(tiny_run.run), "--out", str(taken)], cwd=tmp_path)
    assert_one_line_error(proc, str(taken), "not empty", "--overwrite")
    # --overwrite replaces an earlier export only, never a folder of something else.
    proc = run_cli(["export", str(tiny_run.run), "--out", str(taken), "--overwrite"], cwd=tmp_path)
    assert_one_line_error(proc, "not a model folder")
    assert sorted(os.listdir(taken)) == ["notes.txt"] and sorted(os.listdir(tmp_path)) == ["taken"]

    again = tmp_path / "again"
    again.mkdir()  # empty: fine
    run_cli(["export", str(tiny_run.run), "--out", str(again), "--checkpoint", "last"], cwd=tmp_path, check=True)
    (again / "stale.txt").write_text("from before")
    run_cli(["export", str(tiny_run.run), "--out", str(again), "--overwrite"], cwd=tmp_path, check=True)
    assert sorted(os.listdir(again)) == sorted(os.listdir(exported))
    assert (again / "model.safetensors").read_bytes() == (exported / "model.safetensors").read_bytes()
    assert sorted(os.listdir(tmp_path)) == ["again", "taken"]  # no temporary folder left beside it


def test_bad_input_is_one_line(tmp_path):
    proc = run_cli(["export", "nosuch", "--out", str(tmp_path / "o")], cwd=tmp_path)
    assert_one_line_error(proc, "no run 'nosuch'")
    (tmp_path / "file").write_text("")
    proc = run_cli(["export", "nosuch", "--out", str(tmp_path / "file")], cwd=tmp_path)
    assert_one_line_error(proc, "--out", "a file, not a folder")
    proc = run_cli(["export", "nosuch", "--out", str(tmp_path / "o"), "--checkpoint", "newest"], cwd=tmp_path)
    assert_one_line_error(proc, "--checkpoint", "newest")
    assert sorted(os.listdir(tmp_path)) == ["file"]


@pytest.mark.slow
@pytest.mark.parametrize("earlier", [False, True])
def test_a_failed_export_leaves_nothing(exported, tiny_run, tmp_path, monkeypatch, earlier):
    """The disk fills while the weights are written: the folder is not there (or is the earlier export, whole)."""
    out = tmp_path / "models" / "drop"
    if earlier:
        shutil.copytree(exported, out)
    before = {p.name: p.read_bytes() for p in out.iterdir()} if earlier else {}
    real = hf.write_safetensors

    def full_disk(path: Path, tensors: dict, metadata: dict | None = None) -> None:
        real(path, dict(list(tensors.items())[:3]), metadata)  # some bytes are on the disk, then no more fit
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(hf, "write_safetensors", full_disk)
    opts = ExportOptions(str(tiny_run.run), str(out), overwrite=earlier)
    with pytest.raises(WriteFailed, match="no space left on the disk while writing .*model.safetensors.*nothing was"):
        export_run(opts)
    if earlier:
        assert {p.name: p.read_bytes() for p in out.iterdir()} == before
        assert os.listdir(out.parent) == ["drop"]
    else:
        assert os.listdir(tmp_path) == []  # models/, which the export made, is gone too

    def interrupted(path: Path, tensors: dict, metadata: dict | None = None) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(hf, "write_safetensors", interrupted)
    with pytest.raises(KeyboardInterrupt):
        export_run(opts)
    assert os.listdir(tmp_path) == (["models"] if earlier else [])
    if earlier:
        assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_a_vocabulary_smaller_than_gpt2s_is_refused():
    from gptwiz.model.config import ModelConfig

    config = ModelConfig(n_layer=1, n_head=1, n_embd=8, block_size=8, vocab_size=1000)
    with pytest.raises(UsageError, match="vocab_size 1000 is smaller than the GPT-2 tokenizer's 50257"):
        hf.gpt2_tensors(config, GPT(config).state_dict())


def test_safetensors_file_reads_back_in_the_safetensors_package(tmp_path):
    from safetensors import safe_open

    from gptwiz.export.safetensors_file import write_safetensors

    tensors = {"a": torch.randn(3, 5), "b.bf16": torch.randn(7).to(torch.bfloat16), "c": torch.zeros(0),
               "d": torch.arange(6).reshape(2, 3)}
    write_safetensors(tmp_path / "t.safetensors", tensors, {"format": "pt"})
    with safe_open(tmp_path / "t.safetensors", framework="pt") as f:
        assert f.metadata() == {"format": "pt"}
        assert sorted(f.keys()) == sorted(tensors)
        for name, tensor in tensors.items():
            assert torch.equal(f.get_tensor(name), tensor), name
