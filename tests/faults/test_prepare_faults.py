"""`gptwiz prepare` interrupted (SIGINT, SIGTERM, kill -9) and rerun; prepare over files being written or
deleted; two prepares into one folder at once. A dataset folder is always either absent, the old dataset, or
a whole new one (every shard the size its manifest says), and a rerun gives the dataset an uninterrupted run gives."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import SHAKESPEARE, assert_one_line_error, run_cli

from faults.support import fault_env, one_line, wait_for
from gptwiz.data.dataset import TokenDataset

COPIES = 24  # about 25 MB: a few seconds of tokenizing, a window wide enough to interrupt


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("prep")
    text = SHAKESPEARE.read_bytes()
    (root / "docs").mkdir()
    for i in range(COPIES):
        (root / "docs" / f"doc{i:03d}.txt").write_bytes(text[i * 100:] + text[: i * 100])
    proc = run_cli(_args("ref"), cwd=root, env=fault_env())
    assert proc.returncode == 0, proc.stderr
    return root


def _args(out: str, *extra: str) -> list[str]:
    return ["prepare", "--source", "docs:docs/*.txt", "--out_dir", out, "--quiet", *extra]


def _whole(dataset: Path) -> dict:
    """The manifest of a complete dataset, after checking every shard is the size the manifest says."""
    manifest = json.loads((dataset / "manifest.json").read_text())
    for source in manifest["sources"]:
        for split in ("train", "val"):
            size = sum((dataset / name).stat().st_size for name in source[f"{split}_shards"])
            assert size == 2 * source[f"{split}_tokens"], (dataset, split)
    TokenDataset(dataset).check_block(32)
    return manifest


def _same_dataset(a: Path, b: Path) -> None:
    def essentials(manifest: dict) -> list[dict]:  # where the files lie, and their times, may differ
        return [{k: v for k, v in s.items() if k not in ("root", "fingerprint")} for s in manifest["sources"]]

    assert essentials(_whole(a)) == essentials(_whole(b))
    for shard in sorted(p.name for p in a.iterdir() if p.suffix == ".bin"):
        assert (a / shard).read_bytes() == (b / shard).read_bytes(), shard


def _partials(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if ".partial-" in p.name or ".old-" in p.name)


def _working(root: Path, out: str):
    def busy() -> bool:
        return any(p.suffix == ".bin" and p.stat().st_size > 0
                   for d in root.glob(f".{out}.partial-*") for p in d.iterdir())
    return busy


def _start(root: Path, args: list[str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "gptwiz", *args], cwd=root, env=fault_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.parametrize("how", ["SIGINT", "SIGTERM", "SIGKILL"])
def test_interrupted_prepare_leaves_nothing_and_reruns_to_the_same_dataset(corpus: Path, how: str, report) -> None:
    for attempt in range(3):
        out = f"int-{how}-{attempt}"
        proc = _start(corpus, _args(out))
        assert wait_for(_working(corpus, out), timeout=120, interval=0.01, proc=proc), proc.communicate()
        proc.send_signal(getattr(signal, how))
        _, err = proc.communicate(timeout=120)
        if not (corpus / out).exists():
            break
        # The signal came after the last shard (this test's process starved on a busy machine): the dataset is
        # whole, and the next attempt stops one mid-way.
        _same_dataset(corpus / "ref", corpus / out)
        shutil.rmtree(corpus / out)
    else:
        pytest.fail(f"prepare finished before {how} reached it, three times")
    if how == "SIGKILL":
        assert _partials(corpus)  # a kill cannot clean up: the next prepare does
    else:
        assert proc.returncode == 130 and len(one_line(err)) == 1 and "Traceback" not in err, err
        assert not _partials(corpus)
    rerun = run_cli(_args(out), cwd=corpus, env=fault_env())
    assert rerun.returncode == 0, rerun.stderr
    assert not _partials(corpus)
    _same_dataset(corpus / "ref", corpus / out)
    report(f"`gptwiz prepare` interrupted by {how} mid-tokenizing, then rerun", 1,
           ("exit 130 in one line, partial folder removed" if how != "SIGKILL" else "partial folder left, removed by "
            "the rerun") + "; no out_dir; the rerun's dataset byte-identical to an uninterrupted one")


def test_kill_during_overwrite_keeps_the_old_dataset(corpus: Path, report) -> None:
    shutil.copytree(corpus / "ref", corpus / "keep")
    (corpus / "docs" / "doc000.txt").write_bytes(b"changed " + (corpus / "docs" / "doc000.txt").read_bytes())
    try:
        proc = _start(corpus, _args("keep", "--overwrite"))
        assert wait_for(_working(corpus, "keep"), timeout=120, interval=0.01, proc=proc), proc.communicate()
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        _same_dataset(corpus / "ref", corpus / "keep")  # the old dataset, whole and untouched
        refused = run_cli(_args("keep"), cwd=corpus, env=fault_env())
        assert_one_line_error(refused, "keep", "--overwrite")
    finally:
        (corpus / "docs" / "doc000.txt").write_bytes((corpus / "docs" / "doc000.txt").read_bytes()[len(b"changed "):])
    shutil.rmtree(corpus / "keep")
    for leftover in _partials(corpus):
        shutil.rmtree(corpus / leftover)
    report("`prepare --overwrite` killed -9 mid-way", 1, "the old dataset in place, whole; a plain rerun refuses "
           "in one line (the sources changed) until --overwrite")


def test_prepare_over_files_being_written_and_deleted(corpus: Path, tmp_path: Path, report) -> None:
    docs = tmp_path / "docs"
    shutil.copytree(corpus / "docs", docs)
    stop = threading.Event()

    def writer() -> None:
        n = 0
        while not stop.is_set():
            for name in ("doc000.txt", "doc010.txt", "doc023.txt"):
                with open(docs / name, "a") as f:
                    f.write(f"line {n} appended while gptwiz prepare reads this folder.\n")
            n += 1
            time.sleep(0.002)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        grown = run_cli(_args("grown"), cwd=tmp_path, env=fault_env())
    finally:
        stop.set()
        thread.join()
    assert grown.returncode == 0, grown.stderr
    _whole(tmp_path / "grown")
    stale = run_cli(_args("grown"), cwd=tmp_path, env=fault_env())
    assert_one_line_error(stale, "grown", "different dataset")  # the files changed since: it says so

    proc = _start(tmp_path, _args("shrunk"))
    assert wait_for(lambda: any(tmp_path.glob(".shrunk.partial-*")), timeout=120, interval=0.005, proc=proc)
    (docs / "doc023.txt").unlink()  # read last: gone before prepare gets to it
    _, err = proc.communicate(timeout=120)
    if proc.returncode == 0:  # it had read the file already: then the dataset must be whole
        _whole(tmp_path / "shrunk")
    else:
        assert proc.returncode == 2 and len(one_line(err)) == 1 and "doc023.txt" in err, err
        assert not (tmp_path / "shrunk").exists()
    assert not _partials(tmp_path)
    report("`prepare` while 3 of its files are appended to", 1, "exit 0, a whole dataset; the next prepare "
           "says in one line that the sources changed")
    report("`prepare` while one of its files is deleted", 1,
           "exit 2, one line naming the file, nothing left behind" if proc.returncode else "exit 0, a whole dataset")


def test_two_prepares_into_one_folder_at_once(corpus: Path, tmp_path: Path, report) -> None:
    shutil.copytree(corpus / "docs", tmp_path / "docs")
    procs = [_start(tmp_path, _args("both")) for _ in range(2)]
    results = [(p.wait(timeout=300), *p.communicate()) for p in procs]
    for rc, _out, err in results:
        assert rc == 0 or (rc == 2 and len(one_line(err)) == 1 and "Traceback" not in err), (rc, err)
    assert any(rc == 0 for rc, _, _ in results)
    _same_dataset(corpus / "ref", tmp_path / "both")
    assert not _partials(tmp_path)
    report("two `prepare` into one --out_dir at the same moment", 2,
           f"exits {sorted(rc for rc, _, _ in results)}; the folder holds one whole dataset; no partial folders left")
