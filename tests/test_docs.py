"""The project's documents link only to what a clone has: every relative link resolves inside the repository."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LINK = re.compile(r"\]\(([^)\s]+)\)")


def test_relative_links_resolve_inside_the_repository() -> None:
    documents = [ROOT / "README.md", ROOT / "CONTRIBUTING.md", *sorted((ROOT / "docs").glob("*.md"))]
    broken = []
    for doc in documents:
        for target in LINK.findall(doc.read_text(encoding="utf-8")):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue  # a web address, or an anchor in the same document
            path = (doc.parent / target.split("#", 1)[0]).resolve()
            if not path.exists() or ROOT not in path.parents:
                broken.append(f"{doc.name}: {target}")
    assert not broken, broken


def test_the_guide_ships_with_gptwiz_commands() -> None:
    guide = (ROOT / "docs" / "model-selection-guide.md").read_text(encoding="utf-8")
    assert "python train.py" not in guide and "configs/pretrain" not in guide and "scripts/" not in guide
    assert "gptwiz train \\\n    --config_file small \\" in guide and "gptwiz probe --config_file" in guide
