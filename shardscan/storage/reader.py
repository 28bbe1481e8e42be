"""The one interface every scanner reads through: `read(offset, length) -> bytes`.

Scanners never open files themselves; they get a `RangeReader` so the same scanner reads a
local file, a zip member spilled to disk, or (later) an object in a bucket.
"""

from __future__ import annotations

import os
from typing import Protocol, runtime_checkable


@runtime_checkable
class RangeReader(Protocol):
    """Random access to an immutable sequence of `size` bytes."""

    size: int

    def read(self, offset: int, length: int) -> bytes:
        """Up to `length` bytes from `offset`; fewer only at the end."""
        ...


@runtime_checkable
class ClosableReader(RangeReader, Protocol):
    """A reader that owns a file or connection: used as a context manager. `bytes_read`
    counts what was actually fetched, for the objects table and the rescan checks."""

    bytes_read: int

    def close(self) -> None: ...

    def __enter__(self) -> ClosableReader: ...

    def __exit__(self, *exc: object) -> None: ...


class BytesReader:
    """A reader over bytes already in memory (small members, tests)."""

    def __init__(self, data: bytes) -> None:
        self._data = memoryview(data)
        self.size = len(data)

    def read(self, offset: int, length: int) -> bytes:
        return bytes(self._data[offset : offset + max(length, 0)])


class LocalReader:
    """A local file read with `pread`, so concurrent readers never share a file position."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
        self.size = os.fstat(self._fd).st_size
        self.bytes_read = 0

    def read(self, offset: int, length: int) -> bytes:
        if length <= 0 or offset >= self.size:
            return b""
        data = os.pread(self._fd, min(length, self.size - offset), offset)
        self.bytes_read += len(data)
        return data

    def readinto(self, offset: int, buffer: bytearray | memoryview) -> int:
        """Fill `buffer` from `offset` without allocating: the hashing pass reads every byte
        of every object, and a fresh 4 MiB bytes object per read costs more than the hash."""
        n = os.preadv(self._fd, [buffer], offset)
        self.bytes_read += n
        return n

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> LocalReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SliceReader:
    """A window `[start, start + size)` of another reader: a stored zip member, a tail."""

    def __init__(self, base: RangeReader, start: int, size: int) -> None:
        self._base = base
        self._start = start
        self.size = max(0, min(size, base.size - start))

    def read(self, offset: int, length: int) -> bytes:
        length = min(length, self.size - offset)
        if length <= 0:
            return b""
        return self._base.read(self._start + offset, length)


class ReaderStream:
    """Sequential reads over a reader range with one bounded buffer.

    Parsers that walk a format front to back (pickle) use this; memory stays at one chunk
    whatever the size of the object, and long literals are skipped rather than read.
    """

    def __init__(self, reader: RangeReader, start: int = 0, end: int | None = None,
                 chunk: int = 1 << 20) -> None:
        self.reader = reader
        self.end = reader.size if end is None else min(end, reader.size)
        self._chunk = chunk
        self._buf = b""
        self._buf_start = start
        self._pos = 0  # position inside _buf

    def tell(self) -> int:
        return self._buf_start + self._pos

    def remaining(self) -> int:
        return self.end - self.tell()

    def _fill(self, need: int) -> None:
        have = len(self._buf) - self._pos
        if have >= need:
            return
        start = self.tell()
        want = max(need, self._chunk)
        more = self.reader.read(start + have, min(want - have, self.end - start - have))
        self._buf = self._buf[self._pos :] + more
        self._buf_start = start
        self._pos = 0

    def read(self, n: int) -> bytes:
        """Exactly `n` bytes, or fewer at the end of the range."""
        pos = self._pos
        stop = pos + n
        if stop <= len(self._buf):
            self._pos = stop
            return self._buf[pos:stop]
        if n > self._chunk:
            head = self._buf[self._pos :]
            start = self.tell()
            rest = self.reader.read(start + len(head), min(n - len(head), self.end - start - len(head)))
            self._buf, self._buf_start, self._pos = b"", start + len(head) + len(rest), 0
            return head + rest
        self._fill(n)
        out = self._buf[self._pos : self._pos + n]
        self._pos += len(out)
        return out

    def read_byte(self) -> int:
        """The next byte, or -1 at the end."""
        if self._pos >= len(self._buf):
            self._fill(1)
            if self._pos >= len(self._buf):
                return -1
        b = self._buf[self._pos]
        self._pos += 1
        return b

    def readline(self, limit: int) -> bytes:
        """Bytes up to and including b'\\n', at most `limit`; no newline means truncated."""
        while True:
            idx = self._buf.find(b"\n", self._pos, self._pos + limit)
            if idx >= 0:
                out = self._buf[self._pos : idx + 1]
                self._pos = idx + 1
                return out
            have = len(self._buf) - self._pos
            if have >= limit or self.tell() + have >= self.end:
                out = self._buf[self._pos : self._pos + limit]
                self._pos += len(out)
                return out
            self._fill(min(have + self._chunk, limit + 1))

    def skip(self, n: int) -> int:
        """Advance by up to `n` bytes without reading them; returns how many were skipped."""
        n = max(0, min(n, self.remaining()))
        have = len(self._buf) - self._pos
        if n <= have:
            self._pos += n
        else:
            self._buf, self._buf_start, self._pos = b"", self.tell() + n, 0
        return n

    def seek(self, offset: int) -> None:
        self._buf, self._buf_start, self._pos = b"", offset, 0
