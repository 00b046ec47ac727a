"""`gptwiz chat`: answers stream token by token with GPT.generate's tokens; on stdin it answers each line with one
line (or one JSON object) and ends at the end of the input without a traceback; on a terminal Ctrl-C stops an
answer and Ctrl-D leaves."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time

import pytest
import test_train
import torch
from conftest import assert_one_line_error, cli_env

from gptwiz.model.config import ModelConfig
from gptwiz.model.gpt import GPT
from gptwiz.training.chat import stream_tokens
from gptwiz.training.device import Runtime

tiny_run = test_train.tiny_run  # the session's one trained tiny run (50 iterations on Shakespeare)

MESSAGES = ["ROMEO:", "", "First Citizen:\tBefore we proceed", "naïve café 日本 😀"]


def test_streamed_tokens_are_generates_for_a_prompt_longer_than_the_block():
    torch.manual_seed(0)
    # GPT-2's vocabulary unpadded: the stream chooses among real tokens only, generate among all rows.
    model = GPT(ModelConfig(n_layer=2, n_head=2, n_embd=32, block_size=16, vocab_size=50257)).eval()
    prompt = torch.randint(0, 50257, (1, 23)).tolist()[0]  # past the block: the window slides from the start
    expected = model.generate(torch.tensor([prompt]), 30, temperature=0, use_cache=False)[0, len(prompt):].tolist()
    got = list(stream_tokens(model, prompt, 30, 0.0, None, None, Runtime("cpu", "float32", False), 50257))
    assert got == expected


def _chat(run, stdin: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gptwiz", "chat", str(run), "--max_new_tokens", "12",
                           "--temperature", "0", *extra], input=stdin, capture_output=True, text=True,
                          env=cli_env(), timeout=600)


@pytest.mark.slow
def test_chat_on_stdin_answers_each_line_and_ends_at_eof(tiny_run):
    stdin = "".join(f"{m}\n" for m in MESSAGES)
    plain = _chat(tiny_run.run, stdin)
    assert plain.returncode == 0, plain.stderr
    assert "Traceback" not in plain.stderr and "gptwiz chat: using ckpt_" in plain.stderr
    assert len(plain.stdout.splitlines()) == len(MESSAGES)

    as_json = _chat(tiny_run.run, stdin + "last line without a newline", "--json")
    assert as_json.returncode == 0 and "Traceback" not in as_json.stderr, as_json.stderr
    answers = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert [a["prompt"] for a in answers] == [*MESSAGES, "last line without a newline"]
    for a in answers:
        assert set(a) >= {"prompt", "response", "tokens", "tokens_per_sec"}
        assert 1 <= a["tokens"] <= 12 and a["tokens_per_sec"] > 0 and isinstance(a["response"], str)
    # Greedy: the same answers both ways, each on its one line (line breaks shown as \n).
    assert plain.stdout.splitlines() == [a["response"].replace("\n", "\\n") for a in answers[:len(MESSAGES)]]


@pytest.mark.slow
def test_chat_with_no_input_ends_at_once(tiny_run):
    proc = _chat(tiny_run.run, "")
    assert proc.returncode == 0 and proc.stdout == "" and "Traceback" not in proc.stderr


def _read_until(fd: int, wanted: bytes, timeout: float) -> bytes:
    seen = b""
    deadline = time.monotonic() + timeout
    while wanted not in seen:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"no {wanted!r} within {timeout}s; got {seen!r}")
        if select.select([fd], [], [], left)[0]:
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # the other end closed
                chunk = b""
            if not chunk:
                raise AssertionError(f"ended before {wanted!r}; got {seen!r}")
            seen += chunk
    return seen


@pytest.mark.slow
def test_on_a_terminal_ctrl_c_stops_the_answer_and_ctrl_d_leaves(tiny_run):
    import fcntl
    import pty
    import termios

    def own_terminal() -> None:  # the pty becomes the chat's controlling terminal: Ctrl-C there sends SIGINT
        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    leader, follower = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "gptwiz", "chat", str(tiny_run.run), "--max_new_tokens",
                             "1000000", "--temperature", "1"], stdin=follower, stdout=follower, stderr=follower,
                            env=cli_env(), preexec_fn=own_terminal)
    os.close(follower)
    try:
        _read_until(leader, b">>> ", 300)
        os.write(leader, b"ROMEO:\r")
        # The answer (a million tokens) streaming: the Ctrl-C then reaches generation, not the line editor that
        # is still handing the line over (readline's own handler would take it).
        seen = _read_until(leader, b"ROMEO:\r\n", 300)
        while len(seen.split(b"ROMEO:\r\n", 1)[1]) < 200:
            assert select.select([leader], [], [], 300)[0], f"no answer streaming within 300s; got {seen!r}"
            seen += os.read(leader, 4096)
        os.write(leader, b"\x03")  # Ctrl-C: the terminal sends SIGINT to the chat
        stopped = _read_until(leader, b">>> ", 60)
        assert b"stopped]" in stopped and b"tokens/s" in stopped, stopped
        os.write(leader, b"\x04")  # Ctrl-D at the prompt: leave
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(leader)


def test_bad_numbers_are_one_line_and_exit_2(tmp_path, monkeypatch, capsys):
    from gptwiz.cli import main

    (tmp_path / "runs" / "r").mkdir(parents=True)
    (tmp_path / "runs" / "r" / "config.json").write_text("{}")
    monkeypatch.chdir(tmp_path)
    for args, fragment in ((["r", "--temperature", "1e9"], "invalid --temperature"), (["nope"], "no run 'nope'")):
        status = main(["chat", *args])
        err = capsys.readouterr().err
        assert_one_line_error(subprocess.CompletedProcess(args, status, "", err), fragment)
