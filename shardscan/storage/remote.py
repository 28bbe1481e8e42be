"""A RangeReader over any fsspec file system, with a small bounded block cache.

Scanners make many small reads (a head, a tail, a zip directory, a pickle walked 1 MiB at a
time). Against an object store each read is a round trip, so small reads are served from
aligned blocks kept in a little LRU; reads of a block or more go to the store directly and are
not cached. Memory stays at `max_blocks * block_size` whatever the object's size.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from shardscan.limits import DEFAULT_LIMITS


class FsspecReader:
    """`read(offset, length)` over `fs.cat_file(path, start, end, **pin)`.

    `pin` carries what keeps every read on the version the listing saw (`version_id` for S3,
    the generation for GCS, the commit for the hub) where the store supports it.
    """

    def __init__(self, fs: Any, path: str, size: int, *, pin: dict[str, Any] | None = None,
                 block_size: int = DEFAULT_LIMITS.remote_block,
                 max_blocks: int = DEFAULT_LIMITS.remote_blocks) -> None:
        self.fs = fs
        self.path = path
        self.size = size
        self.pin = dict(pin or {})
        self.block_size = block_size
        self.max_blocks = max_blocks
        self._blocks: OrderedDict[int, bytes] = OrderedDict()
        #: Round trips made and bytes fetched: what the rescan tests and the objects table count.
        self.requests = 0
        self.bytes_read = 0

    def _fetch(self, start: int, end: int) -> bytes:
        self.requests += 1
        data = self.fs.cat_file(self.path, start=start, end=end, **self.pin)
        self.bytes_read += len(data)
        return data

    def read(self, offset: int, length: int) -> bytes:
        end = min(offset + max(length, 0), self.size)
        if offset >= end:
            return b""
        if end - offset >= self.block_size:
            return self._fetch(offset, end)
        first, last = offset // self.block_size, (end - 1) // self.block_size
        parts = [self._block(i) for i in range(first, last + 1)]
        data = b"".join(parts) if len(parts) > 1 else parts[0]
        base = first * self.block_size
        return data[offset - base : end - base]

    def _block(self, index: int) -> bytes:
        block = self._blocks.get(index)
        if block is not None:
            self._blocks.move_to_end(index)
            return block
        start = index * self.block_size
        block = self._fetch(start, min(start + self.block_size, self.size))
        self._blocks[index] = block
        while len(self._blocks) > self.max_blocks:
            self._blocks.popitem(last=False)
        return block

    def close(self) -> None:
        self._blocks.clear()

    def __enter__(self) -> FsspecReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
