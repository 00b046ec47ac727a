"""The data side under a hostile or broken filesystem: `gptwiz prepare` and the --input_file token cache.

- A prepare --overwrite killed -9 between its two renames (or just after them), and a token cache killed before
  its rename: the next command puts the whole dataset in place, or the old one back, and leaves no working folder.
- A symlink given as --out_dir: the dataset is written where it points, the link kept, no .OUT.old-PID left.
- Symlinks planted in the token cache, the demo's folders or a shard's place: nothing is written through them.
- A full disk (a small tmpfs): one line naming what could not be written and the free space, exit 1, nothing
  left that a later command takes for a dataset; a half-built token cache is built again, never reused.
- An --out_dir (or --data_dir) that cannot be a dataset folder: one line, exit 2, nothing written.

Each kill is a real SIGKILL of a real prepare, sent by the process itself at the chosen rename (os.rename wrapped
in the child, no hook in gptwiz); each full or read-only disk is a real tmpfs (root only).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import SHAKESPEARE, assert_one_line_error, run_cli

from faults.support import fault_env, micro_preset, one_line, train_args

# Runs `gptwiz ARGS` (or, with GPTWIZ_TEST_CACHE, builds the token cache of a file) and SIGKILLs itself at one of
# the renames that put a dataset in place: KILL_AT=aside (out_dir just moved to .OUT.old-PID), before_new (the
# finished .OUT.partial-PID about to become out_dir) or after_new (it has, the old one not yet removed).
KILLER = textwrap.dedent("""
    import os, signal, sys
    real, at = os.rename, os.environ["KILL_AT"]
    def rename(src, dst, *args, **kwargs):
        src, dst = os.fspath(src), os.fspath(dst)
        installing = ".partial-" in os.path.basename(src)
        if at == "before_new" and installing:
            os.kill(os.getpid(), signal.SIGKILL)
        real(src, dst, *args, **kwargs)
        if (at == "aside" and ".old-" in os.path.basename(dst)) or (at == "after_new" and installing):
            os.kill(os.getpid(), signal.SIGKILL)
    os.rename = rename
    if os.environ.get("GPTWIZ_TEST_CACHE"):
        from gptwiz.data.cache import cache_text_file
        cache_text_file(sys.argv[1], sys.argv[2])
    else:
        from gptwiz.cli import main
        sys.exit(main(sys.argv[1:]))
""")


def _killed(cwd: Path, at: str, *args: str, cache: bool = False) -> subprocess.CompletedProcess[str]:
    env = fault_env(KILL_AT=at, **({"GPTWIZ_TEST_CACHE": "1"} if cache else {}))
    proc = subprocess.run([sys.executable, "-c", KILLER, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == -signal.SIGKILL, (proc.returncode, proc.stderr)
    return proc


def _args(out: str, glob: str, *extra: str) -> list[str]:
    return ["prepare", "--source", f"docs:{glob}", "--out_dir", out, "--quiet", "--block_size", "64", *extra]


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def _dataset(folder: Path) -> dict:
    """A dataset's shards, byte for byte, and its manifest but for where its files lay (root, fingerprint)."""
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["sources"] = [{k: v for k, v in s.items() if k not in ("root", "fingerprint")}
                           for s in manifest["sources"]]
    return {**{k: v for k, v in _files(folder).items() if k != "manifest.json"}, "manifest": manifest}


def _working(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if ".partial-" in p.name or ".old-" in p.name)


def _dead_pid() -> int:
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(proc.stdout)


def _tree(root: Path) -> list[tuple[str, int]]:
    """Every path under root, with its size (folders 0): what a refused command must leave as it was."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            out.append((str(path.relative_to(root)), 0 if path.is_dir() else path.lstat().st_size))
    return sorted(out)


@contextlib.contextmanager
def _tmpfs(folder: Path, *options: str) -> Iterator[Path]:
    """A tmpfs mounted at `folder` (a real full or read-only disk); the test is skipped where none can be."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    folder.mkdir(parents=True, exist_ok=True)
    mount = subprocess.run(["mount", "-t", "tmpfs", "-o", ",".join(options), "tmpfs", str(folder)],
                           capture_output=True, text=True)
    if mount.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {mount.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two small corpora (old/ and new/, about 1 MB each) and the dataset each prepares into, uninterrupted."""
    root = tmp_path_factory.mktemp("recovery")
    text = SHAKESPEARE.read_bytes()
    for name, cut in (("old", 0), ("new", 500_000)):
        (root / name).mkdir()
        (root / name / "a.txt").write_bytes(text[cut:] + text[:cut])
        (root / name / "b.txt").write_bytes(text[:300_000])
        run_cli(_args(f"ref-{name}", f"{name}/*.txt"), cwd=root, env=fault_env(), check=True)
    return root


@pytest.fixture
def work(corpus: Path, tmp_path: Path) -> Path:
    for name in ("old", "new", "ref-old", "ref-new"):
        shutil.copytree(corpus / name, tmp_path / name)
    return tmp_path


# --- class 8: prepare --overwrite killed between its two renames ------------------------------------------

def test_kill_between_the_renames_puts_the_new_dataset_in_place(work: Path, report) -> None:
    shutil.copytree(work / "ref-old", work / "ds")
    _killed(work, "aside", *_args("ds", "new/*.txt", "--overwrite"))
    # What the kill left: no dataset at ds, the old one aside, the new one whole beside it.
    assert not os.path.lexists(work / "ds")
    assert [n.split("-")[0] for n in _working(work)] == [".ds.old", ".ds.partial"]
    inode = next(p for p in work.iterdir() if ".partial-" in p.name).stat().st_ino
    rerun = run_cli(_args("ds", "new/*.txt"), cwd=work, env=fault_env())
    assert rerun.returncode == 0 and "already holds this dataset" in rerun.stdout, rerun.stderr
    assert _dataset(work / "ds") == _dataset(work / "ref-new")  # the new dataset, byte for byte
    assert (work / "ds").stat().st_ino == inode  # renamed into place, not prepared again
    assert _working(work) == []
    report("`prepare --overwrite` killed -9 between its two renames (out_dir moved aside, the new dataset not yet "
           "in place), then the same prepare without --overwrite", 1,
           "the finished new dataset put in place (identical to an uninterrupted prepare, nothing re-tokenized: "
           "'already holds this dataset'); the old one and every working folder removed")


def test_kill_between_the_renames_with_the_new_dataset_cut_short_puts_the_old_one_back(work: Path, report) -> None:
    run_cli(_args("ds", "old/*.txt"), cwd=work, env=fault_env(), check=True)  # here: its files' paths are these
    _killed(work, "aside", *_args("ds", "new/*.txt", "--overwrite"))
    partial = next(p for p in work.iterdir() if ".partial-" in p.name)
    shard = partial / "docs-train-00000.bin"
    os.truncate(shard, shard.stat().st_size // 2)  # the new dataset no longer whole: never to be put in place
    rerun = run_cli(_args("ds", "old/*.txt"), cwd=work, env=fault_env())
    assert rerun.returncode == 0 and "already holds this dataset" in rerun.stdout, rerun.stderr
    assert _dataset(work / "ds") == _dataset(work / "ref-old")
    assert _working(work) == []
    report("`prepare --overwrite` killed -9 between its two renames, its new dataset then cut short (a shard "
           "truncated), then a prepare", 1, "the new dataset, not whole, is not used; the old dataset put back, "
           "byte-identical; no working folder left")


def test_kill_after_the_second_rename_leaves_no_old_dataset_behind(work: Path, report) -> None:
    shutil.copytree(work / "ref-old", work / "ds")
    _killed(work, "after_new", *_args("ds", "new/*.txt", "--overwrite"))
    assert _dataset(work / "ds") == _dataset(work / "ref-new") and len(_working(work)) == 1  # the old one, aside
    rerun = run_cli(_args("ds", "new/*.txt"), cwd=work, env=fault_env())
    assert rerun.returncode == 0 and "already holds this dataset" in rerun.stdout, rerun.stderr
    assert _dataset(work / "ds") == _dataset(work / "ref-new") and _working(work) == []
    report("`prepare --overwrite` killed -9 after the new dataset was renamed in, before the old one was removed",
           1, "the new dataset in place; the next prepare removes the old one left aside")


def test_a_killed_token_cache_is_put_in_place_and_a_half_built_one_never_reused(work: Path, report) -> None:
    from gptwiz.data.cache import cache_text_file

    text = work / "input.txt"
    text.write_bytes(SHAKESPEARE.read_bytes()[:400_000])
    _killed(work, "before_new", str(text), str(work / "data"), cache=True)
    cache_root = work / "data" / "cache"
    [partial] = [p for p in cache_root.iterdir() if ".partial-" in p.name]
    inode = partial.stat().st_ino
    cache = cache_text_file(text, work / "data")
    assert cache.stat().st_ino == inode  # the finished cache renamed into place, not tokenized again
    assert _working(cache_root) == []
    whole = _files(cache)

    shard = cache / "input-train-00000.bin"
    os.truncate(shard, shard.stat().st_size - 2)  # half-built: one token short of what its manifest says
    again = cache_text_file(text, work / "data")
    assert _files(again) == whole and again.stat().st_ino != inode  # built again, whole
    assert _working(cache_root) == []
    report("token cache of --input_file killed -9 with its shards and manifest written, before its rename", 1,
           "the next use puts it in place (same folder, not re-tokenized); no working folder left")
    report("token cache with a shard one token short of its manifest", 1,
           "not reused: built again, byte-identical to the whole one")


# --- class 13: a symlink as --out_dir ---------------------------------------------------------------------

@pytest.mark.parametrize("target", ["empty_folder", "dangling", "old_dataset"])
def test_a_symlinked_out_dir_is_written_where_it_points(work: Path, target: str, report) -> None:
    elsewhere = work / "disk" / "datasets" / "ds"
    elsewhere.parent.mkdir(parents=True)
    if target == "empty_folder":
        elsewhere.mkdir()
    elif target == "old_dataset":
        shutil.copytree(work / "ref-old", elsewhere)
    (work / "ds").symlink_to(elsewhere)
    extra = ("--overwrite",) if target == "old_dataset" else ()
    proc = run_cli(_args("ds", "new/*.txt", *extra), cwd=work, env=fault_env())
    assert proc.returncode == 0 and "prepared ds" in proc.stdout, proc.stderr
    assert (work / "ds").is_symlink() and os.readlink(work / "ds") == str(elsewhere)  # the link as it was
    assert _dataset(elsewhere) == _dataset(work / "ref-new")  # the dataset where the link points
    assert _working(work) == [] and _working(elsewhere.parent) == []  # no .ds.old-PID, dangling or not
    again = run_cli(_args("ds", "new/*.txt"), cwd=work, env=fault_env())
    assert again.returncode == 0 and "already holds this dataset" in again.stdout, again.stderr
    report(f"`prepare --out_dir LINK`, the link to {target.replace('_', ' ')}" + (" (with --overwrite)" if extra else ""),
           1, "the dataset written where the link points (identical to an uninterrupted prepare), the link kept, "
           "no .OUT.old-PID or partial folder left on either side; a rerun finds it up to date")


def test_a_symlink_loop_as_out_dir_is_refused(work: Path, report) -> None:
    (work / "a").symlink_to(work / "b")
    (work / "b").symlink_to(work / "a")
    before = _tree(work)
    assert_one_line_error(run_cli(_args("a", "new/*.txt"), cwd=work, env=fault_env()), "--out_dir a", "loop")
    assert _tree(work) == before
    report("`prepare --out_dir LINK`, the link part of a loop", 1, "exit 2 in one line; nothing written")


def test_a_dangling_old_link_left_by_an_earlier_prepare_is_removed(work: Path, report) -> None:
    victim = work / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_text("the user's")
    shutil.copytree(work / "ref-new", work / "ds")
    for name in (f".ds.old-{_dead_pid()}", f".ds.partial-{_dead_pid()}"):
        (work / name).symlink_to(victim)  # what an earlier gptwiz left of a symlinked out_dir, or a planted link
    (work / f".ds.old-{_dead_pid()}").symlink_to(work / "nowhere")
    proc = run_cli(_args("ds", "new/*.txt", "--overwrite"), cwd=work, env=fault_env())
    assert proc.returncode == 0, proc.stderr
    assert _working(work) == [] and _files(victim) == {"keep.txt": b"the user's"}
    report("links left as .OUT.old-PID / .OUT.partial-PID of dead prepares (dangling, or to a folder of the user's)",
           3, "the next prepare removes the links themselves; what they point at is untouched")


# --- class 1: symlinks planted where the data side writes -------------------------------------------------

def test_links_planted_in_the_token_cache_are_replaced_not_followed(work: Path, report) -> None:
    from gptwiz.data.cache import cache_text_file

    text = work / "input.txt"
    text.write_bytes(SHAKESPEARE.read_bytes()[:300_000])
    reference = cache_text_file(text, work / "ref-data")
    victim = work / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_text("the user's")
    shutil.copytree(work / "ref-old", victim / "a-dataset")  # a whole dataset the link would pass off as the cache
    data = work / "data"
    (data / "cache").mkdir(parents=True)
    (data / "cache" / reference.name).symlink_to(victim / "a-dataset")
    (data / "cache" / f".{reference.name}.partial-{_dead_pid()}").symlink_to(victim)
    before = _tree(victim)
    cache = cache_text_file(text, data)
    assert not cache.is_symlink() and _files(cache) == _files(reference)
    assert _tree(victim) == before and _working(data / "cache") == []
    report("symlinks planted as the token cache's folder (to a whole dataset elsewhere) and as a dead working "
           "folder (to a folder of the user's)", 2, "the links removed, a real cache built identical to a fresh "
           "one, nothing under the links' targets changed")


def test_links_planted_as_the_demo_folders_are_replaced_not_followed(work: Path, report) -> None:
    from gptwiz.data.demo import demo_dataset_dir, demo_ready, demo_source_dir, write_sources

    victim = work / "victim"
    victim.mkdir()
    (victim / "code.jsonl").write_text("the user's")
    data = work / "data"
    data.mkdir()
    demo_source_dir(data).symlink_to(victim)
    demo_dataset_dir(data).symlink_to(work / "ref-old")
    assert not demo_ready(data)  # a link is not the demo dataset, whatever it points at
    src = write_sources(data)
    assert not src.is_symlink() and (src / "code.jsonl").stat().st_size > 1000
    assert _files(victim) == {"code.jsonl": b"the user's"}
    report("symlinks planted as the demo corpus's folders (data/demo-stdlib-src, data/demo-stdlib)", 2,
           "not taken for the demo dataset; the sources written into a real folder; the link's target unchanged")


def test_a_link_planted_as_a_shard_is_refused(tmp_path: Path, report) -> None:
    import numpy as np

    from gptwiz.common.errors import UsageError
    from gptwiz.data.prepare.shards import ShardWriter

    victim = tmp_path / "victim.bin"
    victim.write_bytes(b"the user's")
    folder = tmp_path / ".ds.partial-1"
    folder.mkdir()
    (folder / "docs-train-00000.bin").symlink_to(victim)
    with pytest.raises(UsageError, match="symlink"):
        ShardWriter(folder, "docs-train", 1000).write(np.arange(10, dtype=np.uint16))
    assert victim.read_bytes() == b"the user's"
    report("a symlink in a shard's place in the working folder", 1,
           "the append refused (O_NOFOLLOW) with a one-line error; the file it points at unchanged")


# --- class 5: a full disk ---------------------------------------------------------------------------------

@pytest.mark.parametrize("size", ["256k", "660k"])
def test_prepare_on_a_full_disk_is_one_line_and_leaves_nothing(work: Path, size: str, report) -> None:
    with _tmpfs(work / "disk", f"size={size}") as disk:
        proc = run_cli(_args("disk/ds", "new/*.txt"), cwd=work, env=fault_env())
        assert proc.returncode == 1, (proc.returncode, proc.stderr)
        [line] = one_line(proc.stderr)
        assert "Traceback" not in proc.stderr and "--out_dir disk/ds" in line and "no space left" in line
        assert "disk/ds/docs-" in line and " free of " in line, line  # what could not be written; the free space
        assert list(disk.iterdir()) == []  # nothing a later command could take for a dataset
        assert_one_line_error(run_cli(["dataset-info", "disk/ds"], cwd=work, env=fault_env()), "disk/ds")
        subprocess.run(["mount", "-o", "remount,size=4m", str(disk)], check=True)
        again = run_cli(_args("disk/ds", "new/*.txt"), cwd=work, env=fault_env())
        assert again.returncode == 0, again.stderr
        assert _dataset(disk / "ds") == _dataset(work / "ref-new")
    report(f"`gptwiz prepare` onto a full disk (tmpfs of {size}, the dataset ~1.3 MB)", 1,
           "exit 1, one line naming the shard that could not be written and the free space; nothing left on the "
           "disk (dataset-info: no dataset); with room, the same prepare gives the uninterrupted dataset")


def test_the_token_cache_on_a_full_disk_is_one_line_and_leaves_no_run(work: Path, report) -> None:
    preset = micro_preset(work, max_iters=2, eval_interval=2)
    with _tmpfs(work / "disk", "size=200k") as disk:
        proc = run_cli(train_args(preset, "full", data_dir=disk), cwd=work, env=fault_env())
        assert proc.returncode == 1, (proc.returncode, proc.stderr)
        [line] = one_line(proc.stderr)
        assert "Traceback" not in proc.stderr and f"--data_dir {disk}" in line and "no space left" in line, line
        assert f"{disk}/cache/" in line and " free of " in line, line
        assert list(disk.iterdir()) == []  # no half-built cache, not even the cache folder
        assert not (work / "runs" / "full").exists()
    report("`gptwiz train --input_file` with its token cache on a full disk (tmpfs of 200k)", 1,
           "exit 1, one line naming the cache shard and the free space; nothing left in --data_dir, no run folder")


# --- class 6: an --out_dir or --data_dir that cannot be a dataset folder ----------------------------------

OUT_DIRS = {  # case: (--out_dir, fragments of the one line)
    "regular_file": ("afile", ["--out_dir afile is a file, not a folder"]),
    "file_in_path": ("afile/ds", ["afile is a file, not a folder"]),
    "dev_null": ("/dev/null", ["--out_dir /dev/null is a character device, not a folder"]),
    "fifo": ("fifo", ["--out_dir fifo is a named pipe, not a folder"]),
    "proc": ("/proc", ["/proc", "proc filesystem"]),
    "inside_proc": ("/proc/self/ds", ["/proc/self/ds", "proc filesystem"]),
    "current_folder": (".", ["--out_dir .", "name a new folder"]),
    "parent_folder": ("..", ["--out_dir ..", "name a new folder"]),
    "long_component": ("x" * 300, ["300 bytes long", "255"]),
    "long_parent": ("y" * 256 + "/ds", ["256 bytes long", "255"]),
    "long_for_working_folder": ("z" * 240, ["240 bytes long", "at most"]),
}


@pytest.mark.parametrize("case", sorted(OUT_DIRS))
def test_an_out_dir_that_cannot_be_a_dataset_folder_is_one_line(work: Path, case: str, report) -> None:
    out, fragments = OUT_DIRS[case]
    (work / "afile").write_text("a file")
    os.mkfifo(work / "fifo")
    sources = str(work / "new" / "*.txt")  # absolute: '.' as out_dir would otherwise hold the documents
    before = _tree(work)
    proc = run_cli(_args(out, sources), cwd=work, env=fault_env(), timeout=60)
    assert_one_line_error(proc, *fragments)
    assert _tree(work) == before and stat.S_ISFIFO((work / "fifo").lstat().st_mode)
    report(f"`prepare --out_dir` {case.replace('_', ' ')} ({out if len(out) < 30 else out[:12] + '...'})", 1,
           "exit 2, one line naming it and what would do; nothing written")


@pytest.mark.parametrize("case", ["read_only", "read_only_mount_point", "mount_point"])
def test_an_out_dir_on_a_read_only_disk_or_a_mount_point_is_one_line(work: Path, case: str, report) -> None:
    options = ("size=1m",) if case == "mount_point" else ("size=1m", "ro")
    with _tmpfs(work / "disk", *options) as disk:
        out = "disk/ds" if case == "read_only" else "disk"
        before = _tree(work)
        proc = run_cli(_args(out, "new/*.txt"), cwd=work, env=fault_env())
        assert_one_line_error(proc, f"--out_dir {out}", "mount point" if case == "mount_point" else "read-only")
        assert _tree(work) == before and list(disk.iterdir()) == []
    report(f"`prepare --out_dir` {case.replace('_', ' ')} (a tmpfs)", 1, "exit 2 in one line; nothing written")


@pytest.mark.parametrize("case", ["regular_file", "read_only"])
def test_a_data_dir_the_token_cache_cannot_use_is_one_line(work: Path, case: str, report) -> None:
    preset = micro_preset(work, max_iters=2, eval_interval=2)
    with contextlib.ExitStack() as stack:
        if case == "regular_file":
            data = work / "afile"
            data.write_text("a file")
        else:
            data = stack.enter_context(_tmpfs(work / "disk", "size=1m", "ro"))
        before = _tree(work)
        proc = run_cli(train_args(preset, "bad", data_dir=data), cwd=work, env=fault_env())
        assert_one_line_error(proc, f"--data_dir {data}")
        assert _tree(work) == before
    report(f"`train --input_file` with --data_dir a {case.replace('_', ' ')}", 1,
           "exit 2 in one line; nothing written, no run folder")

