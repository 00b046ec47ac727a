"""Instruction tuning: the chat template, `prepare --sft`, the masked padded batches and their loss, dataset-info,
the trainer's defaults, chat on a tuned run, and (slow) a tiny base tuned to answer a task it could not."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import test_train
import torch
from conftest import SHAKESPEARE, assert_one_line_error, cli_env, run_cli

from gptwiz.data.chat_template import TEMPLATE_NAME, Conversation, Exchange, encode_conversation, prompt_ids
from gptwiz.data.dataset import IGNORE_INDEX, SftDataset, open_dataset
from gptwiz.data.manifest import read_manifest
from gptwiz.data.prepare import PrepareOptions
from gptwiz.data.prepare.sft import prepare_sft
from gptwiz.data.tokenizer import EOT_TOKEN, get_encoding
from gptwiz.model import loss as model_loss
from gptwiz.model.config import ModelConfig
from gptwiz.model.gpt import GPT

tiny_run = test_train.tiny_run  # the session's one trained tiny run (50 iterations on Shakespeare)

ENC = get_encoding()


def _write_jsonl(path: Path, records: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records), encoding="utf-8")
    return path


def _prepare(tmp_path: Path, records: list, block_size: int = 64, name: str = "ds", **kw) -> Path:
    src = _write_jsonl(tmp_path / f"{name}.jsonl", records)
    out = tmp_path / name
    prepare_sft(PrepareOptions(sources=[f"chat:{src}"], out_dir=str(out), val_fraction=kw.get("val_fraction", 0.2),
                               block_size=block_size))
    return out


def _pairs(n: int) -> list[dict]:
    return [{"prompt": f"Say {i} twice", "response": f"{i} {i}"} for i in range(n)]


# --- the template -------------------------------------------------------------------------------------

def test_the_template_trains_the_answers_and_their_end_of_text_only():
    conv = Conversation([Exchange("hi there", "hello"), Exchange("and?", "bye now")], system="be brief")
    enc = encode_conversation(ENC, conv)
    text = ENC.decode(enc.ids)
    assert text == ("### System:\nbe brief\n\n### User:\nhi there\n\n### Assistant:\nhello<|endoftext|>"
                    "\n\n### User:\nand?\n\n### Assistant:\nbye now<|endoftext|>")
    trained = [t for t, m in zip(enc.ids, enc.mask) if m]
    assert trained == [*ENC.encode_ordinary("hello"), EOT_TOKEN, *ENC.encode_ordinary("bye now"), EOT_TOKEN]
    assert len(enc.mask) == len(enc.ids) and enc.mask[0] == 0


def test_prepared_tokens_are_chats_prompt_then_the_answer(tmp_path):
    """The round trip: what prepare stored for a conversation == chat's prompt for its last message, after the
    earlier exchanges, followed by the answer's tokens and the end-of-text."""
    messages = [{"role": "system", "content": "You answer in one word."},
                {"role": "user", "content": "Colour of the sky?"}, {"role": "assistant", "content": "Blue."},
                {"role": "user", "content": "And grass?\n  (be quick)"}, {"role": "assistant", "content": "Green."}]
    records = [{"messages": messages}, {"instruction": "Add", "input": "2 and 2", "output": "4"},
               {"prompt": "Name a fruit", "response": "  an apple"}]
    ds = SftDataset(_prepare(tmp_path, records, val_fraction=0.01))
    stored = []
    for src in ds.sources:
        for split in (src.train, src.val):
            stored += [split.tokens[a:b].tolist() for a, b in zip(split.starts, split.ends)]
    expected = [
        prompt_ids(ENC, "And grass?\n  (be quick)", [Exchange("Colour of the sky?", "Blue.")],
                   system="You answer in one word.") + ENC.encode_ordinary("Green.") + [EOT_TOKEN],
        prompt_ids(ENC, "Add\n\n2 and 2") + ENC.encode_ordinary("4") + [EOT_TOKEN],
        prompt_ids(ENC, "Name a fruit") + ENC.encode_ordinary("  an apple") + [EOT_TOKEN],
    ]
    assert sorted(stored) == sorted(expected)


# --- the batches and the loss ---------------------------------------------------------------------------

def test_batches_start_at_an_example_pad_and_mask_everything_but_the_answers(tmp_path):
    ds = SftDataset(_prepare(tmp_path, _pairs(40), block_size=64))
    assert model_loss.IGNORE_INDEX == IGNORE_INDEX
    x, y, _ = ds.batch("train", 16, 64, np.random.default_rng(0))
    for row_x, row_y in zip(x, y):
        text = ENC.decode(row_x.tolist())
        assert text.startswith("### User:\nSay ")
        number = text.split("Say ")[1].split(" twice")[0]
        prompt = prompt_ids(ENC, f"Say {number} twice")
        answer = ENC.encode_ordinary(f"{number} {number}") + [EOT_TOKEN]
        n, end = len(prompt), len(prompt) + len(answer) - 1
        assert row_x[:end].tolist() == (prompt + answer)[:-1]  # the example from its start
        assert (row_y[:n - 1] == IGNORE_INDEX).all()  # the prompt and headers: never a target
        assert row_y[n - 1:end].tolist() == answer
        assert (row_x[end:] == EOT_TOKEN).all() and (row_y[end:] == IGNORE_INDEX).all()  # the padding


def _hidden_and_targets(tmp_path: Path) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    ds = SftDataset(_prepare(tmp_path, _pairs(30), block_size=32))
    x, y, _ = ds.batch("train", 4, 32, np.random.default_rng(1))
    torch.manual_seed(0)
    model = GPT(ModelConfig(n_layer=2, n_head=2, n_embd=32, block_size=32, vocab_size=50304, dropout=0.0))
    with torch.no_grad():
        hidden = model.hidden_states(torch.from_numpy(x)).reshape(-1, 32)
    return hidden, model.lm_head.weight.detach().clone(), torch.from_numpy(y).reshape(-1), torch.from_numpy(x)


@pytest.mark.parametrize("loss_fn", [model_loss.dense_cross_entropy, model_loss.sliced_linear_cross_entropy],
                         ids=["dense", "sliced"])
def test_the_loss_is_the_mean_over_the_answers_and_the_prompt_changes_no_gradient(tmp_path, loss_fn):
    hidden, weight, targets, _ = _hidden_and_targets(tmp_path)
    answer = targets != IGNORE_INDEX
    assert 0 < int(answer.sum()) < len(targets) // 2

    def loss_and_grads(h: torch.Tensor) -> tuple[float, torch.Tensor, torch.Tensor]:
        h, w = h.clone().requires_grad_(), weight.clone().requires_grad_()
        loss = loss_fn(h, w, targets)
        loss.backward()
        return float(loss.detach()), h.grad, w.grad

    loss, grad_h, grad_w = loss_and_grads(hidden)
    logits = hidden.double() @ weight.double().t()
    by_hand = (torch.logsumexp(logits[answer], dim=1) - logits[answer, targets[answer]]).mean()
    assert loss == pytest.approx(float(by_hand), rel=1e-5)
    assert (grad_h[~answer] == 0).all() and (grad_h[answer].abs().sum(dim=1) > 0).all()
    # Whatever the model makes of the prompt's positions, the loss on the answers and its gradients stay.
    changed = hidden.clone()
    changed[~answer] = torch.randn_like(changed[~answer]) * 5
    loss2, grad_h2, grad_w2 = loss_and_grads(changed)
    assert loss2 == loss and torch.equal(grad_w2, grad_w) and torch.equal(grad_h2[answer], grad_h[answer])


def test_a_block_shorter_than_some_prompts_draws_only_examples_it_can_learn_from(tmp_path):
    long = [{"prompt": "word " * 40, "response": "long"} for _ in range(6)]
    ds = SftDataset(_prepare(tmp_path, [*_pairs(6), *long], block_size=64, val_fraction=0.5))
    x, y, _ = ds.batch("train", 32, 16, np.random.default_rng(0))
    assert ((y != IGNORE_INDEX).sum(axis=1) > 0).all()
    with pytest.raises(Exception, match="has an answer token within a block of 5"):
        ds.check_block(4)


# --- prepare --sft --------------------------------------------------------------------------------------

def test_prepare_records_counts_truncation_and_the_template(tmp_path):
    records = [*_pairs(20), {"prompt": "Tell a long story", "response": "once " * 100}]
    out = _prepare(tmp_path, records, block_size=32)
    m = read_manifest(out)
    assert m["kind"] == "sft" and m["sft"]["template"] == TEMPLATE_NAME and m["sft"]["block_size"] == 32
    assert m["sft"]["truncated"] == 1 and m["sft"]["train_examples"] + m["sft"]["val_examples"] == 21
    assert m["sft"]["val_examples"] >= 1 and m["sft"]["train_examples"] >= 1
    ds = SftDataset(out)
    lengths = [int(b - a) for s in ds.sources for sp in (s.train, s.val) for a, b in zip(sp.starts, sp.ends)]
    assert max(lengths) == 33  # block_size + 1, cut at the end
    assert isinstance(open_dataset(out), SftDataset)


def test_two_examples_split_one_each_way(tmp_path):
    m = read_manifest(_prepare(tmp_path, _pairs(2), val_fraction=0.01))
    assert (m["sft"]["train_examples"], m["sft"]["val_examples"]) == (1, 1)


def test_mixed_good_and_bad_lines_prepare_and_name_each_bad_line(tmp_path):
    bad = ["not json", json.dumps([1, 2]), json.dumps({"prompt": "x"}), json.dumps({"prompt": "x", "response": ""}),
           json.dumps({"prompt": 3, "response": "y"}),
           json.dumps({"messages": [{"role": "assistant", "content": "hi"}]}),
           json.dumps({"messages": [{"role": "user", "content": "a"}, {"role": "robot", "content": "b"}]}),
           json.dumps({"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]}),
           json.dumps({"messages": [{"role": "user", "content": "a"}]}),
           json.dumps({"instruction": "do", "output": None}), "{", "[", "3"]
    src = _write_jsonl(tmp_path / "mixed.jsonl", [*_pairs(5), *bad, "", *_pairs(3)])
    proc = run_cli(["prepare", "--sft", "--source", f"mixed:{src}", "--out_dir", str(tmp_path / "out"),
                    "--block_size", "64"], cwd=tmp_path, check=True)
    assert "ignored 13 malformed lines" in proc.stdout
    for number, why in ((6, "not JSON"), (7, "a list, not an object"), (8, "no 'response' field"),
                        (9, "'response' is empty"), (10, "'prompt' is a number, not a string"),
                        (11, "no user message before it"), (12, "role 'robot'"), (13, "second user message in a row"),
                        (14, "must end with an assistant's answer"), (15, "'output' is null, not a string")):
        line = [line for line in proc.stdout.splitlines() if f"mixed.jsonl:{number}: " in line]
        assert len(line) == 1 and why in line[0], (number, proc.stdout)
    assert "... and 3 more" in proc.stdout
    m = read_manifest(tmp_path / "out")
    assert m["sft"]["train_examples"] + m["sft"]["val_examples"] == 8 and m["sft"]["bad_lines"] == 13


@pytest.mark.parametrize("content,fragment", [
    ("", "holds no lines"),
    ("\n\n  \n", "holds no lines"),
    ("not json\n{\"prompt\": \"x\", \"response\": \"\"}\n", "holds 0 usable examples (2 malformed lines; line"),
    (json.dumps({"prompt": "only", "response": "one"}) + "\n", "holds 1 usable example (0 malformed"),
], ids=["empty", "blank", "all-bad", "one-example"])
def test_a_file_with_no_usable_examples_is_one_line_and_leaves_nothing(tmp_path, content, fragment):
    src = tmp_path / "in.jsonl"
    src.write_text(content)
    out = tmp_path / "nested" / "out"
    proc = run_cli(["prepare", "--sft", "--source", f"chat:{src}", "--out_dir", str(out)], cwd=tmp_path)
    assert_one_line_error(proc, "source chat:", fragment)
    assert not (tmp_path / "nested").exists()


def test_a_fifo_and_non_utf8_are_handled_as_the_text_path_does(tmp_path):
    import os

    os.mkfifo(tmp_path / "pipe.jsonl")
    proc = run_cli(["prepare", "--sft", "--source", f"p:{tmp_path / 'pipe.jsonl'}", "--out_dir",
                    str(tmp_path / "out")], cwd=tmp_path, timeout=60)
    assert_one_line_error(proc, "is not a regular file")
    latin = tmp_path / "latin.jsonl"
    latin.write_bytes(b"".join(json.dumps(r).encode() + b"\n" for r in _pairs(4))
                      + b'{"prompt": "caf\xe9", "response": "ok"}\n')
    proc = run_cli(["prepare", "--sft", "--source", f"l:{latin}", "--out_dir", str(tmp_path / "out2")],
                   cwd=tmp_path, check=True)
    assert "replaced 1 invalid UTF-8" in proc.stdout
    assert read_manifest(tmp_path / "out2")["sft"]["train_examples"] + 1 >= 2


def test_prepare_again_is_up_to_date_and_another_block_size_needs_overwrite(tmp_path):
    src = _write_jsonl(tmp_path / "a.jsonl", _pairs(10))
    args = ["prepare", "--sft", "--source", f"a:{src}", "--out_dir", str(tmp_path / "out"), "--block_size", "64"]
    run_cli(args, cwd=tmp_path, check=True)
    assert "already holds this dataset" in run_cli(args, cwd=tmp_path, check=True).stdout
    other = run_cli([*args[:-1], "32"], cwd=tmp_path)
    assert_one_line_error(other, "already holds a different dataset")
    text = run_cli(["prepare", "--source", f"a:{src}", "--out_dir", str(tmp_path / "out"), "--block_size", "8",
                    "--val_fraction", "0.05"], cwd=tmp_path)
    assert_one_line_error(text, "already holds a different dataset")  # a text dataset of the same files is another


def test_a_damaged_sft_manifest_is_refused(tmp_path):
    out = _prepare(tmp_path, _pairs(10))
    m = json.loads((out / "manifest.json").read_text())
    m["sft"]["template"] = "someone-elses"
    (out / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(Exception, match="chat template is 'someone-elses'"):
        read_manifest(out)


# --- dataset-info --------------------------------------------------------------------------------------

def test_dataset_info_shows_examples_answers_and_prompts(tmp_path):
    out = _prepare(tmp_path, [*_pairs(20), {"prompt": "long", "response": "x " * 100}], block_size=32)
    info = json.loads(run_cli(["dataset-info", str(out), "--json"], cwd=tmp_path, check=True).stdout)
    m = read_manifest(out)
    sft = info["sft"]
    assert info["kind"] == "sft" and sft["template"] == TEMPLATE_NAME and sft["truncated"] == 1
    for split in ("train", "val"):
        assert sft[split]["examples"] == m["sft"][f"{split}_examples"]
        assert sft[split]["trained_tokens"] + sft[split]["prompt_tokens"] == m["totals"][f"{split}_tokens"]
        assert 0 < sft[split]["trained_tokens"] < sft[split]["prompt_tokens"]
    table = run_cli(["dataset-info", str(out)], cwd=tmp_path, check=True, env=None).stdout
    assert TEMPLATE_NAME in table and "answer tokens" in table and f"{sft['train']['trained_tokens']:,}" in table


# --- training and chat ---------------------------------------------------------------------------------

def _copy_run(run: Path, runs_dir: Path, name: str) -> Path:
    return Path(shutil.copytree(run, runs_dir / name))


def test_chat_on_a_tuned_run_prompts_with_the_template(tmp_path, tiny_run):
    from gptwiz.training.chat import ChatOptions, ChatSession

    plain = _copy_run(tiny_run.run, tmp_path / "runs", "plain")
    tuned = _copy_run(tiny_run.run, tmp_path / "runs", "tuned")
    config = json.loads((tuned / "config.json").read_text())
    config["data"]["sft"] = {"template": TEMPLATE_NAME}
    (tuned / "config.json").write_text(json.dumps(config))
    opts = dict(runs_dir=str(tmp_path / "runs"), temperature=0.0, max_new_tokens=4, device="cpu")
    assert ChatSession(ChatOptions("plain", **opts)).prompt("Hello") == ENC.encode_ordinary("Hello")
    session = ChatSession(ChatOptions("tuned", **opts))
    assert session.prompt("Hello") == prompt_ids(ENC, "Hello")
    first = session.answer("Hello")
    assert session.prompt("Again") == prompt_ids(ENC, "Again", [Exchange("Hello", first.response)])
    # A long conversation keeps within the block: its oldest exchanges go first.
    for _ in range(20):
        session.answer("Tell me more about it, at length")
    ids = session.prompt("Last")
    assert len(ids) + 4 <= 64 and ids[-len(prompt_ids(ENC, "Last")) + 1:] == prompt_ids(ENC, "Last")[1:]
    assert plain.exists()


def _words() -> list[str]:
    """Frequent words of the text that GPT-2 writes as one token with and without a space before them."""
    counts = Counter(w for w in SHAKESPEARE.read_text().lower().split() if w.isalpha())
    words = [w for w, _ in counts.most_common(300)
             if len(ENC.encode_ordinary(w)) == 1 and len(ENC.encode_ordinary(" " + w)) == 1]
    return words[:40]


def repeat_task(n_train: int, n_test: int, seed: int = 0) -> tuple[list[dict], list[tuple[str, str]]]:
    """'Repeat:\nw1 w2 w3' -> 'w1 w2 w3': training examples, and held-out prompts with their one right answer. The
    words start a line in both, so the answer's tokens are the prompt's (a word after a space is another token)."""
    rng = random.Random(seed)
    words = _words()
    seen: set[str] = set()
    items = []
    while len(items) < n_train + n_test:
        answer = " ".join(rng.choice(words) for _ in range(3))
        if answer not in seen:
            seen.add(answer)
            items.append((f"Repeat:\n{answer}", answer))
    return [{"prompt": p, "response": a} for p, a in items[:n_train]], items[n_train:]


def exact_answers(run: Path, runs_dir: Path, tests: list[tuple[str, str]], template: bool) -> list[bool]:
    """Whether the run answers each held-out prompt exactly, greedily, each as a new conversation."""
    from gptwiz.training.chat import ChatOptions, ChatSession

    session = ChatSession(ChatOptions(str(run), runs_dir=str(runs_dir), temperature=0.0, max_new_tokens=12,
                                      device="cpu", checkpoint="last"))
    if template:  # the base, prompted as the tuned run is
        session.template = TEMPLATE_NAME
    right = []
    for prompt, answer in tests:
        session.reset()
        right.append(session.answer(prompt).response.strip() == answer)
    return right


def test_training_on_an_sft_dataset_defaults_its_learning_rate_and_warns_without_a_base(tmp_path):
    out = _prepare(tmp_path, _pairs(20), block_size=32)
    run_cli(["train", "--config_file", "tiny", "--model_name", "scratch", "--dataset_dir", str(out), "--block_size",
             "32", "--batch_size", "2", "--max_iters", "2", "--eval_iters", "1", "--quiet"], cwd=tmp_path, check=True)
    config = json.loads((tmp_path / "runs" / "scratch" / "config.json").read_text())
    assert config["train"]["learning_rate"] == 2e-5 and config["train"]["min_lr"] == pytest.approx(2e-6)
    sft = config["data"]["sft"]
    assert sft == {"template": TEMPLATE_NAME, "train_examples": sft["train_examples"], "val_examples": sft["val_examples"],
                   "learning_rate": "default", "sized": sft["sized"]}
    # what the flags gave is kept; the rest sized from the examples (four evaluations over the run)
    assert {k: sft["sized"][k] for k in ("batch_size", "max_iters", "block_size")} == {
        "batch_size": 2, "max_iters": 2, "block_size": 32}
    assert config["train"]["eval_interval"] == 1
    log = (tmp_path / "runs" / "scratch" / "train.log").read_text()
    assert "learning rate 2e-05 (instruction tuning's default" in log and "warning: no --init_from_model" in log
    records = [json.loads(line) for line in (tmp_path / "runs" / "scratch" / "metrics.jsonl").read_text().splitlines()]
    assert all(np.isfinite(r["val_loss"]) for r in records if r["type"] == "eval")


@pytest.mark.slow
def test_tuning_a_base_teaches_it_to_answer_held_out_prompts(tmp_path, tiny_run):
    runs = tmp_path / "runs"
    base = _copy_run(tiny_run.run, runs, "base")
    train, tests = repeat_task(400, 30)
    src = _write_jsonl(tmp_path / "repeat.jsonl", train)
    run_cli(["prepare", "--sft", "--source", f"repeat:{src}", "--out_dir", str(tmp_path / "sft"), "--block_size", "32"],
            cwd=tmp_path, check=True)
    # Muon learns the task in 200 iterations, where AdamW at this rate needs about 500 (none right after 300).
    proc = run_cli(["train", "--config_file", "tiny", "--model_name", "tuned", "--dataset_dir", str(tmp_path / "sft"),
                    "--init_from_model", "base", "--block_size", "32", "--batch_size", "32", "--dropout", "0",
                    "--learning_rate", "2e-3", "--optimizer", "muon", "--max_iters", "200", "--eval_interval", "200",
                    "--eval_iters", "2", "--quiet"], cwd=tmp_path, check=True)
    log = (runs / "tuned" / "train.log").read_text()
    assert "instruction tuning (template gptwiz-chat-v1)" in log and "learning rate 0.002" in log
    before = sum(exact_answers(base, runs, tests, template=True))
    after = sum(exact_answers(runs / "tuned", runs, tests, template=False))
    assert after >= 15 and after >= before + 12, (before, after, proc.stdout[-500:])
    # `gptwiz chat` itself, on stdin (one message a line, so a one-line message): it takes the run as tuned and
    # answers as the session above does (`exact_answers` scored the tuned run through that same session).
    from gptwiz.training.chat import ChatOptions, ChatSession

    message = tests[0][0].replace("\n", " ")
    chat = subprocess.run([sys.executable, "-m", "gptwiz", "chat", "tuned", "--temperature", "0", "--max_new_tokens",
                           "12", "--checkpoint", "last", "--json", "--device", "cpu"], input=message + "\n",
                          capture_output=True, text=True, cwd=tmp_path, env=cli_env(), timeout=120)
    session = ChatSession(ChatOptions("tuned", runs_dir=str(runs), temperature=0.0, max_new_tokens=12, device="cpu",
                                      checkpoint="last"))
    assert json.loads(chat.stdout.splitlines()[-1])["response"] == session.answer(message).response, chat.stderr
    assert "instruction-tuned run" in chat.stderr


def test_the_model_card_of_a_tuned_run_gives_its_template():
    from gptwiz.export.model_card import CardFacts, model_card

    config = {"name": "helper", "preset": "tiny", "model": {"block_size": 64}, "train": {"max_iters": 10},
              "data": {"kind": "dataset_dir", "dataset_dir": "/d", "sources": [{"name": "chat", "weight": 1}]}}
    plain = model_card(CardFacts(name="helper", run_config=config, checkpoint="ckpt_best.pt", iteration=10, params=1))
    config["data"]["sft"] = {"template": TEMPLATE_NAME}
    tuned = model_card(CardFacts(name="helper", run_config=config, checkpoint="ckpt_best.pt", iteration=10, params=1))
    assert "Prompt format" not in plain and "instruction tuning" not in plain
    assert f"| instruction tuning | chat template {TEMPLATE_NAME}" in tuned and "## Prompt format" in tuned
    assert "### User:\n{message}\n\n### Assistant:\n{answer}<|endoftext|>" in tuned and "eos_token_id=50256" in tuned


def test_eval_refuses_an_instruction_dataset(tmp_path):
    from gptwiz.common.errors import UsageError
    from gptwiz.training.evaluate import dataset_streams

    with pytest.raises(UsageError, match="is an instruction dataset"):
        dataset_streams(_prepare(tmp_path, _pairs(10)), ENC)
