"""Malformed run files and manifests: a status.json with text where numbers go, a pid of 10**20, a document nested
100,000 deep or of gigabytes; a config.json of {} or of the wrong types; a manifest with string counts.

Every viewer (`gptwiz runs`, `stop`, the wizard's welcome screen, `wizard --plain`, the dashboard, even while it is
open) lists such a run as unreadable with the reason and goes on showing the others; `--resume` of a hand-edited
config.json and an --init_from_model source with a bad one are refused in one line naming the file and the key,
and a refused resume changes no byte of the run folder; `dataset-info` and `train --dataset_dir` refuse a manifest
of the wrong types in one line.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO, assert_one_line_error, run_cli
from test_tui_cli import _pty_run
from tui_support import async_test, flat, quiet_context, screen_text, wait_for

from faults.support import fault_env, micro_preset, train_args
from gptwiz.runs.paths import RunPaths
from gptwiz.tui.app import GptwizApp

RECORDED = REPO / "tests" / "tui_data" / "recorded_run"
RUNNING = {**json.loads((RECORDED / "status.json").read_text()), "state": "running"}

# status.json objects no viewer may act on: each is {field: value} over a recorded status (state "running", with
# the pid of a live bystander unless the pid itself is the bad field).
BAD_FIELDS: dict[str, dict[str, Any]] = {
    "iter text": {"iter": "abc"}, "pid text": {"pid": "abc"}, "pid 10**20": {"pid": 10**20},
    "pid negative": {"pid": -1}, "iter true": {"iter": True}, "max_iters 1e300": {"max_iters": 1e300},
    "state a number": {"state": 7}, "state unknown word": {"state": "exploded"}, "error an object": {"error": {"a": 1}},
    "last_loss text": {"last_loss": "low"},
}
# status.json files that are no status at all.
BAD_FILES: dict[str, bytes] = {
    "nested 100,000 deep": b"[" * 100_000 + b"]" * 100_000,
    "a JSON array": b"[1, 2, 3]",
    "cut mid-object": b'{"state": "running", "iter": ',
    "not UTF-8": b'{"state": "\xff\xfe"}',
    "an integer of 5,000 digits": b'{"state": "running", "iter": ' + b"9" * 5000 + b"}",
    "empty": b"",
}
BAD_CONFIGS: dict[str, bytes] = {"config nested 100,000 deep": b"[" * 100_000, "config a JSON string": b'"x"'}


def _slug(label: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in label).strip("-")


def _copy(runs: Path, name: str) -> RunPaths:
    shutil.copytree(RECORDED, runs / name)
    return RunPaths(runs / name)


def _replace(path: Path, data: bytes) -> None:
    """Put `data` at `path` as the trainer writes status.json: a new file renamed over the old one."""
    tmp = path.with_name(f".{path.name}.new")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _malformed_runs(runs: Path, bystander_pid: int) -> dict[str, str]:
    """A run folder per bad status or config next to a good one; {run name: the file it breaks}."""
    _copy(runs, "ok")
    broken = {}
    for label, fields in BAD_FIELDS.items():
        paths = _copy(runs, _slug(label))
        paths.status.write_text(json.dumps({**RUNNING, "pid": bystander_pid, **fields}))
        broken[paths.name] = "status.json"
    for label, data in BAD_FILES.items():
        paths = _copy(runs, _slug(label))
        paths.status.write_bytes(data)
        broken[paths.name] = "status.json"
    huge = _copy(runs, "status-of-4-GiB")
    with open(huge.status, "r+b") as f:
        f.truncate(4 << 30)  # sparse: no disk, but a reader that reads it whole needs 4 GiB
    broken[huge.name] = "status.json"
    for label, data in BAD_CONFIGS.items():
        paths = _copy(runs, _slug(label))
        paths.config.write_bytes(data)
        broken[paths.name] = "config.json"
    return broken


@pytest.fixture
def bystander():
    """A process of this very venv that holds no run's lock: nothing may signal it."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    yield proc
    proc.kill()
    proc.wait()


def test_runs_and_stop_list_and_refuse_malformed_status_files(tmp_path: Path, bystander, report) -> None:
    runs = tmp_path / "runs"
    broken = _malformed_runs(runs, bystander.pid)
    listed = run_cli(["runs", "--json"], cwd=tmp_path, timeout=60)
    assert listed.returncode == 0 and "Traceback" not in listed.stderr, listed.stderr
    rows = {r["name"]: r for r in json.loads(listed.stdout)}
    assert set(rows) == {"ok", *broken}
    assert rows["ok"]["state"] == "finished" and rows["ok"]["unreadable"] is None
    for name, file in broken.items():
        assert rows[name]["unreadable"].startswith(file), rows[name]
        if file == "status.json":
            assert rows[name]["state"] == "unknown" and rows[name]["iter"] == 0, rows[name]
    assert "is 4,294,967,296 bytes" in rows["status-of-4-GiB"]["unreadable"]
    assert "nested more than 32 levels deep" in rows["nested-100-000-deep"]["unreadable"]
    assert "has pid 100000000000000000000" in rows[_slug("pid 10**20")]["unreadable"]
    table = run_cli(["runs"], cwd=tmp_path, timeout=60)
    assert table.returncode == 0 and not table.stderr, table.stderr
    for name in broken:
        assert f"{name}: unreadable: " in table.stdout
    for name, file in broken.items():
        if file == "status.json":
            assert_one_line_error(run_cli(["stop", name, "--wait", "0"], cwd=tmp_path, timeout=60), name, "status.json")
    assert bystander.poll() is None  # never signalled, whatever pid the files named
    status_runs = sum(f == "status.json" for f in broken.values())
    report(f"status.json malformed: {', '.join(BAD_FIELDS)} (state running, the pid of a live bystander of the same "
           f"venv); {', '.join(BAD_FILES)}; a sparse file of 4 GiB; config.json {', '.join(BAD_CONFIGS)}",
           len(broken) + status_runs,
           "`gptwiz runs` (--json and table): exit 0, every run listed, each broken one as unreadable with the file "
           "and the reason, state unknown; `gptwiz stop`: exit 2, one line naming status.json; the bystander never "
           "signalled")


def test_plain_wizard_lists_malformed_runs(tmp_path: Path, report) -> None:
    runs = tmp_path / "runs"
    for label in ("iter text", "pid 10**20"):
        _copy(runs, _slug(label)).status.write_text(json.dumps({**RUNNING, **BAD_FIELDS[label]}))
    _copy(runs, "deep").status.write_bytes(BAD_FILES["nested 100,000 deep"])
    _copy(runs, "bad-config").config.write_bytes(BAD_CONFIGS["config nested 100,000 deep"])
    _copy(runs, "ok")
    code, out = _pty_run(["wizard", "--plain", "--runs_dir", str(runs)], tmp_path, b"\x03",
                         b"What will the model be for?", timeout=60)
    text = out.decode("utf-8", "replace")
    assert code == 130 and "Traceback" not in text, text[-2000:]
    for fragment in ("ok", "finished", "iter-text", _slug("pid 10**20"), "deep", "bad-config",
                     "unreadable: status.json has iter 'abc'", "unreadable: status.json is nested more than 32 levels deep",
                     "unreadable: config.json is nested more than 32 levels deep"):
        assert fragment in text, (fragment, text[-3000:])
    report("`gptwiz wizard --plain` (in a terminal) with runs whose status.json has iter 'abc', pid 10**20 or "
           "nesting 100,000 deep, or whose config.json is nested so, beside a good run", 4,
           "its run list shows the good run and each broken one as unreadable with the reason; Ctrl-C ends it (130)")


@async_test
async def test_welcome_screen_lists_malformed_runs_and_follows_a_live_one(tmp_path: Path, report) -> None:
    runs = tmp_path / "runs"
    ok = _copy(runs, "ok")
    for label in ("iter text", "pid 10**20"):
        paths = _copy(runs, _slug(label))
        paths.status.write_text(json.dumps({**RUNNING, **BAD_FIELDS[label]}))
    deep = _copy(runs, "deep")
    deep.status.write_bytes(BAD_FILES["nested 100,000 deep"])
    app = GptwizApp(quiet_context(runs))
    async with app.run_test(size=(130, 40)) as pilot:
        await wait_for(pilot, lambda: app.screen.id == "welcome" and app.screen.loaded)
        text = flat(screen_text(app))
        assert "finished" in text and "unreadable" in text
        for fragment in ("iter-text: unreadable: status.json has iter 'abc'",
                         f"{_slug('pid 10**20')}: unreadable: status.json has pid",
                         "deep: unreadable: status.json is nested more than 32 levels deep"):
            assert fragment in text, text
        _replace(ok.status, json.dumps({**RUNNING, "pid": "abc"}).encode())  # the good run breaks while shown
        await wait_for(pilot, lambda: "ok: unreadable: status.json has pid 'abc'" in flat(screen_text(app)), timeout=15)
        await pilot.press("r")  # resume the selected (unreadable) run: a notification, nothing launched
        await pilot.pause(0.3)
        assert app.is_running and app.screen.id == "welcome"
    report("the wizard's welcome screen (Textual) with runs whose status.json has iter 'abc', pid 10**20, nesting "
           "100,000 deep, and a good run's status.json replaced by a malformed one while shown", 4,
           "every run listed, the broken ones as unreadable with the reason below the table, the live one within a "
           "refresh; r on one: a notification; no traceback")


@async_test
async def test_dashboard_survives_status_json_replaced_by_malformed_ones(tmp_path: Path, report) -> None:
    paths = _copy(tmp_path / "runs", "demo")
    good = paths.status.read_bytes()
    variants = {label: json.dumps({**RUNNING, **fields}).encode() for label, fields in BAD_FIELDS.items()}
    variants.update(BAD_FILES)
    app = GptwizApp(quiet_context(tmp_path / "runs"), watch=paths)
    async with app.run_test(size=(120, 32)) as pilot:
        await wait_for(pilot, lambda: "FINISHED" in screen_text(app))
        for data in variants.values():
            _replace(paths.status, data)
            await wait_for(pilot, lambda: "UNREADABLE" in screen_text(app)
                           and "unreadable: status.json" in flat(screen_text(app)), timeout=10)
            _replace(paths.status, good)  # and back: the dashboard follows both ways
            await wait_for(pilot, lambda: "FINISHED" in screen_text(app), timeout=10)
        assert "iter 60/60" in flat(screen_text(app))  # the history read before is kept throughout
        await pilot.press("s")  # stop: the run is not running, nothing is signalled
        await pilot.press("question_mark")
        await wait_for(pilot, lambda: "picks it up again" in flat(screen_text(app)))  # the dashboard's help
        await pilot.press("escape")
        await pilot.press("q")
    assert app.return_value == "demo"
    report(f"status.json replaced (renamed over) under the open dashboard by each malformed one above "
           f"({len(variants)} kinds), and back", len(variants),
           "banner UNREADABLE with \"status.json ...\" and the reason, then FINISHED again once it is whole; history "
           "kept; keys still work; q leaves")


@async_test
async def test_dashboard_of_a_run_with_a_config_of_wrong_types(tmp_path: Path, report) -> None:
    configs = {"{}": {}, "wrong types": {"preset": 7, "params": "many", "device": ["cpu"],
                                        "train": {"learning_rate": "x", "max_iters": -1}, "warmup_iters": "y"},
               "a schedule past any float": {"train": {"learning_rate": 1e300, "min_lr": 0, "max_iters": 10**15}},
               "train a list": {"train": [1, 2]}}
    for label, config in configs.items():
        paths = _copy(tmp_path / "runs", _slug(label))
        paths.config.write_text(json.dumps(config))
        app = GptwizApp(quiet_context(tmp_path / "runs"), watch=paths)
        async with app.run_test(size=(120, 32)) as pilot:
            await wait_for(pilot, lambda: "FINISHED" in screen_text(app))
            assert "iter 60/60" in flat(screen_text(app))
            await pilot.press("q")
        assert app.return_value == paths.name
    report(f"config.json of the wrong types under the dashboard ({', '.join(configs)})", len(configs),
           "the run shown (state, progress) without its schedule; no traceback")


# --- --resume and --init_from_model with a hand-edited config.json -----------------------------------------

def _set(path: str, value: Any):
    def edit(config: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = config
        for part in parents:
            node = node[part]
        if value is _DELETE:
            del node[last]
        else:
            node[last] = value
    return edit


_DELETE = object()
CONFIG_EDITS: dict[str, tuple[Any, str]] = {
    "{}": (b"{}", "'compile'"),
    "nested 100,000 deep": (b"[" * 100_000, "nested more than 32 levels deep"),
    "a JSON array": (b"[]", "array"),
    "model a string": (_set("model", "big"), "'model'"),
    "model.n_layer text": (_set("model.n_layer", "abc"), "'model.n_layer'"),
    "model.n_embd not divisible by n_head": (_set("model.n_embd", 33), "'model.n_embd'"),
    "model.n_layer 10**6": (_set("model.n_layer", 10**6), "'model.n_layer'"),
    "model with an unknown key": (_set("model.depth", 3), "'model.depth'"),
    "train.betas one number": (_set("train.betas", [0.9]), "'train.betas'"),
    "train.learning_rate text": (_set("train.learning_rate", "fast"), "'train.learning_rate'"),
    "train.max_iters 10**30": (_set("train.max_iters", 10**30), "'train.max_iters'"),
    "train missing": (_set("train", _DELETE), "'train'"),
    "data {}": (_set("data", {}), "'data.dataset_dir'"),
    "data.dataset_dir a number": (_set("data.dataset_dir", 5), "'data.dataset_dir'"),
    "data.dataset_dir gone": (_set("data.dataset_dir", "/nonexistent/ds"), "/nonexistent/ds"),
    "name '../x'": (_set("name", "../x"), "'name'"),
    "dtype int8": (_set("dtype", "int8"), "'dtype'"),
    "device a list": (_set("device", ["cpu"]), "'device'"),
    "seed -1": (_set("seed", -1), "'seed'"),
    "compile 'yes'": (_set("compile", "yes"), "'compile'"),
    "tokens_per_iter 0": (_set("tokens_per_iter", 0), "'tokens_per_iter'"),
}


def _edit_config(run: Path, edit: Any) -> None:
    if isinstance(edit, bytes):
        (run / "config.json").write_bytes(edit)
        return
    config = json.loads((run / "config.json").read_text())
    edit(config)
    (run / "config.json").write_text(json.dumps(config))


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_resume_of_a_hand_edited_config_is_refused_and_changes_nothing(trained_copy: Path,
                                                                        monkeypatch: pytest.MonkeyPatch,
                                                                        capsys: pytest.CaptureFixture[str],
                                                                        report) -> None:
    from gptwiz.cli import main

    cwd = trained_copy
    run = cwd / "runs" / "base"
    pristine = run.parent / "pristine"
    shutil.copytree(run, pristine)
    monkeypatch.chdir(cwd)
    for label, (edit, fragment) in CONFIG_EDITS.items():
        shutil.copy(pristine / "config.json", run / "config.json")  # (the one file changed; compared whole below)
        assert _snapshot(run) == _snapshot(pristine)
        _edit_config(run, edit)
        before = _snapshot(run)
        code = main(["train", "--model_name", "base", "--resume", "--quiet"])
        err = capsys.readouterr().err
        lines = [line for line in err.splitlines() if line.strip()]
        assert code == 2 and len(lines) == 1 and "Traceback" not in err, (label, err)
        assert fragment in lines[0], (label, lines[0])
        assert "config.json" in lines[0] or label == "data.dataset_dir gone", (label, lines[0])
        assert _snapshot(run) == before, label  # not one byte: status.json still says finished
        assert json.loads(before["status.json"])["state"] == "finished"
    # The same through the real command line, and --detach, which validates before it starts anything.
    _edit_config(run, CONFIG_EDITS["{}"][0])
    before = _snapshot(run)
    for extra in ([], ["--detach"]):
        proc = run_cli(["train", "--model_name", "base", "--resume", "--quiet", *extra], cwd=cwd, env=fault_env(),
                       timeout=120)
        assert_one_line_error(proc, "config.json", "'compile'")
        assert _snapshot(run) == before
    report(f"`train --resume` of a finished run with a hand-edited config.json: {', '.join(CONFIG_EDITS)}",
           len(CONFIG_EDITS) + 2,
           "exit 2, one line naming config.json and the key (or the dataset that is gone); every file of the run "
           "folder byte for byte as before (status.json still finished); the same with --detach")


def test_init_from_a_source_with_a_bad_config_is_refused(trained_copy: Path, data_dir: Path,
                                                         monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str], report) -> None:
    from gptwiz.cli import main

    cwd = trained_copy
    source = cwd / "runs" / "base"
    pristine = _snapshot(source)
    monkeypatch.chdir(cwd)
    edits = {k: CONFIG_EDITS[k] for k in ("{}", "nested 100,000 deep", "model a string", "model.n_layer text",
                                          "model with an unknown key", "train missing")}
    edits["model.block_size text"] = (_set("model.block_size", "long"), "'model.block_size'")
    for label, (edit, fragment) in edits.items():
        for name, data in pristine.items():
            (source / name).write_bytes(data)
        _edit_config(source, edit)
        before = _snapshot(source)
        code = main([*train_args(cwd / "micro.json", "child", data_dir=data_dir), "--init_from_model", "base"])
        err = capsys.readouterr().err
        lines = [line for line in err.splitlines() if line.strip()]
        assert code == 2 and len(lines) == 1 and "Traceback" not in err, (label, err)
        assert "--init_from_model base" in lines[0] and "config.json" in lines[0] and fragment in lines[0], lines[0]
        assert not (cwd / "runs" / "child").exists(), label
        assert _snapshot(source) == before
    report(f"`train --init_from_model` of a source whose config.json is {', '.join(edits)}", len(edits),
           "exit 2, one line naming --init_from_model, the file and the key; no runs/child; the source untouched")


# --- manifests of the wrong types ---------------------------------------------------------------------------

MANIFEST_EDITS: dict[str, tuple[Any, str]] = {
    "a source's files '12'": (lambda m: m["sources"][0].update(files="12"), "files"),
    "a source's train_tokens 'abc'": (lambda m: m["sources"][0].update(train_tokens="abc"), "train_tokens"),
    "a source's bytes -1": (lambda m: m["sources"][0].update(bytes=-1), "bytes"),
    "a source's documents 1.5": (lambda m: m["sources"][0].update(documents=1.5), "documents"),
    "a source's val_documents a list": (lambda m: m["sources"][0].update(val_documents=[1]), "val_documents"),
    "totals' val_tokens text": (lambda m: m["totals"].update(val_tokens="many"), "val_tokens"),
    "totals a list": (lambda m: m.update(totals=[1]), "totals"),
    "a source's glob a number": (lambda m: m["sources"][0].update(glob=5), "glob"),
    "tokenizer a number": (lambda m: m.update(tokenizer=2), "tokenizer"),
    "sources a string": (lambda m: m.update(sources="all"), "sources"),
    "a source a number": (lambda m: m.update(sources=[7]), "sources[0]"),
}


def test_dataset_info_and_train_refuse_manifests_of_the_wrong_types(data_dir: Path, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch,
                                                                    capsys: pytest.CaptureFixture[str], report) -> None:
    from gptwiz.cli import main

    cache = next((data_dir / "cache").iterdir())
    ds = tmp_path / "ds"
    shutil.copytree(cache, ds)
    manifest = json.loads((ds / "manifest.json").read_text())
    preset = micro_preset(tmp_path, max_iters=1)
    monkeypatch.chdir(tmp_path)
    for label, (edit, fragment) in MANIFEST_EDITS.items():
        bad = json.loads(json.dumps(manifest))
        edit(bad)
        (ds / "manifest.json").write_text(json.dumps(bad))
        for argv in (["dataset-info", str(ds)], ["dataset-info", str(ds), "--json"],
                     ["train", "--config_file", str(preset), "--model_name", "t", "--dataset_dir", str(ds), "--quiet"]):
            code = main(argv)
            out = capsys.readouterr()
            lines = [line for line in out.err.splitlines() if line.strip()]
            assert code == 2 and len(lines) == 1 and "Traceback" not in out.err, (label, argv, out.err)
            assert "manifest.json" in lines[0] and fragment in lines[0], (label, lines[0])
        assert not (tmp_path / "runs").exists()
    proc = run_cli(["dataset-info", str(ds)], cwd=tmp_path, timeout=60)
    assert_one_line_error(proc, "manifest.json")
    report(f"manifest.json with {', '.join(MANIFEST_EDITS)} (`dataset-info`, `--json`, `train --dataset_dir`)",
           3 * len(MANIFEST_EDITS) + 1, "exit 2, one line naming manifest.json and the bad key; no run folder")


def test_metrics_lines_no_reader_can_hold(tmp_path: Path, report) -> None:
    """metrics.jsonl lines nested 100,000 deep, or of 3 MB without a newline, among good records."""
    from gptwiz.runs.metrics import read_metrics
    from gptwiz.runs.monitor import RunMonitor

    paths = _copy(tmp_path / "runs", "m")
    good = (RECORDED / "metrics.jsonl").read_bytes()
    with open(paths.metrics, "ab") as f:
        f.write(b"[" * 100_000 + b"\n")
        f.write(b'{"type": "train", "iter": 61, "loss": "' + b"x" * (3 << 20) + b'"}\n')
        f.write(b'{"type": "train", "iter": 62, "loss": 1.5}\n')
    records = read_metrics(paths.metrics)
    assert len(records) == good.count(b"\n") + 1 and records[-1]["iter"] == 62
    snap = RunMonitor(paths).poll()
    assert snap.state == "finished" and snap.train_iters[-1] == 62
    listed = run_cli(["runs", "--json"], cwd=tmp_path, timeout=60)
    assert listed.returncode == 0 and json.loads(listed.stdout)[0]["state"] == "finished"
    report("metrics.jsonl lines nested 100,000 deep and of 3 MB among good records", 2,
           "both skipped, every other record read (read_metrics, the dashboard's monitor); `gptwiz runs` unaffected")
