"""Globs over a user's folders: glob's matches, but a symlink back to a parent folder is not walked round."""

from __future__ import annotations

import glob
import os
from pathlib import Path

import pytest

from gptwiz.data.globbing import safe_glob
from gptwiz.data.prepare.sources import SourceSpec, plan_source

PATTERNS = ["**/*", "**/*.txt", "a/**/*.txt", "a/*", "*", "*.txt", "a/b/*", "a/**/c/*", "**/e/*", "a/.h/*", "a/.*",
            ".top/**/*", "a/b/2.md", "nope/*", "a/?.txt", "**/b/**/*.txt", "a/[b]/*"]


@pytest.fixture
def tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for folder in ("a/b/c", "a/.h/x", "d/e", ".top/q"):
        (tmp_path / folder).mkdir(parents=True)
    for name in ("a/1.txt", "a/b/2.md", "a/b/c/3.txt", "a/.h/x/4.txt", "a/.5.txt", "d/e/6.txt", "7.txt",
                 ".top/q/8.txt", "d/link.txt"):
        (tmp_path / name).write_text("text\n")
    (tmp_path / "a/b/dlink").symlink_to(tmp_path / "d")  # a link to a folder elsewhere: followed, as glob does
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize("pattern", PATTERNS)
def test_matches_what_glob_matches_without_loops(tree: Path, pattern: str) -> None:
    expected = sorted(p.rstrip("/") for p in glob.glob(pattern, recursive=True))
    assert sorted(safe_glob(pattern)) == expected
    absolute = os.path.join(tree, pattern)
    assert sorted(safe_glob(absolute)) == sorted(p.rstrip("/") for p in glob.glob(absolute, recursive=True))


def test_a_link_back_to_a_parent_is_not_walked_round(tree: Path) -> None:
    (tree / "a/loop").symlink_to(tree)
    (tree / "d/e/up").symlink_to(tree / "a")
    found = sorted(safe_glob("**/*.txt"))
    # Every file once by each way in that is not a loop; glob itself would walk a/loop/a/loop/... until the path
    # is too long, listing thousands of paths.
    assert found == ["7.txt", "a/1.txt", "a/b/c/3.txt", "a/b/dlink/e/6.txt", "a/b/dlink/link.txt",
                     "d/e/6.txt", "d/e/up/1.txt", "d/e/up/b/c/3.txt", "d/link.txt"]
    plan = plan_source(SourceSpec(name="docs", glob=str(tree / "**/*.txt")))
    assert len(plan.files) == len(found)
