"""Single-stream compression wrappers: gzip, bzip2, xz, lzma, zlib, zstd and lz4.

A compressed file is a container with one member. Compressed joblib files
(`joblib.dump(..., compress=...)`), `.pt.gz`, `.pkl.xz` and `.tar.gz` all hide their content from
scanners that only read raw bytes (THREATS C10). The stream is expanded lazily, a bounded piece
at a time, into `spool`, which applies the bomb limits to what comes out; the expanded bytes are
then scanned as whatever they turn out to be. A stream that is corrupt or cut short is reported
and the part expanded before the damage is still scanned: a loader reads, and runs, that part
before it fails.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from typing import Protocol

from shardscan.model import Finding, Unit, UnitResult
from shardscan.scanners import detect as fmt
from shardscan.scanners.base import ScanContext, Scanner, ScanTimeout, finding, rebase, unit_view
from shardscan.storage.reader import RangeReader, ReaderStream
from shardscan.storage.spool import spool

#: Name suffixes the expanded member loses (`model.pkl.gz` holds `model.pkl`), and what the
#: tar shorthands become. A name without one gets "!decompressed" appended instead.
SUFFIXES: dict[str, str] = {
    ".gz": "", ".gzip": "", ".tgz": ".tar",
    ".bz2": "", ".tbz": ".tar", ".tbz2": ".tar",
    ".xz": "", ".txz": ".tar",
    ".lzma": "", ".tlz": ".tar",
    ".z": "",                                  # joblib compress='zlib'
    ".zlib": "",
    ".zst": "", ".zstd": "", ".tzst": ".tar",
    ".lz4": "",
}

#: Skippable frames (LZ4 and zstd share the range): magic 0x184D2A5?, a 32-bit length, data.
_SKIPPABLE_MASK, _SKIPPABLE_MAGIC = 0xFFFFFFF0, 0x184D2A50
_ZSTD_MAGIC = 0xFD2FB528
#: A zstd block never expands beyond this (Block_Maximum_Size, RFC 8878 3.1.1.2.3).
_ZSTD_BLOCK_MAX = 128 * 1024
#: joblib < 0.10 `write_zfile`: b"ZF", the hexadecimal length left-justified in 19 characters
#: (20 when written by Python 2, whose hex() adds "L"), then one zlib stream.
_ZFILE_HEADER = re.compile(rb"ZF0x[0-9a-fA-F]{1,17}L? *")


def member_name(name: str) -> str:
    """What the compressed file holds, named the way a person would expect."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    lower = base.lower()
    for suffix, replacement in SUFFIXES.items():
        if lower.endswith(suffix) and len(base) > len(suffix):
            return base[: -len(suffix)] + replacement
    return f"{base}!decompressed"


class _Decompressor(Protocol):
    """The shape shared by bz2, lzma and lz4.frame decompressors (and `_Zlib` below)."""

    eof: bool
    needs_input: bool
    unused_data: bytes

    def decompress(self, data: bytes, max_length: int = -1) -> bytes: ...


class _Zlib:
    """zlib's decompressobj with the `needs_input` protocol of bz2 and lzma.

    zlib returns the input it could not take under `max_length` in `unconsumed_tail` instead
    of keeping it, so it is fed back here.
    """

    def __init__(self, wbits: int) -> None:
        import zlib

        self._d = zlib.decompressobj(wbits)
        self._tail = b""
        self._full = False

    def decompress(self, data: bytes, max_length: int = -1) -> bytes:
        out = self._d.decompress(self._tail + data, max(max_length, 0))
        self._tail = self._d.unconsumed_tail
        self._full = max_length > 0 and len(out) >= max_length
        return out

    @property
    def eof(self) -> bool:
        return self._d.eof

    @property
    def needs_input(self) -> bool:
        return not self._tail and not self._full

    @property
    def unused_data(self) -> bytes:
        return self._d.unused_data


def _gzip() -> _Decompressor:
    return _Zlib(31)        # 16 + MAX_WBITS: gzip header and trailer


def _zlib() -> _Decompressor:
    return _Zlib(15)        # zlib header (0x78 ..), what joblib's 'zlib' writes


def _bzip2() -> _Decompressor:
    import bz2

    return bz2.BZ2Decompressor()


def _xz() -> _Decompressor:
    import lzma

    return lzma.LZMADecompressor(format=lzma.FORMAT_XZ)


def _lzma_alone() -> _Decompressor:
    import lzma

    return lzma.LZMADecompressor(format=lzma.FORMAT_ALONE)


def _lz4_frame() -> _Decompressor:
    import lz4.frame

    return lz4.frame.LZ4FrameDecompressor()


def _zfile_start(reader: RangeReader) -> int:
    """Where the zlib stream starts: after joblib's old "ZF" header when there is one."""
    head = reader.read(0, 32)
    match = _ZFILE_HEADER.match(head)
    return match.end() if match else 0


@dataclass(frozen=True, slots=True)
class Codec:
    #: A fresh decompressor for one stream.
    open: Callable[[], _Decompressor]
    #: Another stream may follow when these bytes come next (None: one stream only).
    next_magic: bytes | None
    #: Skippable frames may sit between streams.
    skippable: bool = False
    #: Where the first stream starts, past any header of the file's own.
    start: Callable[[RangeReader], int] | None = None


#: One row per format; zstd is walked frame by frame instead (see `_zstd_chunks`).
CODECS: dict[str, Codec] = {
    fmt.GZIP: Codec(_gzip, b"\x1f\x8b"),                  # members may be concatenated (RFC 1952)
    fmt.BZIP2: Codec(_bzip2, b"BZh"),                     # pbzip2 writes one stream per block
    fmt.XZ: Codec(_xz, b"\xfd7zXZ\x00"),                  # streams, then 4-byte null padding
    fmt.LZMA: Codec(_lzma_alone, None),                   # legacy .lzma ("alone"): joblib 'lzma'
    fmt.ZLIB: Codec(_zlib, None, start=_zfile_start),     # joblib 'zlib', and joblib < 0.10 "ZF"
    fmt.LZ4: Codec(_lz4_frame, b"\x04\x22\x4d\x18", True),  # LZ4 frame format: joblib 'lz4'
}


@dataclass(slots=True)
class Expansion:
    """What happened to the compressed input while it was expanded."""

    #: Why the input could not be read to its end ("truncated ...", "corrupt ..."), and where.
    problem: str | None = None
    offset: int | None = None
    #: Where the last stream ended: bytes from here on belong to no stream.
    trailing_at: int | None = None
    streams: int = 0

    def fail(self, problem: str, offset: int) -> None:
        self.problem, self.offset = problem, offset


def _decode_errors() -> tuple[type[BaseException], ...]:
    """Every exception the decompressors raise for bad input."""
    import lzma
    import zlib

    errors: tuple[type[BaseException], ...] = (zlib.error, lzma.LZMAError, OSError, EOFError,
                                               ValueError, RuntimeError)
    return errors


def _one_stream(open_: Callable[[], _Decompressor], reader: RangeReader, start: int,
                ctx: ScanContext, out: Expansion,
                errors: tuple[type[BaseException], ...]) -> Iterator[bytes]:
    """Expand one stream from `start`, at most `stream_chunk` bytes per step; `out` learns
    where it ended (`trailing_at`) or why it stopped."""
    step = ctx.limits.stream_chunk
    d = open_()
    pos = start
    produced = 0
    idle = 0
    while not d.eof:
        ctx.check_deadline()
        data = b""
        if d.needs_input:
            data = reader.read(pos, step)
            if not data:
                out.fail("compressed stream is truncated", pos)
                return
            pos += len(data)
        try:
            chunk = d.decompress(data, step)
        except errors as exc:
            at = yield from _salvage(open_, reader, start, pos - len(data), pos, produced, ctx, errors)
            out.fail(f"compressed stream is corrupt: {exc}", pos - len(data) if at is None else at)
            return
        if chunk:
            produced += len(chunk)
            yield chunk
        if chunk or data:
            idle = 0
        else:
            idle += 1
            if idle > 2:   # neither input taken nor output given: do not spin
                out.fail("compressed stream makes no progress", pos)
                return
    out.streams += 1
    out.trailing_at = pos - len(d.unused_data or b"")  # lz4 gives None for none


#: Input fed per step while salvaging what precedes damage in a stream.
SALVAGE_STEP = 256


def _salvage(open_: Callable[[], _Decompressor], reader: RangeReader, start: int, failed_at: int,
             end: int, produced: int, ctx: ScanContext,
             errors: tuple[type[BaseException], ...]) -> Generator[bytes, None, int | None]:
    """The output that the failing step would have given before the damage; returns the
    offset of the input piece where the error came back.

    A decompressor that raises throws away everything it expanded in that call, which may hold
    the payload a loader has already run. The stream is replayed from its start with a fresh
    decompressor (output up to `produced` is skipped: it was scanned already), and the failing
    input is fed `SALVAGE_STEP` bytes at a time until the error comes back.
    """
    step = ctx.limits.stream_chunk
    d = open_()
    skip = produced
    pos = start
    while pos < end and not d.eof:
        ctx.check_deadline()
        size = min(step, failed_at - pos) if pos < failed_at else SALVAGE_STEP
        data = reader.read(pos, min(size, end - pos))
        if not data:
            break
        pos += len(data)
        while True:
            try:
                chunk = d.decompress(data, step)
            except errors:
                return pos - len(data) if data else pos
            data = b""
            if skip >= len(chunk):
                skip -= len(chunk)
            elif chunk:
                yield chunk[skip:]
                skip = 0
            if d.eof or d.needs_input or not chunk:
                break
    return None


def _skippable_length(head: bytes) -> int | None:
    if len(head) < 8:
        return None
    magic, length = struct.unpack_from("<II", head)
    return 8 + length if magic & _SKIPPABLE_MASK == _SKIPPABLE_MAGIC else None


def _is_padding(reader: RangeReader, start: int, step: int) -> bool:
    """Whether everything from `start` is zero bytes (tape-block padding, xz stream padding)."""
    pos = start
    while pos < reader.size:
        data = reader.read(pos, step)
        if data.strip(b"\x00"):
            return False
        pos += len(data)
    return True


def _codec_chunks(codec: Codec, reader: RangeReader, ctx: ScanContext,
                  out: Expansion) -> Iterator[bytes]:
    """Every stream of `codec` in `reader`, one after the other, as a loader reads them."""
    errors = _decode_errors()
    start = codec.start(reader) if codec.start is not None else 0
    while True:
        yield from _one_stream(codec.open, reader, start, ctx, out, errors)
        if out.problem is not None or out.trailing_at is None or out.trailing_at >= reader.size:
            return
        pos = out.trailing_at
        head = reader.read(pos, 8)
        if codec.skippable:
            while (skip := _skippable_length(head)) is not None:
                pos += skip
                head = reader.read(pos, 8)
            if pos >= reader.size:
                out.trailing_at = reader.size
                return
        if codec.next_magic is None or not head.startswith(codec.next_magic):
            out.trailing_at = pos
            return
        start = pos


def _zstd_frame_header_size(descriptor: int) -> int:
    single_segment = descriptor >> 5 & 1
    dict_id = (0, 1, 2, 4)[descriptor & 3]
    content_size = (single_segment, 2, 4, 8)[descriptor >> 6]
    return (0 if single_segment else 1) + dict_id + content_size


def _zstd_chunks(reader: RangeReader, ctx: ScanContext, out: Expansion) -> Iterator[bytes]:
    """zstd frames, fed to the decompressor a few blocks at a time.

    zstandard's decompressobj has no output bound, so the frame is walked block by block (each
    block header says how much it can produce) and fed in slices that expand to about one
    `stream_chunk`. The walk also tells a cut stream from a complete one, which zstandard's
    stream reader does not.
    """
    import zstandard

    step = ctx.limits.stream_chunk
    stream = ReaderStream(reader, chunk=step)
    while stream.remaining() > 0:
        ctx.check_deadline()
        frame_at = stream.tell()
        head = stream.read(4)
        if len(head) < 4:
            stream.seek(frame_at)
            break
        (magic,) = struct.unpack("<I", head)
        if magic & _SKIPPABLE_MASK == _SKIPPABLE_MAGIC:
            size = stream.read(4)
            length = struct.unpack("<I", size)[0] if len(size) == 4 else -1
            if length < 0 or stream.skip(length) < length:
                out.fail("zstd skippable frame is truncated", frame_at)
                return
            continue
        if magic != _ZSTD_MAGIC:
            stream.seek(frame_at)
            break
        descriptor = stream.read(1)
        if not descriptor:
            out.fail("zstd frame header is truncated", frame_at)
            return
        checksum = 4 if descriptor[0] >> 2 & 1 else 0
        header = stream.read(_zstd_frame_header_size(descriptor[0]))
        if len(header) < _zstd_frame_header_size(descriptor[0]):
            out.fail("zstd frame header is truncated", frame_at)
            return
        d = zstandard.ZstdDecompressor().decompressobj()
        pending = [head, descriptor, header]
        batch_at = frame_at
        produced = 0
        bound = 0
        last = False
        blocks = 0
        while not last:
            block_at = stream.tell()
            block = stream.read(3)
            if len(block) < 3:
                out.fail("zstd frame is truncated", block_at)
                break
            value = int.from_bytes(block, "little")
            last, kind, size = bool(value & 1), value >> 1 & 3, value >> 3
            if kind == 3:
                out.fail("zstd block has the reserved type", block_at)
                break
            stored = 1 if kind == 1 else size           # an RLE block stores one byte
            body = stream.read(stored)
            pending += [block, body]
            bound += size if kind < 2 else _ZSTD_BLOCK_MAX
            if len(body) < stored:
                out.fail("zstd frame is truncated", block_at)
                break
            if last and checksum:
                tail = stream.read(checksum)
                pending.append(tail)
                if len(tail) < checksum:
                    out.fail("zstd frame checksum is truncated", stream.tell())
                    break
            blocks += 1
            if bound >= step or last:
                try:
                    chunk = d.decompress(b"".join(pending))
                except zstandard.ZstdError as exc:
                    at = yield from _zstd_salvage(reader, frame_at, stream.tell(), produced, ctx)
                    out.fail(f"compressed stream is corrupt: {exc}", batch_at if at is None else at)
                    return
                pending, bound, batch_at = [], 0, stream.tell()
                if chunk:
                    produced += len(chunk)
                    yield chunk
            if blocks % 4096 == 0:
                ctx.check_deadline()
        if out.problem is not None:
            # What the complete blocks before the damage hold is still expanded and scanned.
            try:
                chunk = d.decompress(b"".join(pending))
            except zstandard.ZstdError:
                chunk = b""
            if chunk:
                yield chunk
            return
        out.streams += 1
    if stream.remaining() > 0:
        out.trailing_at = stream.tell()
    else:
        out.trailing_at = reader.size


class _ReaderIO:
    """Sequential `read(n)` over a reader window, the file shape zstandard reads from."""

    def __init__(self, reader: RangeReader, start: int, end: int) -> None:
        self._reader, self._pos, self._end = reader, start, end

    def read(self, size: int = -1) -> bytes:
        size = self._end - self._pos if size < 0 else min(size, self._end - self._pos)
        data = self._reader.read(self._pos, size)
        self._pos += len(data)
        return data

    def tell(self) -> int:
        return self._pos


def _zstd_salvage(reader: RangeReader, frame_at: int, end: int, produced: int,
                  ctx: ScanContext) -> Generator[bytes, None, int | None]:
    """What a zstd frame expands to before its damage (see `_salvage`): zstandard's stream
    reader keeps what earlier small reads returned when a later one fails."""
    import zstandard

    source = _ReaderIO(reader, frame_at, end)
    stream = zstandard.ZstdDecompressor().stream_reader(source, read_size=SALVAGE_STEP * 16)
    skip = produced
    while True:
        ctx.check_deadline()
        try:
            chunk = stream.read(min(ctx.limits.stream_chunk, 64 * 1024))
        except zstandard.ZstdError:
            return source.tell()
        if not chunk:
            return None
        if skip >= len(chunk):
            skip -= len(chunk)
        else:
            yield chunk[skip:]
            skip = 0


def expand(format_id: str, reader: RangeReader, ctx: ScanContext, out: Expansion) -> Iterator[bytes]:
    """The decompressed bytes of `reader`, lazily, in bounded chunks; problems go to `out`."""
    if format_id == fmt.ZSTD:
        return _zstd_chunks(reader, ctx, out)
    return _codec_chunks(CODECS[format_id], reader, ctx, out)


class CompressedScanner(Scanner):
    id = "compressed"
    description = ("Single-stream compression (gzip, bzip2, xz, lzma, zlib, zstd, lz4): "
                   "compressed joblib, .pt.gz, .tar.gz")

    def scan(self, unit: Unit, reader: RangeReader, ctx: ScanContext) -> UnitResult:
        """Findings about the stream itself (CNT107, CNT112, FMT005) count offsets in the
        compressed bytes; findings in the content are located at the member and count in
        its expanded bytes (`offset_in`)."""
        format_id = str(unit.context.get("format", ""))
        if format_id not in fmt.COMPRESSED_STREAMS:
            return UnitResult(error=f"compressed scanner given {format_id or 'no'} format")
        origin = unit.start
        reader = unit_view(unit, reader)
        result = UnitResult()
        try:
            self._expand_and_scan(format_id, member_name(unit.object.name), reader, ctx, result)
        except ScanTimeout:
            result.error = "timed out"     # what was found before the deadline is kept
        result.findings = rebase(result.findings, origin)
        return result

    def _expand_and_scan(self, format_id: str, name: str, reader: RangeReader, ctx: ScanContext,
                         result: UnitResult) -> None:
        if ctx.depth >= ctx.limits.max_archive_depth:
            result.findings.append(finding(
                "CNT108", self.id, f"{format_id} stream nested {ctx.depth} deep: content not inspected",
                offset=0, depth=ctx.depth, limit=ctx.limits.max_archive_depth))
            return
        if ctx.scan_member is None:
            result.findings.append(finding("FMT005", self.id, "no member scanner: content not inspected",
                                           offset=0))
            return
        out = Expansion()
        chunks = expand(format_id, reader, ctx, out)
        try:
            spooled = spool(chunks, ctx.limits, compressed_size=reader.size,
                            max_size=ctx.limits.max_total_uncompressed)
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()
        with spooled:
            result.findings += self._stream_findings(format_id, reader, spooled.size,
                                                     spooled.exceeded, out, ctx)
            if spooled.size == 0 and out.problem is not None:
                result.error = f"{format_id}: {out.problem}; nothing could be expanded"
                return
            member = ctx.scan_member(name, spooled.reader, ctx.child())
            result.findings += [f.within(name) for f in member.findings]
            result.formats += member.formats
            if member.error:
                result.error = f"{name}: {member.error}"

    def _stream_findings(self, format_id: str, reader: RangeReader, expanded: int,
                         exceeded: str | None, out: Expansion, ctx: ScanContext) -> list[Finding]:
        found = []
        if exceeded is not None:
            why = "compression ratio" if exceeded == "ratio" else "size"
            found.append(finding(
                "CNT107", self.id,
                f"{format_id} stream expands past the {why} limit: only the first {expanded} "
                "bytes were inspected",
                offset=0, compressed=reader.size, expanded=expanded, limit=exceeded))
        elif out.problem is not None:
            found.append(finding(
                "CNT112", self.id, f"{out.problem}; the {expanded} bytes expanded before it were scanned",
                offset=out.offset, format=format_id, expanded=expanded))
        elif (out.trailing_at is not None and out.trailing_at < reader.size
              and not _is_padding(reader, out.trailing_at, ctx.limits.stream_chunk)):
            # Loaders stop at the end of the stream (or fail there), so nothing reads these
            # bytes; but nothing inspected them either.
            found.append(finding(
                "FMT005", self.id,
                f"{reader.size - out.trailing_at} bytes after the end of the {format_id} stream "
                "were not inspected",
                offset=out.trailing_at, format=format_id,
                trailing=reader.size - out.trailing_at))
        return found
