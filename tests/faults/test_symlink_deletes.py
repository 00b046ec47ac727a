"""Symlinks planted where gptwiz deletes or renames: nothing is deleted, renamed or written through a link. A
folder gptwiz names itself (a run's tb/, the run folder, an export's lock and temporary folder) planted as a link
is refused in one line; a leftover gptwiz removes by name (a probe's scratch folder, a prepare's partial folder)
that is a link is passed over or removed itself. In every trial the folder the link points at is unchanged."""

from __future__ import annotations

import importlib.machinery
import os
import shutil
import sys
import types
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import assert_one_line_error, run_cli
from crafted_runs import config, records

from faults.support import TEMPLATE_RUN, fault_env
from gptwiz.trackers.reporter import Trackers, TrackingReporter
from gptwiz.training.options import RunConfig, TrainResult
from gptwiz.training.reporting import Reporter

VICTIM_FILES = {"events.out.tfevents.1700000000.host.1.0": b"the user's own event file\n",
                "notes.txt": b"the user's notes\n"}


def _victim(tmp_path: Path) -> Path:
    folder = tmp_path / "victim"
    folder.mkdir()
    for name, data in VICTIM_FILES.items():
        (folder / name).write_bytes(data)
    return folder


def _contents(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def test_a_symlinked_tb_folder_is_refused_and_its_target_untouched(trained_copy: Path, tmp_path: Path,
                                                                   report) -> None:
    pytest.importorskip("tensorboard")
    victim = _victim(tmp_path)
    tb = trained_copy / "runs" / TEMPLATE_RUN / "tb"
    tb.symlink_to(victim)
    proc = run_cli(["report", TEMPLATE_RUN, "--tensorboard"], cwd=trained_copy, env=fault_env())
    assert_one_line_error(proc, f"'runs/{TEMPLATE_RUN}/tb' is a symlink", str(victim))
    assert _contents(victim) == VICTIM_FILES
    assert tb.is_symlink()
    report("runs/NAME/tb planted as a symlink to a folder holding an events.out.tfevents file, "
           "`gptwiz report NAME --tensorboard`", 1,
           "exit 2, one line naming tb and the link; the folder it points at byte-identical (no event file "
           "deleted, none written)")


# --- every other place that deletes or renames, with a link planted there ------------------------------

def _report_run_folder(work: Path, victim: Path) -> str:
    """The run folder itself a link to a run elsewhere, whose tb/ holds event files: refused, never followed."""
    pytest.importorskip("tensorboard")
    elsewhere = victim.parent / "elsewhere"
    shutil.move(work / "runs" / TEMPLATE_RUN, elsewhere)
    shutil.copytree(victim, elsewhere / "tb")
    (work / "runs" / TEMPLATE_RUN).symlink_to(elsewhere)
    proc = run_cli(["report", TEMPLATE_RUN, "--tensorboard"], cwd=work, env=fault_env())
    assert_one_line_error(proc, "run folder", "symlink")
    assert _contents(elsewhere / "tb") == VICTIM_FILES
    return "runs/NAME a symlink to a run folder elsewhere, `gptwiz report NAME --tensorboard`: exit 2, one line"


class _Console(Reporter):
    """The console's place in the trainer's TrackingReporter: what it was told."""

    def __init__(self) -> None:
        self.logged: list[str] = []

    def log(self, message: str) -> None:
        self.logged.append(message)


def _tracked(work: Path, victim: Path, folder: str, trackers: Trackers) -> list[str]:
    """One record logged live by a trainer's TrackingReporter, with runs/live/FOLDER planted as a link."""
    runs = work / "runs"
    (runs / "live").mkdir()
    (runs / "live" / folder).symlink_to(victim)
    console = _Console()
    reporter = TrackingReporter(console, trackers, runs)
    cfg = RunConfig.from_json(config("live", max_iters=2, eval_interval=1))
    reporter.start(cfg, 0)
    reporter.step(next(r for r in records(cfg.to_json()) if r["type"] == "train"))
    reporter.end(TrainResult("finished", 0, 1, None, None, None, runs / "live"))
    return console.logged


def _train_tensorboard(work: Path, victim: Path) -> str:
    pytest.importorskip("tensorboard")
    logged = _tracked(work, victim, "tb", Trackers(tensorboard=True))
    assert any("not logging to TensorBoard" in m and "symlink" in m for m in logged), logged
    return "runs/NAME/tb a symlink as `gptwiz train --tensorboard` starts logging: one warning line, the run goes on"


def _train_wandb(work: Path, victim: Path) -> str:
    # wandb is not installed here: a stand-in module that writes a file where it is told to, as wandb does.
    fake = types.ModuleType("wandb")
    fake.__spec__ = importlib.machinery.ModuleSpec("wandb", None)

    class FakeRun:
        def log(self, values: dict[str, float], step: int) -> None:
            pass

        def finish(self, exit_code: int = 0) -> None:
            pass

    def init(dir: str | None = None, **kwargs: object) -> FakeRun:
        Path(dir or ".", "wandb", "latest-run").write_text("run")
        return FakeRun()

    fake.init = init  # type: ignore[attr-defined]
    saved = sys.modules.get("wandb")
    sys.modules["wandb"] = fake
    try:
        logged = _tracked(work, victim, "wandb", Trackers(wandb="proj"))
    finally:
        if saved is None:
            sys.modules.pop("wandb", None)
        else:
            sys.modules["wandb"] = saved
    assert any("not logging to W&B" in m and "symlink" in m for m in logged), logged
    return "runs/NAME/wandb a symlink as `gptwiz train --wandb` starts logging: one warning line, the run goes on"


def _export_name(out: Path, kind: str) -> Path:
    from gptwiz.export.target import ExportTarget

    target = ExportTarget(out, ())
    return {"lock": target.lock_path, "tmp": target.tmp, "old": target.old}[kind]


def _export_planted(kind: str) -> Callable[[Path, Path], str]:
    def case(work: Path, victim: Path) -> str:
        out = work / "models" / "drop"
        out.parent.mkdir()
        planted = _export_name(out, kind)
        planted.symlink_to(victim / "notes.txt" if kind == "lock" else victim)
        proc = run_cli(["export", str(work / "runs" / TEMPLATE_RUN), "--out", str(out)], cwd=work, env=fault_env())
        assert_one_line_error(proc, str(planted))
        assert not out.exists() and planted.is_symlink()
        return f"the export's {kind} name beside --out planted as a symlink: exit 2, one line naming it"
    return case


def _probe_scratch(work: Path, victim: Path) -> str:
    """A link named like a probe's scratch folder in the temporary folder: never followed by the clean-up."""
    from gptwiz.training.probe.scratch import SCRATCH_PREFIX, remove_stale_scratch

    tmp = work / "tmp"
    tmp.mkdir()
    (tmp / f"{SCRATCH_PREFIX}planted").symlink_to(victim)
    remove_stale_scratch(tmp)
    return "a link named like a dead probe's scratch folder: the clean-up passes it over"


def _prepare_leftover(work: Path, victim: Path) -> str:
    """A link named like a killed prepare's partial folder: removed itself, never what it points at."""
    from gptwiz.data.prepare.out_dir import recover_interrupted

    out_dir = work / "ds"
    link = work / f".ds.partial-{2 ** 22 + 12345}"  # above any pid Linux gives: a dead prepare's
    link.symlink_to(victim)
    recover_interrupted(out_dir)
    assert not os.path.lexists(link) and not out_dir.exists()
    return "a link named like a killed prepare's partial folder: the link alone removed"


CASES: dict[str, Callable[[Path, Path], str]] = {
    "report-run-folder": _report_run_folder,
    "train-tensorboard": _train_tensorboard,
    "train-wandb": _train_wandb,
    "export-lock": _export_planted("lock"),
    "export-temporary": _export_planted("tmp"),
    "export-earlier": _export_planted("old"),
    "probe-scratch": _probe_scratch,
    "prepare-partial": _prepare_leftover,
}


@pytest.mark.parametrize("site", list(CASES))
def test_a_link_planted_where_gptwiz_deletes_is_never_followed(trained_copy: Path, tmp_path: Path, site: str,
                                                                report) -> None:
    victim = _victim(tmp_path)
    outcome = CASES[site](trained_copy, victim)
    assert _contents(victim) == VICTIM_FILES
    report(f"symlink planted at a deletion site: {site}", 1, f"{outcome}; the folder it points at byte-identical")
