"""Exports that meet: two exports to one new folder give one model folder and one refusal in one line; an
export killed mid-write leaves a hidden temporary folder that the next export to that folder removes (and no
folder of anyone else's); a folder name as long as the filesystem allows works, a longer one is refused in one
line. The GPTWIZ_FAULT_EXPORT hook (gptwiz.common.faults) holds an export after its files are written and
before its folder is renamed into place, so that the other export, or the kill, lands in that window."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import assert_one_line_error, run_cli

from faults.support import TEMPLATE_RUN, fault_env, kill9, start, wait_for

MODEL_FILES = ["README.md", "config.json", "generation_config.json", "merges.txt", "model.safetensors",
               "special_tokens_map.json", "tokenizer.json", "tokenizer_config.json", "vocab.json"]
HOLD = "GPTWIZ_FAULT_EXPORT"


def _export_args(work: Path, out: Path, *extra: str) -> list[str]:
    return ["export", str(work / "runs" / TEMPLATE_RUN), "--out", str(out), *extra]


def _whole(out: Path) -> bool:
    from safetensors import safe_open

    if sorted(os.listdir(out)) != MODEL_FILES:
        return False
    with safe_open(str(out / "model.safetensors"), framework="pt") as f:
        keys = list(f.keys())
    return "transformer.wte.weight" in keys and json.loads((out / "config.json").read_text())["model_type"] == "gpt2"


def _popen(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "gptwiz", *args], cwd=cwd, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_two_exports_to_one_new_folder_give_one_export_and_one_refusal(trained_copy: Path, report) -> None:
    work = trained_copy
    trials = [{HOLD: "sleep=2"}, {}]  # held wide open, then a plain race
    for n, extra in enumerate(trials):
        out = work / f"models{n}" / "drop"
        procs = [_popen(_export_args(work, out), work, fault_env(**extra)) for _ in range(2)]
        results = [(p, *p.communicate(timeout=300)) for p in procs]
        codes = sorted(p.returncode for p, _, _ in results)
        assert codes == [0, 2], [(p.returncode, o, e) for p, o, e in results]
        _, _, err = next(r for r in results if r[0].returncode == 2)
        lines = [line for line in err.splitlines() if line.strip()]
        assert len(lines) == 1 and "Traceback" not in err, err
        assert str(out) in lines[0] and ("another export is writing" in lines[0] or "--overwrite" in lines[0]), err
        assert _whole(out)
        assert os.listdir(out.parent) == ["drop"]  # no lock file, no temporary folder left beside it
    report("two `gptwiz export` to one new folder at once (once held open between writing and renaming, "
           "once a plain race)", len(trials),
           "exit codes 0 and 2; the loser says in one line that another export is writing the folder or that "
           "it now exists (--overwrite); the folder holds one whole model; nothing left beside it")


def test_a_killed_exports_temporary_folder_is_removed_by_the_next_export(trained_copy: Path, tmp_path: Path,
                                                                        report) -> None:
    work = trained_copy
    parent = work / "models"
    parent.mkdir()
    out = parent / "drop"
    # Hidden folders of someone else's with names like an export's temporary folder: never gptwiz's to remove.
    strangers = [parent / ".drop.abc123.tmp", parent / ".gptwiz-export-0123456789abcdef.tmp",
                 parent / ".gptwiz-export-notes"]
    for folder in strangers:
        folder.mkdir()
        (folder / "keep.txt").write_text("the user's\n")
    before = set(os.listdir(parent))

    def temporary() -> list[Path]:
        return [p for p in parent.iterdir() if p.name not in before and p.is_dir()
                and (p / "model.safetensors").is_file() and (p / "README.md").is_file()]

    proc = start(_export_args(work, out), cwd=work, env=fault_env(**{HOLD: "sleep=60"}), log=tmp_path / "a.log")
    try:
        left = wait_for(temporary, timeout=120, proc=proc)
        assert left, (tmp_path / "a.log").read_text()
    finally:
        kill9(proc)
    assert not out.exists() and temporary() == left
    size = (left[0] / "model.safetensors").stat().st_size
    proc2 = run_cli(_export_args(work, out), cwd=work, env=fault_env())
    assert proc2.returncode == 0, proc2.stderr
    assert _whole(out)
    assert set(os.listdir(parent)) == before | {"drop"}, os.listdir(parent)  # the temporary folder (and lock) gone
    for folder in strangers:
        assert (folder / "keep.txt").read_text() == "the user's\n"
    report("`gptwiz export` SIGKILLed after writing its files into the temporary folder, before the rename; "
           "hidden folders of the user's with look-alike names beside it", 1,
           f"a {size // 1_000_000} MB temporary folder is left; the next export to that folder removes it and "
           "writes the model whole; the user's look-alike folders untouched")


def test_a_name_as_long_as_the_filesystem_allows_works_and_a_longer_one_is_one_line(trained_copy: Path,
                                                                                     report) -> None:
    work = trained_copy
    limit = os.pathconf(work, "PC_NAME_MAX")
    fits = work / ("m" * (limit - 5))
    proc = run_cli(_export_args(work, fits), cwd=work, env=fault_env())
    assert proc.returncode == 0, proc.stderr
    assert _whole(fits)
    assert sorted(os.listdir(work)) == sorted(["micro.json", "runs", fits.name]), os.listdir(work)
    too_long = work / ("m" * 300)
    proc = run_cli(_export_args(work, too_long), cwd=work, env=fault_env())
    assert_one_line_error(proc, "--out", "300 bytes", str(limit))
    assert sorted(os.listdir(work)) == sorted(["micro.json", "runs", fits.name])
    report(f"`gptwiz export --out` with a {limit - 5}-byte folder name, then a 300-byte one "
           f"(the filesystem allows {limit})", 2,
           "the first exports whole, nothing left beside it; the second exits 2 with one line naming the limit")


def test_an_earlier_export_moved_aside_by_a_killed_overwrite_is_put_back(trained_copy: Path, report) -> None:
    """A kill between `--overwrite`'s two renames leaves the earlier export moved aside and --out gone: the next
    export puts it back before anything else (and then refuses to replace it without --overwrite)."""
    from gptwiz.export.target import ExportTarget

    work = trained_copy
    out = work / "models" / "drop"
    out.parent.mkdir()
    aside = ExportTarget(out, ()).old
    aside.mkdir()
    (aside / "config.json").write_text(json.dumps({"model_type": "gpt2", "mine": True}))
    (aside / "notes.txt").write_text("kept\n")
    proc = run_cli(_export_args(work, out), cwd=work, env=fault_env())
    assert_one_line_error(proc, str(out), "--overwrite")
    assert sorted(os.listdir(out.parent)) == ["drop"]
    assert json.loads((out / "config.json").read_text())["mine"] is True and (out / "notes.txt").exists()
    report("`gptwiz export --overwrite` killed between moving the earlier export aside and renaming the new one "
           "in (the earlier export left at its hidden name, --out gone), then another export", 1,
           "the earlier export is put back at --out whole; the new export refuses in one line to replace it "
           "without --overwrite")
