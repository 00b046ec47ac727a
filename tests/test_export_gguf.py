"""`gptwiz export --format gguf`: the GGUF reads back (with llama.cpp's own reader) as the checkpoint's tensors in
llama.cpp's GPT-2 layout, with the run's name and GPT-2's tokenizer, the Modelfile beside it runs it in Ollama as
gptwiz samples it, an instruction-tuned run carries its chat template, and bad input is refused in one line."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import test_train
import torch
from conftest import SHAKESPEARE, assert_one_line_error, build_once, cli_env, run_cli, session_folder

from gptwiz.data.chat_template import TEMPLATE_NAME, Exchange, prompt_ids
from gptwiz.export.chat_templates import jinja_template, ollama_template
from gptwiz.export.target import ExportTarget
from gptwiz.model.gpt import GPT
from gptwiz.training.checkpoint import check_model_state, load_checkpoint

gguf = pytest.importorskip("gguf")  # the `test` extra installs it; gptwiz itself needs it only for this export

tiny_run = test_train.tiny_run  # the session's one trained tiny run (50 iterations on Shakespeare)

# llama.cpp's names for gptwiz's (GPT-2's) tensors, as its converter maps them.
LAYER_NAMES = {"ln_1.weight": "attn_norm.weight", "ln_1.bias": "attn_norm.bias",
               "attn.c_attn.weight": "attn_qkv.weight", "attn.c_attn.bias": "attn_qkv.bias",
               "attn.c_proj.weight": "attn_output.weight", "attn.c_proj.bias": "attn_output.bias",
               "ln_2.weight": "ffn_norm.weight", "ln_2.bias": "ffn_norm.bias",
               "mlp.c_fc.weight": "ffn_up.weight", "mlp.c_fc.bias": "ffn_up.bias",
               "mlp.c_proj.weight": "ffn_down.weight", "mlp.c_proj.bias": "ffn_down.bias"}
FILE_TYPES = {"f32": 0, "f16": 1, "q8_0": 7}  # llama.cpp's LLAMA_FTYPE_ALL_F32, MOSTLY_F16, MOSTLY_Q8_0


def expected_tensors(run: Path, checkpoint: str = "ckpt_best.pt") -> dict[str, np.ndarray]:
    """The checkpoint's tensors by llama.cpp's names, (out, in), the vocabulary cut to GPT-2's 50,257 tokens and
    zero biases where the preset has none: what the GGUF must hold."""
    state = load_checkpoint(run / checkpoint)
    config = check_model_state(run / checkpoint, state)
    model = state["model"]
    out = {"token_embd.weight": model["transformer.wte.weight"][:50257],
           "position_embd.weight": model["transformer.wpe.weight"],
           "output_norm.weight": model["transformer.ln_f.weight"],
           "output_norm.bias": model.get("transformer.ln_f.bias", torch.zeros(config.n_embd))}
    widths = {"attn.c_attn.bias": 3 * config.n_embd, "mlp.c_fc.bias": 4 * config.n_embd}
    for i in range(config.n_layer):
        for ours, theirs in LAYER_NAMES.items():
            key = f"transformer.h.{i}.{ours}"
            out[f"blk.{i}.{theirs}"] = model[key] if key in model else torch.zeros(widths.get(ours, config.n_embd))
    return {k: v.float().numpy() for k, v in out.items()}


def read(path: Path) -> tuple[dict[str, object], dict[str, object]]:
    """The GGUF's metadata (by key) and tensors (by name, each a reader tensor)."""
    reader = gguf.GGUFReader(path)
    fields = {k: f.contents() for k, f in reader.fields.items()}
    return fields, {t.name: t for t in reader.tensors}


@pytest.fixture(scope="module")
def gguf_exports(tiny_run, tmp_path_factory) -> dict[str, Path]:
    """The tiny run exported by the real CLI once per --outtype, into folders not named after the run; once a
    session (`build_once`), whichever worker runs these tests."""
    outtypes = ("f32", "f16", "q8_0")

    def export(root: Path) -> None:
        for outtype in outtypes:
            out = root / f"exported-{outtype}"
            proc = run_cli(["export", str(tiny_run.run), "--out", str(out), "--format", "gguf", "--outtype", outtype,
                            "--checkpoint", "best"], cwd=tiny_run.cwd, check=True)
            assert f"to {out}: Modelfile, drop.gguf" in proc.stdout, proc.stdout

    root = build_once(session_folder(tmp_path_factory) / "gguf-exports", export)
    return {outtype: root / f"exported-{outtype}" for outtype in outtypes}


@pytest.mark.slow
@pytest.mark.parametrize("outtype", ["f32", "f16", "q8_0"])
def test_every_tensor_is_the_checkpoints_in_llama_cpps_layout(gguf_exports, tiny_run, outtype):
    assert sorted(os.listdir(gguf_exports[outtype])) == ["Modelfile", "drop.gguf"]
    _, tensors = read(gguf_exports[outtype] / "drop.gguf")
    expected = expected_tensors(tiny_run.run)
    assert sorted(tensors) == sorted(expected)  # no output.weight: llama.cpp ties it to token_embd
    q = gguf.GGMLQuantizationType
    weight_type = {"f32": q.F32, "f16": q.F16, "q8_0": q.Q8_0}[outtype]
    for name, want in expected.items():
        t = tensors[name]
        assert tuple(int(n) for n in t.shape) == want.shape[::-1], name  # ggml's order: (in, out)
        kept_f32 = want.ndim == 1 or name == "position_embd.weight"
        assert t.tensor_type == (q.F32 if kept_f32 else weight_type), name
        got = gguf.quants.dequantize(t.data, t.tensor_type).reshape(want.shape)
        if t.tensor_type == q.F32:
            assert np.array_equal(got, want), name
        elif t.tensor_type == q.F16:
            assert np.array_equal(got, want.astype(np.float16).astype(np.float32)), name
        else:  # 8-bit blocks of 32, each scaled by its largest magnitude: off by at most half a step
            blocks = np.abs(want).reshape(-1, 32).max(axis=1, keepdims=True)
            err = np.abs(got - want).reshape(-1, 32)
            assert (err <= blocks / 127 * 0.5 + 1e-3 * blocks + 1e-8).all(), name
            assert np.abs(got - want).mean() < np.abs(want).mean() / 50, name


@pytest.mark.slow
def test_metadata_names_the_run_and_carries_gpt2s_tokenizer(gguf_exports):
    from gptwiz.export.tokenizer_files import gpt2_vocab

    vocab = gpt2_vocab()
    for outtype, folder in gguf_exports.items():
        fields, _ = read(folder / "drop.gguf")
        assert fields["general.architecture"] == "gpt2" and fields["general.type"] == "model"
        assert fields["general.name"] == "drop"  # the run's, not the folder's (exported-f16)
        assert fields["general.file_type"] == FILE_TYPES[outtype]
        assert (fields["gpt2.context_length"], fields["gpt2.embedding_length"], fields["gpt2.feed_forward_length"],
                fields["gpt2.block_count"], fields["gpt2.attention.head_count"]) == (64, 192, 768, 4, 4)
        assert fields["gpt2.attention.layer_norm_epsilon"] == pytest.approx(1e-5)
        assert fields["general.sampling.temp"] == pytest.approx(0.8) and fields["general.sampling.top_k"] == 200
        assert fields["tokenizer.ggml.model"] == "gpt2" and fields["tokenizer.ggml.pre"] == "gpt-2"
        assert fields["tokenizer.ggml.tokens"] == vocab.tokens and len(vocab.tokens) == 50257
        assert fields["tokenizer.ggml.merges"] == vocab.merges and len(vocab.merges) == 50000
        types = fields["tokenizer.ggml.token_type"]
        assert types[50256] == gguf.TokenType.CONTROL and set(types[:50256]) == {gguf.TokenType.NORMAL}
        assert fields["tokenizer.ggml.bos_token_id"] == fields["tokenizer.ggml.eos_token_id"] == 50256
        assert fields["tokenizer.ggml.add_bos_token"] is False
        assert "tokenizer.chat_template" not in fields  # a pretrained run


@pytest.mark.slow
def test_the_modelfile_runs_the_gguf_as_gptwiz_samples(gguf_exports):
    assert (gguf_exports["f16"] / "Modelfile").read_text() == (
        "# The gptwiz run drop (pretrained: it continues the prompt), for Ollama:\n"
        "#   ollama create drop -f Modelfile\n"
        "FROM ./drop.gguf\n"
        "PARAMETER num_ctx 64\n"
        "PARAMETER temperature 0.8\n"
        "PARAMETER top_k 200\n"
        'PARAMETER stop "<|endoftext|>"\n'
        'TEMPLATE """{{ .Prompt }}"""\n')


@pytest.mark.slow
def test_a_tuned_run_carries_its_chat_template(tiny_run, tmp_path, monkeypatch):
    """The run's config says it was tuned with gptwiz's template (as `gptwiz chat` reads it): the GGUF has the
    Jinja template, the Modelfile Ollama's, and the Hugging Face folder's tokenizer applies it as gptwiz's chat
    prompts (the same tokens)."""
    from transformers import AutoTokenizer

    from gptwiz.data.tokenizer import get_encoding

    tuned = Path(shutil.copytree(tiny_run.run, tmp_path / "runs" / "helper"))
    config = json.loads((tuned / "config.json").read_text())
    config["data"]["sft"] = {"template": TEMPLATE_NAME}
    (tuned / "config.json").write_text(json.dumps(config))
    run_cli(["export", "helper", "--out", str(tmp_path / "g"), "--format", "gguf"], cwd=tmp_path, check=True)
    run_cli(["export", "helper", "--out", str(tmp_path / "h")], cwd=tmp_path, check=True)

    fields, _ = read(tmp_path / "g" / "helper.gguf")
    assert fields["tokenizer.chat_template"] == jinja_template() and fields["general.name"] == "helper"
    text = (tmp_path / "g" / "Modelfile").read_text()
    assert f"instruction-tuned with gptwiz's chat template {TEMPLATE_NAME}" in text
    assert text.endswith(f'TEMPLATE """{ollama_template()}"""\n') and "FROM ./helper.gguf\n" in text

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "h", local_files_only=True)
    enc = get_encoding()
    history = [Exchange("What is the capital of France?", "Paris."), Exchange("And  of Spain?\n", " Madrid.\n")]
    messages = [m for e in history for m in ({"role": "user", "content": e.user},
                                             {"role": "assistant", "content": e.assistant})]
    messages.append({"role": "user", "content": "Thanks!"})
    ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
    ids = ids["input_ids"] if isinstance(ids, dict) or hasattr(ids, "keys") else ids
    assert list(ids) == prompt_ids(enc, "Thanks!", history)


def test_the_jinja_template_gives_gptwizs_chat_text():
    """With a system text too: the same text as gptwiz's prompt (whose tokens differ only at the blank line
    closing the system text, which gptwiz tokenizes as a piece of its own)."""
    jinja2 = pytest.importorskip("jinja2")
    from gptwiz.data.tokenizer import get_encoding

    enc = get_encoding()
    history = [Exchange("Hi", "Hello."), Exchange("Why?", "Because.")]
    messages = [{"role": "system", "content": "Be brief."}]
    messages += [m for e in history for m in ({"role": "user", "content": e.user},
                                              {"role": "assistant", "content": e.assistant})]
    messages.append({"role": "user", "content": "Bye"})
    text = jinja2.Environment().from_string(jinja_template()).render(messages=messages, add_generation_prompt=True)
    assert text == enc.decode(prompt_ids(enc, "Bye", history, system="Be brief."))
    whole = messages[:1] + messages[-1:]
    text = jinja2.Environment().from_string(jinja_template()).render(messages=whole, add_generation_prompt=False)
    assert text == "### System:\nBe brief.\n\n### User:\nBye\n\n"


@pytest.mark.slow
def test_overwrite_replaces_an_earlier_export_of_either_format(tiny_run, tmp_path):
    out = tmp_path / "m"
    run_cli(["export", str(tiny_run.run), "--out", str(out), "--format", "gguf"], cwd=tmp_path, check=True)
    proc = run_cli(["export", str(tiny_run.run), "--out", str(out)], cwd=tmp_path)
    assert_one_line_error(proc, "not empty", "--overwrite")
    run_cli(["export", str(tiny_run.run), "--out", str(out), "--overwrite"], cwd=tmp_path, check=True)
    assert "config.json" in os.listdir(out) and "drop.gguf" not in os.listdir(out)
    run_cli(["export", str(tiny_run.run), "--out", str(out), "--format", "gguf", "--outtype", "q8_0",
             "--overwrite"], cwd=tmp_path, check=True)
    assert sorted(os.listdir(out)) == ["Modelfile", "drop.gguf"]
    run_cli(["export", str(tiny_run.run), "--out", str(out), "--format", "gguf", "--overwrite"], cwd=tmp_path,
            check=True)
    assert read(out / "drop.gguf")[0]["general.file_type"] == 1
    assert sorted(os.listdir(tmp_path)) == ["m"]

    # A Modelfile beside something named .gguf that is no GGUF is not an export: --overwrite leaves it.
    fake = tmp_path / "fake"
    fake.mkdir()
    (fake / "Modelfile").write_text("FROM ./x.gguf\n")
    (fake / "x.gguf").write_bytes(b"not a gguf")
    proc = run_cli(["export", str(tiny_run.run), "--out", str(fake), "--format", "gguf", "--overwrite"], cwd=tmp_path)
    assert_one_line_error(proc, "not a model folder")
    assert sorted(os.listdir(fake)) == ["Modelfile", "x.gguf"]


@pytest.mark.slow
def test_a_killed_gguf_exports_temporary_folder_is_cleared(tiny_run, tmp_path):
    """What a killed GGUF export leaves (its .tmp folder, named <run>.gguf inside) is the export's own: the next
    export to that folder, of either format, removes it."""
    out = tmp_path / "m"
    target = ExportTarget(out, ())
    target.tmp.mkdir()
    (target.tmp / "other-run.gguf").write_bytes(b"GGUF half")
    (target.tmp / "Modelfile").write_text("FROM ./other-run.gguf\n")
    run_cli(["export", str(tiny_run.run), "--out", str(out)], cwd=tmp_path, check=True)
    assert sorted(os.listdir(tmp_path)) == ["m"]


def test_biases_are_kept_and_rows_not_in_blocks_of_32_fall_back_to_f16(tmp_path):
    """A model with biases (a preset with bias on) keeps them; q8_0 quantizes rows in blocks of 32, so a width
    of 48 is written f16, as llama.cpp's converter falls back (the file still says q8_0, as the converter's)."""
    from gptwiz.export.gguf_file import GgufFacts, write_gguf
    from gptwiz.export.tensors import full_tensors
    from gptwiz.export.tokenizer_files import gpt2_vocab
    from gptwiz.model.config import ModelConfig

    config = ModelConfig(n_layer=1, n_head=2, n_embd=48, block_size=8, vocab_size=50304, bias=True)
    torch.manual_seed(0)
    model = GPT(config)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(".bias"):
                p.normal_()  # not the zeros they start as
    facts = GgufFacts(name="wide", config=config, outtype="q8_0", temperature=0.8, top_k=200)
    write_gguf(tmp_path / "wide.gguf", facts, full_tensors(config, model.state_dict()), gpt2_vocab())
    fields, tensors = read(tmp_path / "wide.gguf")
    assert fields["general.file_type"] == 7 and fields["general.name"] == "wide"
    q = gguf.GGMLQuantizationType
    assert tensors["token_embd.weight"].tensor_type == tensors["blk.0.ffn_up.weight"].tensor_type == q.F16
    state = model.state_dict()
    for ours, theirs in (("transformer.h.0.attn.c_attn.bias", "blk.0.attn_qkv.bias"),
                         ("transformer.h.0.mlp.c_proj.bias", "blk.0.ffn_down.bias"),
                         ("transformer.ln_f.bias", "output_norm.bias")):
        assert tensors[theirs].tensor_type == q.F32
        assert np.array_equal(np.asarray(tensors[theirs].data), state[ours].numpy()), theirs
        assert state[ours].abs().sum() > 0


def test_bad_format_and_outtype_are_one_line_and_write_nothing(tmp_path):
    cases = [(["--format", "onnx"], ["--format", "onnx", "hf", "gguf"]),
             (["--format", "gguf", "--outtype", "q4_0"], ["--outtype", "q4_0", "f32", "f16", "q8_0"]),
             (["--outtype", "f16"], ["--outtype", "'f16'", "--format gguf"]),
             (["--format", "hf", "--outtype", "q8_0"], ["--outtype", "'q8_0'", "--format gguf"])]
    for extra, fragments in cases:
        proc = run_cli(["export", "nosuch", "--out", str(tmp_path / "o"), *extra], cwd=tmp_path)
        assert_one_line_error(proc, *fragments)
    assert os.listdir(tmp_path) == []


def test_without_the_gguf_package_the_gguf_export_says_how_to_get_it(tmp_path):
    """gguf is an optional dependency: where it cannot be imported, one line names the package and the extra
    (exit 2, nothing written), and the Hugging Face export does not need it."""
    shadow = tmp_path / "shadow" / "gguf"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('no gguf here')\n")
    env = cli_env(PYTHONPATH=str(shadow.parent))
    work = tmp_path / "work"
    work.mkdir()
    proc = run_cli(["export", "nosuch", "--out", str(work / "o"), "--format", "gguf"], cwd=work, env=env)
    assert_one_line_error(proc, "pip install gguf", "gptwiz[export]")
    proc = run_cli(["export", "nosuch", "--out", str(work / "o")], cwd=work, env=env)
    assert_one_line_error(proc, "no run 'nosuch'")
    assert os.listdir(work) == []


@pytest.mark.slow
def test_llama_cpp_runs_the_gguf_as_gptwiz_does(gguf_exports, tiny_run):
    """Where llama-cpp-python is installed (not in CI): llama.cpp tokenizes as tiktoken, its logits of real text
    from the f32 file are gptwiz's (about 1e-4 apart), and its greedy tokens are gptwiz's."""
    llama_cpp = pytest.importorskip("llama_cpp")
    from gptwiz.data.tokenizer import get_encoding

    path = tiny_run.run / "ckpt_best.pt"
    state = load_checkpoint(path)
    ours = GPT(check_model_state(path, state))
    ours.load_state_dict(state["model"])
    ours.eval()
    enc = get_encoding()
    prompt = enc.encode_ordinary(SHAKESPEARE.read_text(encoding="utf-8")[1000:1400])[:24]
    with torch.no_grad():  # greedy among GPT-2's 50,257 tokens, the GGUF's vocabulary (not the padded rows)
        logits = ours.logits(torch.tensor([prompt]))[0, :, :50257].numpy()
        want = [int(t) for t in ours.stream(torch.tensor([prompt]), 40, temperature=0, vocab=50257)]
    llm = llama_cpp.Llama(str(gguf_exports["f32"] / "drop.gguf"), n_ctx=64, n_threads=2, verbose=False,
                          logits_all=True)
    text = "Café  naïve\n\n\n😀 <|endoftext|> x"
    assert llm.tokenize(text.encode(), add_bos=False, special=True) == enc.encode(text, allowed_special="all")
    llm.eval(prompt)
    assert np.abs(np.array(llm.scores[:len(prompt)]) - logits).max() < 1e-3
    got = []
    for token in llm.generate(prompt, temp=0.0, top_k=1, reset=True):
        got.append(token)
        if len(got) == len(want):
            break
    assert got == want
