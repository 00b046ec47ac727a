"""Reading a file gptwiz expects to be a small regular file (status.json, config.json, a manifest, a log tail).

Whatever is found at the path, reading returns at once: a named pipe, a device or a socket would block an open
or stream forever, so nothing but a regular file is opened (the open itself is non-blocking, for a FIFO put in
place between the check and the open), and no more than a bound is read. JSON that cannot be parsed, a
document nested too deep for the parser, or bytes that are not UTF-8 are reported the same way: an
`UnreadableFile` saying why, for the caller to show or turn into a one-line error.

Every JSON text gptwiz reads, from a file or not (a JSONL line, a checkpoint's stored config), is parsed by
`loads` here, with one depth limit: a document nested deeper than MAX_JSON_DEPTH is refused before the parser
sees it (a bracket count, predictable, where the parser itself would fail with a RecursionError).
"""

from __future__ import annotations

import errno
import json
import os
import re
import stat
from pathlib import Path
from typing import Any

from gptwiz.common.files import file_kind
from gptwiz.common.records import RecordError

SMALL_FILE_LIMIT = 1 << 20   # status.json and config.json are a few kilobytes
MANIFEST_LIMIT = 64 << 20    # a manifest lists every shard: a large dataset's runs to megabytes
# gptwiz's own documents nest 4 deep at most (config.json's data.sources[i]; a chat example's messages[i]).
MAX_JSON_DEPTH = 32
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')  # a JSON string: the brackets inside one do not nest
_BRACKET = re.compile(r"[\[\]{}]")


class UnreadableFile(OSError):
    """A file that is there but cannot be used; `reason` says why, to follow the file's name ("is a named pipe,
    not a regular file"); str() is the path and the reason.

    An OSError, so that code already treating an unreadable file as absent goes on doing so; a missing file
    is still FileNotFoundError."""

    def __init__(self, path: Path | str, reason: str):
        super().__init__(f"{path} {reason}")
        self.path = Path(path)
        self.reason = reason


def not_regular(path: Path | str, mode: int) -> UnreadableFile:
    return UnreadableFile(path, f"is {file_kind(mode)}, not a regular file")


def open_regular(path: Path | str, follow_symlinks: bool = True) -> int:
    """A read-only descriptor of `path`, which must be a regular file. FileNotFoundError when nothing is
    there; UnreadableFile for anything else that is no readable regular file. The caller closes it."""
    try:
        st = os.stat(path, follow_symlinks=follow_symlinks)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise UnreadableFile(path, f"cannot be read ({exc.strerror})") from None
    if not stat.S_ISREG(st.st_mode):  # checked before opening: opening a device can itself do something
        raise not_regular(path, st.st_mode)
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | getattr(os, "O_CLOEXEC", 0)
    if not follow_symlinks:
        flags |= os.O_NOFOLLOW
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise
    except OSError as exc:
        if exc.errno == errno.ELOOP and not follow_symlinks:
            raise UnreadableFile(path, "is a symlink, which gptwiz does not follow here") from None
        raise UnreadableFile(path, f"cannot be read ({exc.strerror})") from None
    try:
        mode = os.fstat(fd).st_mode
    except OSError as exc:
        os.close(fd)
        raise UnreadableFile(path, f"cannot be read ({exc.strerror})") from None
    if not stat.S_ISREG(mode):  # replaced between the stat and the open
        os.close(fd)
        raise not_regular(path, mode)
    return fd


def read_regular(path: Path | str, limit: int = SMALL_FILE_LIMIT, follow_symlinks: bool = True) -> bytes:
    """The whole content of a regular file of at most `limit` bytes (see open_regular for the errors)."""
    fd = open_regular(path, follow_symlinks)
    try:
        size = os.fstat(fd).st_size
        if size > limit:
            raise UnreadableFile(path, f"is {size:,} bytes, more than the {limit:,} such a file can hold")
        chunks, total = [], 0
        while True:  # a file still growing stops at the bound too
            chunk = os.read(fd, min(1 << 20, limit + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            if total > limit:
                raise UnreadableFile(path, f"is more than the {limit:,} bytes such a file can hold")
        return b"".join(chunks)
    except UnreadableFile:
        raise
    except OSError as exc:
        raise UnreadableFile(path, f"cannot be read ({exc.strerror})") from None
    finally:
        os.close(fd)


def nested_too_deep(text: str, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether the objects and lists of a JSON text nest more than `limit` deep (brackets inside strings aside)."""
    if text.count("[") + text.count("{") <= limit:  # the common case, at C speed: it cannot be deeper
        return False
    depth = 0
    for bracket in _BRACKET.finditer(_STRING.sub("", text)):
        depth += 1 if bracket.group() in "[{" else -1
        if depth > limit:
            return True
    return False


TOO_DEEP = (f"is nested more than {MAX_JSON_DEPTH} levels deep (objects and lists inside each other; "
            f"valid: at most {MAX_JSON_DEPTH})")


def loads(text: str | bytes, source: str) -> Any:
    """A JSON document parsed, nested at most MAX_JSON_DEPTH deep; a RecordError naming `source` (its `problem`
    says why without it) when it is not UTF-8, not JSON, or nested deeper."""
    if isinstance(text, (bytes, bytearray)):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError:
            raise RecordError(source, "", "is not UTF-8 text") from None
    if nested_too_deep(text):
        raise RecordError(source, "", TOO_DEEP)
    try:
        return json.loads(text)
    except RecursionError:  # not reached below the limit; kept so that no parse ever ends in a traceback
        raise RecordError(source, "", TOO_DEEP) from None
    except ValueError as exc:  # JSONDecodeError, and integers of more digits than Python converts
        raise RecordError(source, "", f"is not valid JSON ({str(exc).splitlines()[0][:120]})") from None


def parse_json(data: bytes, path: Path | str) -> Any:
    """A JSON document; UnreadableFile when it is not UTF-8, not JSON, or nested too deep (see loads)."""
    try:
        return loads(data, str(path))
    except RecordError as exc:
        raise UnreadableFile(path, exc.problem) from None


def read_json_file(path: Path | str, limit: int = SMALL_FILE_LIMIT, follow_symlinks: bool = True) -> Any:
    """The JSON document in a regular file of at most `limit` bytes; FileNotFoundError or UnreadableFile."""
    return parse_json(read_regular(path, limit, follow_symlinks), path)


def json_type(value: Any) -> str:
    """A parsed JSON value's type as JSON names it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    return {dict: "object", list: "array", str: "string", int: "number", float: "number"}.get(type(value), "value")


def read_json_object(path: Path | str, limit: int = SMALL_FILE_LIMIT, follow_symlinks: bool = True) -> dict[str, Any]:
    """As read_json_file, for a document that must be a JSON object."""
    data = read_json_file(path, limit, follow_symlinks)
    if not isinstance(data, dict):
        raise UnreadableFile(path, f"holds a JSON {json_type(data)}, not an object")
    return data


__all__ = ["UnreadableFile", "open_regular", "read_regular", "read_json_file", "read_json_object", "parse_json",
           "loads", "nested_too_deep", "MAX_JSON_DEPTH", "TOO_DEEP", "json_type", "not_regular", "SMALL_FILE_LIMIT",
           "MANIFEST_LIMIT"]
