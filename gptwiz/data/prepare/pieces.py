"""Pieces, the units of tokenizer work: each source's documents, split between train and val, packed into
pieces of about a megabyte, each bound for one source's split."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field

from gptwiz.data.prepare.reading import SourceStats, document_segments, file_documents
from gptwiz.data.prepare.sources import SourcePlan


def is_val_document(source: str, rel: str, index: int, fraction: float) -> bool:
    """A document's split: a hash of where it comes from, so it is the same on every run and machine."""
    digest = hashlib.blake2b(f"{source}\0{rel}\0{index}".encode("utf-8", "surrogateescape"), digest_size=8).digest()
    return int.from_bytes(digest, "big") < fraction * 2.0 ** 64


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
            for index, blocks in file_documents(pf, name, stats[si], read_bytes):
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
