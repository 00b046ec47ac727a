"""`gptwiz eval`: the held-out loss is transformers' loss over the same windows of the same text, perplexity and bits
per byte follow from it and the counts, every token is scored once, and each evaluation is recorded in the run."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import test_train
import torch
from conftest import SHAKESPEARE, assert_one_line_error, run_cli
from torch.nn import functional as F

from gptwiz.cli import main
from gptwiz.data.tokenizer import EOT_TOKEN, GPT2_VOCAB_SIZE, get_encoding
from gptwiz.model.config import ModelConfig
from gptwiz.model.gpt import GPT
from gptwiz.training.device import Runtime
from gptwiz.training.evaluate import EvalOptions, bits_per_byte, evaluate, score_tokens

tiny_run = test_train.tiny_run  # the session's one trained tiny run (50 iterations on Shakespeare)

CPU = Runtime("cpu", "float32", False)
# Held-out text: from the end of the file, past the 90% the run trained on, with a last window that is not full.
HELD_OUT = SHAKESPEARE.read_text(encoding="utf-8")[-2500:]


def windows_loss(logits_of, tokens: list[int], block: int) -> tuple[float, int]:
    """The summed loss written out independently: the text after one end-of-text token, cut every `block`
    positions, each window's logits (by `logits_of`) scored against the next tokens over GPT-2's real vocabulary."""
    stream = [EOT_TOKEN, *tokens]
    total, count = 0.0, 0
    for start in range(0, len(tokens), block):
        x = torch.tensor([stream[start:start + block]])
        y = torch.tensor(stream[start + 1:start + 1 + block])
        with torch.no_grad():
            logits = logits_of(x)[0, :len(y), :GPT2_VOCAB_SIZE].double()
        total += F.cross_entropy(logits, y, reduction="sum").item()
        count += len(y)
    return total, count


def test_score_tokens_scores_each_token_once_in_windows_of_the_block_size():
    torch.manual_seed(0)
    model = GPT(ModelConfig(n_layer=2, n_head=2, n_embd=32, block_size=16)).eval()  # vocab padded to 50,304
    tokens = get_encoding().encode_ordinary(HELD_OUT[:400])
    assert len(tokens) % 16  # a last window shorter than the block
    expected, count = windows_loss(model.logits, tokens, 16)
    for per_batch in (16, 48, 8192):  # a window a batch, a few, all at once (and the short one apart)
        seen: list[int] = []
        got, n = score_tokens(model, np.array(tokens), CPU, progress=seen.append, tokens_per_batch=per_batch)
        assert n == count == len(tokens) and sum(seen) == len(tokens)
        assert got == pytest.approx(expected, rel=1e-5)


def test_bits_per_byte_is_the_texts_bits_over_its_bytes():
    assert bits_per_byte(math.log(2), 10, 40) == pytest.approx(0.25)  # 10 tokens of 1 bit, over 40 bytes
    assert bits_per_byte(2.0, 0, 40) is None and bits_per_byte(2.0, 10, 0) is None
    assert bits_per_byte(math.inf, 10, 40) is None


def _copy(run: Path, tmp_path: Path) -> Path:
    runs = tmp_path / "runs"
    runs.mkdir()
    return Path(shutil.copytree(run, runs / run.name))


@pytest.mark.slow
def test_eval_loss_is_transformers_loss_over_the_same_windows(tiny_run, tmp_path):
    from transformers import GPT2LMHeadModel

    from gptwiz.export.hf import ExportOptions, export_run

    run = _copy(tiny_run.run, tmp_path)  # (the shared run is not written to)
    text = tmp_path / "held out.txt"
    text.write_text(HELD_OUT, encoding="utf-8")
    proc = run_cli(["eval", run.name, "--input_file", str(text), "--json"], cwd=tmp_path, check=True)
    result = json.loads(proc.stdout)
    assert "gptwiz eval: using ckpt_" in proc.stderr and "Traceback" not in proc.stderr

    out = tmp_path / "hf"
    export_run(ExportOptions(model_name=str(run), out=str(out), checkpoint=result["checkpoint"].removeprefix("ckpt_").removesuffix(".pt")))
    theirs = GPT2LMHeadModel.from_pretrained(out, local_files_only=True).eval()
    tokens = get_encoding().encode_ordinary(HELD_OUT)
    loss_sum, count = windows_loss(lambda x: theirs(x).logits, tokens, theirs.config.n_positions)

    assert result["tokens"] == count == len(tokens)
    assert result["bytes"] == len(HELD_OUT.encode("utf-8"))
    # 1e-4, tighter than the 1e-3 asked for: scoring over the padded rows of the vocabulary too would be off by
    # about 7e-4 for this run, and that is the mistake to catch.
    assert result["loss"] == pytest.approx(loss_sum / count, abs=1e-4)
    assert 4.0 < result["loss"] < 9.0  # trained: well below ln(50257) = 10.8
    assert result["perplexity"] == pytest.approx(math.exp(result["loss"]), rel=1e-9)
    assert result["bits_per_byte"] == pytest.approx(result["loss"] / math.log(2) * count / result["bytes"], rel=1e-9)
    assert result["iter"] == 50 and result["block_size"] == 64 and result["tokens_per_sec"] > 0
    assert result["data"] == {"input_file": str(text)}
    # The run keeps the record, a whole line a result.
    lines = (run / "eval.jsonl").read_text().splitlines()
    assert json.loads(lines[-1]) == result

    human = run_cli(["eval", str(run), "--input_file", str(text), "--checkpoint", "last"], cwd=tmp_path, check=True)
    assert "ckpt_last.pt (iteration 50)" in human.stdout and "bits per byte" in human.stdout
    assert len((run / "eval.jsonl").read_text().splitlines()) == len(lines) + 1

    # `gptwiz runs` and the dashboard's reader show the latest result.
    listed = run_cli(["runs", "--runs_dir", str(run.parent)], cwd=tmp_path, check=True)
    latest = json.loads((run / "eval.jsonl").read_text().splitlines()[-1])
    assert f"{run.name}: held-out: loss {latest['loss']:.3f}, {latest['bits_per_byte']:.3f} bits/byte" in listed.stdout
    assert "(held out.txt, ckpt_last.pt iteration 50)" in listed.stdout
    assert json.loads(run_cli(["runs", "--runs_dir", str(run.parent), "--json"], cwd=tmp_path,
                              check=True).stdout)[0]["eval"] == latest
    from gptwiz.runs.monitor import RunMonitor
    from gptwiz.runs.paths import run_paths

    assert RunMonitor(run_paths(run.parent, run.name)).poll().held_out.startswith(f"held-out: loss {latest['loss']:.3f}")


@pytest.mark.slow
def test_eval_of_a_dataset_scores_its_validation_split(tiny_run, tmp_path):
    from gptwiz.data.cache import cache_text_file
    from gptwiz.data.dataset import TokenDataset

    source = tmp_path / "plays.txt"
    source.write_text(HELD_OUT * 2, encoding="utf-8")
    dataset = cache_text_file(source, tmp_path / "data", val_fraction=0.25)
    val = np.concatenate([np.asarray(a) for s in TokenDataset(dataset).sources for a in s.val])
    run = _copy(tiny_run.run, tmp_path)
    result = evaluate(EvalOptions(model_name=run.name, dataset_dir=str(dataset), runs_dir=str(tmp_path / "runs")))
    assert result.tokens == len(val) > 0
    text = get_encoding().decode_bytes([int(t) for t in val if t != EOT_TOKEN])
    assert result.bytes == len(text)
    assert [s["name"] for s in result.sources] == ["plays"] and result.sources[0]["tokens"] == len(val)
    assert result.sources[0]["loss"] == pytest.approx(result.loss)
    assert result.bits_per_byte == pytest.approx(result.loss / math.log(2) * result.tokens / result.bytes)
    assert not (run / "eval.jsonl").exists()  # evaluate computes; the CLI records


def _fake_run(tmp_path: Path) -> None:
    (tmp_path / "runs" / "r").mkdir(parents=True)
    (tmp_path / "runs" / "r" / "config.json").write_text("{}")


@pytest.mark.parametrize("args, fragments", [
    (["nope", "--input_file", "t.txt"], ["no run 'nope'"]),
    (["r", "--input_file", "missing.txt"], ["--input_file missing.txt does not exist"]),
    (["r", "--input_file", "empty.txt"], ["--input_file empty.txt is empty"]),
    (["r", "--input_file", "latin1.txt"], ["is not UTF-8 text"]),
    (["r", "--input_file", "t.txt", "--dataset_dir", "d"], ["not allowed with argument --input_file"]),
    (["r"], ["one of the arguments --input_file"]),
    (["r", "--dataset_dir", "t.txt"], ["--dataset_dir t.txt does not exist or is not a folder"]),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, monkeypatch, capsys, args, fragments):
    import subprocess

    _fake_run(tmp_path)
    (tmp_path / "t.txt").write_text("some text\n")
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "latin1.txt").write_bytes("caf\xe9\n".encode("latin-1"))
    monkeypatch.chdir(tmp_path)
    try:
        status = main(["eval", *args])
    except SystemExit as exc:  # argparse's own errors
        status = exc.code
    err = capsys.readouterr().err
    assert_one_line_error(subprocess.CompletedProcess(args, status, "", err), *fragments)


@pytest.mark.slow
def test_bad_input_from_the_real_command_has_no_traceback(tmp_path):
    _fake_run(tmp_path)
    assert_one_line_error(run_cli(["eval", "r", "--input_file", "missing.txt"], cwd=tmp_path), "does not exist")


def test_eval_options_need_exactly_one_source_of_text():
    from gptwiz.common.errors import UsageError

    with pytest.raises(UsageError, match="not both"):
        evaluate(EvalOptions(model_name="r", input_file="a", dataset_dir="b"))
    with pytest.raises(UsageError, match="not neither"):
        evaluate(EvalOptions(model_name="r"))
