"""Symlinks planted in a run folder: every file gptwiz writes or appends there refuses to follow a link. An
append (train.log, console.log, metrics.jsonl, the lock) is opened with O_NOFOLLOW and refused in one line; a
whole file (status.json, config.json, checkpoints) is written beside and renamed over the link, which replaces
the link, not what it names. In every trial the file a link points at, outside the runs folder, is unchanged."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import assert_one_line_error, run_cli

from faults.support import fault_env, micro_preset, start, status, train_args, train_iters, wait_for

VICTIM_TEXT = b"a file of the user's, outside runs/\n"


@pytest.fixture
def work(trained_copy: Path) -> Path:
    """micro.json and runs/base/, a run of 2 iterations (a --resume --max_iters 4 continues it; the fresh runs
    below train 2 iterations too): this test's copy."""
    return trained_copy


def _victim(tmp_path: Path, name: str = "victim.txt") -> Path:
    path = tmp_path / name
    path.write_bytes(VICTIM_TEXT)
    return path


def _untouched(victim: Path) -> bool:
    return victim.read_bytes() == VICTIM_TEXT


def _plant(link: Path, target: Path) -> None:
    link.parent.mkdir(parents=True, exist_ok=True)
    if link.exists() or link.is_symlink():
        link.unlink()
    link.symlink_to(target)


def _snapshot(run: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(run.iterdir()) if p.is_file() and not p.is_symlink()}


@pytest.mark.parametrize("name", ["train.log", "lock"])
def test_an_appended_file_planted_as_a_link_is_refused_on_a_fresh_run(work: Path, tmp_path: Path, data_dir: Path,
                                                                       name: str, report) -> None:
    victim = _victim(tmp_path)
    run = work / "runs" / "fresh"
    _plant(run / name, victim)
    proc = run_cli(train_args(work / "micro.json", "fresh", data_dir=data_dir), cwd=work, env=fault_env())
    assert_one_line_error(proc, name)
    assert _untouched(victim)
    # Refused before its first step: the folder is as it was, the link and nothing else.
    assert sorted(p.name for p in run.iterdir()) == [name] and (run / name).is_symlink()
    report(f"{name} planted as a symlink to a file outside runs/, fresh `gptwiz train`", 1,
           "exit 2, one line naming it; the linked file unchanged; the folder left holding the link only")


def test_train_log_planted_as_a_link_is_refused_on_resume(work: Path, tmp_path: Path, report) -> None:
    victim = _victim(tmp_path)
    run = work / "runs" / "base"
    _plant(run / "train.log", victim)
    before = _snapshot(run)
    proc = run_cli(["train", "--model_name", "base", "--resume", "--quiet"], cwd=work, env=fault_env())
    assert_one_line_error(proc, "train.log", "symlink")
    assert _untouched(victim)
    assert _snapshot(run) == before  # a refused resume changes nothing: status, config, metrics, checkpoints
    report("train.log of a resumable run replaced by a symlink, `gptwiz train --resume`", 1,
           "exit 2, one line; the linked file unchanged; every file of the run byte-identical")


def test_console_log_planted_as_a_link_is_refused_under_detach(work: Path, tmp_path: Path, data_dir: Path,
                                                               report) -> None:
    victim = _victim(tmp_path)
    run = work / "runs" / "bg"
    _plant(run / "console.log", victim)
    proc = run_cli([*train_args(work / "micro.json", "bg", data_dir=data_dir), "--detach"], cwd=work, env=fault_env())
    assert_one_line_error(proc, "console.log", "symlink")
    assert _untouched(victim)
    assert sorted(p.name for p in run.iterdir()) == ["console.log"]  # no trainer was started
    report("console.log planted as a symlink, `gptwiz train --detach`", 1,
           "exit 2, one line; the linked file unchanged; no trainer started, nothing else written")


def test_whole_files_planted_as_links_are_replaced_not_followed(work: Path, tmp_path: Path, data_dir: Path,
                                                                report) -> None:
    # A fresh run in a folder holding links for status.json and metrics.jsonl, and a resume of a run whose
    # status.json and metrics.jsonl were replaced by links: both train to the end.
    victims = {name: _victim(tmp_path, f"victim-{name}") for name in ("fresh-status", "fresh-metrics",
                                                                       "good-status", "good-metrics")}
    fresh, good = work / "runs" / "fresh", work / "runs" / "base"
    _plant(fresh / "status.json", victims["fresh-status"])
    _plant(fresh / "metrics.jsonl", victims["fresh-metrics"])
    _plant(good / "status.json", victims["good-status"])
    _plant(good / "metrics.jsonl", victims["good-metrics"])
    first = run_cli(train_args(work / "micro.json", "fresh", data_dir=data_dir), cwd=work, env=fault_env())
    second = run_cli(["train", "--model_name", "base", "--resume", "--max_iters", "4", "--quiet"], cwd=work,
                     env=fault_env())
    for proc in (first, second):
        assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert all(_untouched(v) for v in victims.values())
    for run in (fresh, good):
        for name in ("status.json", "metrics.jsonl"):
            assert (run / name).is_file() and not (run / name).is_symlink(), (run, name)
        assert status(run)["state"] == "finished"
    assert train_iters(fresh) == [1, 2] and train_iters(good) == [3, 4]  # (its records went with the link)
    report("status.json and metrics.jsonl planted as symlinks: a fresh run, and a --resume", 2,
           "both train to the end; each link replaced by a real file (status.json written beside and renamed "
           "over it; metrics.jsonl removed or rewritten, then appended); the 4 linked files unchanged")


def test_links_planted_while_training_are_not_followed(tmp_path: Path, data_dir: Path, report) -> None:
    # An attacker who swaps the appended files for links while the trainer runs: it keeps writing the files it
    # opened (which are no longer in the folder); nothing reaches the linked files.
    preset = micro_preset(tmp_path, max_iters=20, eval_interval=1000)
    run = tmp_path / "runs" / "live"
    victims = {name: _victim(tmp_path, f"victim-{name}") for name in ("train.log", "metrics.jsonl")}
    proc = start(train_args(preset, "live", data_dir=data_dir), cwd=tmp_path, log=tmp_path / "out.log")
    try:
        wait_for(lambda: len(train_iters(run)) >= 2, proc=proc)
        for name, victim in victims.items():
            _plant(run / name, victim)
        assert proc.poll() is None  # the links were there while it trained
        assert proc.wait(timeout=300) == 0, (tmp_path / "out.log").read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert all(_untouched(v) for v in victims.values())
    assert status(run)["state"] == "finished"
    report("train.log and metrics.jsonl swapped for symlinks while the trainer runs", 1,
           "the run finishes; both linked files unchanged (the trainer appends only to the files it opened)")
