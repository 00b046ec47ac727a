"""Text built to attack a terminal, and a run folder full of it: for the tests that every place gptwiz shows outside
text (a run's name, status.json's error, config.json's preset and input file, a file's name) shows it inert.

HOSTILE holds OSC 52 (writes the clipboard), OSC 0 (retitles the window), CSI 2J (clears the screen), BEL and two
C1 characters (U+009B, a one-character CSI to some terminals, and U+0085, a line break to others)."""

from __future__ import annotations

import json
import os
import pty
import select
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from faults.support import TEMPLATE_RUN, fault_env

HOSTILE = "\x1b]52;c;aGVsbG8=\x07" "\x1b]0;pwned\x07" "\x1b[2J" "\x07" "\x9b31m" "\x85"
# What must never reach a terminal, a log or a card: ESC and BEL as bytes, the C1 characters as text.
RAW_BYTES = (b"\x1b", b"\x07")
RAW_CHARS = ("\x1b", "\x07", "\x9b", "\x85")


def hostile_name(prefix: str = "run") -> str:
    """A file or folder name holding HOSTILE (a name cannot hold '/' or NUL)."""
    return (prefix + HOSTILE).replace("/", "").replace("\0", "")


def raw_controls(text: str | bytes) -> list[str]:
    """The raw control characters in `text` (empty: it is inert)."""
    if isinstance(text, bytes):
        found = [repr(b) for b in RAW_BYTES if b in text]
        text = text.decode("utf-8", "replace")
        return found + [repr(c) for c in RAW_CHARS[2:] if c in text]
    return [repr(c) for c in RAW_CHARS if c in text]


def _edit_json(path: Path, edit: Any) -> None:
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data, indent=2))


def make_hostile(run: Path) -> None:
    """Fill a run folder's files with HOSTILE: status.json failed with it as the error, config.json's preset,
    preset path, input file (copied there: work/input<HOSTILE>.txt) and source name hold it. Its dataset and
    checkpoints stay, so it still resumes."""
    def status(data: dict[str, Any]) -> None:
        data.update(state="failed", error=f"RuntimeError: boom {HOSTILE}", pid=None, name=run.name)

    def config(data: dict[str, Any]) -> None:
        data.update(preset=f"micro{HOSTILE}", preset_path=str(run.parent.parent / hostile_name("preset")) + ".json",
                    name=run.name)
        # The input file is there, under its hostile name, a copy of the one trained on: a resume looks for it.
        moved = run.parent.parent / (hostile_name("input") + ".txt")
        if not moved.exists():
            shutil.copyfile(data["data"]["input_file"], moved)
        data["data"]["input_file"] = str(moved)
        for source in data["data"].get("sources", []):
            source["name"] = hostile_name("source")

    _edit_json(run / "status.json", status)
    _edit_json(run / "config.json", config)


def hostile_run(work: Path, name: str | None = None) -> Path:
    """work/runs/<name>: a copy of the trained run work/runs/base (the `trained_copy` fixture's folder) made hostile
    by `make_hostile`. `name` defaults to one holding HOSTILE; give a plain one for the verbs that take a run by
    --model_name (which refuses such names)."""
    run = work / "runs" / (name or hostile_name())
    shutil.copytree(work / "runs" / TEMPLATE_RUN, run)
    make_hostile(run)
    return run


def hostile_preset(work: Path) -> Path:
    """A preset file whose name holds HOSTILE (its content is work/micro.json's)."""
    path = work / (hostile_name("preset") + ".json")
    shutil.copyfile(work / "micro.json", path)
    return path


def hostile_input(work: Path, text: str = "too short") -> Path:
    """An input file whose name holds HOSTILE (not the one `make_hostile` names); by default too short to train
    on, so a verb given it refuses it."""
    path = work / (hostile_name("short") + ".txt")
    path.write_text(text)
    return path


PROMPT = b">>> "  # chat's, where readline waits for a line


def on_terminal(args: list[str], cwd: Path, lines: Sequence[bytes] = (), timeout: float = 120) -> tuple[bytes, bytes]:
    """`python -m gptwiz ARGS` with a terminal for its stdin and stdout (stderr apart): all it wrote there, and its
    stderr. Each of
    `lines` is typed at the next `>>> ` prompt, then Ctrl-D (again every few seconds until it leaves)."""
    inputrc = cwd / "inputrc"
    inputrc.write_text("set enable-bracketed-paste off\n")  # readline's own escapes are not the model's
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "gptwiz", *args], cwd=cwd, stdin=slave, stdout=slave,
                            stderr=subprocess.PIPE, env=fault_env(TERM="dumb", INPUTRC=str(inputrc)))
    os.close(slave)
    output = bytearray()
    pending = [*lines, b"\x04"] if lines else []
    deadline = time.monotonic() + timeout
    typed, last_eof = 0, 0.0
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not chunk:
                    break
                output += chunk
            if pending and output.count(PROMPT) > typed:  # readline is waiting for a line
                time.sleep(0.2)
                os.write(master, pending.pop(0))
                typed += 1
                last_eof = time.monotonic()
            elif lines and not pending and time.monotonic() - last_eof > 3:
                os.write(master, b"\x04")  # a Ctrl-D typed before readline took the terminal can be lost
                last_eof = time.monotonic()
        code = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        code = None
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    err = proc.stderr.read() if proc.stderr else b""
    assert code == 0, (code, bytes(output), err)
    return bytes(output), err
