"""Following a growing file: the complete lines appended since the last read, reading only the new bytes.

metrics.jsonl (read whole, from its start: gptwiz.runs.metrics.MetricsReader) and the logs (read from near their
end: `LogTail`, the log viewer) are followed the same way, by `TailReader`.
Only a regular file is read (opening a FIFO would block the reader); a file that is missing, not a regular file or
unreadable has, for now, nothing new.
"""

from __future__ import annotations

import os
from collections import deque
from pathlib import Path

from gptwiz.common.safe_read import open_regular


class TailReader:
    """The lines appended to `path` since the last read; a last line cut mid-write waits for its end.

    `first_read_bytes`: a file new to the reader is read from its last this many bytes (its first, partial line
    dropped); None reads it from its start. A file replaced or cut shorter starts over the same way. `catch_up`:
    a file grown by more than `first_read_bytes` since the last read jumps to its end too (a tail shows only the
    end anyway); otherwise it is read through, at most `max_read_bytes` a call. `max_line`: a longer line is no
    line the writer meant, and is dropped rather than held in memory while it grows."""

    def __init__(self, path: Path, *, first_read_bytes: int | None = None, catch_up: bool = False,
                 max_read_bytes: int = 1 << 20, max_line: int | None = None):
        self.path = path
        self.first_read_bytes, self.catch_up = first_read_bytes, catch_up
        self.max_read_bytes, self.max_line = max_read_bytes, max_line
        self.offset: int | None = None  # None until the file has been opened once
        self.caught_up = True  # the last read reached the end of the file (or found nothing to read)
        self._partial = b""
        self._skipping = False  # inside a line to drop (over-long, or where a read from the middle began)

    def read_lines(self) -> tuple[list[bytes], bool]:
        """(new lines, restarted): restarted when what was read before no longer leads to these lines (the file
        replaced, cut shorter, or jumped ahead), so a reader keeping lines starts over."""
        self.caught_up = True
        try:
            fd = open_regular(self.path)
        except OSError:  # gone, not a file, or unreadable (the run folder deleted or replaced under the reader)
            return [], False
        restarted = False
        try:
            size = os.fstat(fd).st_size
            if self._must_start_over(size):
                restarted = self.offset is not None
                self._start_at(size)
            offset = self.offset or 0
            chunk = os.pread(fd, min(size - offset, self.max_read_bytes), offset) if size > offset else b""
        except OSError:
            return [], restarted
        finally:
            os.close(fd)
        self.offset = offset + len(chunk)
        self.caught_up = self.offset >= size
        return self._split(chunk), restarted

    def read_text(self) -> tuple[list[str], bool]:
        """read_lines, decoded (an invalid byte shown as a replacement character, a CR before the newline gone)."""
        lines, restarted = self.read_lines()
        return [line.decode("utf-8", "replace").rstrip("\r") for line in lines], restarted

    def unterminated(self) -> bytes:
        """The last line read so far that has no end yet (b"" when there is none, or it is one being dropped)."""
        return b"" if self._skipping else self._partial

    def _must_start_over(self, size: int) -> bool:
        if self.offset is None or size < self.offset:
            return True
        return self.catch_up and self.first_read_bytes is not None and size - self.offset > self.first_read_bytes

    def _start_at(self, size: int) -> None:
        self.offset = 0 if self.first_read_bytes is None else max(0, size - self.first_read_bytes)
        self._partial, self._skipping = b"", self.offset > 0  # begun mid-line: that line is dropped

    def _split(self, chunk: bytes) -> list[bytes]:
        lines = (self._partial + chunk).split(b"\n")
        self._partial = lines.pop()
        if self._skipping and lines:
            lines, self._skipping = lines[1:], False  # the rest of the line being dropped
        if self.max_line is not None:
            if len(self._partial) > self.max_line:
                self._partial, self._skipping = b"", True
            lines = [line for line in lines if len(line) <= self.max_line]
        return lines


class LogTail:
    """The last `keep` lines of a growing text file (train.log for the dashboard's panel), started near its end."""

    FIRST_READ_BYTES = 64 * 1024  # a long log: start near its end, the tail is what is shown

    def __init__(self, path: Path, keep: int = 200):
        self.lines: deque[str] = deque(maxlen=keep)
        self._tail = TailReader(path, first_read_bytes=self.FIRST_READ_BYTES, catch_up=True,
                                max_read_bytes=self.FIRST_READ_BYTES)

    @property
    def offset(self) -> int | None:
        return self._tail.offset

    def read_new(self) -> bool:
        """Whether the lines changed."""
        lines, restarted = self._tail.read_text()
        if restarted:
            self.lines.clear()
        self.lines.extend(lines)
        return bool(lines) or restarted
