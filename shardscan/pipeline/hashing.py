"""The content hash: what identifies an object's bytes wherever and however it was read.

An object is cut into fixed blocks of `HASH_BLOCK` bytes counted from its start. Each block's
xxh3-128 digest is a partial that any worker computes alone; the content hash is the xxh3-128
of the size and the digests in block order. So it is the same for one worker or a thousand,
for either engine and for any `--chunk-size` (chunks are whole numbers of blocks).

`HASH_BLOCK` and `HASH_DOMAIN` are part of the hash's definition: changing either changes
every content hash and so empties every results store's dedupe index.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import xxhash

from shardscan.storage.reader import RangeReader

HASH_BLOCK = 4 * 1024 * 1024
HASH_DOMAIN = b"shardscan-content-v1\x00"
#: How content hashes are written in reports and tables.
HASH_PREFIX = "xxh3-128:"


def aligned_chunk(chunk_size: int) -> int:
    """The chunk budget rounded up to whole hash blocks, so no block straddles two units."""
    return max(HASH_BLOCK, -(-chunk_size // HASH_BLOCK) * HASH_BLOCK)


def block_digests(reader: RangeReader, start: int, length: int, sha256: hashlib._Hash | None = None) -> list[bytes]:
    """Digests of the hash blocks in `[start, start + length)`; `start` is block-aligned.

    With `sha256`, the same bytes also feed it (the caller reads the object front to back).
    Raises EOFError when the object is shorter than listed: it changed since the listing.
    """
    if start % HASH_BLOCK:
        raise ValueError("hash ranges start on a block boundary")
    digests = []
    end = start + length
    readinto = getattr(reader, "readinto", None)
    buffer = memoryview(bytearray(min(HASH_BLOCK, length))) if readinto is not None else None
    for offset in range(start, end, HASH_BLOCK):
        want = min(HASH_BLOCK, end - offset)
        if buffer is not None:
            data: bytes | memoryview = buffer[:want]
            got = _fill(readinto, offset, data)
        else:
            data = reader.read(offset, want)
            got = len(data)
        if got != want:
            raise EOFError(f"object is shorter than listed ({offset + got} < {end} bytes): it changed")
        digests.append(xxhash.xxh3_128_digest(data))
        if sha256 is not None:
            sha256.update(data)
    return digests


def _fill(readinto: Callable[[int, memoryview], int], offset: int, view: memoryview) -> int:
    """Read until `view` is full or the object ends (a read may return less than asked)."""
    got = 0
    while got < len(view):
        n = readinto(offset + got, view[got:])
        if n <= 0:
            break
        got += n
    return got


def content_hash(size: int, digests: list[bytes]) -> str:
    h = xxhash.xxh3_128(HASH_DOMAIN)
    h.update(size.to_bytes(8, "little"))
    for digest in digests:
        h.update(digest)
    return HASH_PREFIX + h.hexdigest()


def block_count(size: int) -> int:
    return -(-size // HASH_BLOCK)
