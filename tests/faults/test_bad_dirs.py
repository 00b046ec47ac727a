"""A --runs_dir or --data_dir that cannot be one: a regular file, /dev/null, /proc (and a symlink to it), a
read-only filesystem, a path through a regular file, a name over 255 bytes. Every command that takes the
flag (train, probe, runs, watch, stop, sample, the wizard) says so in one line and exits with status 2 before
it writes anything; a command that only reads (runs, watch, stop, sample) accepts a read-only folder.

The commands run in this process through gptwiz.cli.main, the function the `gptwiz` script calls, so the 77
trials take seconds; the folders are real (the read-only one a tmpfs mounted read-only)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import SHAKESPEARE

from faults.support import micro_preset
from gptwiz.cli import main

WRITERS = ("train", "probe", "wizard")


@pytest.fixture
def read_only_disk(tmp_path: Path) -> Iterator[Path | None]:
    """An empty tmpfs mounted read-only; None where it cannot be mounted (not root)."""
    folder = tmp_path / "ro"
    folder.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,ro", "tmpfs", str(folder)],
                                           capture_output=True).returncode != 0:
        yield None
        return
    yield folder
    subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def _bad_folders(tmp_path: Path, read_only: Path | None) -> dict[str, tuple[Path, str]]:
    """kind -> (the path, a fragment the error must hold)."""
    afile = tmp_path / "afile"
    afile.write_text("not a folder\n")
    proc_link = tmp_path / "proc-link"
    proc_link.symlink_to("/proc")
    kinds = {"a regular file": (afile, "regular file, not a folder"),
             "/dev/null": (Path("/dev/null"), "character device, not a folder"),
             "/proc": (Path("/proc"), "proc filesystem"),
             "a symlink to /proc": (proc_link, "proc filesystem"),
             "a path through a regular file": (afile / "sub", "is a file, not a folder"),
             "a name of 300 bytes": (tmp_path / ("x" * 300), "more than the 255")}
    if read_only is not None:
        kinds["a read-only filesystem"] = (read_only, "read-only filesystem")
    return kinds


def _commands(tmp_path: Path, flag: str, folder: Path) -> dict[str, list[str]]:
    preset = str(micro_preset(tmp_path))
    data = ["--input_file", str(SHAKESPEARE)]
    if flag == "--runs_dir":
        return {"train": ["train", "--config_file", preset, *data, "--model_name", "t", "--quiet"],
                "probe": ["probe", "--config_file", preset, *data, "--model_name", "p", "--iters", "10", "--json"],
                "wizard": ["wizard", "--plain"],
                "runs": ["runs"], "watch": ["watch"], "watch NAME": ["watch", "t"], "stop": ["stop", "t", "--wait", "0"],
                "sample": ["sample", "--model_name", "t", "--max_new_tokens", "2"]}
    return {"train": ["train", "--config_file", preset, *data, "--model_name", "t", "--quiet",
                      "--runs_dir", str(tmp_path / "runs")],
            "probe": ["probe", "--config_file", preset, *data, "--iters", "10", "--json"],
            "wizard": ["wizard", "--plain", "--runs_dir", str(tmp_path / "runs")]}


def _gptwiz(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    try:
        code = main(argv)
    except SystemExit as exc:  # (argparse)
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, err


@pytest.mark.parametrize("flag", ["--runs_dir", "--data_dir"])
def test_a_folder_that_cannot_be_one_is_refused_in_one_line(flag: str, tmp_path: Path, read_only_disk: Path | None,
                                                            capsys: pytest.CaptureFixture[str],
                                                            monkeypatch: pytest.MonkeyPatch, report) -> None:
    monkeypatch.chdir(tmp_path)
    kinds = _bad_folders(tmp_path, read_only_disk)
    before = sorted(p.name for p in tmp_path.iterdir())
    trials = 0
    for kind, (folder, fragment) in kinds.items():
        for command, argv in _commands(tmp_path, flag, folder).items():
            code, err = _gptwiz([*argv, flag, str(folder)], capsys)
            lines = [line for line in err.splitlines() if line.strip()]
            trials += 1
            if kind == "a read-only filesystem" and command not in WRITERS:
                # Reading needs no write: the command does its usual thing, and says nothing of the folder.
                assert "read-only" not in err and "--runs_dir" not in err, (command, err)
                continue
            if kind == "a read-only filesystem" and flag == "--data_dir" and command == "wizard":
                # The wizard offers the datasets prepared in a read-only --data_dir; without a terminal it hints.
                assert code == 2 and "no terminal" in err, err
                continue
            assert code == 2, (kind, command, code, err)
            assert len(lines) == 1, (kind, command, err)
            assert flag in lines[0] and fragment in lines[0], (kind, command, lines[0])
    # Nothing written anywhere: no runs/, no data/, no token cache, the file and the read-only disk untouched.
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted({*before, "micro.json"})
    assert (tmp_path / "afile").read_text() == "not a folder\n"
    if read_only_disk is not None:
        assert not any(read_only_disk.iterdir())
    commands = ", ".join(_commands(tmp_path, flag, tmp_path))
    report(f"{flag} that cannot be one: {', '.join(kinds)}"
           + ("" if read_only_disk is not None else " (no read-only filesystem: not root)"), trials,
           f"each of {commands}: exit 2, one line naming {flag} and why; nothing written; a read-only "
           + ("--runs_dir is refused only by the commands that write it" if flag == "--runs_dir" else
              "--data_dir is refused where the token cache must be built, accepted by the wizard (prepared "
              "datasets are read from it)"))
