"""Helpers for the app's tests: a text screenshot, waiting for a condition, fakes for the outside world."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console


def screen_text(app: Any) -> str:
    """The current screen as plain text, as a user would read it (what the SVG snapshot draws)."""
    width, height = app.size
    console = Console(width=width, height=height, file=io.StringIO(), force_terminal=True, color_system="truecolor",
                      record=True, legacy_windows=False, safe_box=False)
    console.print(app.screen._compositor.render_update(full=True, screen_stack=app._background_screens))
    return console.export_text()


def flat(text: str) -> str:
    """The screen's words with line breaks and padding folded to single spaces (a wrapped command line reads whole)."""
    return " ".join(text.split())


def widget_text(screen: Any, selector: str) -> str:
    """What one Static-like widget shows, unwrapped."""
    return str(screen.query_one(selector).render())


async def wait_for(pilot: Any, condition: Callable[[], Any], timeout: float = 10.0, step: float = 0.05) -> None:
    """Pause the pilot until `condition()` is true; fail with the screen's text if it never is."""
    import asyncio

    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout}s; the screen shows:\n{screen_text(pilot.app)}")
        await pilot.pause(step)
    await pilot.pause()  # let what made it true be laid out and drawn before the caller reads the screen


def async_test(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Run an `async def` test with asyncio.run (no pytest-asyncio needed); fixtures pass through."""
    import asyncio
    import functools

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return asyncio.run(fn(*args, **kwargs))

    return wrapper


def quiet_context(runs: Path) -> Any:
    """An app context over `runs` with no GPU readings and fast polling, for pilots of the run viewers."""
    from gptwiz.tui.context import AppContext
    from gptwiz.tui.devicestats import DeviceSampler

    return AppContext(runs_dir=runs, device_sampler=lambda: DeviceSampler(gpu_stats=lambda: []),
                      poll_interval_s=0.05, chart_interval_s=0.1)


def pty_session(args: list[str], cwd: Path, steps: list[tuple[bytes, bytes]], env: dict[str, str],
                size: tuple[int, int] = (80, 24), timeout: float = 120,
                term: str = "xterm-256color") -> tuple[int | None, bytes]:
    """Run `python -m gptwiz ARGS` in a pseudo-terminal of `size` (columns, rows), as a user's terminal: for each
    (shown, keys) step, type `keys` once `shown` has been drawn since the previous step. Returns the exit status
    (None if it had not ended by the timeout, when it is killed) and all it wrote."""
    import fcntl
    import os
    import pty
    import select
    import struct
    import subprocess
    import sys
    import termios
    import time

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", size[1], size[0], 0, 0))
    env = {**env, "TERM": term, "COLUMNS": str(size[0]), "LINES": str(size[1])}
    proc = subprocess.Popen([sys.executable, "-m", "gptwiz", *args], cwd=cwd, env=env, stdin=slave, stdout=slave,
                            stderr=slave, start_new_session=True)
    os.close(slave)
    out, seen_from, left = b"", 0, list(steps)
    deadline = time.time() + timeout
    try:
        while time.time() < deadline:
            ready, _, _ = select.select([master], [], [], 0.1)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:
                    break
                if not chunk:
                    break
                out += chunk
            if left and left[0][0] in out[seen_from:]:
                time.sleep(0.5)  # let the screen settle, as a user would see it before typing
                seen_from = len(out)
                os.write(master, left.pop(0)[1])
            if proc.poll() is not None and not ready:
                break
        try:
            return proc.wait(timeout=max(1.0, deadline - time.time())), out
        except subprocess.TimeoutExpired:
            return None, out
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        os.close(master)


def plain_text(raw: bytes) -> str:
    """What a terminal's output says with its escape sequences and carriage returns taken out (its cursor moves
    are not followed: good for lines printed one after the other)."""
    import re

    text = raw.decode("utf-8", errors="replace")
    text = re.sub(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(\x07|\x1b\\)|\x1b[()][0-9A-Za-z]|\x1b[=>78]", "", text)
    return text.replace("\r", "")


def command_rows(text: str, start: str = "gptwiz train") -> list[str]:
    """The command a screen (or a terminal's output) shows from its line starting with `start`: that line and
    each one after a line ending in a backslash, stripped of the padding around them."""
    lines = [line.strip() for line in text.splitlines()]
    first = next(i for i, line in enumerate(lines) if line.startswith(start))
    rows = [lines[first]]
    while rows[-1].endswith("\\"):
        rows.append(lines[first + len(rows)])
    return rows


def pasted(text: str, start: str = "gptwiz train") -> str:
    """That command as a shell reads it pasted: a backslash ending a line goes with the newline (after a space it
    ends a word; right after a character, the word goes on from the next line: a path longer than a line)."""
    return "".join(row.removesuffix("\\") for row in command_rows(text, start))
