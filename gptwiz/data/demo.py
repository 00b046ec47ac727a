"""The built-in demo corpus: text every Python installation has, so gptwiz does something real with no data at hand.

Two sources, built from the standard library of the Python running gptwiz, no download:
  docstrings  every module's, class's and function's docstring (English prose), one document per module;
  code        the modules' source, one document per module, up to CODE_BYTES (sorted by path, so the
              same Python gives the same corpus).
They are written as .jsonl under data/demo-stdlib-src/ and prepared with `gptwiz prepare`'s Python API
into data/demo-stdlib/ the first time the demo is chosen; later choices reuse it.
"""

from __future__ import annotations

import ast
import functools
import json
import os
import sysconfig
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from gptwiz.common.atomic import atomic_write
from gptwiz.common.errors import UsageError, WriteFailed
from gptwiz.common.files import check_folder, write_failure

DEMO_NAME = "demo-stdlib"
CODE_BYTES = 4_000_000  # with the docstrings about 5.5 MB: the guide's "< 10 MB" row, quick to prepare
_SKIP_DIRS = {"test", "tests", "idlelib", "lib2to3", "turtledemo", "ensurepip", "site-packages", "dist-packages",
              "pydoc_data", "__pycache__", "tkinter", "venv"}


class DemoCancelled(Exception):
    """The user cancelled building the demo corpus; nothing half-built is left as a dataset."""


@dataclass(frozen=True)
class DemoCorpus:
    dataset_dir: Path
    source_dir: Path
    manifest: dict[str, Any]

    @property
    def tokens(self) -> int:
        return sum(int(s.get("train_tokens", 0)) + int(s.get("val_tokens", 0)) for s in self.manifest["sources"])

    @property
    def bytes(self) -> int:
        return sum(int(s.get("bytes", 0)) for s in self.manifest["sources"])

    @property
    def files(self) -> int:
        return sum(int(s.get("files", 0)) for s in self.manifest["sources"])


def demo_dataset_dir(data_dir: Path | str) -> Path:
    return Path(data_dir) / DEMO_NAME


def demo_source_dir(data_dir: Path | str) -> Path:
    return Path(data_dir) / f"{DEMO_NAME}-src"


def demo_ready(data_dir: Path | str) -> bool:
    folder = demo_dataset_dir(data_dir)
    return not folder.is_symlink() and (folder / "manifest.json").is_file()


def _own_folder(folder: Path) -> None:
    """Make a folder gptwiz names itself. A symlink found there was put by someone else: it is replaced (the
    link alone is removed), so nothing is written where it points."""
    if folder.is_symlink():
        folder.unlink()
    folder.mkdir(parents=True, exist_ok=True)


def stdlib_modules(root: Path | None = None) -> list[Path]:
    """The standard library's .py files, tests and bundled tools left out, sorted."""
    root = root or Path(sysconfig.get_paths()["stdlib"])
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS and not d.startswith("config-"))
        found.extend(Path(dirpath) / f for f in sorted(filenames) if f.endswith(".py"))
    return sorted(found)


def docstrings(source: str) -> str:
    """Every docstring of a module, in source order, separated by blank lines; '' if it does not parse."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, SystemError):
        # SystemError: CPython 3.11's parser can report a recursion-depth mismatch when it runs in a thread;
        # a module it cannot parse just adds no docstrings to the corpus.
        return ""
    docs = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            doc = ast.get_docstring(node)
            if doc:
                docs.append(doc)
    return "\n\n".join(docs)


def write_sources(data_dir: Path | str, should_cancel: Callable[[], bool] = lambda: False,
                  on_file: Callable[[int, int], None] = lambda done, total: None) -> Path:
    """The two .jsonl sources from the standard library; returns their folder."""
    src = demo_source_dir(data_dir)
    try:
        _own_folder(src)
    except OSError as exc:
        raise UsageError(f"--data_dir {data_dir}: cannot make {src} ({exc.strerror})") from None
    root = Path(sysconfig.get_paths()["stdlib"])
    modules = stdlib_modules(root)
    doc_lines, code_lines, code_bytes = [], [], 0
    for i, path in enumerate(modules):
        if should_cancel():
            raise DemoCancelled("cancelled while collecting the standard library's text")
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        doc = docstrings(text)
        if doc:
            doc_lines.append(json.dumps({"text": doc}) + "\n")
        if code_bytes < CODE_BYTES:
            rel = path.relative_to(root).as_posix()
            code_lines.append(json.dumps({"text": f"# {rel}\n{text}"}) + "\n")
            code_bytes += len(text.encode("utf-8"))
        on_file(i + 1, len(modules))
    for name, lines in (("docstrings", doc_lines), ("code", code_lines)):
        payload = "".join(lines).encode("utf-8")
        try:
            atomic_write(src / f"{name}.jsonl", functools.partial(_write_payload, payload=payload))
        except OSError as exc:  # a full disk: atomic_write left the old file (or none), never half of one
            what = write_failure(exc) or f"cannot write {src / name}.jsonl ({exc.strerror})"
            raise WriteFailed(f"--data_dir {data_dir}: {what}; free some space or pass another --data_dir") from None
    return src


def _write_payload(f: IO[bytes], payload: bytes) -> None:
    f.write(payload)


def build_demo(data_dir: Path | str, progress: Any = None,
               should_cancel: Callable[[], bool] = lambda: False,
               on_stage: Callable[[str], None] = lambda message: None) -> DemoCorpus:
    """The demo dataset, prepared now if it is not yet (gptwiz.data.prepare does the tokenizing)."""
    from gptwiz.data.prepare import PrepareOptions, PrepareProgress, prepare  # lazy: numpy off the first screen

    out = demo_dataset_dir(data_dir)
    if not demo_ready(data_dir):
        check_folder(data_dir, "--data_dir", write=True)
        if out.is_symlink():  # named by gptwiz, as the sources' folder: a link there is replaced, not followed
            try:
                out.unlink()
            except OSError as exc:
                raise UsageError(f"--data_dir {data_dir}: {out} is a symlink that cannot be removed "
                                 f"({exc.strerror}); remove it") from None
        on_stage("collecting docstrings and source from the Python standard library")
        src = write_sources(data_dir, should_cancel)
        on_stage("tokenizing with gptwiz prepare")

        class Cancellable(PrepareProgress):
            """Forwards progress; raising here makes prepare remove its partial output."""

            def start(self, files: int, nbytes: int) -> None:
                if progress is not None:
                    progress.start(files, nbytes)

            def advance(self, files: int, nbytes: int, tokens: int) -> None:
                if should_cancel():
                    raise DemoCancelled("cancelled while tokenizing the demo corpus")
                if progress is not None:
                    progress.advance(files, nbytes, tokens)

            def stop(self) -> None:
                if progress is not None:
                    progress.stop()

        prepare(PrepareOptions(sources=[f"docstrings:{src / 'docstrings.jsonl'}", f"code:{src / 'code.jsonl'}"],
                               out_dir=str(out), overwrite=True), Cancellable())
    from gptwiz.data.manifest import read_manifest  # lazy: numpy only when the demo corpus is built

    return DemoCorpus(dataset_dir=out, source_dir=demo_source_dir(data_dir), manifest=read_manifest(out))
