"""`gptwiz chat`: talk to a trained run. On a terminal, a prompt with history whose answers stream as they are
generated (Ctrl-C stops an answer, Ctrl-D leaves); otherwise one message a line in, one answer a line out."""

from __future__ import annotations

import argparse
import json
import signal
import sys
from typing import Any

from gptwiz.cli.args import flag, number, positive_int
from gptwiz.cli.model_output import write_raw
from gptwiz.common.inert import generated, inert
from gptwiz.runs.checkpoints import CHECKPOINT_CHOICES

PROMPT = ">>> "


class Terminated(Exception):
    """SIGTERM during an interactive chat, where Ctrl-C only stops the answer being generated."""


def add(sub: Any) -> None:
    p = sub.add_parser("chat", help="talk to a trained run (an interactive prompt, or one message a line on stdin)")
    p.add_argument("model_name", metavar="NAME", help="a run name or run folder")
    flag(p, "max_new_tokens", type=positive_int, default=200, help="the longest answer, in tokens")
    flag(p, "temperature", type=number, default=0.8, help="0: always the likeliest token")
    flag(p, "top_k", type=positive_int, default=200)
    flag(p, "seed", type=int)
    flag(p, "device", default="auto")
    flag(p, "runs_dir", default="runs")
    flag(p, "checkpoint", choices=CHECKPOINT_CHOICES, default="auto",
         help="best or last; auto (the default): the rule `gptwiz sample` follows")
    flag(p, "json", action="store_true",
         help="one JSON object a line (prompt, response, tokens, tokens_per_sec), reading one message a line")
    flag(p, "raw", action="store_true",
         help="answers exactly as generated, control characters and line breaks included (on a terminal they are "
              "dropped, and one answer a line shows them escaped)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from gptwiz.training.chat import ChatOptions, ChatSession  # (torch: only once the verb runs)

    opts = ChatOptions(**{k: v for k, v in vars(args).items() if k in ChatOptions.__dataclass_fields__})

    def say(message: str) -> None:
        print(f"gptwiz chat: {message}", file=sys.stderr)

    session = ChatSession(opts, warn=say, note=say)
    if session.template is not None:
        say(f"instruction-tuned run: each message goes into chat template {session.template}, after the "
            "conversation so far; an answer ends at end-of-text")
    if args.json or not (sys.stdin.isatty() and sys.stdout.isatty()):
        return _lines(session, args.json, args.raw)
    return _interactive(session, args.raw)


def _lines(session: Any, as_json: bool, raw: bool = False) -> int:
    """One message a line until the end of the input; each answer on one line (its line breaks as \\n), flushed
    at once so that a script can wait for it; with `raw`, each answer as generated, then a line break."""
    while True:
        line = sys.stdin.buffer.readline()
        if not line:
            return 0
        message = line.decode("utf-8", errors="replace").removesuffix("\n").removesuffix("\r")
        answer = session.answer(message)
        if raw and not as_json:
            write_raw(answer.data + b"\n")
            continue
        print(json.dumps(answer.to_json()) if as_json else inert(answer.response), flush=True)


def _interactive(session: Any, raw: bool = False) -> int:
    import readline  # noqa: F401  (input() then edits lines and keeps their history; only on a terminal)

    def terminate(signum: int, frame: Any) -> None:
        raise Terminated

    previous = signal.signal(signal.SIGTERM, terminate)
    print("gptwiz chat: type a message and press Enter; Ctrl-C stops an answer, Ctrl-D leaves", file=sys.stderr)
    try:
        while True:
            try:
                message = input(PROMPT)
            except EOFError:
                print()
                return 0
            except KeyboardInterrupt:
                print("\n(Ctrl-D leaves)")
                continue
            if not message.strip():
                continue

            def show(text: str) -> None:
                sys.stdout.write(generated(text))  # each piece on its own: the filter is one of characters
                sys.stdout.flush()

            if raw:
                answer = session.answer(message, on_bytes=write_raw, interruptible=True)
            else:
                answer = session.answer(message, on_text=show, interruptible=True)
            stopped = ", stopped" if answer.interrupted else ""
            dim, plain = ("\x1b[2m", "\x1b[0m") if sys.stdout.isatty() else ("", "")
            print(f"\n{dim}[{answer.tokens} tokens, {answer.tokens_per_sec:.1f} tokens/s{stopped}]{plain}")
    except Terminated:
        raise KeyboardInterrupt from None  # the CLI's one line and exit status 130
    finally:
        signal.signal(signal.SIGTERM, previous)
