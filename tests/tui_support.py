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
