"""The wizard driven with Textual's Pilot: use case -> hardware -> dataset -> recommendation -> probe -> launch.

The hardware report is injected (this machine has no GPU; the guide's examples need a 6 GB and a
24 GB card). The recommendation is gptwiz.planning.recommend's real one; the dataset sizes are real files
(sparse where the guide's corpora are hundreds of MB). The probe runner is a stand-in here, fed
through the real ProbeProgress/ProbeResult types; test_tui_e2e.py runs the real probe.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from tui_support import async_test, flat, pasted, screen_text, wait_for, widget_text

from gptwiz.planning.hardware import GpuInfo, HardwareReport
from gptwiz.planning.knobs import Advice, Knobs
from gptwiz.training.probe import ProbeProgress, ProbeResult
from gptwiz.tui.app import GptwizApp
from gptwiz.tui.context import AppContext
from gptwiz.wizard.state import DatasetChoice

GiB = 2**30
RECORDED = Path(__file__).parent / "tui_data" / "recorded_run"
FROZEN_NOW = 1795495000.0


def hardware(*cards: tuple[str, float]) -> HardwareReport:
    gpus = [GpuInfo(i, name, int(gb * GiB), int(gb * GiB) - GiB, "8.6", True) for i, (name, gb) in enumerate(cards)]
    return HardwareReport(gpus=gpus, cpu_count=8 if gpus else 2, cpu_name="AMD EPYC", ram_total_bytes=32 * GiB,
                          ram_available_bytes=24 * GiB, cpu_bf16=False,
                          nvml_error=None if gpus else "no NVIDIA driver (NVML Shared Library Not Found)")


GTX_1660 = hardware(("NVIDIA GeForce GTX 1660", 6))
RTX_3090 = hardware(("NVIDIA GeForce RTX 3090", 24))
CPU_ONLY = hardware()


def probe_result(opts: Any, verdict: str, advice: list[Advice], losses: list[float], **kw: Any) -> ProbeResult:
    fields = {f.name: None for f in dataclasses.fields(ProbeResult)}
    fields.update(verdict=verdict, advice=advice, reasons=[f"stand-in probe: {verdict}"], iters=len(losses),
                  iters_requested=opts.iters, losses=losses, full_run_iters=opts.max_iters or 1000,
                  memory_kind="cpu_rss", batch_size=opts.batch_size, grad_accum=opts.grad_accum or 1,
                  block_size=opts.block_size, learning_rate=opts.learning_rate, preset=opts.config_file,
                  attempts=[], peak_memory_bytes=3 * GiB, estimate_bytes=int(3.2 * GiB), projected_full_run_s=5400.0)
    fields.update(kw)
    return ProbeResult(**fields)


class FakeProbe:
    """Falls linearly; 'warn: raise the learning rate' while it is under `below`, 'pass' after. Records its
    calls."""

    def __init__(self, gate: threading.Event | None = None, below: float = 5e-4):
        self.calls: list[Any] = []
        self.gate = gate
        self.below = below

    def __call__(self, opts: Any, on_progress: Callable[[Any], None], should_cancel: Callable[[], bool]) -> ProbeResult:
        self.calls.append(opts)
        losses: list[float] = []
        for i in range(1, opts.iters + 1):
            if self.gate is not None:
                while not self.gate.wait(0.02):
                    if should_cancel():
                        return probe_result(opts, "cancelled", [], losses)
            if should_cancel():
                return probe_result(opts, "cancelled", [], losses)
            losses.append(10.8 - 0.02 * i)
            on_progress(ProbeProgress(iter=i, iters=opts.iters, batch_size=opts.batch_size, grad_accum=opts.grad_accum or 1,
                                      attempt=1, loss=losses[-1], tokens_per_sec=12000.0, peak_mem_bytes=3 * GiB))
        if opts.learning_rate < self.below:
            # The value as text: it is drawn as %g writes it ("0.0009"), not in the verdict's 9e-4 form.
            return probe_result(opts, "warn", [Advice((("learning_rate", f"{opts.learning_rate * 3:g}"),),
                                                      "3x higher: bigger steps")], losses)
        return probe_result(opts, "pass", [], losses)


def wizard_app(tmp_path: Path, hw: HardwareReport = GTX_1660, probe: Any = None, **kw: Any) -> GptwizApp:
    ctx = AppContext(runs_dir=tmp_path / "runs", data_dir=tmp_path / "data", detect_hardware=lambda: hw,
                     clock=lambda: FROZEN_NOW, run_probe=probe or FakeProbe(), probe_iters=20, **kw)
    return GptwizApp(ctx)


def text_file(tmp_path: Path, name: str, size: int) -> Path:
    """A real text file of `size` bytes: written when small, sparse (the size is what counts) when large."""
    path = tmp_path / name
    if size <= 2_000_000:
        path.write_text(("All the world's a stage, and all the men and women merely players. " * (size // 67 + 1))[:size])
    else:
        with open(path, "wb") as f:
            f.truncate(size)
    return path


def screen_id(pilot: Any) -> str | None:
    return pilot.app.screen.id


async def walk_to_recommendation(pilot: Any, use_case: str, dataset: Path | str, vram: str = "") -> Any:
    from gptwiz.wizard.services import use_cases

    await wait_for(pilot, lambda: screen_id(pilot) == "welcome")
    await pilot.press("n")
    await wait_for(pilot, lambda: screen_id(pilot) == "use-case")
    keys = [k for k, _, _ in use_cases()]
    await pilot.press(*(["down"] * keys.index(use_case)), "enter")
    await wait_for(pilot, lambda: screen_id(pilot) == "hardware" and pilot.app.screen.detected)
    if vram:
        await pilot.press(*vram)
    await pilot.press("enter")
    await wait_for(pilot, lambda: screen_id(pilot) == "dataset")
    pilot.app.screen.query_one("#path").value = str(dataset)  # as if typed (typing is tested on its own)
    await wait_for(pilot, lambda: pilot.app.screen.inspections > 0)
    await pilot.press("enter")
    await wait_for(pilot, lambda: screen_id(pilot) == "recommendation" and pilot.app.screen.rec is not None)
    return pilot.app.screen


# --- use case -> recommendation, as the guide says ------------------------------------------------------

CASES = [
    # (id, hardware, VRAM typed, use case, dataset bytes, expected preset)
    ("guide-example-1-gtx1660-blog", GTX_1660, "", "prototype", 5_000_000, "small"),
    ("guide-example-2-rtx3090-rag", RTX_3090, "", "rag", 300_000_000, "350M_1024"),
    # On a CPU, which of tiny and small gives the better model in Chat's time is the quality model's call at this
    # machine's measured speed: either, at most small.
    ("cpu-machine-chat", CPU_ONLY, "", "chat", 1_000_000, "tiny|small"),
    ("plan-for-14gb-chat", CPU_ONLY, "14", "chat", 500_000_000, "200M"),
    ("plan-for-14gb-code", CPU_ONLY, "14", "code", 500_000_000, "150M_1024"),
    ("plan-for-40gb-domain", CPU_ONLY, "40", "domain", 2_000_000_000, "750M_1024"),
    ("plan-for-3gb-testing", CPU_ONLY, "3", "testing", 1_000_000, "tiny"),
]


@pytest.mark.parametrize("hw,vram,use_case,size,expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
@async_test
async def test_walk_from_use_case_to_recommendation(tmp_path: Path, hw: HardwareReport, vram: str, use_case: str,
                                                    size: int, expected: str) -> None:
    data = text_file(tmp_path, "corpus.txt", size)
    app = wizard_app(tmp_path, hw)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await walk_to_recommendation(pilot, use_case, data, vram)
        assert screen.rec.knobs.preset in expected.split("|")
        expected = screen.rec.knobs.preset
        text = screen_text(app)
        assert expected in text and "recommended" in text
        assert f"--config_file {expected}" in flat(text)
        assert app.wizard.knobs.preset == expected and app.wizard.use_case == use_case
        if vram:
            assert app.wizard.vram_gb == float(vram)


@async_test
async def test_guide_example_2_shows_long_context_reasons_and_the_command(tmp_path: Path) -> None:
    data = text_file(tmp_path, "company_docs.txt", 300_000_000)
    app = wizard_app(tmp_path, RTX_3090)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await walk_to_recommendation(pilot, "rag", data)
        assert screen.rec.knobs.block_size == 1024 and screen.rec.reasons
        text = flat(screen_text(app))
        assert "--block_size 1024" in text and f"--input_file {data}" in text
        assert "GiB of 24.0 GiB GPU" in text  # the memory bar, against the card


@async_test
async def test_knobs_move_the_memory_bar_and_the_command_line(tmp_path: Path) -> None:
    data = text_file(tmp_path, "blog.txt", 5_000_000)
    app = wizard_app(tmp_path, GTX_1660)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await walk_to_recommendation(pilot, "prototype", data)
        bar_before = str(screen.query_one("#memory-bar").render())
        batch = screen.query_one("#knob-batch")
        batch.focus()
        batch.value = str(screen.rec.knobs.batch_size * 4)
        await pilot.pause(0.1)
        assert str(screen.query_one("#memory-bar").render()) != bar_before
        assert f"--batch_size {screen.rec.knobs.batch_size * 4}" in flat(screen_text(app))
        lr = screen.query_one("#knob-lr")
        lr.value = "1e-4"
        await pilot.pause(0.1)
        assert app.wizard.knobs.learning_rate == 1e-4 and "--learning_rate 0.0001" in flat(screen_text(app))
        lr.value = "2"
        await pilot.pause(0.1)
        assert widget_text(screen, "#knob-error") == "learning rate: 2 is outside 1e-07..0.99"
        await pilot.press("ctrl+r")  # invalid knobs: no probe
        await pilot.pause(0.1)
        assert screen_id(pilot) == "recommendation"


@async_test
async def test_an_alternative_replaces_the_pick(tmp_path: Path) -> None:
    data = text_file(tmp_path, "blog.txt", 5_000_000)
    app = wizard_app(tmp_path, RTX_3090)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await walk_to_recommendation(pilot, "chat", data)
        assert screen.rec.alternatives, "gptwiz.planning.recommend offers no alternatives"
        first = screen.rec.alternatives[0].preset
        await pilot.press("ctrl+o", "enter")
        await wait_for(pilot, lambda: app.wizard.knobs.preset == first)
        assert f"--config_file {first}" in flat(screen_text(app)) and "you switched" in screen_text(app)


@async_test
async def test_escape_goes_back_step_by_step(tmp_path: Path) -> None:
    data = text_file(tmp_path, "blog.txt", 5_000_000)
    app = wizard_app(tmp_path)
    async with app.run_test() as pilot:
        await walk_to_recommendation(pilot, "testing", data)
        for expected in ("dataset", "hardware", "use-case", "welcome"):
            await pilot.press("escape")
            await wait_for(pilot, lambda: screen_id(pilot) == expected)
        await pilot.press("escape")  # on the welcome screen: leave
    assert app.return_value is None


@pytest.mark.parametrize("key", ["q", "escape"])
@async_test
async def test_q_or_escape_on_the_welcome_screen_leaves(tmp_path: Path, key: str) -> None:
    app = wizard_app(tmp_path)
    async with app.run_test() as pilot:
        await wait_for(pilot, lambda: screen_id(pilot) == "welcome")
        await pilot.press("n")
        await wait_for(pilot, lambda: screen_id(pilot) == "use-case")
        await pilot.press("escape")
        await wait_for(pilot, lambda: screen_id(pilot) == "welcome")
        await pilot.press(key)
        await wait_for(pilot, lambda: app.return_code is not None)
    assert app.return_code == 0 and app.return_value is None


# --- the dataset screen ----------------------------------------------------------------------------------

@async_test
async def test_dataset_stats_follow_what_is_typed(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(3):
        (docs / f"{i}.txt").write_text("x" * 1000)
    app = wizard_app(tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        app.wizard.use_case = "testing"
        from gptwiz.tui.screens.dataset import DatasetScreen

        await app.push_screen(DatasetScreen())
        await wait_for(pilot, lambda: screen_id(pilot) == "dataset")
        await pilot.press(*str(tmp_path / "nope.txt"))
        await wait_for(pilot, lambda: "no such file or folder" in flat(screen_text(app)))
        app.screen.query_one("#path").value = str(docs)
        # Counted as prepare will: 125 GPT-2 tokens a file and its end-of-text (bytes / 4 said 750).
        await wait_for(pilot, lambda: "documents to prepare: 3 files, 0.0 MB, ~378 tokens" in flat(screen_text(app)))
        app.screen.query_one("#path").value = str(docs / "0.txt")
        await wait_for(pilot, lambda: "text file: 1 file" in flat(screen_text(app)))


def type_burst(app: GptwizApp, text: str | list[str]) -> None:
    """Keys as a terminal delivers a paste or a fast typist: all queued at once, the enter with them (pilot.press
    waits for each key to be handled, which hides a binding that runs before the typed keys reach the input).
    A list holds key names (down, up)."""
    from textual import events

    for key in text:
        app.post_message(events.Key(key, key if len(key) == 1 else None))
    app.post_message(events.Key("enter", "\r"))


@async_test
async def test_a_path_and_knobs_typed_with_enter_in_one_burst_are_read_whole(tmp_path: Path) -> None:
    data = text_file(tmp_path, "blog.txt", 5_000_000)
    app = wizard_app(tmp_path, GTX_1660)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: screen_id(pilot) == "welcome")
        await pilot.press("n")
        await wait_for(pilot, lambda: screen_id(pilot) == "use-case")
        type_burst(app, ["down"])  # Testing/Learning is first; one down is Prototype
        await wait_for(pilot, lambda: screen_id(pilot) == "hardware")
        assert app.wizard.use_case == "prototype"
        app.screen.action_back()  # asks the app (a message): wait until it has gone back
        await wait_for(pilot, lambda: screen_id(pilot) == "use-case")
        from gptwiz.tui.screens.dataset import DatasetScreen

        await app.push_screen(DatasetScreen())
        await wait_for(pilot, lambda: screen_id(pilot) == "dataset" and app.screen.query_one("#path").has_focus)
        type_burst(app, str(data))
        await wait_for(pilot, lambda: screen_id(pilot) == "recommendation" and app.screen.rec is not None)
        assert app.wizard.dataset is not None and app.wizard.dataset.path == str(data)
        batch = app.screen.query_one("#knob-batch")
        batch.focus()
        batch.value = ""
        await pilot.pause()
        type_burst(app, "3")
        await wait_for(pilot, lambda: screen_id(pilot) == "probe")
        assert app.wizard.knobs is not None and app.wizard.knobs.batch_size == 3


@async_test
async def test_a_folder_is_prepared_with_progress_before_the_recommendation(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(6):
        (docs / f"{i}.txt").write_text(f"Chapter {i}. " + "It was the best of times, it was the worst of times. " * 300)
    app = wizard_app(tmp_path, GTX_1660)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await walk_to_recommendation(pilot, "testing", docs)
        prepared = tmp_path / "data" / "docs-prepared"
        assert (prepared / "manifest.json").exists()
        assert app.wizard.dataset.prepared_dir == str(prepared) and app.wizard.dataset.tokens > 10_000
        assert f"--dataset_dir {prepared}" in pasted(screen_text(app))  # its path may go on over two lines
        assert screen.rec is not None


@async_test
async def test_preparing_can_be_cancelled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(40):
        (docs / f"{i}.txt").write_text("Words upon words. " * 3000)
    gate = threading.Event()
    import gptwiz.data.prepare.pipeline as prepare_module

    real_encode = prepare_module.encode_piece

    def held_encode(enc: Any, piece: Any) -> Any:
        gate.wait(20)  # hold tokenizing until the user has pressed escape
        return real_encode(enc, piece)

    monkeypatch.setattr(prepare_module, "encode_piece", held_encode)
    app = wizard_app(tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        from gptwiz.tui.screens.dataset import DatasetScreen

        app.wizard.use_case = "testing"
        await app.push_screen(DatasetScreen())
        await wait_for(pilot, lambda: screen_id(pilot) == "dataset")
        await pilot.press(*str(docs))
        await wait_for(pilot, lambda: app.screen.inspections > 0)
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.screen.preparing is not None)
        await pilot.press("escape")
        gate.set()
        await wait_for(pilot, lambda: "cancelled: nothing was kept" in screen_text(app))
        assert screen_id(pilot) == "dataset" and app.screen.preparing is None
    assert not (tmp_path / "data" / "docs-prepared").exists()
    assert not any(p.name.startswith(".docs-prepared") for p in (tmp_path / "data").glob(".*"))


# --- probe and launch ------------------------------------------------------------------------------------

def preset_state(app: GptwizApp, tmp_path: Path, lr: float = 3e-4) -> None:
    """The wizard's answers up to the recommendation, set directly (the walk is tested above)."""
    data = text_file(tmp_path, "blog.txt", 1_000_000)
    app.wizard.use_case = "prototype"
    app.wizard.hardware = GTX_1660
    app.wizard.dataset = DatasetChoice("input_file", str(data), 1, 1_000_000)
    app.wizard.knobs = Knobs("small", 256, 32, 1, lr, 5000)


@async_test
async def test_probe_runs_live_then_one_key_applies_its_advice_and_probes_again(tmp_path: Path) -> None:
    probe = FakeProbe()
    app = wizard_app(tmp_path, probe=probe)
    async with app.run_test(size=(100, 30)) as pilot:
        preset_state(app, tmp_path)
        from gptwiz.tui.screens.probe import ProbeScreen

        await app.push_screen(ProbeScreen())
        await wait_for(pilot, lambda: screen_id(pilot) == "probe" and app.screen.result is not None)
        text = screen_text(app)
        assert "WARN" in text and "1  --learning_rate 0.0009 (3x higher" in text
        assert "iter 20/20" in text and len(app.screen.losses) == 20
        assert probe.calls[0].learning_rate == 3e-4 and probe.calls[0].batch_size == 32
        await pilot.press("1")
        await wait_for(pilot, lambda: len(probe.calls) == 2 and app.screen.result is not None)
        assert probe.calls[1].learning_rate == pytest.approx(9e-4) and app.wizard.knobs.learning_rate == pytest.approx(9e-4)
        assert "PASS" in screen_text(app)
        await pilot.press("escape")  # back to the recommendation, which shows the applied advice
        await wait_for(pilot, lambda: screen_id(pilot) != "probe")


@async_test
async def test_a_running_probe_is_cancelled_with_c(tmp_path: Path) -> None:
    gate = threading.Event()  # never set: the probe waits between iterations until cancelled
    probe = FakeProbe(gate)
    app = wizard_app(tmp_path, probe=probe)
    async with app.run_test(size=(100, 30)) as pilot:
        preset_state(app, tmp_path)
        from gptwiz.tui.screens.probe import ProbeScreen

        await app.push_screen(ProbeScreen())
        await wait_for(pilot, lambda: len(probe.calls) == 1)
        await pilot.press("c")  # cancels and stays (escape asks first: tests/test_tui_probe_launch.py)
        await wait_for(pilot, lambda: app.screen.result is not None)
        assert app.screen.result.verdict == "cancelled" and "CANCELLED" in screen_text(app)
        await pilot.press("escape")
        await wait_for(pilot, lambda: screen_id(pilot) != "probe")


@async_test
async def test_launch_checks_the_run_name(tmp_path: Path) -> None:
    shutil.copytree(RECORDED, tmp_path / "runs" / "taken")
    app = wizard_app(tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        preset_state(app, tmp_path)
        from gptwiz.tui.screens.launch import LaunchScreen

        await app.push_screen(LaunchScreen())
        await wait_for(pilot, lambda: screen_id(pilot) == "launch")
        assert app.screen.query_one("#run-name").value == "prototype-small"
        app.screen.query_one("#run-name").value = "taken"
        await pilot.press("enter")
        await wait_for(pilot, lambda: "a run named taken already exists" in flat(screen_text(app)))
        assert screen_id(pilot) == "launch"
        assert "--model_name taken" in flat(screen_text(app))


# --- the welcome screen ----------------------------------------------------------------------------------

@async_test
async def test_welcome_lists_runs_and_opens_the_dashboard(tmp_path: Path) -> None:
    shutil.copytree(RECORDED, tmp_path / "runs" / "shakespeare")
    status = json.loads((tmp_path / "runs" / "shakespeare" / "status.json").read_text())
    app = wizard_app(tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: screen_id(pilot) == "welcome" and app.screen.loaded)
        text = screen_text(app)
        assert "shakespeare" in text and "finished" in text and "60/60 (100%)" in text and "8.1295" in text
        await pilot.press("w")
        await wait_for(pilot, lambda: screen_id(pilot) == "dashboard" and app.screen.polls > 0)
        assert "FINISHED" in screen_text(app)
        await pilot.press("escape")
        await wait_for(pilot, lambda: screen_id(pilot) == "welcome")
        await pilot.press("r")  # finished: nothing to resume
        await pilot.pause(0.1)
        assert screen_id(pilot) == "welcome"
    assert status["state"] == "finished"
