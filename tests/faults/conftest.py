"""The fault suite's report: each test records what it tried (`report(fault, trials, outcome)`), and a session
that ran the whole suite rewrites the table of tests/faults/README.md from those rows.

Under pytest-xdist every worker writes its rows into a folder of the run (named by xdist's testrunuid) and
the last worker to finish writes the README, so `python -m pytest -n 2` regenerates it as a plain run does.
A run of part of the suite (-k, -m, a node id, a single file) leaves the README alone.

It also holds the suite's shared fixtures: the token cache (`data_dir`) and one trained micro run
(`trained_template`), each made once a session however many xdist workers ask; a test works on a copy.
"""

from __future__ import annotations

import fcntl
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest
from conftest import SHAKESPEARE, build_once, run_cli, session_folder

from faults.support import TEMPLATE_RUN, fault_env, micro_preset, train_args

FAULTS_DIR = Path(__file__).resolve().parent
README = FAULTS_DIR / "README.md"
# The README's order: runs and checkpoints first, then viewers, data, bad input, security, endurance.
ORDER = ["test_kill_resume.py", "test_disk_full.py", "test_disk_full_everywhere.py", "test_corrupt_checkpoint.py",
         "test_stale_best.py", "test_torn_metrics.py", "test_lock.py", "test_export_races.py", "test_recycled_pid.py",
         "test_signals.py", "test_viewers.py", "test_malformed_files.py", "test_deep_json.py", "test_fifo.py",
         "test_symlink_writes.py", "test_symlink_deletes.py", "test_bad_dirs.py", "test_refused_start.py",
         "test_resume_changed_input.py", "test_prepare_faults.py", "test_prepare_recovery.py",
         "test_probe_orphans.py", "test_number_bounds.py", "test_fuzz_cli.py", "test_security.py",
         "test_hostile_text.py", "test_hostile_output.py", "test_small_hardening.py", "test_endurance.py"]

_ROWS = pytest.StashKey[list]()
_DESELECTED = pytest.StashKey[int]()


class Report:
    """What one test tried: each call adds a row to the README's table."""

    def __init__(self, rows: list[dict[str, Any]], nodeid: str):
        self.rows = rows
        self.nodeid = nodeid

    def __call__(self, fault: str, trials: int, outcome: str) -> None:
        self.rows.append({"test": self.nodeid, "fault": fault, "trials": int(trials), "outcome": outcome,
                          "seq": len(self.rows)})


@pytest.fixture
def report(request: pytest.FixtureRequest) -> Report:
    config = request.config
    if _ROWS not in config.stash:
        config.stash[_ROWS] = []
    return Report(config.stash[_ROWS], request.node.nodeid)


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A --data_dir holding the token cache of tinyshakespeare, tokenized once for the session (and its workers).
    Tests only read it: one that damages a cache works on a copy."""
    from gptwiz.data.cache import cache_text_file

    return build_once(session_folder(tmp_path_factory) / "faults-data",
                      lambda folder: cache_text_file(SHAKESPEARE, folder))


@pytest.fixture(scope="session")
def trained_template(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Path:
    """micro.json (2 iterations, an evaluation after each) and runs/base/, a finished run of it: trained once for
    the session (and its workers) and never changed. A test works on its own copy (`trained_copy`)."""
    def train(root: Path) -> None:
        preset = micro_preset(root, max_iters=2, eval_interval=1)
        run_cli(train_args(preset, TEMPLATE_RUN, data_dir=data_dir), cwd=root, env=fault_env(), check=True)

    return build_once(session_folder(tmp_path_factory) / "faults-trained", train)


@pytest.fixture
def trained_copy(trained_template: Path, tmp_path: Path) -> Path:
    """This test's own copy of the trained template, at tmp_path/w: micro.json and runs/base/."""
    return Path(shutil.copytree(trained_template, tmp_path / "w"))


def _in_suite(path: Any) -> bool:
    return Path(str(path)).resolve().parent == FAULTS_DIR


def pytest_deselected(items: list[pytest.Item]) -> None:
    if not items:
        return
    config = items[0].config
    config.stash[_DESELECTED] = config.stash.get(_DESELECTED, 0) + sum(_in_suite(i.path) for i in items)


_FAILED_IDS: list[str] = []  # this process's failed tests of the suite (a conftest is loaded once a process)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.failed:
        _FAILED_IDS.append(report.nodeid)


def _whole_suite(session: pytest.Session) -> bool:
    modules = {p.name for p in FAULTS_DIR.glob("test_*.py")}
    seen = {Path(str(item.path)).name for item in session.items if _in_suite(item.path)}
    partial = session.config.stash.get(_DESELECTED, 0) or any("::" in str(a) for a in session.config.args)
    return bool(modules) and modules <= seen and not partial


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    if config.pluginmanager.has_plugin("dsession") or not _whole_suite(session) or config.option.collectonly:
        return  # the xdist controller (its workers report), part of the suite only, or nothing run (--co)
    rows = config.stash.get(_ROWS, [])
    failed = sorted(set(_FAILED_IDS))
    workerinput = getattr(config, "workerinput", None)
    if workerinput is None:
        write_readme(rows, failed)
        return
    shared = Path(tempfile.gettempdir()) / f"gptwiz-faults-{workerinput['testrunuid']}"
    shared.mkdir(exist_ok=True)
    with open(shared / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        (shared / f"{workerinput['workerid']}.json").write_text(json.dumps({"rows": rows, "failed": failed}))
        parts = [json.loads(p.read_text()) for p in sorted(shared.glob("gw*.json"))]
        if len(parts) == int(workerinput["workercount"]):
            write_readme([r for p in parts for r in p["rows"]], sorted({f for p in parts for f in p["failed"]}))
            shutil.rmtree(shared, ignore_errors=True)


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def write_readme(rows: list[dict[str, Any]], failed: list[str]) -> None:
    def key(row: dict[str, Any]) -> tuple[int, str, int]:
        module = row["test"].split("::")[0].rsplit("/", 1)[-1]
        return (ORDER.index(module) if module in ORDER else len(ORDER), row["test"], row["seq"])

    failed_tests = {f.split("[")[0] for f in failed}
    lines = [
        "# Fault-injection suite: what was tried and what happened",
        "",
        "Generated by `tests/faults/conftest.py` from the results of the last run of the whole suite",
        "(`python -m pytest tests/faults`, or the full `python -m pytest -n 2`); do not edit by hand.",
        "Each row is one fault or kind of bad input; *trials* counts how many times it was inflicted, and the",
        "outcome is what the test measured and asserted. The fault hooks (`GPTWIZ_FAULT_*` and the probe's fake",
        "out-of-memory) are described in `gptwiz/common/faults.py`.",
        "",
        "| # | Fault or bad input | Trials | Outcome | Result | Test |",
        "|---|---|---:|---|---|---|",
    ]
    for n, row in enumerate(sorted(rows, key=key), 1):
        test = row["test"]
        status = "FAILED" if test in failed or test.split("[")[0] in failed_tests else "pass"
        short = test.split("tests/faults/", 1)[-1]
        lines.append(f"| {n} | {_cell(row['fault'])} | {row['trials']} | {_cell(row['outcome'])} | {status} | "
                     f"`{_cell(short)}` |")
    recorded = {r["test"] for r in rows}
    unrecorded = [f for f in failed if f not in recorded]
    if unrecorded:
        lines += ["", "Tests that failed before recording a row:", ""] + [f"- `{f}`" for f in unrecorded]
    total = sum(r["trials"] for r in rows)
    lines += ["", f"{len(rows)} faults and inputs, {total} trials in all; "
              f"{'all passed' if not failed else f'{len(failed)} test(s) FAILED'}.", ""]
    README.write_text("\n".join(lines))
