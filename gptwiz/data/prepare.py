"""`gptwiz prepare`: folders of documents from several weighted sources -> one token dataset.

The pipeline, all of it streamed so memory stays bounded whatever the corpus size:
  plan      glob every source, stat its files, refuse bad input before any work;
  read      (main thread) read files in blocks, decode UTF-8, cut documents at places where
            tokenizing the halves apart gives exactly the tokens of the whole, and pack them into
            pieces of about a megabyte, each bound for one source's train or val split;
  tokenize  (thread pool: tiktoken releases the GIL) each piece -> uint16 tokens;
  write     (main thread, in submission order) append them to bounded shard files.
Results are consumed in the order they were submitted, so the shards are the same byte for byte
whatever the number of workers.

Everything is written into a hidden folder beside out_dir; the manifest is written last, atomically,
and the folder is then renamed into place. An interrupt removes the folder; a kill leaves it behind
without a manifest (never at out_dir), and the next prepare of that out_dir removes it.
"""

from __future__ import annotations

import codecs
import contextlib
import glob as globlib
import hashlib
import json
import math
import os
import re
import shutil
import signal
import stat
import sys
import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

from gptwiz.common.atomic import _fsync_dir
from gptwiz.data.manifest import MANIFEST, TOKEN_DTYPE, new_manifest, write_manifest
from gptwiz.common.errors import UsageError
from gptwiz.data.tokenizer import EOT_TOKEN, get_encoding, safe_split

DEFAULT_VAL_FRACTION = 0.005
DEFAULT_BLOCK_SIZE = 1024       # the largest block_size of the guide's presets
SHARD_TOKENS = 1 << 26          # 64 Mi tokens = 128 MiB per shard file
READ_BYTES = 1 << 20            # files are read in blocks of this size
PIECE_CHARS = 1 << 20           # text handed to one tokenizer call, about
FORCED_CUT_CHARS = 16 << 20     # text with no safe cut in this many characters is cut anyway
BINARY_PROBE = 8192             # a NUL byte in this many leading bytes: not a text file
MAX_DEFAULT_WORKERS = 16        # each worker holds a ~10 MB tokenizer and ~6 MB of pieces: bounded memory
SKIPPED_LISTED = 100            # skipped file names kept in the manifest, per source
JSONL_SUFFIXES = (".jsonl",)

_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_MAGIC = re.compile(r"[*?[]")


# --- source specs ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class SourceSpec:
    name: str
    glob: str
    weight: float = 1.0


def parse_source(spec: str) -> SourceSpec:
    """NAME:GLOB[:WEIGHT] -> SourceSpec. The weight is whatever follows the last colon, when there are two."""
    name, sep, rest = spec.partition(":")
    glob_text, weight_text = rest, None
    if ":" in rest:
        glob_text, _, weight_text = rest.rpartition(":")
    example = "write NAME:GLOB[:WEIGHT], e.g. docs:data/company_docs/*.txt or wiki:data/wiki/**/*.md:3"
    if not sep or not glob_text.strip():
        raise UsageError(f"--source {spec!r} has no glob: {example}")
    if not name:
        raise UsageError(f"--source {spec!r} has no name before the first ':': {example}")
    if not _NAME_RE.fullmatch(name):
        raise UsageError(f"--source {spec!r}: the name {name!r} may hold only letters, digits, '-', '_' and '.', "
                         "start with a letter or digit, and be at most 64 characters (it names the shard files)")
    weight = 1.0
    if weight_text is not None:
        try:
            weight = float(weight_text)
        except ValueError:
            weight = float("nan")
        if not math.isfinite(weight) or weight <= 0:
            raise UsageError(f"--source {spec!r}: the weight {weight_text!r} is not a positive number "
                             "(e.g. 1 or 2.5; a glob that holds ':' needs an explicit weight, NAME:GLOB:1)")
    return SourceSpec(name=name, glob=glob_text, weight=weight)


def parse_sources(specs: Iterable[str]) -> list[SourceSpec]:
    sources = [parse_source(s) for s in specs]
    if not sources:
        raise UsageError("give at least one --source NAME:GLOB[:WEIGHT], e.g. --source docs:data/company_docs/*.txt")
    seen: dict[str, SourceSpec] = {}
    for s in sources:
        key = s.name.casefold()  # the names become file names, and some file systems ignore case
        if key in seen:
            same = repr(s.name) if s.name == seen[key].name else f"{seen[key].name!r} and {s.name!r} (names differing only in case)"
            raise UsageError(f"two sources are named {same} ({seen[key].glob!r} and {s.glob!r}); "
                             "give each --source its own name")
        seen[key] = s
    return sources


# --- planning: what each source's glob matches -----------------------------------------------------

@dataclass(frozen=True)
class PlannedFile:
    path: str       # as the glob matched it
    rel: str        # relative to the glob's fixed leading folders: stable whatever the working folder
    size: int
    mtime_ns: int
    is_jsonl: bool = False


@dataclass
class SourcePlan:
    spec: SourceSpec
    root: str
    files: list[PlannedFile]

    @property
    def bytes(self) -> int:
        return sum(f.size for f in self.files)

    def fingerprint(self) -> str:
        """Changes when the source's spec, its matched files, their sizes or their times change."""
        h = hashlib.sha256(json.dumps([self.spec.name, self.spec.glob, self.spec.weight, self.root]).encode())
        for f in self.files:
            h.update(f"\0{f.rel}\0{f.size}\0{f.mtime_ns}".encode("utf-8", "surrogateescape"))
        return h.hexdigest()


def glob_root(pattern: str) -> str:
    """The leading folders of a glob that hold no wildcard ('.' if none): document paths are relative to it."""
    parts = Path(pattern).parts
    fixed: list[str] = []
    for part in parts:
        if _MAGIC.search(part):
            break
        fixed.append(part)
    else:
        fixed = fixed[:-1]  # no wildcard at all: the pattern names a file, its folder is the root
    return str(Path(*fixed)) if fixed else "."


def plan_source(spec: SourceSpec, out_dir: Path | None = None) -> SourcePlan:
    """The files `spec` matches, sorted; never those of the dataset being written (a glob may cover it)."""
    pattern = os.path.expanduser(spec.glob)
    root = glob_root(pattern)
    inside_out = os.path.join(os.path.realpath(out_dir), "") if out_dir is not None else None
    files: list[PlannedFile] = []
    inside = 0
    for path in sorted(globlib.glob(pattern, recursive=True)):
        if os.path.isdir(path):
            continue
        if inside_out and os.path.realpath(path).startswith(inside_out):
            inside += 1
            continue
        try:
            st = os.stat(path)
        except OSError as exc:
            raise UsageError(f"source {spec.name}: cannot read {path} ({exc.strerror})") from None
        if not stat.S_ISREG(st.st_mode):
            raise UsageError(f"source {spec.name}: {path} is not a regular file (a device, socket or pipe); "
                             "narrow the glob to documents")
        if not os.access(path, os.R_OK):
            raise UsageError(f"source {spec.name}: cannot read {path} (permission denied)")
        rel = Path(os.path.relpath(path, root)).as_posix()
        files.append(PlannedFile(path=path, rel=rel, size=st.st_size, mtime_ns=st.st_mtime_ns,
                                 is_jsonl=path.lower().endswith(JSONL_SUFFIXES)))
    if not files and inside:
        raise UsageError(f"source {spec.name}: the glob {spec.glob!r} matches only files inside --out_dir {out_dir}, "
                         "where the dataset is written; choose an --out_dir outside the documents")
    if not files:
        where = "" if os.path.isabs(pattern) else f" (relative to {os.getcwd()})"
        raise UsageError(f"source {spec.name}: the glob {spec.glob!r} matches no files{where}; "
                         "check the path, and quote globs that use ** so the shell leaves them alone")
    return SourcePlan(spec=spec, root=str(Path(root).resolve()), files=files)


# --- splitting documents between train and val -----------------------------------------------------

def is_val_document(source: str, rel: str, index: int, fraction: float) -> bool:
    """A document's split: a hash of where it comes from, so it is the same on every run and machine."""
    digest = hashlib.blake2b(f"{source}\0{rel}\0{index}".encode("utf-8", "surrogateescape"), digest_size=8).digest()
    return int.from_bytes(digest, "big") < fraction * 2.0 ** 64


# --- reading documents -----------------------------------------------------------------------------

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


def _replacements(text: str, raw: bytes) -> int:
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
        stats.replaced_chars += _replacements(text, window)
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
        stats.replaced_chars += _replacements(line, raw)
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
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


def _file_documents(pf: PlannedFile, source: str, stats: SourceStats,
                    read_bytes: int) -> Iterator[tuple[int, Iterator[str]]]:
    """(document index, its text in blocks) for each document of one file; each must be read to the end."""
    try:
        with open(pf.path, "rb") as f:
            first = f.read(max(read_bytes, BINARY_PROBE))
            if b"\0" in first[:BINARY_PROBE]:
                stats.skipped_files += 1
                stats.skipped_bytes += pf.size
                if len(stats.skipped) < SKIPPED_LISTED:
                    stats.skipped.append(pf.rel)
                return
            stats.files += 1
            if pf.is_jsonl:
                yield from _jsonl_documents(f, pf, source, stats)
            else:
                yield 0, _text_blocks(f, first, pf, source, stats, read_bytes)
    except OSError as exc:
        raise UsageError(f"source {source}: cannot read {pf.path} ({exc.strerror or exc})") from None


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


# --- pieces: units of tokenizer work ---------------------------------------------------------------

@dataclass
class Piece:
    """Text bound for one source's split: segments, whether each starts and ends a document."""
    source: int
    split: str
    texts: list[str] = field(default_factory=list)
    starts: list[bool] = field(default_factory=list)
    ends: list[bool] = field(default_factory=list)
    chars: int = 0
    nbytes: int = 0   # file bytes read since the previous item, for the progress display
    files: int = 0    # files finished since the previous item


@dataclass
class SourceEnd:
    source: int
    nbytes: int = 0
    files: int = 0


def work_items(plans: list[SourcePlan], stats: list[SourceStats], val_fraction: float,
               piece_chars: int, read_bytes: int) -> Iterator[Piece | SourceEnd]:
    """Every source's documents, in order, packed into pieces; a SourceEnd after each source."""
    reported = [0, 0]  # bytes, files already handed to the progress display

    def progress_delta(item: Piece | SourceEnd) -> Piece | SourceEnd:
        done_bytes = sum(s.bytes + s.skipped_bytes for s in stats)
        done_files = sum(s.files + s.skipped_files for s in stats)
        item.nbytes, item.files = done_bytes - reported[0], done_files - reported[1]
        reported[0], reported[1] = done_bytes, done_files
        return item

    for si, plan in enumerate(plans):
        piece: Piece | None = None
        name = plan.spec.name
        for pf in plan.files:
            for index, blocks in _file_documents(pf, name, stats[si], read_bytes):
                split = "val" if is_val_document(name, pf.rel, index, val_fraction) else "train"
                segments = document_segments(blocks, piece_chars, stats[si])
                segment = next(segments, None)
                start = True
                while segment is not None:
                    following = next(segments, None)
                    if piece is not None and (piece.split != split or piece.chars + len(segment) > piece_chars):
                        yield progress_delta(piece)
                        piece = None
                    if piece is None:
                        piece = Piece(source=si, split=split)
                    piece.texts.append(segment)
                    piece.starts.append(start)
                    piece.ends.append(following is None)
                    piece.chars += len(segment)
                    segment, start = following, False
        if piece is not None:
            yield progress_delta(piece)
        yield progress_delta(SourceEnd(source=si))


_EOT = np.array([EOT_TOKEN], dtype=np.uint32)


def _encode(enc: Any, text: str) -> np.ndarray:
    """encode_ordinary's tokens, as a uint32 array made without a Python list (and without the GIL)."""
    if not hasattr(enc, "encode_to_numpy"):  # tiktoken before 0.8
        return np.array(enc.encode_ordinary(text), dtype=np.uint32)
    try:
        return enc.encode_to_numpy(text, disallowed_special=())
    except UnicodeEncodeError:
        # Lone surrogates (from JSON escapes): the same repair tiktoken's encode_ordinary makes.
        text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
        return enc.encode_to_numpy(text, disallowed_special=())


def clone_encoding(enc: Any) -> Any:
    """A second tiktoken Encoding over the same tables (about 50 ms; no file is read again)."""
    import tiktoken

    try:
        return tiktoken.Encoding(enc.name, pat_str=enc._pat_str, mergeable_ranks=enc._mergeable_ranks,
                                 special_tokens=enc._special_tokens)
    except (AttributeError, TypeError):  # a tiktoken without these attributes: share the one we have
        return enc


class ThreadEncodings:
    """One Encoding per thread. Threads sharing one tiktoken Encoding contend inside it: measured here,
    two threads on one did no more work per second than one thread, while with one each they did 1.9x."""

    def __init__(self, enc: Any):
        self.enc = enc
        self.local = threading.local()

    def get(self) -> Any:
        enc = getattr(self.local, "enc", None)
        if enc is None:
            enc = self.local.enc = clone_encoding(self.enc)
        return enc


def encode_piece(enc: Any, piece: Piece) -> tuple[np.ndarray, list[int]]:
    """The piece's tokens, an end-of-text after each document's last segment, and each segment's length."""
    arrays: list[np.ndarray] = []
    lengths: list[int] = []
    for text, end in zip(piece.texts, piece.ends):
        ids = _encode(enc, text)
        arrays.append(ids)
        if end:
            arrays.append(_EOT)
        lengths.append(len(ids) + int(end))
    if not arrays:
        return np.zeros(0, dtype=TOKEN_DTYPE), lengths
    return np.concatenate(arrays).astype(TOKEN_DTYPE), lengths


# --- shards ----------------------------------------------------------------------------------------

class ShardWriter:
    """Appends tokens to <prefix>-00000.bin, <prefix>-00001.bin, ... of at most `shard_tokens` each."""

    def __init__(self, folder: Path, prefix: str, shard_tokens: int):
        self.folder, self.prefix, self.shard_tokens = folder, prefix, shard_tokens
        self.shards: list[list[Any]] = []  # [file name, tokens]
        self._file: Any = None

    @property
    def total(self) -> int:
        return sum(n for _, n in self.shards)

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.shards]

    @property
    def longest(self) -> int:
        return max((n for _, n in self.shards), default=0)

    def write(self, tokens: np.ndarray) -> None:
        while len(tokens):
            if not self.shards or self.shards[-1][1] >= self.shard_tokens:
                self._close_file()
                self.shards.append([f"{self.prefix}-{len(self.shards):05d}.bin", 0])
            if self._file is None:
                self._file = open(self.folder / self.shards[-1][0], "ab")
            room = self.shard_tokens - self.shards[-1][1]
            part, tokens = tokens[:room], tokens[room:]
            self._file.write(part.tobytes())
            self.shards[-1][1] += len(part)

    def read(self, start: int, stop: int, chunk: int = 1 << 20) -> Iterator[np.ndarray]:
        """Tokens [start, stop) of the whole stream, in chunks."""
        self._close_file(sync=False)
        offset = 0
        for name, n in self.shards:
            lo, hi = max(start, offset), min(stop, offset + n)
            for a in range(lo, hi, chunk):
                count = min(chunk, hi - a)
                yield np.fromfile(self.folder / name, dtype=TOKEN_DTYPE, count=count,
                                  offset=(a - offset) * np.dtype(TOKEN_DTYPE).itemsize)
            offset += n

    def truncate(self, total: int) -> None:
        """Keep only the first `total` tokens (removing shard files that end up empty)."""
        self._close_file(sync=False)
        offset = 0
        kept: list[list[Any]] = []
        for name, n in self.shards:
            keep = min(n, max(0, total - offset))
            if keep:
                if keep < n:
                    os.truncate(self.folder / name, keep * np.dtype(TOKEN_DTYPE).itemsize)
                kept.append([name, keep])
            else:
                (self.folder / name).unlink()
            offset += n
        self.shards = kept

    def close(self) -> None:
        self._close_file()

    def _close_file(self, sync: bool = True) -> None:
        if self._file is not None:
            self._file.flush()
            if sync:
                # The manifest will vouch for these bytes: they must be on disk before it is.
                os.fsync(self._file.fileno())
            self._file.close()
            self._file = None


def move_tail(src: ShardWriter, dst: ShardWriter, n: int) -> None:
    """Move the last `n` tokens of `src` to the end of `dst`, in order, a chunk at a time."""
    start = src.total - n
    for chunk in src.read(start, src.total):
        dst.write(chunk)
    src.truncate(start)


class SourceWriter:
    """One source's train and val shards, and the document counts that go into the manifest."""

    def __init__(self, folder: Path, name: str, shard_tokens: int):
        self.splits = {"train": ShardWriter(folder, f"{name}-train", shard_tokens),
                       "val": ShardWriter(folder, f"{name}-val", shard_tokens)}
        self.docs = {"train": 0, "val": 0}
        self.last_doc = {"train": 0, "val": 0}  # where each split's latest document starts in its stream
        self.split_by = "documents"

    def add(self, piece: Piece, tokens: np.ndarray, lengths: list[int]) -> None:
        writer = self.splits[piece.split]
        pos = writer.total
        for length, start, end in zip(lengths, piece.starts, piece.ends):
            if start:
                self.last_doc[piece.split] = pos
            pos += length
            self.docs[piece.split] += int(end)
        writer.write(tokens)

    def finish(self, val_fraction: float) -> None:
        """Make sure both splits hold something: at least one validation document, and some training text."""
        train, val = self.splits["train"], self.splits["val"]
        if self.docs["train"] + self.docs["val"] == 1:
            # One document cannot be split by documents: split its tokens, the last fraction to val,
            # as the token cache of --input_file does.
            if self.docs["val"]:
                move_tail(val, train, val.total)
            move_tail(train, val, max(1, int(train.total * val_fraction)))
            self.split_by = "tokens"
        else:
            for empty, full in (("val", "train"), ("train", "val")):
                if self.docs[empty] == 0 and self.docs[full] >= 2:
                    # The hash chose no document for one split: the other split's last document moves there.
                    move_tail(self.splits[full], self.splits[empty], self.splits[full].total - self.last_doc[full])
                    self.docs[full] -= 1
                    self.docs[empty] += 1
        train.close()
        val.close()


# --- the whole preparation -------------------------------------------------------------------------

@dataclass
class PrepareOptions:
    sources: list[str]
    out_dir: str
    val_fraction: float = DEFAULT_VAL_FRACTION
    workers: int | None = None  # None: every core this process may use, at most MAX_DEFAULT_WORKERS
    overwrite: bool = False
    block_size: int | None = DEFAULT_BLOCK_SIZE  # None: no check (the trainer checks its own block)
    shard_tokens: int = SHARD_TOKENS
    piece_chars: int = PIECE_CHARS
    read_bytes: int = READ_BYTES


@dataclass
class PrepareResult:
    out_dir: Path
    manifest: dict[str, Any]
    seconds: float = 0.0
    workers: int = 1
    up_to_date: bool = False

    @property
    def input_bytes(self) -> int:
        return sum(int(s.get("bytes", 0)) + int(s.get("skipped_bytes", 0)) for s in self.manifest["sources"])


class PrepareProgress:
    """Told how far preparation has got; this one shows nothing."""

    def start(self, files: int, nbytes: int) -> None: ...
    def advance(self, files: int, nbytes: int, tokens: int) -> None: ...
    def stop(self) -> None: ...


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def validate_options(opts: PrepareOptions) -> None:
    if not 0 < opts.val_fraction <= 0.5:
        raise UsageError(f"invalid --val_fraction {opts.val_fraction!r}: give a fraction of the documents "
                         "above 0 and at most 0.5, e.g. 0.005")
    if opts.workers is not None and opts.workers < 1:
        raise UsageError(f"invalid --workers {opts.workers!r}: give a positive number of threads")
    if opts.block_size is not None and opts.block_size < 1:
        raise UsageError(f"invalid --block_size {opts.block_size!r}: give a positive number of tokens")
    if not str(opts.out_dir).strip():
        raise UsageError("--out_dir is empty: give the folder to write the dataset into")


def prepare(opts: PrepareOptions, progress: PrepareProgress | None = None) -> PrepareResult:
    """Prepare the dataset `opts` asks for; UsageError (with nothing left behind) on bad input."""
    validate_options(opts)
    specs = parse_sources(opts.sources)
    out_dir = Path(os.path.expanduser(opts.out_dir))
    plans = [plan_source(s, out_dir) for s in specs]
    existing = _check_out_dir(out_dir, plans, opts)
    if existing is not None:
        return PrepareResult(out_dir=out_dir, manifest=existing, up_to_date=True)
    return build_dataset(plans, out_dir, opts, progress)


def build_dataset(plans: list[SourcePlan], out_dir: Path, opts: PrepareOptions,
                  progress: PrepareProgress | None = None,
                  extra: dict[str, Any] | None = None) -> PrepareResult:
    """Tokenize the planned sources into out_dir (replacing what is there); `extra` keys go into each source."""
    enc = get_encoding()
    workers = opts.workers or min(available_cores(), MAX_DEFAULT_WORKERS)
    progress = progress or PrepareProgress()
    created = [d for d in (out_dir.absolute().parent, *out_dir.absolute().parent.parents) if not d.exists()]
    work = _partial_dir(out_dir)
    started = time.perf_counter()
    try:
        with _sigterm_interrupts():
            progress.start(sum(len(p.files) for p in plans), sum(p.bytes for p in plans))
            try:
                manifest = _tokenize_all(plans, work, enc, workers, opts, progress)
            finally:
                progress.stop()
            for source in manifest["sources"]:
                source.update(extra or {})
            if opts.block_size is not None:
                check_trainable(manifest, opts.block_size, opts.val_fraction)
            write_manifest(work, manifest)
            with _signals_deferred():
                _install(work, out_dir)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        for folder in created:  # deepest first: the folders made for out_dir, now empty again
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise
    return PrepareResult(out_dir=out_dir, manifest=manifest, seconds=time.perf_counter() - started, workers=workers)


def _tokenize_all(plans: list[SourcePlan], folder: Path, enc: Any, workers: int, opts: PrepareOptions,
                  progress: PrepareProgress) -> dict[str, Any]:
    stats = [SourceStats() for _ in plans]
    writers = [SourceWriter(folder, p.spec.name, opts.shard_tokens) for p in plans]
    manifest = new_manifest()
    manifest.update(val_fraction=opts.val_fraction, block_size=opts.block_size)

    def consume(item: Piece | SourceEnd, result: tuple[np.ndarray, list[int]] | None) -> None:
        tokens = 0
        if isinstance(item, Piece):
            assert result is not None
            writers[item.source].add(item, *result)
            tokens = len(result[0])
        else:
            writers[item.source].finish(opts.val_fraction)
            manifest["sources"].append(_source_entry(plans[item.source], stats[item.source], writers[item.source]))
        progress.advance(item.files, item.nbytes, tokens)

    items = work_items(plans, stats, opts.val_fraction, opts.piece_chars, opts.read_bytes)
    if workers == 1:
        run_ordered(items, lambda piece: encode_piece(enc, piece), consume, workers)
    else:
        encodings = ThreadEncodings(enc)
        run_ordered(items, lambda piece: encode_piece(encodings.get(), piece), consume, workers)
    return manifest


def run_ordered(items: Iterator[Piece | SourceEnd], encode: Any, consume: Any, workers: int) -> None:
    """encode() pieces on `workers` threads, consume() every item in its original order.

    At most about two pieces per worker are in flight, which bounds the memory.
    """
    if workers == 1:
        for item in items:
            consume(item, encode(item) if isinstance(item, Piece) else None)
        return
    window = 2 * workers + 2
    pending: deque[tuple[Piece | SourceEnd, Future[Any] | None]] = deque()
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="gptwiz-prepare")
    try:
        for item in items:
            pending.append((item, pool.submit(encode, item) if isinstance(item, Piece) else None))
            while len(pending) > window:
                done, future = pending.popleft()
                consume(done, future.result() if future else None)
        while pending:
            done, future = pending.popleft()
            consume(done, future.result() if future else None)
    finally:
        # On an interrupt: drop the queued pieces, let the running ones (a second or less) end.
        pool.shutdown(wait=True, cancel_futures=True)


def _source_entry(plan: SourcePlan, st: SourceStats, writer: SourceWriter) -> dict[str, Any]:
    train, val = writer.splits["train"], writer.splits["val"]
    if writer.docs["train"] + writer.docs["val"] == 0:
        why = []
        if st.skipped_files:
            why.append(f"{st.skipped_files} skipped as not text, e.g. {st.skipped[0]}")
        if st.bad_lines:
            why.append(f"{st.bad_lines} .jsonl lines without a string 'text' field, e.g. {st.first_bad_line}")
        detail = f" ({'; '.join(why)})" if why else " (they are empty)"
        raise UsageError(f"source {plan.spec.name}: the {len(plan.files)} files matched by {plan.spec.glob!r} "
                         f"hold no text to train on{detail}")
    return {
        "name": plan.spec.name, "weight": plan.spec.weight, "glob": plan.spec.glob, "root": plan.root,
        "files": st.files, "bytes": st.bytes, "documents": writer.docs["train"] + writer.docs["val"],
        "val_documents": writer.docs["val"], "split_by": writer.split_by,
        "skipped_files": st.skipped_files, "skipped_bytes": st.skipped_bytes, "skipped": st.skipped,
        "bad_lines": st.bad_lines, "replaced_chars": st.replaced_chars, "forced_cuts": st.forced_cuts,
        "train_tokens": train.total, "val_tokens": val.total,
        "train_shards": train.names, "val_shards": val.names,
        "longest_train_shard": train.longest, "longest_val_shard": val.longest,
        "fingerprint": plan.fingerprint(),
    }


def check_trainable(manifest: dict[str, Any], block_size: int, val_fraction: float) -> None:
    """Refuse, with the numbers, a dataset that cannot fill one training or one validation block."""
    need = block_size + 1
    sources = manifest["sources"]
    train = sum(s["train_tokens"] for s in sources)
    val = sum(s["val_tokens"] for s in sources)
    short = [s for s in sources if s["longest_train_shard"] < need]
    if short and len(short) < len(sources):
        s = short[0]
        raise UsageError(f"source {s['name']}: its train split holds {s['train_tokens']} tokens, fewer than one block "
                         f"of {need} tokens (--block_size {block_size} + 1), so training could never draw its "
                         f"weight {s['weight']:g} of sequences from it; add text to it, or lower --block_size")
    if short:
        docs = sum(s["documents"] for s in sources)
        raise UsageError(f"the corpus is too small: its {_plural(docs, 'document')} ({_size(sum(s['bytes'] for s in sources))}) "
                         f"hold {train + val} tokens, {train} of them for training, fewer than one block of {need} "
                         f"tokens (--block_size {block_size} + 1); add text, or lower --block_size to the smallest "
                         "block you will train with")
    if max(s["longest_val_shard"] for s in sources) < need:
        docs = sum(s["val_documents"] for s in sources)
        raise UsageError(f"the validation split holds {val} tokens ({_plural(docs, 'document')} at --val_fraction "
                         f"{val_fraction:g}), fewer than one block of {need} tokens (--block_size {block_size} + 1); "
                         "raise --val_fraction, or lower --block_size to the smallest block you will train with")


def _plural(n: int, noun: str) -> str:
    return f"{n:,} {noun}" + ("" if n == 1 else "s")


def _size(nbytes: int) -> str:
    return f"{nbytes / 1e6:,.1f} MB" if nbytes >= 100_000 else _plural(nbytes, "byte")


def tokenize_text_file(path: Path, out_dir: Path, name: str, val_fraction: float,
                       extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """One UTF-8 text file as a one-source dataset (the token cache of --input_file), through the same
    streaming, parallel tokenizer: one document, so its last `val_fraction` of tokens is the val split."""
    st = path.stat()
    plan = SourcePlan(spec=SourceSpec(name=name, glob=str(path.resolve())), root=str(path.resolve().parent),
                      files=[PlannedFile(path=str(path), rel=path.name, size=st.st_size, mtime_ns=st.st_mtime_ns)])
    opts = PrepareOptions(sources=[], out_dir=str(out_dir), val_fraction=val_fraction, block_size=None)
    return build_dataset([plan], out_dir, opts, extra=extra).manifest


# --- the output folder -----------------------------------------------------------------------------

def _request_key(sources: list[dict[str, Any]], val_fraction: Any) -> Any:
    return [val_fraction, [[s.get("name"), s.get("glob"), s.get("weight"), s.get("fingerprint")] for s in sources]]


def _check_out_dir(out_dir: Path, plans: list[SourcePlan], opts: PrepareOptions) -> dict[str, Any] | None:
    """None to go ahead; the existing manifest when out_dir already holds exactly this dataset."""
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"--out_dir {out_dir} is a file, not a folder; choose a folder for the dataset")
    if not out_dir.is_dir() or not any(out_dir.iterdir()):
        return None
    manifest_path = out_dir / MANIFEST
    if not manifest_path.exists():
        # Never delete a folder gptwiz did not write, --overwrite or not.
        raise UsageError(f"--out_dir {out_dir} is not empty and is not a gptwiz dataset (it has no {MANIFEST}); "
                         "choose a new or empty folder")
    try:
        existing = json.loads(manifest_path.read_text(encoding="utf-8"))
        old_key = _request_key(existing["sources"], existing.get("val_fraction"))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        existing, old_key = None, None
    new_key = _request_key([{"name": p.spec.name, "glob": p.spec.glob, "weight": p.spec.weight,
                             "fingerprint": p.fingerprint()} for p in plans], opts.val_fraction)
    if opts.overwrite:
        return None
    if old_key == new_key:
        return existing
    names = ", ".join(str(s.get("name")) for s in existing["sources"]) if existing else "unreadable manifest"
    raise UsageError(f"--out_dir {out_dir} already holds a different dataset (sources: {names}); "
                     "pass --overwrite to replace it, or choose another --out_dir")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def _partial_dir(out_dir: Path) -> Path:
    """A fresh hidden folder beside out_dir, after removing those a killed prepare left behind."""
    parent = out_dir.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"--out_dir {out_dir}: cannot create {parent} ({exc.strerror})") from None
    for prefix in (f".{out_dir.name}.partial-", f".{out_dir.name}.old-"):
        for entry in parent.iterdir():
            pid = entry.name[len(prefix):]
            if entry.name.startswith(prefix) and pid.isdigit() and not _pid_alive(int(pid)):
                shutil.rmtree(entry, ignore_errors=True)
    work = parent / f".{out_dir.name}.partial-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    try:
        work.mkdir()
    except OSError as exc:
        raise UsageError(f"--out_dir {out_dir}: cannot write in {parent} ({exc.strerror})") from None
    return work


def _install(work: Path, out_dir: Path) -> None:
    """Rename the finished folder to out_dir (moving aside what was there: an empty folder or the old dataset)."""
    old = None
    if out_dir.exists():
        old = out_dir.parent / f".{out_dir.name}.old-{os.getpid()}"
        os.rename(out_dir, old)
    os.rename(work, out_dir)
    _fsync_dir(out_dir.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """While preparing, SIGTERM cleans up as Ctrl-C does."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def _signals_deferred() -> Iterator[None]:
    """Hold Ctrl-C and SIGTERM back while the old dataset is swapped for the new, so neither is lost."""
    signals = {signal.SIGINT, signal.SIGTERM}
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "pthread_sigmask"):
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, signals)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


# --- the terminal ----------------------------------------------------------------------------------

class RichPrepareProgress(PrepareProgress):
    """A bar over the corpus bytes, with files, MB and tokens per second."""

    def __init__(self) -> None:
        self.progress: Any = None
        self.tokens = 0
        self.started = 0.0

    def start(self, files: int, nbytes: int) -> None:
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        self.progress = Progress(
            TextColumn("[bold]preparing"), BarColumn(),
            TextColumn("{task.fields[files]}/{task.fields[total_files]} files"),
            TextColumn("{task.fields[mb]}/{task.fields[total_mb]} MB"),
            TextColumn("[cyan]{task.fields[tps]}[/] tok/s"),
            TimeElapsedColumn(), TimeRemainingColumn(),
        )
        self.task = self.progress.add_task("prepare", total=max(nbytes, 1), files=0, total_files=files,
                                           mb="0.0", total_mb=f"{nbytes / 1e6:.1f}", tps="-")
        self.files = 0
        self.started = time.perf_counter()
        self.progress.start()

    def advance(self, files: int, nbytes: int, tokens: int) -> None:
        if self.progress is None:
            return
        self.files += files
        self.tokens += tokens
        self.progress.advance(self.task, nbytes)
        done = self.progress.tasks[0].completed
        rate = self.tokens / max(time.perf_counter() - self.started, 1e-9)
        self.progress.update(self.task, files=self.files, mb=f"{done / 1e6:.1f}", tps=f"{rate:,.0f}")

    def stop(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None


def summary_lines(result: PrepareResult) -> list[str]:
    m = result.manifest
    totals = m.get("totals", {})
    if result.up_to_date:
        return [f"{result.out_dir} already holds this dataset, prepared from the same files (unchanged): "
                "nothing to do; pass --overwrite to prepare it again"]
    mb = result.input_bytes / 1e6
    rate = mb / result.seconds if result.seconds > 0 else 0.0
    lines = [f"prepared {result.out_dir}: {_plural(len(m['sources']), 'source')}, "
             f"{_plural(totals.get('files', 0), 'file')}, {_size(totals.get('bytes', 0))}, "
             f"{_plural(totals.get('documents', 0), 'document')} -> "
             f"{totals.get('train_tokens', 0):,} train + {totals.get('val_tokens', 0):,} val tokens "
             f"in {result.seconds:.1f} s ({rate:.1f} MB/s, {result.workers} workers)"]
    for s in m["sources"]:
        notes = []
        if s.get("skipped_files"):
            shown = ", ".join(s.get("skipped", [])[:3])
            notes.append(f"skipped {_plural(s['skipped_files'], 'file')} as not text (NUL bytes): {shown}"
                         + (", ..." if s["skipped_files"] > 3 else ""))
        if s.get("replaced_chars"):
            notes.append(f"replaced {s['replaced_chars']} invalid UTF-8 sequences with U+FFFD")
        if s.get("bad_lines"):
            notes.append(f"ignored {s['bad_lines']} .jsonl lines without a string 'text' field")
        if s.get("forced_cuts"):
            notes.append(f"cut {s['forced_cuts']} times inside runs of over {FORCED_CUT_CHARS >> 20} M characters "
                         "without whitespace (token count there may differ slightly)")
        if s.get("split_by") == "tokens":
            notes.append("one document: its last tokens are the validation split")
        for note in notes:
            lines.append(f"  {s['name']}: {note}")
    lines.append(f"train with: gptwiz train --dataset_dir {result.out_dir} ...; inspect with: "
                 f"gptwiz dataset-info {result.out_dir}")
    return lines


def run_cli(opts: PrepareOptions, quiet: bool = False) -> int:
    """`gptwiz prepare`: a progress bar on a terminal, then a short summary."""
    progress = RichPrepareProgress() if sys.stdout.isatty() and not quiet else None
    result = prepare(opts, progress)
    for line in summary_lines(result):
        print(line)
    return 0
