"""A Log whose long lines wrap to its width instead of running off its right edge.

Textual's Log draws each line on one row and cuts it at the edge (a traceback's message, a long path). Here each
line is wrapped at spaces before it is written, its continuation rows indented under the line's own indentation
and two more, so they read as one line. The lines as written are kept (as many as the Log keeps rows), and
rewrapped when the width changes.
"""

from __future__ import annotations

import textwrap
from collections import deque
from collections.abc import Iterable

from textual import events
from textual.widgets import Log

FALLBACK_WIDTH = 78  # before the first layout: rewrapped at once when the real width is known
CONTINUATION = "  "


def wrap_line(line: str, width: int) -> list[str]:
    """`line` as rows of at most `width` characters, broken at spaces where it can be (a word longer than a row
    is broken inside), each continuation indented as the line is, plus CONTINUATION."""
    line = line.expandtabs()
    width = max(8, width)
    if len(line) <= width:
        return [line]
    indent = line[: len(line) - len(line.lstrip(" "))][: width // 2] + CONTINUATION
    return textwrap.wrap(line, width, subsequent_indent=indent, break_long_words=True, break_on_hyphens=False) \
        or [line[:width]]


class WrappedLog(Log):
    def __init__(self, *, max_lines: int, **kwargs: object) -> None:
        super().__init__(max_lines=max_lines, **kwargs)  # type: ignore[arg-type]
        self._written: deque[str] = deque(maxlen=max_lines)  # the lines as given, to rewrap
        self._wrapped_at = 0

    def _row_width(self) -> int:
        return self.scrollable_content_region.width or FALLBACK_WIDTH

    def add_lines(self, lines: Iterable[str]) -> None:
        """Write `lines`, wrapped; the view follows them only if it was at the end."""
        lines = list(lines)
        self._written.extend(lines)
        width = self._row_width()
        self._wrapped_at = width
        self.write_lines([row for line in lines for row in wrap_line(line, width)])

    def clear(self) -> WrappedLog:
        self._written.clear()
        super().clear()
        return self

    def on_resize(self, event: events.Resize) -> None:
        width = self._row_width()
        if width == self._wrapped_at or not self._written:
            return
        at_end = self.is_vertical_scroll_end
        self._wrapped_at = width
        super().clear()
        self.write_lines([row for line in self._written for row in wrap_line(line, width)], scroll_end=at_end)
