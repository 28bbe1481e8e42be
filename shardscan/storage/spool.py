"""Decompressed bytes made random-access, with the bomb limits applied while they stream.

A compressed member (deflated zip entry, gzip, xz, 7z...) is expanded chunk by chunk into
memory up to a small size, then into a temporary file, so every scanner can read it through a
`RangeReader` and memory stays bounded. Sizes and ratios are measured on the bytes that come
out, never taken from headers.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass

from shardscan.limits import Limits
from shardscan.storage.reader import BytesReader, LocalReader, RangeReader


class _TempReader(LocalReader):
    """A LocalReader over an unlinked temp file, closed with it."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self.size = os.fstat(fd).st_size
        self.bytes_read = 0


@dataclass
class Spooled:
    reader: RangeReader
    size: int
    #: Why expansion stopped early ("size", "ratio"), or None when the stream was complete.
    exceeded: str | None = None

    def close(self) -> None:
        close = getattr(self.reader, "close", None)
        if close is not None:
            close()

    def __enter__(self) -> Spooled:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def spool(chunks: Iterable[bytes], limits: Limits, *, compressed_size: int | None = None,
          max_size: int | None = None) -> Spooled:
    """Consume `chunks` (decompressed output, produced lazily) until they end or a limit is
    reached. `compressed_size` enables the ratio check."""
    cap = limits.max_member_size if max_size is None else min(max_size, limits.max_member_size)
    buf = bytearray()
    fd: int | None = None
    total = 0
    exceeded: str | None = None
    try:
        for chunk in chunks:
            if not chunk:
                continue
            room = cap - total
            if len(chunk) > room:
                chunk = chunk[:room]
                exceeded = "size"
            total += len(chunk)
            if fd is None:
                buf += chunk
                if len(buf) > limits.spool_in_memory:
                    fd, path = tempfile.mkstemp(prefix="shardscan-")
                    os.unlink(path)
                    os.write(fd, buf)
                    buf = bytearray()
            else:
                _write_all(fd, chunk)
            if exceeded:
                break
            if (compressed_size and total > limits.ratio_grace_bytes
                    and total > compressed_size * limits.max_compression_ratio):
                exceeded = "ratio"
                break
    except BaseException:
        if fd is not None:
            os.close(fd)
        raise
    if fd is None:
        return Spooled(BytesReader(bytes(buf)), total, exceeded)
    return Spooled(_TempReader(fd), total, exceeded)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]
