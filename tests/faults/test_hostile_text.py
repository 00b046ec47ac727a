"""Outside text never reaches a terminal, a log or a written card as a control sequence: a run folder named with
OSC 52, OSC 0, CSI 2J, BEL and C1 characters, whose status.json, config.json and dataset hold them too, and preset
and input files named with them, given to every verb that reads a run or a file. What each prints (stdout and
stderr), the train.log a resume appends to and the model card an export writes hold no ESC, BEL, U+009B or U+0085:
the text is shown with its escapes (\\x1b), as `gptwiz.common.inert` shows it."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import run_cli

from faults.hostile import (
    HOSTILE,
    hostile_input,
    hostile_name,
    hostile_preset,
    hostile_run,
    on_terminal,
    raw_controls,
)
from faults.support import TEMPLATE_RUN, fault_env

EVIL = "evil"  # a run by --model_name (which refuses HOSTILE in a name): its files hold HOSTILE


def _checkpoint_emitting_controls(run: Path) -> bool:
    """Make the run's model generate control sequences, where the builder for that exists (tests/faults/
    hostile_checkpoint.py); True when it did."""
    try:
        from faults.hostile_checkpoint import make_control_emitting_checkpoint  # lazy: optional builder
    except ImportError:
        return False
    make_control_emitting_checkpoint(run)
    return True


def _clean(proc: subprocess.CompletedProcess[str], what: str) -> None:
    for stream, text in (("stdout", proc.stdout), ("stderr", proc.stderr)):
        assert not raw_controls(text), (what, stream, raw_controls(text), text[-2000:])
    assert "Traceback" not in proc.stderr, (what, proc.stderr[-3000:])


def _run(args: list[str], cwd: Path, what: str, *, ok: bool | None = None, stdin: str | None = None,
         ) -> subprocess.CompletedProcess[str]:
    if stdin is None:
        proc = run_cli(args, cwd=cwd, env=fault_env(), timeout=300)
    else:
        proc = subprocess.run([sys.executable, "-m", "gptwiz", *args], cwd=cwd, env=fault_env(), input=stdin,
                              capture_output=True, text=True, timeout=300)
    _clean(proc, what)
    if ok is not None:
        assert (proc.returncode == 0) == ok, (what, proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:])
    return proc


def _hostile_dataset(work: Path) -> Path:
    """A copy of the run's dataset in a folder named with HOSTILE, its manifest naming HOSTILE paths."""
    config = json.loads((work / "runs" / TEMPLATE_RUN / "config.json").read_text())
    folder = Path(shutil.copytree(config["data"]["dataset_dir"], work / hostile_name("data")))
    manifest = json.loads((folder / "manifest.json").read_text())
    for source in manifest["sources"]:
        source["name"] = hostile_name("source")
        source["glob"] = str(work / hostile_name("input")) + "*.txt"
        source["root"] = str(work / hostile_name("root"))
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return folder


def test_the_run_list_and_report_show_a_hostile_run_inert(trained_copy: Path, report) -> None:
    work = trained_copy
    run = hostile_run(work)
    hostile_run(work, EVIL)
    _run(["runs"], work, "runs", ok=True)
    listed = json.loads(_run(["runs", "--json"], work, "runs --json", ok=True).stdout)
    assert run.name in [r["name"] for r in listed]  # JSON escapes the characters; the name itself is kept
    shown = _run(["runs"], work, "runs (table)", ok=True).stdout
    assert "\\x1b" in shown and "compare runs" in shown
    for names in ([str(run)], [str(run), EVIL, TEMPLATE_RUN]):
        _run(["report", *names], work, f"report {len(names)} run(s) in the terminal", ok=True)
    out = work / "cmp.html"
    _run(["report", str(run), EVIL, "--out", str(out)], work, "report --out html", ok=True)
    assert not raw_controls(out.read_text()), raw_controls(out.read_text())
    report(fault="a run folder named with OSC 52, OSC 0, CSI 2J, BEL and C1 characters, its status.json error, "
           "config.json preset, preset path, input file and source name holding them", trials=6,
           outcome="`runs` (table, `compare runs` line, --json), `report` in the terminal (one run, three compared) "
                   "and as HTML: no ESC, BEL or C1 byte in the output or the page; the name shown with its escapes")


def test_verbs_on_a_hostile_run_print_it_inert(trained_copy: Path, report) -> None:
    work = trained_copy
    named = hostile_run(work)
    hostile_run(work, EVIL)
    data = _hostile_dataset(work)
    card_dir = work / "exported"
    _run(["export", EVIL, "--out", str(card_dir)], work, "export", ok=True)
    card = (card_dir / "README.md").read_text()
    assert not raw_controls(card), raw_controls(card)
    _run(["export", str(named), "--out", str(work / hostile_name("out"))], work, "export of the named run")
    _run(["eval", EVIL, "--dataset_dir", str(data), "--device", "cpu"], work, "eval on a hostile dataset", ok=True)
    held_out = _run(["runs"], work, "runs with a held-out result on a hostile dataset", ok=True).stdout
    assert "held-out" in held_out
    _run(["eval", EVIL, "--input_file", str(hostile_input(work))], work, "eval of a short hostile file")
    _run(["dataset-info", str(data)], work, "dataset-info", ok=True)
    _run(["dataset-info", str(work / hostile_name("nothing"))], work, "dataset-info of no folder", ok=False)
    _run(["stop", str(named), "--wait", "0"], work, "stop of a run not running", ok=False)
    _run(["stop", hostile_name("gone")], work, "stop of no run", ok=False)
    report(fault="`export`, `eval` (and `runs` showing its result), `dataset-info`, `stop` given a run, a dataset "
           "and files named with OSC 52, "
           "OSC 0, CSI 2J, BEL and C1 characters (their config, status and manifest holding them)", trials=9,
           outcome="stdout, stderr and the written model card hold no ESC, BEL or C1 character")


def test_hostile_preset_and_input_paths_make_inert_error_lines(trained_copy: Path, report) -> None:
    work = trained_copy
    preset = work / (hostile_name("bad") + ".json")
    preset.write_text('{"n_layer": "many"}')
    missing = work / (hostile_name("missing") + ".json")
    short = hostile_input(work)
    tries = {
        "train, a missing preset": ["train", "--config_file", str(missing), "--model_name", "x", "--quiet"],
        "train, a bad preset": ["train", "--config_file", str(preset), "--model_name", "x", "--quiet"],
        "train, a short input": ["train", "--config_file", str(work / "micro.json"), "--model_name", "x",
                                 "--input_file", str(short), "--quiet"],
        "train, a missing input": ["train", "--config_file", str(work / "micro.json"), "--model_name", "x",
                                   "--input_file", str(work / hostile_name("gone")), "--quiet"],
        "estimate, a missing preset": ["estimate", "--config_file", str(missing)],
        "estimate, a bad preset": ["estimate", "--config_file", str(preset)],
        "probe, a missing preset": ["probe", "--config_file", str(missing)],
        "probe, a short input": ["probe", "--config_file", str(work / "micro.json"), "--input_file", str(short)],
        "sample, a hostile name": ["sample", "--model_name", HOSTILE],
        "report, no such run": ["report", hostile_name("gone")],
    }
    for what, args in tries.items():
        _run(args, work, what, ok=False)
    shown = _run(["estimate", "--config_file", str(hostile_preset(work)), "--device", "cpu"], work,
                 "estimate of a good preset", ok=True).stdout
    assert "\\x1b" in shown
    report(fault="preset and input file paths, and run names, holding OSC 52, OSC 0, CSI 2J, BEL and C1 characters "
           "(missing, malformed, too short; and a good preset so named)", trials=len(tries) + 1,
           outcome="`train`, `estimate`, `probe`, `sample`, `report` refuse them with an error line that shows the "
                   "path with its escapes, and `estimate` names the good one so: no ESC, BEL or C1 character on "
                   "stdout or stderr")


def test_resuming_a_hostile_run_logs_it_inert(trained_copy: Path, report) -> None:
    work = trained_copy
    run = hostile_run(work, EVIL)
    before = (run / "train.log").read_bytes()
    _run(["train", "--model_name", EVIL, "--resume", "--max_iters", "3", "--quiet"], work, "train --resume", ok=True)
    log = (run / "train.log").read_bytes()
    assert len(log) > len(before)
    assert not raw_controls(log), raw_controls(log)
    report(fault="`train --resume` of a run whose config.json preset, paths and source name hold OSC 52, OSC 0, "
           "CSI 2J, BEL and C1 characters", trials=1,
           outcome="the console lines and train.log hold no ESC, BEL or C1 character")


@pytest.mark.parametrize("verb", ["sample", "chat"])
def test_a_hostile_runs_text_is_shown_inert(trained_copy: Path, report, verb: str) -> None:
    work = trained_copy
    run = hostile_run(work, EVIL)
    emitting = _checkpoint_emitting_controls(run)
    if verb == "sample":
        shown, err = on_terminal(["sample", "--model_name", EVIL, "--max_new_tokens", "40", "--device", "cpu"], work)
        assert b"Traceback" not in err, err[-2000:]
        assert not raw_controls(shown) and not raw_controls(err), (raw_controls(shown), shown[-2000:], err[-2000:])
    else:
        _run(["chat", EVIL, "--max_new_tokens", "40", "--device", "cpu"], work, "chat", ok=True,
             stdin=f"hello {HOSTILE}\n")
    report(fault=f"`{verb}` of a run whose files hold OSC 52, OSC 0, CSI 2J, BEL and C1 characters"
           + (", its model rewritten to generate them" if emitting else ""), trials=1,
           outcome=("what reaches the terminal" if verb == "sample" else "stdout") + " and stderr hold no ESC, "
                   "BEL or C1 character")
