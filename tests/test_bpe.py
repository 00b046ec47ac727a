"""A tokenizer of the user's own: `prepare --tokenizer bpe:N` (and `train --input_file ... --tokenizer`), exact text
round trips, a validation split the tokenizer never saw, a run that keeps it, and the refusals of data made with
another tokenizer."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import SHAKESPEARE, TINY_FAST, assert_one_line_error, build_once, run_cli, session_folder

from gptwiz.data.bpe import BPE_MAX, TOKENIZER_FILE, byte_symbols
from gptwiz.data.dataset import TokenDataset
from gptwiz.data.tokenizer import folder_tokenizer

TEXT = SHAKESPEARE.read_text(encoding="utf-8")[:200_000]


def _decoded(dataset: Path) -> bytes:
    """Every token of a dataset's shards (both splits, file order), decoded without its end-of-text tokens."""
    tok = folder_tokenizer(dataset)
    data = TokenDataset(dataset)
    ids = np.concatenate([np.asarray(s) for src in data.sources for s in (*src.train, *src.val)])
    return tok.decode_bytes(ids[ids != tok.eot_token].tolist())


def test_a_bpe_dataset_gives_back_the_bytes_the_gpt2_path_reads(tmp_path: Path) -> None:
    # Invalid UTF-8 (a lone latin-1 byte), non-ASCII, CRLF, a JSONL lone surrogate and the end-of-text marker
    # written as text: the BPE's tokens decode to exactly what GPT-2's do, so bits per byte compare fairly.
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_bytes(TEXT[:60_000].replace("\n", "\r\n").encode() + b"caf\xe9 <|endoftext|> \xf0\x9f\x98\x80")
    (docs / "b.jsonl").write_text(json.dumps({"text": TEXT[60_000:90_000] + " \ud800 lone"}) + "\n", encoding="utf-8")
    (docs / "c.md").write_text(TEXT[90_000:], encoding="utf-8")
    for name, tokenizer in (("bpe", "bpe:1024"), ("gpt2", "gpt2")):
        run_cli(["prepare", "--source", f"docs:{docs}/*", "--out_dir", name, "--tokenizer", tokenizer,
                 "--block_size", "64", "--quiet"], tmp_path, check=True)
    assert _decoded(tmp_path / "bpe") == _decoded(tmp_path / "gpt2")
    manifest = json.loads((tmp_path / "bpe" / "manifest.json").read_text())
    assert (manifest["tokenizer"], manifest["vocab_size"], manifest["eot_token"]) == ("bpe:1024", 1024, 1023)
    assert manifest["totals"]["train_tokens"] < json.loads((tmp_path / "gpt2" / "manifest.json").read_text())[
        "totals"]["train_tokens"] * 1.5  # a vocabulary 50x smaller, not 50x the tokens
    again = run_cli(["prepare", "--source", f"docs:{docs}/*", "--out_dir", "bpe", "--tokenizer", "bpe:1024"], tmp_path)
    assert again.returncode == 0 and "already holds this dataset" in again.stdout
    other = run_cli(["prepare", "--source", f"docs:{docs}/*", "--out_dir", "bpe", "--tokenizer", "bpe:2048"], tmp_path)
    assert_one_line_error(other, "already holds a different dataset")


def test_the_tokenizer_never_sees_the_validation_text(tmp_path: Path) -> None:
    # One document: its last tenth is the validation split of --input_file's cache, here a word found nowhere else.
    path = tmp_path / "one.txt"
    path.write_text(TEXT[:90_000] + " zqxjv" * 1_000, encoding="utf-8")  # 6,000 of 96,000 chars
    run_cli(["train", *TINY_FAST, "--input_file", str(path), "--tokenizer", "bpe:512", "--model_name", "r",
             "--max_iters", "1", "--eval_interval", "1"], tmp_path, check=True)
    cache = next((tmp_path / "data" / "cache").iterdir())
    assert cache.name.endswith("-bpe512")
    tokens = json.loads((cache / TOKENIZER_FILE).read_text())["model"]["vocab"]
    assert not [t for t in tokens if "qx" in t or "xj" in t]
    assert (tmp_path / "runs" / "r" / TOKENIZER_FILE).read_bytes() == (cache / TOKENIZER_FILE).read_bytes()


@pytest.mark.parametrize("choice, fragment", [("bpe:100", "from 512 to 65536"), (f"bpe:{BPE_MAX + 1}", "bpe:N"),
                                              ("bpe:x", "bpe:N"), ("nowhere/", "a dataset or run folder"),
                                              ("bpe:65536", "give a smaller vocabulary (bpe:")])
def test_a_bad_tokenizer_is_one_line_and_leaves_nothing(tmp_path: Path, choice: str, fragment: str) -> None:
    (tmp_path / "t.txt").write_text(TEXT[:20_000], encoding="utf-8")
    proc = run_cli(["prepare", "--source", "t:t.txt", "--out_dir", "out/d", "--tokenizer", choice], tmp_path)
    assert_one_line_error(proc, fragment)
    assert not (tmp_path / "out").exists()


@pytest.fixture(scope="module")
def bpe_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A BPE dataset, a GPT-2 one of the same text, and a tiny run of 4 iterations on the BPE one."""
    def build(folder: Path) -> None:
        (folder / "t.txt").write_text(TEXT, encoding="utf-8")
        for name, tokenizer in (("bpe", "bpe:1024"), ("gpt2", "gpt2")):
            run_cli(["prepare", "--source", "t:t.txt", "--out_dir", name, "--tokenizer", tokenizer, "--block_size",
                     "64", "--val_fraction", "0.1", "--quiet"], folder, check=True)
        run_cli(["train", *TINY_FAST, "--dataset_dir", "bpe", "--model_name", "base", "--max_iters", "4",
                 "--eval_interval", "2"], folder, check=True)
    return build_once(session_folder(tmp_path_factory) / "bpe-run", build)


def test_a_run_keeps_its_tokenizer_and_samples_and_scores_with_it(bpe_run: Path) -> None:
    config = json.loads((bpe_run / "runs" / "base" / "config.json").read_text())
    assert config["model"]["vocab_size"] == 1024 and config["data"]["tokenizer"] == "bpe:1024"
    sample = run_cli(["sample", "--model_name", "base", "--prompt", "ROMEO:", "--max_new_tokens", "20", "--seed",
                      "1"], bpe_run, check=True)
    assert sample.stdout.count("ROMEO:") >= 1
    scored = run_cli(["eval", "base", "--dataset_dir", "bpe"], bpe_run, check=True)
    assert "bits per byte" in scored.stdout
    refused = run_cli(["eval", "base", "--dataset_dir", "gpt2"], bpe_run)
    assert_one_line_error(refused, "different tokenizers", "'gpt2'", "'bpe:1024'")


def test_data_of_another_tokenizer_is_refused_for_a_base(bpe_run: Path, tmp_path: Path) -> None:
    proc = run_cli(["train", "--init_from_model", str(bpe_run / "runs" / "base"), "--dataset_dir",
                    str(bpe_run / "gpt2"), "--model_name", "t", "--max_iters", "2"], tmp_path)
    assert_one_line_error(proc, "different tokenizers", "gptwiz prepare --tokenizer")
    assert not (tmp_path / "runs" / "t").exists()


def test_an_instruction_dataset_takes_its_base_runs_tokenizer(bpe_run: Path, tmp_path: Path) -> None:
    lines = [json.dumps({"prompt": f"Who speaks {i}?", "response": TEXT[i * 50:i * 50 + 60]}) for i in range(40)]
    (tmp_path / "qa.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    base = bpe_run / "runs" / "base"
    refused = run_cli(["prepare", "--sft", "--source", "qa:qa.jsonl", "--out_dir", "sft", "--tokenizer", "bpe:1024",
                       "--block_size", "64"], tmp_path)
    assert_one_line_error(refused, "--sft with --tokenizer bpe:1024")
    run_cli(["prepare", "--sft", "--source", "qa:qa.jsonl", "--out_dir", "sft", "--tokenizer", str(base),
             "--block_size", "64"], tmp_path, check=True)
    manifest = json.loads((tmp_path / "sft" / "manifest.json").read_text())
    assert manifest["tokenizer_sha256"] == json.loads((base / "config.json").read_text())["data"]["tokenizer_sha256"]
    assert manifest["eot_token"] == 1023
    run_cli(["train", "--init_from_model", str(base), "--dataset_dir", "sft", "--model_name", "tuned",
             "--max_iters", "2", "--quiet"], tmp_path, check=True)
    assert (tmp_path / "runs" / "tuned" / TOKENIZER_FILE).read_bytes() == (base / TOKENIZER_FILE).read_bytes()


def test_a_damaged_tokenizer_json_is_one_line(bpe_run: Path, tmp_path: Path) -> None:
    data = tmp_path / "d"
    data.mkdir()
    for f in (bpe_run / "bpe").iterdir():
        (data / f.name).write_bytes(f.read_bytes())
    good = json.loads((data / TOKENIZER_FILE).read_text())
    (data / TOKENIZER_FILE).write_text(json.dumps(good, indent=1))  # a tokenizer, but not the one recorded
    proc = run_cli(["train", *TINY_FAST, "--dataset_dir", "d", "--model_name", "x", "--max_iters", "2"], tmp_path)
    assert_one_line_error(proc, "is not the tokenizer", "prepare it again")
    good["model"]["vocab"]["ĠROMEO"] = 5000
    (data / TOKENIZER_FILE).write_text(json.dumps(good))
    proc = run_cli(["train", *TINY_FAST, "--dataset_dir", "d", "--model_name", "x", "--max_iters", "2"], tmp_path)
    assert_one_line_error(proc, "not a byte-level BPE", "ids are not 0 to N-1")
    assert not (tmp_path / "runs" / "x").exists()
    assert len(byte_symbols()) == len(set(byte_symbols())) == 256


def test_estimate_prices_a_run_on_its_datasets_vocabulary(bpe_run: Path) -> None:
    def estimate(dataset: str) -> dict:
        proc = run_cli(["estimate", "--config_file", "tiny", "--dataset", dataset, "--device", "cpu", "--dtype",
                        "float32", "--json"], bpe_run, check=True)
        return json.loads(proc.stdout)

    bpe, gpt2 = estimate("bpe"), estimate("gpt2")
    # tiny's head over 50,304 entries is most of its compute and a good part of its memory; over 1,024, little.
    assert bpe["bytes"]["total"] < gpt2["bytes"]["total"]
    if bpe["time"] and gpt2["time"]:
        assert bpe["time"]["step_s"] < gpt2["time"]["step_s"] / 2


def test_a_resume_on_data_re_prepared_with_another_tokenizer_is_refused(tmp_path: Path) -> None:
    (tmp_path / "t.txt").write_text(TEXT[:100_000], encoding="utf-8")

    def prepare(tokenizer: str, *extra: str) -> None:
        run_cli(["prepare", "--source", "t:t.txt", "--out_dir", "d", "--tokenizer", tokenizer, "--block_size", "64",
                 "--val_fraction", "0.1", "--quiet", *extra], tmp_path, check=True)

    prepare("bpe:512")
    run_cli(["train", *TINY_FAST, "--dataset_dir", "d", "--model_name", "r", "--max_iters", "2", "--eval_interval",
             "2"], tmp_path, check=True)
    prepare("gpt2", "--overwrite")
    before = sorted(p.name for p in (tmp_path / "runs" / "r").iterdir())
    proc = run_cli(["train", "--model_name", "r", "--resume", "--max_iters", "4", "--quiet"], tmp_path)
    assert_one_line_error(proc, "--resume", "different tokenizers", "'bpe:512'", "'gpt2'")
    assert sorted(p.name for p in (tmp_path / "runs" / "r").iterdir()) == before
