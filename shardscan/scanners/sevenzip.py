"""7z archives, read with py7zr (THREATS C7: nullifAI's 7z-wrapped PyTorch checkpoints with a
broken pickle, which scanners without a 7z reader skipped).

Nothing is extracted to disk. py7zr pushes each member's decompressed bytes into a writer
object; a worker thread runs py7zr and hands those chunks over a small queue to this thread,
which pulls them into `spool` (the bomb limits, measured on what comes out) and scans each
member with whatever scanner fits it. The queue is short, so py7zr never runs far ahead of the
scan and memory stays bounded (py7zr itself decompresses at most 128 MB per step).

py7zr's public `extract()` refuses the whole archive when one member is named `../x`; its worker
is driven directly instead (`SevenZipFile.worker.register_filelike` and `.extract`, checked with
py7zr 1.1.4; the scanner reports FMT005 if a py7zr lacks them), so such a member is reported
(CNT104) and its content still scanned.
"""

from __future__ import annotations

import contextlib
import io
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from shardscan.model import Finding, Unit, UnitResult
from shardscan.scanners.archive_paths import link_escape, normalised, path_escape
from shardscan.scanners.base import ScanContext, Scanner, ScanTimeout, finding, unit_view
from shardscan.storage.reader import RangeReader
from shardscan.storage.spool import Spooled, spool

#: Chunks in flight between py7zr's thread and the scan: enough to overlap the two. A chunk is
#: what one py7zr step gives: a few MB, up to 128 MB for very compressible data.
QUEUE_DEPTH = 2
#: Longest symbolic link target read (PATH_MAX on Linux).
MAX_LINK_TARGET = 4096


class ReaderFile(io.RawIOBase):
    """A read-only, seekable file object over a `RangeReader`, for libraries that want one."""

    def __init__(self, reader: RangeReader) -> None:
        super().__init__()
        self._reader = reader
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        data = self._reader.read(self._pos, len(view))
        view[: len(data)] = data
        self._pos += len(data)
        return len(data)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._reader.size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def tell(self) -> int:
        return self._pos


class _Stopped(Exception):
    """Raised inside py7zr's thread to end the extraction early."""


class _Bridge:
    """Hands py7zr's output from its thread to the scanning thread, a few chunks at a time.

    Events: ("start", key), ("data", key, bytes), ("end", key), ("fail", exc), ("done",).
    """

    def __init__(self) -> None:
        self.queue: queue.Queue[tuple[Any, ...]] = queue.Queue(maxsize=QUEUE_DEPTH)
        self.stop = threading.Event()
        #: Members whose remaining bytes are dropped in py7zr's thread (limit reached, or
        #: not to be scanned).
        self.drop: set[str] = set()

    def put(self, event: tuple[Any, ...]) -> None:
        while not self.stop.is_set():
            with contextlib.suppress(queue.Full):
                self.queue.put(event, timeout=0.05)
                return
        raise _Stopped

    def get(self, thread: threading.Thread, ctx: ScanContext) -> tuple[Any, ...]:
        while True:
            try:
                return self.queue.get(timeout=0.05)
            except queue.Empty:
                ctx.check_deadline()       # py7zr may be busy with bytes that are dropped
                if not thread.is_alive() and self.queue.empty():
                    return ("fail", RuntimeError("7z extraction thread ended unexpectedly"))


class _Sink:
    """The writer py7zr fills with one member's bytes (its `Py7zIO` protocol, duck-typed)."""

    def __init__(self, bridge: _Bridge, key: str) -> None:
        self._bridge = bridge
        self._key = key
        self._size = 0

    def write(self, data: bytes | bytearray) -> int:
        if self._bridge.stop.is_set():
            raise _Stopped
        self._size += len(data)
        if self._key not in self._bridge.drop:
            self._bridge.put(("data", self._key, bytes(data)))
        return len(data)

    def read(self, size: int | None = None) -> bytes:
        return b""

    def seek(self, offset: int, whence: int = 0) -> int:
        return 0

    def flush(self) -> None:
        pass

    def size(self) -> int:
        return self._size

    def close(self) -> None:
        self._bridge.put(("end", self._key))


class _Factory:
    """py7zr's `WriterFactory` protocol: one `_Sink` per member, announced to the scan."""

    def __init__(self, bridge: _Bridge) -> None:
        self._bridge = bridge

    def create(self, filename: str) -> _Sink:
        self._bridge.put(("start", filename))
        return _Sink(self._bridge, filename)


def _extract(archive: Any, bridge: _Bridge) -> None:
    """py7zr's thread: decompress every registered member into its sink, in archive order."""
    try:
        archive.worker.extract(archive.fp, None, parallel=False)
    except _Stopped:
        return
    except Exception as exc:  # py7zr raises a dozen types for bad data; each ends the walk
        with contextlib.suppress(_Stopped):
            bridge.put(("fail", exc))
        return
    with contextlib.suppress(_Stopped):
        bridge.put(("done",))


@dataclass(slots=True)
class _Walk:
    """State of one archive's extraction, seen from the scanning thread."""

    failure: BaseException | None = None
    finished: bool = False
    #: Member whose bytes are being pulled right now, and whether its "end" came.
    current: str | None = None
    ended: bool = False
    expanded: int = 0
    #: Why extraction stopped before the end (a bomb, the total size limit), and at which member.
    stopped: str | None = None
    stopped_at: str = ""
    formats: list[str] = field(default_factory=list)


def _member_chunks(bridge: _Bridge, thread: threading.Thread, walk: _Walk, key: str,
                   ctx: ScanContext) -> Iterator[bytes]:
    while True:
        event = bridge.get(thread, ctx)
        kind = event[0]
        if kind == "data" and event[1] == key:
            yield event[2]
        elif kind == "end" and event[1] == key:
            walk.ended = True
            return
        elif kind == "fail":
            walk.failure = event[1]
            return
        elif kind == "done":
            walk.finished = True
            return
        # "data"/"end" of a member dropped earlier: nothing to do.


class SevenZipScanner(Scanner):
    id = "7z"
    description = "7z archives (nullifAI-style 7z-wrapped checkpoints), read in memory with py7zr"

    def scan(self, unit: Unit, reader: RangeReader, ctx: ScanContext) -> UnitResult:
        """Member findings are located at the member and count offsets in its expanded bytes
        (`offset_in`); findings about the archive carry no offset (7z keeps names and sizes
        in a compressed header)."""
        try:
            import py7zr
        except ImportError:   # a dependency, but a broken install is reported, not raised
            return UnitResult([finding("FMT005", self.id, "py7zr is not installed: 7z not inspected",
                                       offset=0)], error="py7zr missing (pip install 'py7zr')")
        reader = unit_view(unit, reader)
        result = UnitResult()
        try:
            archive = py7zr.SevenZipFile(ReaderFile(reader), "r")
        except py7zr.PasswordRequired:
            result.findings.append(finding("CNT112", self.id, "7z header is encrypted: nothing inspected",
                                           offset=0, encrypted=True))
            return result
        except Exception as exc:  # py7zr raises many types for malformed headers
            result.findings.append(finding("CNT112", self.id, f"7z archive cannot be read: {exc}", offset=0))
            result.error = f"7z archive cannot be read: {exc}"
            return result
        try:
            self._scan_archive(archive, reader, ctx, result)
        except ScanTimeout:
            result.error = "timed out"     # members already inspected keep their findings
        finally:
            archive.close()
        return result

    def _scan_archive(self, archive: Any, reader: RangeReader, ctx: ScanContext, result: UnitResult) -> None:
        limits = ctx.limits
        found = result.findings
        members = list(getattr(archive, "files", None) or [])
        if len(members) > limits.max_archive_members:
            found.append(finding(
                "CNT109", self.id,
                f"{len(members)} members, more than {limits.max_archive_members}: the rest were not inspected",
                members=len(members), limit=limits.max_archive_members))
        inspected = members[: limits.max_archive_members]
        names: set[str] = set()
        for member in inspected:
            found += self._name_checks(member, names)
        wanted = {str(m.id): m for m in inspected if not m.emptystream and not m.is_directory}
        if not wanted:
            return
        if archive.needs_password():
            found.append(finding("CNT112", self.id, "7z members are encrypted: their content was not inspected",
                                 encrypted=True))
            return
        if ctx.depth >= limits.max_archive_depth:
            found.append(finding("CNT108", self.id,
                                 f"7z nested {ctx.depth} deep: its members were not inspected",
                                 depth=ctx.depth, limit=limits.max_archive_depth))
            return
        if ctx.scan_member is None:
            found.append(finding("FMT005", self.id, "no member scanner: members not inspected"))
            return
        if not hasattr(getattr(archive, "worker", None), "register_filelike"):
            found.append(finding("FMT005", self.id,
                                 "this py7zr has no extraction worker to read members in memory: "
                                 "members not inspected"))
            return
        declared = sum(m.uncompressed or 0 for m in wanted.values())
        if declared > limits.max_total_uncompressed:
            found.append(finding(
                "CNT107", self.id,
                f"members declare {declared} bytes, more than the total limit: not all will be inspected",
                declared=declared, limit=limits.max_total_uncompressed))
        walk = _Walk()
        try:
            self._extract_and_scan(archive, reader, ctx, wanted, members, walk, found)
        finally:
            result.formats += walk.formats

    def _name_checks(self, member: Any, names: set[str]) -> list[Finding]:
        found = []
        name = member.filename
        escape = path_escape(name)
        if escape is not None:
            found.append(finding("CNT104", self.id, f"member {name!r}: {escape}",
                                 location=name, member=name))
        if not member.is_directory:
            key = normalised(name)
            if key in names:
                found.append(finding("CNT106", self.id, f"member {name!r} appears more than once",
                                     location=name, member=name))
            names.add(key)
        return found

    def _extract_and_scan(self, archive: Any, reader: RangeReader, ctx: ScanContext,
                          wanted: dict[str, Any], members: list[Any], walk: _Walk,
                          found: list[Finding]) -> None:
        from py7zr.io import MemIO

        bridge = _Bridge()
        factory = _Factory(bridge)
        for member in members:
            if member.emptystream or member.is_directory:
                continue
            key = str(member.id)
            if key not in wanted:
                bridge.drop.add(key)     # beyond the count limit: decompressed, not scanned
            archive.worker.register_filelike(member.id, MemIO(key, factory))
        thread = threading.Thread(target=_extract, args=(archive, bridge), name="shardscan-7z", daemon=True)
        thread.start()
        try:
            while not walk.finished and walk.failure is None and walk.stopped is None:
                ctx.check_deadline()
                event = bridge.get(thread, ctx)
                if event[0] == "start" and event[1] in wanted:
                    self._member(bridge, thread, walk, wanted[event[1]], reader, ctx, found)
                elif event[0] == "fail":
                    walk.failure = event[1]
                elif event[0] == "done":
                    walk.finished = True
        finally:
            bridge.stop.set()
            while thread.is_alive():
                with contextlib.suppress(queue.Empty):
                    bridge.queue.get(timeout=0.05)
            thread.join()
        if walk.failure is not None:
            found.append(self._failure(walk.failure, walk.current))
        elif walk.stopped is not None:
            found.append(finding("FMT005", self.id,
                                 f"extraction stopped at {walk.stopped_at!r} ({walk.stopped}): "
                                 "members after it were not inspected", location=walk.stopped_at))

    def _failure(self, exc: BaseException, member: str | None) -> Finding:
        kind = type(exc).__name__
        if kind == "PasswordRequired":
            why = "7z member is encrypted"
        elif kind == "UnsupportedCompressionMethodError":
            why = f"7z compression method is not supported: {exc}"
        elif kind == "CrcError":
            why = "7z member CRC does not match its content"
        else:
            why = f"7z data cannot be decompressed ({kind}: {exc})"
        return finding("CNT112", self.id, f"{why}; members after it were not inspected",
                       location=member or "", member=member, error=kind)

    def _member(self, bridge: _Bridge, thread: threading.Thread, walk: _Walk, member: Any,
                reader: RangeReader, ctx: ScanContext, found: list[Finding]) -> None:
        limits = ctx.limits
        key, name = str(member.id), member.filename
        walk.current, walk.ended = name, False
        chunks = _member_chunks(bridge, thread, walk, key, ctx)
        try:
            if member.is_symlink:
                spooled = spool(chunks, limits, max_size=MAX_LINK_TARGET)
            else:
                # The ratio is measured against the whole archive: a solid block does not say
                # how much of it each member takes.
                room = limits.max_total_uncompressed - walk.expanded
                spooled = spool(chunks, limits, compressed_size=reader.size, max_size=max(room, 0))
        finally:
            chunks.close()
        if not walk.ended and walk.failure is None and not walk.finished:
            bridge.drop.add(key)         # stop queueing the rest of this member
        walk.expanded += spooled.size
        with spooled:
            if member.is_symlink:
                target = spooled.reader.read(0, MAX_LINK_TARGET).decode("utf-8", "backslashreplace")
                escape = link_escape(name, target, hard=False)
                if escape is not None:
                    found.append(finding("CNT105", self.id, f"symbolic link {name!r}: {escape}",
                                         location=name, member=name, target=target))
            else:
                self._scan_content(name, member, spooled, walk, ctx, found)
        if walk.failure is None:
            walk.current = None

    def _scan_content(self, name: str, member: Any, spooled: Spooled, walk: _Walk, ctx: ScanContext,
                      found: list[Finding]) -> None:
        if spooled.exceeded is not None:
            why = "compression ratio" if spooled.exceeded == "ratio" else "size"
            found.append(finding(
                "CNT107", self.id,
                f"member {name!r} expands past the {why} limit: only the first {spooled.size} "
                "bytes were inspected",
                location=name, member=name, expanded=spooled.size, declared=member.uncompressed,
                limit=spooled.exceeded))
            # Decompressing the rest of a bomb, or past the total, only burns time.
            if spooled.exceeded == "ratio":
                walk.stopped, walk.stopped_at = "decompression bomb", name
            elif walk.expanded >= ctx.limits.max_total_uncompressed:
                walk.stopped, walk.stopped_at = "total size limit", name
        if not spooled.size:
            return
        assert ctx.scan_member is not None
        part = ctx.scan_member(name, spooled.reader, ctx.child())
        found += [f.within(name) for f in part.findings]
        walk.formats += [f for f in part.formats if f not in walk.formats]
        if part.error and not part.findings:
            found.append(finding("FMT005", self.id, f"member could not be scanned: {part.error}",
                                 location=name, member=name))
