"""The dashboard's g: generated in a worker with the tokens counted on screen as they come, closed at any moment by
escape or q; an instruction-tuned run answers a message through its chat template, and every sample ends at the
model's end-of-text instead of printing it over and over."""

from __future__ import annotations

import json
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import test_train
from test_tui_dashboard import recorded_copy
from tui_support import async_test, quiet_context, screen_text, wait_for

from gptwiz.data.chat_template import TEMPLATE_NAME
from gptwiz.runs.paths import RunPaths
from gptwiz.tui.app import GptwizApp

tiny_run = test_train.tiny_run  # the session's one trained tiny run (50 iterations on Shakespeare)

EOT_TEXT = "<|endoftext|>"
SAID = "Fair is foul, and foul is fair."  # what the crafted model says, between its end-of-text tokens


def run_copy(trained: Any, tmp_path: Path, name: str, *, tuned: bool = False) -> RunPaths:
    """A copy of the trained tiny run; `tuned`: its config says it was instruction-tuned (data.sft)."""
    root = Path(shutil.copytree(trained.run, tmp_path / "runs" / name))
    if tuned:
        config = json.loads((root / "config.json").read_text())
        config["data"]["sft"] = {"template": TEMPLATE_NAME}
        (root / "config.json").write_text(json.dumps(config))
    return RunPaths(root)


def stand_in_run(tmp_path: Path) -> RunPaths:
    """The recorded run with a stand-in checkpoint (g only checks that one is there), for stand-in generators."""
    paths = recorded_copy(tmp_path)
    paths.ckpt_last.write_bytes(b"stand-in")
    return paths


def make_end_of_text_writer(paths: RunPaths) -> None:
    """Rewrite the run's checkpoints so that the model says SAID and then its end-of-text, round and round, whatever
    the prompt: a model that ends its text, as a tuned one ends an answer (the weights set by hand, as
    tests/faults/hostile_checkpoint.py sets them: position p emits the cycle's token (p + 1) mod its length)."""
    import tiktoken  # (torch and the tokenizer only for the tests that write weights)
    import torch

    enc = tiktoken.get_encoding("gpt2")
    cycle = [*enc.encode_ordinary(SAID), enc.eot_token]
    for path in (paths.ckpt_last, paths.ckpt_best):
        if not path.exists():
            continue
        state = torch.load(path, map_location="cpu", weights_only=True)
        weights = state["model"]
        wte, wpe = weights["transformer.wte.weight"], weights["transformer.wpe.weight"]
        for name, tensor in weights.items():
            if name.startswith("transformer.h.") and ".c_proj." in name:
                tensor.zero_()  # the blocks add nothing: the stream is the token's row plus the position's
        wte.zero_()
        for q in range(len(cycle)):
            wte[cycle[(q + 1) % len(cycle)], q] += 1.0
        wpe.zero_()
        for p in range(wpe.shape[0]):
            wpe[p, p % len(cycle)] = 100.0
        weights["transformer.ln_f.weight"].fill_(50.0)
        torch.save(state, path)


async def _sample(pilot: Any, app: GptwizApp, timeout: float = 240) -> tuple[str, bool]:
    """Press g on the dashboard and wait for the sample: the dialog's text, and whether the tokens were counted
    on screen while it generated."""
    await wait_for(pilot, lambda: app.screen.id == "dashboard" and app.screen.polls > 0)
    await pilot.press("g")
    await wait_for(pilot, lambda: app.screen.id == "sample-view")
    counted = False
    deadline = time.monotonic() + timeout
    while not app.screen.done and time.monotonic() < deadline:
        counted = counted or "tokens so far" in screen_text(app)
        await pilot.pause(0.05)
    assert app.screen.done, screen_text(app)
    await pilot.pause(0.3)
    return screen_text(app), counted


# --- a stand-in generator: the screen's side -----------------------------------------------------------

@async_test
async def test_g_counts_the_tokens_as_they_come_and_escape_stops_the_generation(tmp_path: Path) -> None:
    from gptwiz.tui.sampling import SampleFeed

    paths = stand_in_run(tmp_path)
    stopped = threading.Event()

    def slow_sampler(p: RunPaths, checkpoint: str, feed: SampleFeed) -> list[str]:
        feed.begin(None, None)
        feed.new_sample()
        try:
            for i in range(2000):  # far longer than the test waits: only escape ends it
                feed.add_token()
                feed.add_text(f"word{i} ")
                time.sleep(0.01)
        finally:
            stopped.set()
        return list(feed.view().texts)

    context = quiet_context(paths.root.parent)
    context.sample_text = slow_sampler
    app = GptwizApp(context, watch=paths)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.screen.id == "dashboard" and app.screen.polls > 0)
        await pilot.press("g")
        await wait_for(pilot, lambda: "tokens so far" in screen_text(app) and "word20" in screen_text(app))
        assert "sample 1 of 2" in screen_text(app)
        await pilot.press("escape")  # the event loop answers at once: the model's work is in a thread
        await wait_for(pilot, lambda: app.screen.id == "dashboard", timeout=2)
        await wait_for(pilot, stopped.is_set, timeout=2)  # and closing the dialog ended the generation
        await pilot.press("g")
        await wait_for(pilot, lambda: "tokens so far" in screen_text(app))
        await pilot.press("q")  # q closes it too
        await wait_for(pilot, lambda: app.screen.id == "dashboard", timeout=2)


# --- the real generator, on the shared trained run ---------------------------------------------------------

@pytest.mark.slow
@async_test
async def test_g_on_the_trained_run_streams_its_samples(tmp_path: Path, tiny_run: Any) -> None:
    from gptwiz.tui.sampling import SampleFeed, default_sample_text

    paths = run_copy(tiny_run, tmp_path, "plain")

    def paced(p: RunPaths, checkpoint: str, feed: SampleFeed) -> list[str]:
        """The real generator, each token held a little: the tiny model is done in under a second, faster than a
        test can be sure to read the screen while it generates."""
        add_token = feed.add_token

        def held(data: bytes = b"") -> None:
            time.sleep(0.02)
            add_token(data)

        feed.add_token = held  # type: ignore[method-assign]
        return default_sample_text(p, checkpoint, feed)

    context = quiet_context(paths.root.parent)
    context.sample_text = paced
    app = GptwizApp(context, watch=paths)
    async with app.run_test(size=(80, 24)) as pilot:
        text, counted = await _sample(pilot, app)
        body = str(app.screen.body)
    assert counted, "the tokens were never counted on screen while it generated:\n" + text
    assert "could not sample" not in body and len(body.strip()) > 20, body
    assert EOT_TEXT not in text and "tokens in" in text, text


@async_test
async def test_g_on_a_model_that_ends_its_text_stops_there_and_says_so_once(tmp_path: Path, tiny_run: Any) -> None:
    paths = run_copy(tiny_run, tmp_path, "plain")
    make_end_of_text_writer(paths)
    app = GptwizApp(quiet_context(paths.root.parent), watch=paths)
    async with app.run_test(size=(80, 24)) as pilot:
        text, _ = await _sample(pilot, app)
        body = str(app.screen.body)
    assert EOT_TEXT not in text and EOT_TEXT not in body, body
    assert body.count("⏎ end of text") == 2, body  # once per sample
    assert "ended at end-of-text" in text and body.count("foul") <= 4, body  # no screens of repeats


@async_test
async def test_g_on_a_tuned_run_answers_a_message_through_its_chat_template(tmp_path: Path, tiny_run: Any) -> None:
    from gptwiz.tui.sampling import DEFAULT_PROMPT, SampleFeed, default_sample_text

    paths = run_copy(tiny_run, tmp_path, "tuned", tuned=True)
    make_end_of_text_writer(paths)
    feeds: list[SampleFeed] = []

    def sampler(p: RunPaths, checkpoint: str, feed: SampleFeed) -> list[str]:
        feeds.append(feed)
        return default_sample_text(p, checkpoint, feed)

    context = quiet_context(paths.root.parent)
    context.sample_text = sampler
    app = GptwizApp(context, watch=paths)
    async with app.run_test(size=(80, 24)) as pilot:
        text, _ = await _sample(pilot, app)
        body = str(app.screen.body)
        assert feeds[-1].view().template == TEMPLATE_NAME
        assert body.startswith(f"you: {DEFAULT_PROMPT}\nmodel: ") and body.count("⏎ end of text") == 1, body
        assert EOT_TEXT not in text and f"chat template {TEMPLATE_NAME}" in text, text
        await pilot.press("tab")  # to the field to ask another message in
        await pilot.press(*"Who goes there?", "enter")
        await wait_for(pilot, lambda: len(feeds) == 2 and app.screen.done, timeout=240)
        await pilot.pause(0.3)
        assert str(app.screen.body).startswith("you: Who goes there?\nmodel: "), str(app.screen.body)
        assert EOT_TEXT not in screen_text(app)


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
@async_test
async def test_the_sample_dialog_keeps_its_keys_on_screen(tmp_path: Path, size: tuple[int, int]) -> None:
    from gptwiz.tui.sampling import SampleFeed

    paths = stand_in_run(tmp_path)

    def long_answer(p: RunPaths, checkpoint: str, feed: SampleFeed) -> list[str]:
        feed.begin(TEMPLATE_NAME, "hi")
        feed.new_sample()
        for i in range(200):
            feed.add_token()
            feed.add_text(f"line {i}\n")
        feed.end_sample(True)
        return list(feed.view().texts)

    context = quiet_context(paths.root.parent)
    context.sample_text = long_answer
    app = GptwizApp(context, watch=paths)
    async with app.run_test(size=size) as pilot:
        text, _ = await _sample(pilot, app)
    assert "tab: ask something else" in text and "escape: close" in text, text
    assert "200 tokens in" in text, text
