"""The documents stay true: a short README, links that resolve, and a command reference that matches the parser."""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest

from gptwiz.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
README_MAX_LINES = 250
LINK = re.compile(r"\]\(([^)\s]+)\)")
FENCE = re.compile(r"^[ \t]*(```|~~~).*?^[ \t]*\1[ \t]*$", flags=re.MULTILINE | re.DOTALL)
HEADING = re.compile(r"^#{1,6}[ \t]+(.+?)[ \t]*#*[ \t]*$", flags=re.MULTILINE)
# pymdownx.snippets: a line `--8<-- "path"` includes that file (relative to the repository root) in the page.
SNIPPET = re.compile(r'^--8<-- "([^"]+)"[ \t]*$', flags=re.MULTILINE)
# A cell holding one or more backticked names, as the reference pages' first column does: `--flag`, `NAME`.
CODE = re.compile(r"`([^`]+)`")


def documents() -> list[Path]:
    return [ROOT / "README.md", ROOT / "CONTRIBUTING.md", *sorted(DOCS.rglob("*.md"))]


def expanded(doc: Path) -> str:
    """The document as the site shows it: snippet includes replaced by the files they name."""
    text = doc.read_text(encoding="utf-8")
    return SNIPPET.sub(lambda m: (ROOT / m.group(1)).read_text(encoding="utf-8"), text)


def prose(text: str) -> str:
    """The text outside fenced code blocks, where a `#` line is a comment and `](` is code."""
    return FENCE.sub("", text)


def github_slug(heading: str) -> str:
    text = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", r"\1", heading).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def mkdocs_slug(heading: str) -> str:
    # Python-Markdown's toc.slugify, which mkdocs uses: NFKD to ASCII, drop punctuation, collapse runs of - and space.
    text = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    text = re.sub(r"[^\w\s-]", "", text).strip().lower()
    return re.sub(r"[-\s]+", "-", text)


def anchors(doc: Path) -> set[str]:
    """The anchors of `doc`'s headings that GitHub and the site both give the same name."""
    headings = HEADING.findall(prose(expanded(doc)))
    return {github_slug(h) for h in headings if github_slug(h) == mkdocs_slug(h)}


def broken_links(doc: Path, root: Path = ROOT) -> list[str]:
    broken = []
    for target in LINK.findall(prose(expanded(doc))):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):
            continue  # a web address
        path_part, _, anchor = target.partition("#")
        path = (doc.parent / path_part).resolve() if path_part else doc
        where = f"{doc.relative_to(root)}: {target}"
        if not path.exists() or (path != root and root not in path.parents):
            broken.append(f"{where} (no such file in the repository)")
        elif anchor and (path.suffix != ".md" or anchor not in anchors(path)):
            broken.append(f"{where} (no heading with that anchor, spelled alike on GitHub and the site)")
    return broken


def test_the_readme_is_short() -> None:
    lines = len((ROOT / "README.md").read_text(encoding="utf-8").splitlines())
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines (at most {README_MAX_LINES}): move detail to docs/"


def test_relative_links_and_anchors_resolve() -> None:
    broken = [b for doc in documents() for b in broken_links(doc)]
    assert not broken, "\n".join(broken)


def test_the_link_check_sees_broken_links(tmp_path: Path) -> None:
    # A guard on the checker: a missing file, a missing anchor, a link out of the tree and an anchor the two
    # renderers spell differently are reported; a good link and anchor are not, nor a link inside code.
    (tmp_path / "other.md").write_text("# Other\n\n## Time, predicted: before anything runs\n\n## A -> B\n")
    doc = tmp_path / "doc.md"
    doc.write_text("[ok](other.md#time-predicted-before-anything-runs) [self](#doc) [no](missing.md)\n"
                   "[gone](other.md#nope) [up](../x.md) [arrow](other.md#a---b)\n\n# Doc\n\n"
                   "```\n[code](nowhere.md)\n```\n", encoding="utf-8")
    found = broken_links(doc, root=tmp_path)
    assert [b.split(" (")[0] for b in found] == ["doc.md: missing.md", "doc.md: other.md#nope", "doc.md: ../x.md",
                                               "doc.md: other.md#a---b"], found


def verb_parsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def long_options(parser: argparse.ArgumentParser) -> set[str]:
    """Every long option, spelled with dashes (each flag takes --max_iters and --max-iters alike)."""
    return {"--" + o[2:].replace("_", "-") for a in parser._actions for o in a.option_strings
            if o.startswith("--") and o != "--help"}


def positionals(parser: argparse.ArgumentParser) -> set[str]:
    return {str(a.metavar or a.dest.upper()) for a in parser._actions if not a.option_strings}


def table_first_column(page: str, heading: str) -> set[str]:
    """The backticked names in the first column of the table under `## heading`."""
    section = re.split(rf"^## {re.escape(heading)}[ \t]*$", page, flags=re.MULTILINE)
    if len(section) < 2:
        return set()
    body = re.split(r"^#{1,2} ", section[1], flags=re.MULTILINE)[0]
    rows = [line for line in body.splitlines() if line.startswith("|")][2:]  # past the header and its rule
    return {name for row in rows for name in CODE.findall(row.split("|")[1])}


def test_every_verb_has_a_reference_page_and_no_page_is_stale() -> None:
    pages = {p.stem for p in (DOCS / "reference").glob("*.md")} - {"index"}
    assert pages == set(verb_parsers()), "docs/reference/ must hold one page per verb of `gptwiz --help`"
    index = (DOCS / "reference" / "index.md").read_text(encoding="utf-8")
    assert all(f"]({verb}.md)" in index for verb in verb_parsers()), "docs/reference/index.md lists every verb"


def test_each_reference_page_documents_exactly_its_parsers_flags() -> None:
    wrong = []
    for verb, parser in sorted(verb_parsers().items()):
        page = (DOCS / "reference" / f"{verb}.md").read_text(encoding="utf-8")
        if not page.startswith(f"# gptwiz {verb}\n"):
            wrong.append(f"{verb}.md: the title must be '# gptwiz {verb}'")
        documented = {"--" + n[2:].replace("_", "-") for n in table_first_column(page, "Flags") if n.startswith("--")}
        wanted = long_options(parser)
        if documented != wanted:
            wrong.append(f"{verb}.md, ## Flags: missing {sorted(wanted - documented)}, "
                         f"not in the parser {sorted(documented - wanted)}")
        names = table_first_column(page, "Arguments")
        if names != positionals(parser):
            wrong.append(f"{verb}.md, ## Arguments: {sorted(names)}, the parser's {sorted(positionals(parser))}")
    assert not wrong, "docs/reference/ against `gptwiz VERB --help`:\n" + "\n".join(wrong)


def test_the_reference_check_reads_the_flags_table() -> None:
    # A guard on the reader: both spellings of a flag are one flag, and only the named section's table counts.
    page = ("# gptwiz x\n\n## Flags\n\n| flag | what |\n|---|---|\n| `--max_iters` | n |\n"
            "| `--compile`, `--no-compile` | c |\n\n## More\n\n| a |\n|---|\n| `--other` |\n")
    assert table_first_column(page, "Flags") == {"--max_iters", "--compile", "--no-compile"}
    assert long_options(verb_parsers()["train"]) >= {"--max-iters", "--compile", "--no-compile"}


def test_the_guide_ships_with_gptwiz_commands() -> None:
    guide = (DOCS / "model-selection-guide.md").read_text(encoding="utf-8")
    assert "python train.py" not in guide and "configs/pretrain" not in guide and "scripts/" not in guide
    assert "gptwiz train \\\n    --config_file small \\" in guide and "gptwiz probe --config_file" in guide


@pytest.mark.skipif(importlib.util.find_spec("mkdocs") is None, reason="mkdocs-material is not installed (extra: docs)")
def test_the_site_builds_in_strict_mode(tmp_path: Path) -> None:
    # Strict: a page left out of the nav, a link to a missing page or anchor, a missing snippet fails the build.
    command = [sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(tmp_path / "site")]
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
