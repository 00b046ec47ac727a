"""metrics.jsonl, the run's records, one JSON object a line: appended by the trainer, followed by its viewers.
Also eval.jsonl, the records `gptwiz eval` appends in the same form."""

from __future__ import annotations

import json
from pathlib import Path
from typing import IO, Any

from gptwiz.common.atomic import atomic_write
from gptwiz.common.files import open_append
from gptwiz.common.records import RecordError
from gptwiz.common.safe_read import UnreadableFile, loads
from gptwiz.runs.paths import RunPaths
from gptwiz.runs.tail import TailReader

# A line longer than this is no record the trainer wrote: dropped, rather than held in memory while it grows.
_MAX_LINE = 1 << 20
_READ_CHUNK = 64 << 20  # read_new reads at most this much a call: a huge file is taken in several polls


class MetricsReader:
    """Reads only what was appended since the last call; a line cut mid-write waits for its end. Only a regular
    file is read (a FIFO would block the reader): anything else is, like a missing file, nothing to show.
    `restarted`: the last read_new started the file over (a resume trims it), so what was read before is gone."""

    def __init__(self, path: Path):
        self.path = path
        self._tail = TailReader(path, max_read_bytes=_READ_CHUNK, max_line=_MAX_LINE)
        self.restarted = False

    @property
    def offset(self) -> int:
        return self._tail.offset or 0

    @property
    def caught_up(self) -> bool:
        """The last read_new reached the end of the file."""
        return self._tail.caught_up

    def read_new(self) -> list[dict[str, Any]]:
        lines, self.restarted = self._tail.read_lines()
        return [rec for rec in map(_record, lines) if rec is not None]

    def unterminated(self) -> dict[str, Any] | None:
        """The last line as a record, though it has no newline yet (a writer that died before writing one)."""
        return _record(self._tail.unterminated()) if self._tail.unterminated() else None


def _record(line: bytes) -> dict[str, Any] | None:
    """One metrics line as a record; None for a torn line from a killed writer, or anything but an object."""
    if len(line) > _MAX_LINE:
        return None
    try:
        rec = loads(line, "metrics.jsonl")
    except RecordError:  # not JSON, or nested deeper than the limit of every JSON gptwiz reads
        return None
    return rec if isinstance(rec, dict) else None


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """Every record of a metrics file, its last line included even without its newline."""
    reader = MetricsReader(path)
    records = reader.read_new()
    while not reader.caught_up:
        records += reader.read_new()
    last = reader.unterminated()
    return records + [last] if last is not None else records


class MetricsWriter:
    """Appends records to metrics.jsonl (never through a symlink); `written` counts this writer's records."""

    def __init__(self, path: Path):
        self._f = open_append(path)
        self.written = 0

    def write(self, record: dict[str, Any]) -> None:
        # One write call per line, unbuffered, so a concurrent reader sees whole lines as soon as possible; a
        # line the disk had no room for is cut back off (AppendFile), so no torn line is left before the next.
        self._f.write(json.dumps(record, separators=(",", ":")) + "\n")
        self.written += 1

    def close(self) -> None:
        self._f.close()


def trim_metrics(path: Path, max_iter: int) -> None:
    """On resume, drop records from beyond the checkpoint: those iterations will be run again."""
    if not path.exists():
        return
    kept = [r for r in read_metrics(path)  # (a damaged record without a numeric iter goes too)
            if isinstance(r.get("iter", 0), (int, float)) and r.get("iter", 0) <= max_iter]
    payload = "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in kept).encode()

    def write(f: IO[bytes]) -> None:
        f.write(payload)

    atomic_write(path, write)


# --- eval.jsonl ------------------------------------------------------------------------------------

def latest_eval(paths: RunPaths) -> dict[str, Any] | None:
    """The run's latest `gptwiz eval` result (eval.jsonl); None when it has none readable."""
    try:
        records = [r for r in read_metrics(paths.evals) if isinstance(r.get("loss"), (int, float))]
    except (OSError, UnreadableFile):
        return None
    return records[-1] if records else None


def held_out_text(record: dict[str, Any] | None) -> str | None:
    """'held-out: loss 8.342, 3.947 bits/byte (held.txt, ckpt_best.pt iteration 50)', of a `gptwiz eval` record."""
    if not record:
        return None
    bpb = record.get("bits_per_byte")
    data = record.get("data") if isinstance(record.get("data"), dict) else {}
    where = Path(str(next(iter(data.values()), ""))).name if data else ""
    what = ", ".join(x for x in (where, f"{record.get('checkpoint', '?')} iteration {record.get('iter', '?')}") if x)
    bits = f", {bpb:.3f} bits/byte" if isinstance(bpb, (int, float)) else ""
    return f"held-out: loss {record['loss']:.3f}{bits} ({what})"
