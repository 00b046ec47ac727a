"""What the app says about a run from its folder: which file holds a failed run's error, and the line printed when
the app is left (the run's real state, and the command that goes on from it; or, left in the wizard before a run
started, the command that trains what was chosen). No Textual: plain reads."""

from __future__ import annotations

import textwrap
from pathlib import Path

from gptwiz.common.commands import paste_lines
from gptwiz.common.inert import inert
from gptwiz.common.safe_read import UnreadableFile
from gptwiz.runs.paths import RunPaths
from gptwiz.runs.status import effective_state, read_status
from gptwiz.runs.tail import LogTail

# The trainer logs a failure's traceback into train.log under this line (gptwiz.training.trainer).
TRACEBACK_MARK = "training failed:"


def _size(path: Path) -> int:
    try:
        return path.stat().st_size if path.is_file() else 0
    except OSError:
        return 0


def error_file(paths: RunPaths) -> Path | None:
    """The file holding a failed run's error in full: train.log when the trainer logged the traceback there;
    else console.log (the detached trainer's own output: a crash before train.log was opened, a kill's message);
    else train.log if there is one. None when the folder holds neither."""
    tail = LogTail(paths.log, keep=400)
    tail.read_new()
    if any(TRACEBACK_MARK in line for line in tail.lines):
        return paths.log
    console = paths.console
    if _size(console):
        return console
    return paths.log if _size(paths.log) else None


def farewell_line(name: str, runs_dir: Path) -> str:
    """The line printed on leaving the app after watching run `name`: its state as the folder says now. The
    folder's name, its status error and paths are outside text, printed on the terminal: inert."""
    paths = RunPaths(runs_dir / name)
    flag = "" if str(runs_dir) == "runs" else f" --runs_dir {inert(runs_dir)}"
    name = inert(name)
    watch = f"gptwiz watch {name}{flag}"
    try:
        status = read_status(paths) or {}
    except UnreadableFile as exc:
        return f"left gptwiz; run {name}'s status cannot be read ({inert(exc.reason)}). Look at it: {watch}"
    state = effective_state(status, paths) if status else "unknown"
    it, total = status.get("iter"), status.get("max_iters")
    where = f" at iteration {it:,} of {total:,}" if isinstance(it, int) and isinstance(total, int) and total else ""
    if state == "running":
        return f"left gptwiz; run {name} is running{where} and goes on in the background. Watch it again: {watch}"
    if state == "finished":
        return f"left gptwiz; run {name} finished{where}. Look at it again: {watch}"
    if state == "stopped":
        return (f"left gptwiz; run {name} is stopped{where}. Continue it: "
                f"gptwiz train --model_name {name} --resume{flag}")
    if state in ("failed", "diverged"):
        error = inert(status["error"]) if isinstance(status.get("error"), str) else ""
        found = error_file(paths)
        details = f"; the details are in {inert(found)}" if found else ""
        return f"left gptwiz; run {name} {state}{where}" + (f": {error}" if error else "") + details
    if not paths.root.is_dir():
        return f"left gptwiz; run {name}'s folder {inert(paths.root)} is gone"
    return f"left gptwiz; run {name} has not written its status yet (it may still be starting). Watch it: {watch}"


def unstarted_line(where: str, command: str, width: int = 80) -> str:
    """The line printed on leaving the wizard `where` ("at the recommendation") before any run was started: the
    `gptwiz train` command of the settings chosen, folded between its arguments to `width` so that it pastes as
    one command. Its paths are outside text: inert."""
    width = max(20, width - 1)  # a line as wide as the terminal would wrap on some
    said = textwrap.wrap(f"left gptwiz {where}; no run was started. To train with these settings:", width)
    return "\n".join(said + [inert(line) for line in paste_lines(command, width)])
