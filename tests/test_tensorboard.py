"""TensorBoard and W&B logs: event files read back with TensorBoard's own reader, written live by the trainer's
TrackingReporter (driven here with records as the trainer sends them) and after the fact by
`gptwiz report --tensorboard`; a missing package refused in one line."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import sys
import types
from pathlib import Path
from typing import Any

import pytest
from crafted_runs import config, records, write_run

from gptwiz.cli import main
from gptwiz.common.errors import UsageError
from gptwiz.trackers.reporter import Trackers, TrackingReporter
from gptwiz.training.options import RunConfig, TrainResult
from gptwiz.training.reporting import Reporter

pytest.importorskip("tensorboard")


def _events(log_dir: Path) -> Any:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(log_dir), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    return acc


def _steps(acc: Any, tag: str) -> list[int]:
    return [e.step for e in acc.Scalars(tag)]


class Recording(Reporter):
    """The console's place: what it was handed."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def start(self, cfg: RunConfig, start_iter: int) -> None:
        self.calls.append(("start", start_iter))

    def step(self, record: dict[str, Any]) -> None:
        self.calls.append(("step", record["iter"]))

    def eval(self, record: dict[str, Any]) -> None:
        self.calls.append(("eval", record["iter"]))

    def log(self, message: str) -> None:
        self.calls.append(("log", message))

    def end(self, result: TrainResult) -> None:
        self.calls.append(("end", result.state))


def _drive(reporter: Reporter, cfg: RunConfig, recs: list[dict[str, Any]], start_iter: int = 0,
           folder: Path | None = None) -> None:
    """The trainer's calls, in its order: start, then step or eval for each record, then end."""
    reporter.start(cfg, start_iter)
    for rec in recs:
        (reporter.eval if rec["type"] == "eval" else reporter.step)(rec)
    reporter.end(TrainResult("finished", recs[-1]["iter"], cfg.train.max_iters, None, None, None,
                             folder or Path(".")))


def test_report_tensorboard_writes_every_iteration_and_evaluation(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    runs = tmp_path / "runs"
    folder = write_run(runs, "done", max_iters=45, eval_interval=10)
    recs = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    assert main(["report", "--tensorboard", "done", "--runs_dir", str(runs)]) == 0
    assert f"done: {len(recs)} records as TensorBoard events in {folder / 'tb'}" in capsys.readouterr().out
    acc = _events(folder / "tb")
    assert _steps(acc, "loss/train") == list(range(1, 46))
    assert _steps(acc, "loss/val") == [0, 10, 20, 30, 40]
    train = [r for r in recs if r["type"] == "train"]
    assert [e.value for e in acc.Scalars("loss/train")] == pytest.approx([r["loss"] for r in train], rel=1e-6)
    assert [e.wall_time for e in acc.Scalars("loss/train")] == pytest.approx([r["time"] for r in train])
    for tag in ("optim/lr", "speed/tokens_per_sec", "speed/mfu", "memory/peak_gib", "loss/train_at_eval"):
        assert tag in acc.Tags()["scalars"], tag
    assert "config/text_summary" in acc.Tags()["tensors"]
    text = acc.Tensors("config/text_summary")[0].tensor_proto.string_val[0].decode()
    assert '"learning_rate": 0.0003' in text

    # Again: the event files are replaced, not added to (TensorBoard would show every point twice).
    assert main(["report", "--tensorboard", "done", "--runs_dir", str(runs)]) == 0
    assert len(list((folder / "tb").glob("events.out.tfevents.*"))) == 1
    assert _steps(_events(folder / "tb"), "loss/train") == list(range(1, 46))


def test_report_tensorboard_refuses_a_running_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from gptwiz.runs.lock import RunLock
    from gptwiz.runs.paths import RunPaths

    runs = tmp_path / "runs"
    lock = RunLock(RunPaths(write_run(runs, "live", state="running", upto=12)))
    lock.acquire()
    try:
        assert main(["report", "--tensorboard", "live", "--runs_dir", str(runs)]) == 2
    finally:
        lock.release()
    err = capsys.readouterr().err
    assert "still running" in err and len(err.strip().splitlines()) == 1


def test_tracking_reporter_logs_what_the_trainer_hands_it(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    cfg = RunConfig.from_json(config("live", max_iters=30, eval_interval=10))
    recs = records(cfg.to_json())
    inner = Recording()
    _drive(TrackingReporter(inner, Trackers(tensorboard=True), runs), cfg, recs)
    acc = _events(runs / "live" / "tb")
    assert _steps(acc, "loss/train") == list(range(1, 31))
    assert _steps(acc, "loss/val") == [0, 10, 20, 30]
    # The console heard everything, in the trainer's order, plus where the events go.
    kinds = [c[0] for c in inner.calls]
    assert kinds[0] == "start" and kinds[-1] == "end" and kinds.count("step") == 30 and kinds.count("eval") == 4
    assert any(k == "log" and "tensorboard --logdir" in m for k, m in inner.calls)


def test_a_resumed_run_replaces_the_iterations_it_trains_again(tmp_path: Path) -> None:
    log_dir = tmp_path / "tb"
    cfg = RunConfig.from_json(config("again", max_iters=30, eval_interval=10))
    first = [r for r in records(cfg.to_json(), seed=1) if r["iter"] <= 25]
    _drive(TrackingReporter(Recording(), Trackers(tensorboard=log_dir), tmp_path), cfg, first)
    # Killed at 25, resumed from the checkpoint of iteration 20: 21..30 are trained (and logged) again.
    second = [r for r in records(cfg.to_json(), seed=2) if r["iter"] > 20]
    _drive(TrackingReporter(Recording(), Trackers(tensorboard=log_dir), tmp_path), cfg, second, start_iter=20)
    acc = _events(log_dir)
    assert _steps(acc, "loss/train") == list(range(1, 31))
    values = {e.step: e.value for e in acc.Scalars("loss/train")}
    assert values[22] == pytest.approx(next(r["loss"] for r in second if r["iter"] == 22))
    assert values[3] == pytest.approx(next(r["loss"] for r in first if r["iter"] == 3))


def test_a_failing_tracker_is_dropped_and_the_run_goes_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from gptwiz.trackers import tensorboard

    def broken(self: Any, record: dict[str, Any]) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(tensorboard.TensorBoardSink, "add", broken)
    cfg = RunConfig.from_json(config("full", max_iters=10, eval_interval=5))
    inner = Recording()
    reporter = TrackingReporter(inner, Trackers(tensorboard=True), tmp_path)
    _drive(reporter, cfg, records(cfg.to_json()))
    warnings = [m for k, m in inner.calls if k == "log" and m.startswith("warning")]
    assert warnings == ["warning: stopped logging to TensorBoardSink: OSError: [Errno 28] No space left on device"]
    assert [c[0] for c in inner.calls].count("step") == 10 and reporter.sinks == []


def test_a_missing_package_is_refused_in_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name in ("tensorboard", "wandb")
                        else real(name, *a))
    with pytest.raises(UsageError, match=r"--tensorboard needs the tensorboard package.*gptwiz\[tensorboard\]"):
        Trackers(tensorboard=True).check()
    with pytest.raises(UsageError, match=r"--wandb needs the wandb package.*WANDB_MODE=offline"):
        Trackers(wandb="proj").check()
    runs = tmp_path / "runs"
    write_run(runs, "r", upto=5)
    assert main(["report", "--tensorboard", "r", "--runs_dir", str(runs)]) == 2
    err = capsys.readouterr().err
    assert "needs the tensorboard package" in err and len(err.strip().splitlines()) == 1


def test_wandb_gets_the_same_scalars(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """wandb itself is not installed here: a stand-in module records what gptwiz calls, as wandb's API takes it."""
    logged: list[tuple[dict[str, float], int]] = []
    inits: list[dict[str, Any]] = []
    finished: list[int] = []

    class FakeRun:
        def log(self, values: dict[str, float], step: int) -> None:
            logged.append((values, step))

        def finish(self, exit_code: int = 0) -> None:
            finished.append(exit_code)

    fake = types.ModuleType("wandb")
    fake.__spec__ = importlib.machinery.ModuleSpec("wandb", None)
    fake.init = lambda **kwargs: inits.append(kwargs) or FakeRun()  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "wandb", fake)
    cfg = RunConfig.from_json(config("wb", max_iters=20, eval_interval=10))
    _drive(TrackingReporter(Recording(), Trackers(wandb="my-project"), tmp_path), cfg, records(cfg.to_json()))
    assert inits[0]["project"] == "my-project" and inits[0]["name"] == "wb"
    assert inits[0]["config"]["train"]["learning_rate"] == 3e-4 and inits[0]["dir"] == str(tmp_path / "wb")
    assert [step for values, step in logged if "loss/train" in values] == list(range(1, 21))
    assert [step for values, step in logged if "loss/val" in values] == [0, 10, 20]
    assert finished == [0]


def test_nothing_is_written_for_a_run_that_fails_before_its_first_record(tmp_path: Path) -> None:
    cfg = RunConfig.from_json(config("refused"))
    inner = Recording()
    reporter = TrackingReporter(inner, Trackers(tensorboard=True), tmp_path)
    reporter.start(cfg, 0)
    reporter.end(TrainResult("failed", 0, 60, None, None, "out of memory", tmp_path / "refused"))
    assert not (tmp_path / "refused").exists()  # the trainer puts back the folder as it was: no tb/ left in it
    assert [c[0] for c in inner.calls] == ["start", "end"]
