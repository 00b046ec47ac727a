"""Reading documents: files in blocks, decoded as UTF-8 (.jsonl by its 'text' field), files with NUL bytes
skipped, and each document cut where tokenizing the parts apart gives exactly the tokens of the whole."""

from __future__ import annotations

import codecs
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from gptwiz.common.errors import UsageError
from gptwiz.common.records import RecordError
from gptwiz.common.safe_read import loads
from gptwiz.data.prepare.sources import PlannedFile
from gptwiz.data.text_check import BINARY_PROBE, looks_binary
from gptwiz.data.tokenizer import safe_split

FORCED_CUT_CHARS = 16 << 20     # text with no safe cut in this many characters is cut anyway
SKIPPED_LISTED = 100            # skipped file names kept in the manifest, per source


@dataclass
class SourceStats:
    """What reading a source found; filled in by the reader as it goes."""
    files: int = 0
    bytes: int = 0
    skipped: list[str] = field(default_factory=list)
    skipped_files: int = 0
    skipped_bytes: int = 0
    replaced_chars: int = 0
    bad_lines: int = 0
    first_bad_line: str = ""
    forced_cuts: int = 0


def replaced_count(text: str, raw: bytes) -> int:
    # errors="replace" turns each invalid sequence into U+FFFD; subtract the U+FFFD the file really holds.
    return text.count("\ufffd") - raw.count(b"\xef\xbf\xbd")


def _read(f: Any, n: int, pf: PlannedFile, source: str) -> bytes:
    try:
        return f.read(n)
    except OSError as exc:
        raise UsageError(f"source {source}: cannot read {pf.path} ({exc.strerror or exc})") from None


def _text_blocks(f: Any, first: bytes, pf: PlannedFile, source: str, stats: SourceStats,
                 read_bytes: int) -> Iterator[str]:
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    tail = b""  # a real U+FFFD split across two reads is counted in the read that completes it
    raw = first
    while raw:
        stats.bytes += len(raw)
        text = decoder.decode(raw)
        window = tail + raw
        stats.replaced_chars += replaced_count(text, window)
        tail = window[-2:]
        if text:
            yield text
        raw = _read(f, read_bytes, pf, source)
    text = decoder.decode(b"", final=True)
    stats.replaced_chars += text.count("\ufffd")
    if text:
        yield text


def _jsonl_documents(f: Any, pf: PlannedFile, source: str, stats: SourceStats) -> Iterator[tuple[int, Iterator[str]]]:
    f.seek(0)
    index = -1
    while raw := _readline(f, pf, source):
        index += 1
        stats.bytes += len(raw)
        line = raw.decode("utf-8", errors="replace")
        stats.replaced_chars += replaced_count(line, raw)
        if not line.strip():
            continue
        try:
            record = loads(line, f"{pf.path}:{index + 1}")
        except RecordError:  # not JSON, or nested deeper than a document's line is: counted as a bad line
            record = None
        text = record.get("text") if isinstance(record, dict) else None
        if not isinstance(text, str):
            stats.bad_lines += 1
            stats.first_bad_line = stats.first_bad_line or f"{pf.path}:{index + 1}"
            continue
        if text:
            yield index, iter((text,))


def _readline(f: Any, pf: PlannedFile, source: str) -> bytes:
    try:
        return f.readline()
    except OSError as exc:
        raise UsageError(f"source {source}: cannot read {pf.path} ({exc.strerror or exc})") from None


def skipped_as_binary(head: bytes, pf: PlannedFile, stats: SourceStats) -> bool:
    """Whether a file is not text (a NUL byte in its first BINARY_PROBE bytes), counted as skipped if so and as
    read if not."""
    if looks_binary(head):
        stats.skipped_files += 1
        stats.skipped_bytes += pf.size
        if len(stats.skipped) < SKIPPED_LISTED:
            stats.skipped.append(pf.rel)
        return True
    stats.files += 1
    return False


def file_documents(pf: PlannedFile, source: str, stats: SourceStats,
                   read_bytes: int) -> Iterator[tuple[int, Iterator[str]]]:
    """(document index, its text in blocks) for each document of one file; each must be read to the end."""
    try:
        with open(pf.path, "rb") as f:
            first = f.read(max(read_bytes, BINARY_PROBE))
            if skipped_as_binary(first, pf, stats):
                return
            if pf.is_jsonl:
                yield from _jsonl_documents(f, pf, source, stats)
            else:
                yield 0, _text_blocks(f, first, pf, source, stats, read_bytes)
    except OSError as exc:
        raise UsageError(f"source {source}: cannot read {pf.path} ({exc.strerror or exc})") from None


# --- safe cut points -------------------------------------------------------------------------------

def _space_cut(text: str) -> int:
    """Index of the last space between two visible characters (the space goes right), or 0.

    GPT-2's pre-tokenizer starts a new piece at such a space (" word", " 12", " !") and never
    lets the piece before it run on past it, so "...x" + " y..." tokenize as they do together.
    """
    i = len(text) - 1
    while True:
        i = text.rfind(" ", 1, i)
        if i <= 0:
            return 0
        if not text[i - 1].isspace() and not text[i + 1].isspace():
            return i


def safe_cut(text: str) -> int:
    """Where `text` may be cut without changing its tokens: after a newline if possible, else before a space."""
    return safe_split(text) or _space_cut(text)


def document_segments(blocks: Iterable[str], max_chars: int, stats: SourceStats | None = None,
                      forced_chars: int = FORCED_CUT_CHARS) -> Iterator[str]:
    """A document's text as segments of about `max_chars`, cut only where the tokens stay exact
    (unless `forced_chars` of text pass without any such place)."""
    buf = ""
    for block in blocks:
        buf = buf + block if buf else block
        while len(buf) > max_chars:
            cut = safe_cut(buf)
            if cut == 0:
                if len(buf) < forced_chars:
                    break  # read on: a safe place usually comes soon
                cut = len(buf)  # no whitespace in megabytes: not prose; bound the memory instead
                if stats is not None:
                    stats.forced_cuts += 1
            yield buf[:cut]
            buf = buf[cut:]
    if buf:
        yield buf
