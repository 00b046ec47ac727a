"""The dashboard (`gptwiz watch`): what it reads from a run folder, what it shows, and its keys."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
import types
from pathlib import Path

import pytest
from tui_support import async_test, screen_text, wait_for, widget_text

from gptwiz.runs.lock import RunLock, lock_owner
from gptwiz.runs.monitor import RunMonitor
from gptwiz.runs.paths import RunPaths
from gptwiz.runs.tail import LogTail
from gptwiz.tui.app import GptwizApp
from gptwiz.tui.context import AppContext
from gptwiz.tui.devicestats import DeviceSampler
from gptwiz.tui.screens.dashboard import DashboardScreen
from gptwiz.tui.widgets.device_panel import DeviceReading, ProcessUsage

RECORDED = Path(__file__).parent / "tui_data" / "recorded_run"
FROZEN_NOW = 1795495000.0  # a few minutes after the recorded run's start


class FakeSampler:
    """A fixed device reading: snapshots must not show this machine's live numbers."""

    def __init__(self, reading: DeviceReading):
        self.reading = reading

    def read(self, pid: int, running: bool) -> DeviceReading:
        return self.reading


CPU_READING = DeviceReading(process=ProcessUsage(pid=4242, cpu_pct=180.0, rss_bytes=1_300_000_000,
                                                 ram_total_bytes=24 * 2**30, ram_available_bytes=18 * 2**30,
                                                 cpu_count=2))


def context(tmp_path: Path, reading: DeviceReading | None = None, **kw: object) -> AppContext:
    sampler = FakeSampler(reading) if reading is not None else DeviceSampler(gpu_stats=lambda: [])
    return AppContext(runs_dir=tmp_path / "runs", clock=lambda: FROZEN_NOW, device_sampler=lambda: sampler,
                      **kw)  # type: ignore[arg-type]


def recorded_copy(tmp_path: Path, name: str = "demo-run") -> RunPaths:
    dest = tmp_path / "runs" / name
    shutil.copytree(RECORDED, dest)
    return RunPaths(dest)


def records() -> list[dict]:
    return [json.loads(l) for l in (RECORDED / "metrics.jsonl").read_text().splitlines()]


def live_run(tmp_path: Path, n_records: int, pid: int | None = None, name: str = "live") -> RunPaths:
    """A run folder as a trainer mid-run leaves it: status 'running' with a live pid, the first records.
    Only a run whose lock a process holds is shown running: see `locked` and `lock_holder`."""
    paths = RunPaths(tmp_path / "runs" / name)
    paths.root.mkdir(parents=True, exist_ok=True)
    shutil.copy(RECORDED / "config.json", paths.config)
    status = json.loads((RECORDED / "status.json").read_text())
    status.update(state="running", pid=pid or os.getpid(), iter=0, updated_at=status["started_at"])
    status.pop("best_val_loss")
    paths.status.write_text(json.dumps(status))
    with open(paths.metrics, "w") as f:
        for rec in records()[:n_records]:
            f.write(json.dumps(rec) + "\n")
    paths.log.write_text("2026-11-24 04:34:50 training live: preset tiny\n")
    return paths


@pytest.fixture
def locked():
    """Takes a run's lock in this process, as its trainer would; released when the test ends."""
    locks: list[RunLock] = []

    def take(paths: RunPaths) -> RunPaths:
        lock = RunLock(paths)
        lock.acquire()
        locks.append(lock)
        return paths

    yield take
    for lock in locks:
        lock.release()


def lock_holder(paths: RunPaths, body: str = "time.sleep(60)") -> subprocess.Popen:
    """A stand-in trainer: a process that takes the run's lock (writing its pid there), then runs `body`."""
    paths.root.mkdir(parents=True, exist_ok=True)
    script = ("import json, os, signal, sys, time\n"
              "from pathlib import Path\n"
              "from gptwiz.runs.lock import RunLock\nfrom gptwiz.runs.paths import RunPaths\n"
              "RunLock(RunPaths(Path(sys.argv[1]))).acquire()\n" + body + "\n")
    proc = subprocess.Popen([sys.executable, "-c", script, str(paths.root)])
    deadline = time.time() + 30
    while lock_owner(paths) != proc.pid and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    assert lock_owner(paths) == proc.pid, "the stand-in trainer did not take the lock"
    return proc


async def wait_polls(pilot, n: int = 1) -> DashboardScreen:
    screen = pilot.app.screen
    start = screen.polls
    await wait_for(pilot, lambda: pilot.app.screen.polls >= start + n)
    return pilot.app.screen


# --- the data side -----------------------------------------------------------------------------------

def test_monitor_reads_only_appended_lines_and_waits_for_a_torn_line(tmp_path: Path) -> None:
    paths = live_run(tmp_path, 5)
    monitor = RunMonitor(paths, clock=lambda: FROZEN_NOW)
    snap = monitor.poll()
    assert snap.train_iters == [1.0, 2.0, 3.0, 4.0] and snap.eval_iters == [0.0]
    first_offset = monitor._metrics.offset
    assert monitor.poll().version == snap.version  # nothing new: same version, nothing re-read
    assert monitor._metrics.offset == first_offset
    line = json.dumps(records()[5])
    with open(paths.metrics, "a") as f:
        f.write(line[:20])  # a writer caught mid-line
    assert monitor.poll().train_iters[-1] == 4.0
    with open(paths.metrics, "a") as f:
        f.write(line[20:] + "\n")
    snap = monitor.poll()
    assert snap.train_iters[-1] == 5.0 and snap.iter == 5
    assert monitor._metrics.offset == paths.metrics.stat().st_size


def test_monitor_starts_over_when_a_resume_trims_the_history(tmp_path: Path) -> None:
    paths = live_run(tmp_path, 30)
    monitor = RunMonitor(paths)
    assert monitor.poll().iter == 28  # records: eval 0, train 1-20, eval 20, train 21-28
    paths.metrics.write_text("".join(json.dumps(r) + "\n" for r in records()[:3]))  # a resume from iteration 2
    snap = monitor.poll()
    assert snap.train_iters == [1.0, 2.0] and snap.iter == 2


def test_monitor_snapshot_of_finished_run_is_its_whole_history(tmp_path: Path) -> None:
    snap = RunMonitor(recorded_copy(tmp_path)).poll()
    assert snap.state == "finished" and snap.iter == 60 and snap.max_iters == 60
    assert len(snap.train_loss) == 60 and snap.eval_iters == [0.0, 20.0, 40.0, 60.0]
    assert snap.elapsed_s == 260.0 and snap.eta_s == 0.0
    assert snap.schedule is not None and snap.schedule.warmup_iters == 6
    assert snap.log_tail[-1].endswith("finished at iteration 60, best val loss 8.1727")


def test_monitor_running_run_whose_trainer_died_is_failed(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    paths = live_run(tmp_path, 5, pid=int(proc.stdout))
    snap = RunMonitor(paths).poll()
    assert snap.state == "failed" and "ended without recording why" in (snap.error or "")


def test_monitor_shows_running_only_while_a_process_holds_the_lock(tmp_path: Path, locked) -> None:
    paths = live_run(tmp_path, 5)  # status 'running' naming this live process, which does not hold the lock
    snap = RunMonitor(paths).poll()
    assert snap.state == "failed" and "ended without recording why" in (snap.error or "")
    locked(paths)
    snap = RunMonitor(paths).poll()
    assert snap.state == "running" and snap.pid == os.getpid() and not snap.error


def test_log_tail_reads_appended_bytes_and_starts_near_the_end_of_a_long_log(tmp_path: Path) -> None:
    log = tmp_path / "train.log"
    log.write_text("".join(f"line {i}\n" for i in range(20000)))
    tail = LogTail(log, keep=5)
    assert tail.read_new() and list(tail.lines) == [f"line {i}" for i in range(19995, 20000)]
    assert tail.offset == log.stat().st_size and not tail.read_new()
    with open(log, "a") as f:
        f.write("new one\npartial")
    tail.read_new()
    assert list(tail.lines)[-1] == "new one"


# --- the screen --------------------------------------------------------------------------------------

@async_test
async def test_dashboard_picks_up_lines_appended_while_open(tmp_path: Path, locked) -> None:
    paths = locked(live_run(tmp_path, 10))
    app = GptwizApp(context(tmp_path, CPU_READING, poll_interval_s=0.05, chart_interval_s=0.3), watch=paths)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await wait_polls(pilot)
        assert screen.snapshot.iter == 9 and "iter 9/60" in screen_text(app)
        with open(paths.metrics, "a") as f:  # the trainer goes on writing
            for rec in records()[10:35]:
                f.write(json.dumps(rec) + "\n")
        with open(paths.log, "a") as f:
            f.write("2026-11-24 04:37:22 eval iter 20: train loss 9.3495, val loss 9.3538\n")
        await wait_for(pilot, lambda: screen.snapshot.iter == 33)
        await wait_polls(pilot, 2)
        text = screen_text(app)
        assert "iter 33/60" in text and "RUNNING" in text
        assert "eval iter 20: train loss 9.3495" in text
        # Charts are redrawn at most every chart_interval_s, but the last points always reach them.
        await wait_for(pilot, lambda: screen.query_one("#loss-chart")._series[0][-1] == 33.0)
        # 180% of one core on a 2-core machine: 90% of the machine, as the bar draws it.
        assert "trainer pid 4242" in text and "CPU 90%" in text


@async_test
async def test_dashboard_shows_a_failed_runs_error(tmp_path: Path) -> None:
    paths = recorded_copy(tmp_path, "broken")
    status = json.loads(paths.status.read_text())
    status.update(state="failed", error="OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB")
    paths.status.write_text(json.dumps(status))
    app = GptwizApp(context(tmp_path), watch=paths)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_polls(pilot)
        text = screen_text(app)
        assert "FAILED" in text and "failed: OutOfMemoryError: CUDA out of memory" in text


@async_test
async def test_dashboard_q_leaves_and_names_the_run(tmp_path: Path) -> None:
    paths = recorded_copy(tmp_path)
    app = GptwizApp(context(tmp_path), watch=paths)
    async with app.run_test() as pilot:
        await wait_polls(pilot)
        await pilot.press("question_mark")
        await wait_for(pilot, lambda: app.screen.id == "help")
        assert "Leaving it never stops the training" in widget_text(app.screen, "#message-body")
        await pilot.press("escape")
        await pilot.press("q")
    assert app.return_value == "demo-run"


@async_test
async def test_dashboard_s_stops_the_trainer_after_confirmation(tmp_path: Path) -> None:
    # A stand-in trainer: it holds the run's lock and records "stopped" on SIGTERM, as train.py does.
    paths = live_run(tmp_path, 10, pid=1)
    proc = lock_holder(paths, (
        "p = Path(sys.argv[1]) / 'status.json'\n"
        "def stop(*a):\n"
        "    s = json.load(open(p)); s['state'] = 'stopped'; json.dump(s, open(p, 'w')); sys.exit(0)\n"
        "signal.signal(signal.SIGTERM, stop)\n"
        "s = json.load(open(p)); s['pid'] = os.getpid(); json.dump(s, open(p, 'w'))\n"
        "time.sleep(60)"))
    try:
        def written_by_stand_in() -> bool:
            try:  # the stand-in writes status.json in place, so a read may catch it empty
                return json.loads(paths.status.read_text())["pid"] == proc.pid
            except ValueError:
                return False

        deadline = time.time() + 10
        while not written_by_stand_in() and time.time() < deadline:
            time.sleep(0.05)
        app = GptwizApp(context(tmp_path, CPU_READING, poll_interval_s=0.05), watch=paths)
        async with app.run_test() as pilot:
            await wait_for(pilot, lambda: app.screen.snapshot is not None and app.screen.snapshot.state == "running")
            await pilot.press("s")
            await wait_for(pilot, lambda: "Stop run live at iteration 9?" in screen_text(app))
            await pilot.press("n")  # not yet
            await pilot.pause(0.2)
            assert proc.poll() is None
            await pilot.press("s")
            await wait_for(pilot, lambda: "Stop run live" in screen_text(app))
            await pilot.press("y")
            assert proc.wait(timeout=10) == 0
            await wait_for(pilot, lambda: app.screen.snapshot.state == "stopped")
            assert "STOPPED" in screen_text(app)
    finally:
        if proc.poll() is None:
            proc.kill()


@async_test
async def test_dashboard_s_on_a_finished_run_stops_nothing(tmp_path: Path) -> None:
    app = GptwizApp(context(tmp_path), watch=recorded_copy(tmp_path))
    async with app.run_test() as pilot:
        await wait_polls(pilot)
        await pilot.press("s")
        await pilot.pause(0.1)
        assert not any(type(s).__name__ == "ConfirmScreen" for s in app.screen_stack)


@async_test
async def test_dashboard_g_samples_from_the_checkpoint_in_a_worker(tmp_path: Path) -> None:
    paths = recorded_copy(tmp_path)
    paths.ckpt_last.write_bytes(b"stand-in")  # the key only checks that one exists; sampling is faked
    seen: list[RunPaths] = []
    release = threading.Event()

    def fake_sample(p: RunPaths, checkpoint: str, feed: object) -> list[str]:
        seen.append(p)
        release.wait(10)  # slow, as real sampling is: the screen stays responsive meanwhile
        return ["ROMEO: a sampled line", "JULIET: another"]

    app = GptwizApp(context(tmp_path, sample_text=fake_sample), watch=paths)
    async with app.run_test() as pilot:
        await wait_polls(pilot)
        await pilot.press("g")
        await wait_for(pilot, lambda: "generating" in screen_text(app))
        release.set()
        await wait_for(pilot, lambda: "ROMEO: a sampled line" in screen_text(app))
        assert "JULIET: another" in screen_text(app) and seen == [paths]


@async_test
async def test_dashboard_g_without_checkpoint_says_so(tmp_path: Path) -> None:
    app = GptwizApp(context(tmp_path, sample_text=lambda p, c, f: pytest.fail("no checkpoint: no sampling")),
                    watch=recorded_copy(tmp_path))
    async with app.run_test() as pilot:
        await wait_polls(pilot)
        await pilot.press("g")
        await pilot.pause(0.2)
        assert app.screen.id == "dashboard"


# --- the device panel: gptwiz.planning.hardware.read_gpu_stats over a faked pynvml --------------------------------

class FakeNvml(types.ModuleType):
    """pynvml as nvidia-ml-py has it, for `cards` (name, used GiB, total GiB, util %, °C, W); none: no driver."""

    NVML_TEMPERATURE_GPU = 0

    def __init__(self, cards: list[tuple[str, float, float, int, int, float]] | None):
        super().__init__("pynvml")
        self.cards = cards

    def nvmlInit(self) -> None:
        if self.cards is None:
            raise RuntimeError("NVML Shared Library Not Found")

    def nvmlShutdown(self) -> None: ...
    def nvmlDeviceGetCount(self) -> int: return len(self.cards or [])
    def nvmlDeviceGetHandleByIndex(self, i: int) -> int: return i
    def nvmlDeviceGetName(self, h: int) -> str: return self.cards[h][0]

    def nvmlDeviceGetMemoryInfo(self, h: int) -> types.SimpleNamespace:
        used, total = int(self.cards[h][1] * 2**30), int(self.cards[h][2] * 2**30)
        return types.SimpleNamespace(used=used, total=total, free=total - used)

    def nvmlDeviceGetUtilizationRates(self, h: int) -> types.SimpleNamespace:
        return types.SimpleNamespace(gpu=self.cards[h][3], memory=0)

    def nvmlDeviceGetTemperature(self, h: int, sensor: int) -> int: return self.cards[h][4]
    def nvmlDeviceGetPowerUsage(self, h: int) -> int: return int(self.cards[h][5] * 1000)
    def nvmlDeviceGetEnforcedPowerLimit(self, h: int) -> int: return 350_000


RTX = ("NVIDIA GeForce RTX 3090", 18.0, 24.0, 97, 71, 331.0)
RTX_IDLE = ("NVIDIA GeForce RTX 3090", 3.0, 24.0, 12, 45, 110.0)


def nvml_context(tmp_path: Path) -> AppContext:
    return AppContext(runs_dir=tmp_path / "runs", clock=lambda: FROZEN_NOW, poll_interval_s=0.05,
                      device_interval_s=0.05)  # the real DeviceSampler: read_gpu_stats and psutil


@pytest.mark.parametrize("cards", [[RTX], [RTX, RTX_IDLE]], ids=["one-card", "two-cards"])
@async_test
async def test_gpu_panel_shows_each_card_through_nvml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      cards: list[tuple]) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", FakeNvml(cards))
    app = GptwizApp(nvml_context(tmp_path), watch=live_run(tmp_path, 10))
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: "GPU0" in screen_text(app))
        text = screen_text(app)
        assert "GPU0 RTX 3090 util 97% 71°C 331W" in text and "18.0/24.0 GiB" in text
        assert ("GPU1" in text) == (len(cards) == 2)
        if len(cards) == 2:
            assert "GPU1 RTX 3090 util 12% 45°C 110W" in text and "3.0/24.0 GiB" in text
        assert "trainer pid" not in text


@async_test
async def test_without_nvml_the_panel_shows_the_trainers_cpu_and_ram(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", FakeNvml(None))  # the library is there, the driver is not
    paths = RunPaths(tmp_path / "runs" / "live")
    trainer = lock_holder(paths, "x = bytearray(50_000_000); time.sleep(60)")
    try:
        app = GptwizApp(nvml_context(tmp_path), watch=live_run(tmp_path, 10, pid=trainer.pid))
        async with app.run_test(size=(120, 40)) as pilot:
            await wait_for(pilot, lambda: f"trainer pid {trainer.pid} (CPU)" in screen_text(app))
            text = screen_text(app)
            assert "GPU0" not in text and "CPU" in text and "RAM" in text and "RSS" in text
    finally:
        trainer.kill()
        trainer.wait()


@async_test
async def test_device_panel_of_a_finished_run_says_the_trainer_is_gone(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", FakeNvml(None))
    app = GptwizApp(nvml_context(tmp_path), watch=recorded_copy(tmp_path))
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: "the trainer is not running" in screen_text(app))


# --- evaluations: what the dashboard says during one, and the ETA that counts them ----------------------

def test_eta_counts_the_evaluations_and_checkpoints_still_to_come() -> None:
    from gptwiz.runs.eta import EvalPlan, eta_seconds

    plan = EvalPlan(eval_interval=20, eval_iters=2, grad_accum=1, ckpt_interval_s=float("inf"))
    # 50 steps of 2 s; evaluations at 20, 40 and 60 of 4 batches of 0.5 s, each with a checkpoint of 1 s.
    assert eta_seconds(plan, iter=10, max_iters=60, step_s=2.0, evaluated_to=0, eval_batch_s=0.5,
                       ckpt_s=1.0) == 100 + 3 * 2 + 3 * 1
    # A run that does not end on an evaluation iteration evaluates its final weights too: 20, 40 and 50.
    assert eta_seconds(plan, iter=10, max_iters=50, step_s=2.0, evaluated_to=0, eval_batch_s=0.5,
                       ckpt_s=1.0) == 80 + 3 * 2 + 3 * 1
    # Under way at 20 with 3 batches left: those, then 40 and 60.
    assert eta_seconds(plan, iter=20, max_iters=60, step_s=2.0, evaluated_to=20, eval_batch_s=0.5,
                       eval_batches_left=3, ckpt_s=1.0) == 80 + 1.5 + 2 * 2 + 3 * 1
    # Not measured yet: a batch is a third of a float32 step on a CPU, a checkpoint after an evaluation what its
    # 16 bytes a parameter take to write at 300 MB/s (as `gptwiz estimate` prices them).
    unmeasured = EvalPlan(eval_interval=20, eval_iters=2, grad_accum=1, ckpt_interval_s=float("inf"), params=75_000_000)
    assert eta_seconds(unmeasured, iter=10, max_iters=60, step_s=3.0, evaluated_to=0) == pytest.approx(150 + 3 * 4 + 3 * 4)
    # Checkpoints by time between evaluations (every 10 s of 42 s between two: 4), 2.5 intervals left.
    timed = EvalPlan(eval_interval=20, eval_iters=2, grad_accum=1, ckpt_interval_s=10.0)
    assert eta_seconds(timed, iter=10, max_iters=60, step_s=2.0, evaluated_to=0, eval_batch_s=0.5,
                       ckpt_s=1.0) == 100 + 3 * 2 + (3 + 4 * 2.5) * 1
    probe = EvalPlan(eval_interval=20, eval_iters=2, grad_accum=1, ckpt_interval_s=300.0, evaluates=False)
    assert eta_seconds(probe, iter=10, max_iters=60, step_s=2.0) == 100
    assert eta_seconds(None, iter=10, max_iters=60, step_s=2.0) == 100


def _crafted_run(tmp_path: Path, last_iter: int, *, eval_at_20: bool, **status: object) -> RunPaths:
    """A running run of 60 iterations of 1 s each (evaluations every 20 of 2 batches a split), its records to
    `last_iter`: evaluation 0 took 2 s for its 4 batches; evaluation 20, if there, 4 s."""
    paths = live_run(tmp_path, 0, name="crafted")
    recs: list[dict] = [{"type": "eval", "iter": 0, "train_loss": 10.8, "val_loss": 10.8, "best_val_loss": 10.8,
                         "batches": 4, "eval_s": 2.0, "time": 1000.0}]
    for it in range(1, last_iter + 1):
        recs.append({"type": "train", "iter": it, "loss": 9.0, "lr": 1e-4, "dt_s": 1.0, "time": 1000.0 + it})
        if it == 20 and eval_at_20:
            recs.append({"type": "eval", "iter": 20, "train_loss": 9.0, "val_loss": 9.0, "best_val_loss": 9.0,
                         "batches": 4, "eval_s": 4.0, "time": 1024.0})
    paths.metrics.write_text("".join(json.dumps(r) + "\n" for r in recs))
    st = json.loads(paths.status.read_text())
    st.update({"iter": last_iter, "ckpt_s": 0.5, "phase": "training", **status})
    paths.status.write_text(json.dumps(st))
    return paths


def test_monitor_eta_does_not_jump_at_an_evaluation(tmp_path: Path, locked) -> None:
    """From crafted metrics: a batch took 0.5 s (evaluation 0), then 1 s (20): the median 0.75 s. The ETA falls
    by the time spent evaluating as the evaluation advances, rather than standing still and then dropping."""
    def eta(last_iter: int, eval_at_20: bool, **status: object) -> float:
        paths = _crafted_run(tmp_path / f"{last_iter}-{eval_at_20}-{len(status)}", last_iter,
                             eval_at_20=eval_at_20, **status)
        locked(paths)
        snap = RunMonitor(paths).poll()
        assert snap.state == "running" and snap.eta_s is not None, snap
        return snap.eta_s

    before = eta(20, False)  # step 20 done, its evaluation next
    assert before == 40 * 1.0 + 3 * 4 * 0.5 + 3 * 0.5  # evaluations 20, 40, 60 at evaluation 0's 0.5 s a batch
    during = eta(20, False, phase="evaluating", eval_done=1, eval_total=4)
    assert during == before - 1 * 0.5
    after = eta(20, True, phase="checkpointing")  # evaluation 20 recorded: 1 s a batch, median 0.75 s
    assert after == 40 * 1.0 + 2 * 4 * 0.75 + 2 * 0.5
    # No jump: less the evaluation and checkpoint done, what changed is only the batch time measured anew.
    assert after == before - 4 * 0.5 - 0.5 + 2 * 4 * (0.75 - 0.5)


def test_monitor_says_what_a_running_trainer_is_busy_with(tmp_path: Path, locked) -> None:
    paths = locked(_crafted_run(tmp_path, 20, eval_at_20=False, phase="evaluating", eval_done=3, eval_total=40))
    monitor = RunMonitor(paths)
    assert monitor.poll().activity == "evaluating (3 of 40 batches)"
    st = json.loads(paths.status.read_text())
    st.update(phase="checkpointing", eval_done=None, eval_total=None)
    paths.status.write_text(json.dumps(st) + " ")  # (another size: a new status.json to the monitor)
    assert monitor.poll().activity == "checkpointing"
    st.update(phase="training")
    paths.status.write_text(json.dumps(st))
    assert monitor.poll().activity is None
    # A finished run is busy with nothing, whatever a stale field says.
    assert RunMonitor(recorded_copy(tmp_path)).poll().activity is None


@async_test
async def test_dashboard_says_evaluating_k_of_n_batches(tmp_path: Path, locked) -> None:
    paths = locked(_crafted_run(tmp_path, 20, eval_at_20=False, phase="evaluating", eval_done=12, eval_total=40))
    app = GptwizApp(context(tmp_path, CPU_READING, poll_interval_s=0.05), watch=paths)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_polls(pilot)
        assert "evaluating (12 of 40 batches)" in screen_text(app)
        st = json.loads(paths.status.read_text())
        st.update(phase="evaluating", eval_done=30)
        paths.status.write_text(json.dumps(st))  # the trainer's next heartbeat
        await wait_for(pilot, lambda: "evaluating (30 of 40 batches)" in screen_text(app))
        st.update(phase="training", eval_done=None, eval_total=None)
        paths.status.write_text(json.dumps(st) + "  ")
        await wait_for(pilot, lambda: "evaluating" not in screen_text(app))
        assert "RUNNING" in screen_text(app)
