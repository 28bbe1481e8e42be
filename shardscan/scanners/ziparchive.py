"""Zip archives, PyTorch zip checkpoints and TorchScript archives, read by our own parser.

The parser is deliberately as tolerant as the most tolerant loader we protect, PyTorch's miniz
reader: it follows the central directory, ignores encryption and reserved flags, does not
check CRCs and accepts a local header whose name differs from the central one. Every one of
those tolerances is a place where a stricter scanner gives up while the loader goes on, so
here each is reported and the member is scanned anyway (CVE-2025-1944, -1945, -10156).

Members are handed back to the pipeline through `ScanContext.scan_member`, which detects their
format by content. Stored members are windows on the archive (no copy); compressed ones are
expanded lazily into `spool`, with the bomb limits measured on what comes out.

A PyTorch checkpoint's `data.pkl` is scanned here directly, because its persistent ids (the
storages) are checked against the `data/<key>` members they name. Storage members are never
read in full: only their head and tail, to catch a pickle or archive planted among them.
"""

from __future__ import annotations

import bz2
import lzma
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from shardscan.model import Finding, Severity, Unit, UnitResult
from shardscan.scanners import detect as fmt
from shardscan.scanners.archive_paths import link_escape, path_escape
from shardscan.scanners.base import FormatError, ScanContext, Scanner, ScanTimeout, finding, rebase, unit_view
from shardscan.scanners.pickle.scanner import PickleScanner
from shardscan.scanners.pickle.stream import scan_pickle_range
from shardscan.scanners.pickle.torch_storages import STORAGE_ELEMENT_SIZES, declared_storages, torch_spans
from shardscan.scanners.pickle.values import Persistent
from shardscan.scanners.torchscript import analyse_torchscript, is_code_member, is_extra_member
from shardscan.storage.reader import RangeReader, SliceReader
from shardscan.storage.spool import spool
from shardscan.weights.spans import SPANS, TensorSpan

# --- Record layouts (APPNOTE.TXT 4.3) -------------------------------------------------------

END = b"PK\x05\x06"
# sig, disk, cd disk, entries here, entries, cd size, cd offset, comment length
END_STRUCT = struct.Struct("<4s4H2IH")
ZIP64_LOCATOR = b"PK\x06\x07"
ZIP64_LOCATOR_STRUCT = struct.Struct("<4sIQI")  # sig, disk, zip64 end offset, disks
ZIP64_END = b"PK\x06\x06"
# sig, record size, made by, needed, disk, cd disk, entries here, entries, cd size, cd offset
ZIP64_END_STRUCT = struct.Struct("<4sQ2H2I4Q")
CENTRAL = b"PK\x01\x02"
CENTRAL_STRUCT = struct.Struct("<4s6H3I5HII")
LOCAL = b"PK\x03\x04"
LOCAL_STRUCT = struct.Struct("<4s5H3I2H")
#: Largest comment after the end record, so the end record lies in this many trailing bytes.
MAX_END_SEARCH = END_STRUCT.size + 0xFFFF
ZIP64_EXTRA = 0x0001
U16_MAX = 0xFFFF
U32_MAX = 0xFFFFFFFF

# --- Compression methods: one row per method we expand ------------------------------------------

STORED = 0
DEFLATED = 8
BZIP2 = 12
LZMA = 14
METHOD_NAMES: dict[int, str] = {
    STORED: "stored",
    DEFLATED: "deflated",        # what miniz (PyTorch), numpy.savez_compressed and keras write
    BZIP2: "bzip2",              # Python's zipfile writes it on request
    LZMA: "lzma",                # Python's zipfile too; 7-Zip for large members
}

# --- General-purpose flag bits ---------------------------------------------------------------

#: Bits every ordinary writer sets; anything else is reported (CNT102).
ORDINARY_FLAGS = (
    0x0002      # compression option (deflate level / LZMA end-of-stream marker)
    | 0x0004    # compression option (deflate level)
    | 0x0008    # sizes and CRC in a data descriptor after the data (streaming writers)
    | 0x0800    # names are UTF-8
)
FLAG_NAMES: dict[int, str] = {
    0x0001: "encrypted",
    0x0010: "enhanced deflate (reserved)",
    0x0020: "compressed patched data",
    0x0040: "strong encryption",
    0x2000: "central directory encrypted",
}

# --- Unix file types in the high half of external_attr -------------------------------------------

S_IFMT = 0o170000
S_IFLNK = 0o120000
#: Longest symlink target read to decide where it points.
MAX_LINK_TARGET = 4096

#: Stored storage members larger than this are not read for their CRC: reading every tensor
#: byte would make scanning a checkpoint as slow as loading it, and torch itself ignores CRCs,
#: so a mismatch there tells a loader nothing. Everything else that is read is checked.
CRC_SKIP_STORAGE_ABOVE = 1024 * 1024

# --- PyTorch layout -------------------------------------------------------------------------------

#: Directories of a torch archive holding raw tensor bytes, never unpickled by torch.
STORAGE_DIRS = ("data", "constants")
#: Member names that are pickles by design, so a pickle there is no disguise (CNT110).
PICKLE_SUFFIXES = (
    ".pkl",          # torch data.pkl / constants.pkl, and the usual pickle name
    "debug_pkl",     # TorchScript source-range tables under code/
    ".pickle", ".p", ".dill", ".joblib", ".sav",
    ".pt", ".pth", ".bin", ".ckpt",   # legacy torch checkpoints nested in an archive
)


@dataclass(slots=True)
class EndRecord:
    position: int          # where the end record (or the zip64 one) starts
    entries: int
    cd_size: int
    cd_offset: int         # as stated; `shift` is added to every stated offset
    shift: int = 0
    zip64: bool = False


@dataclass(slots=True)
class Entry:
    index: int
    raw_name: bytes
    name: str
    flags: int
    method: int
    crc: int
    csize: int
    usize: int
    header_offset: int     # in the archive, shift applied
    external_attr: int
    cd_position: int
    local_name: str | None = None
    local_flags: int = 0
    data_offset: int | None = None

    @property
    def names(self) -> tuple[str, ...]:
        """The central name, then the local one when it differs: a member is judged under
        both, since loaders disagree on which one counts."""
        if self.local_name is None or self.local_name == self.name:
            return (self.name,)
        return (self.name, self.local_name)

    @property
    def is_dir(self) -> bool:
        return all(n.endswith("/") for n in self.names) and self.usize == 0 and self.csize == 0

    @property
    def is_symlink(self) -> bool:
        return (self.external_attr >> 16) & S_IFMT == S_IFLNK


@dataclass(slots=True)
class Directory:
    entries: list[Entry]
    findings: list[Finding] = field(default_factory=list)
    end: EndRecord | None = None


def _decode_name(raw: bytes, flags: int) -> str:
    if flags & 0x800:
        return raw.decode("utf-8", "replace")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("cp437")


# --- End record and central directory ---------------------------------------------------------


def find_end(reader: RangeReader) -> EndRecord | None:
    """The last plausible end record in the tail, with the zip64 record when there is one, and
    the offset shift of an archive that does not start at byte 0 (data prepended)."""
    size = reader.size
    tail_start = max(0, size - MAX_END_SEARCH)
    tail = reader.read(tail_start, size - tail_start)
    pos = len(tail)
    while True:
        pos = tail.rfind(END, 0, pos)
        if pos < 0:
            return None
        if pos + END_STRUCT.size <= len(tail):
            record = _end_at(reader, tail, tail_start + pos, pos)
            if record is not None:
                return record
        pos -= 1
        if pos < 0:
            return None


def _end_at(reader: RangeReader, tail: bytes, position: int, pos: int) -> EndRecord | None:
    _, _, _, _, entries, cd_size, cd_offset, _ = END_STRUCT.unpack_from(tail, pos)
    record = EndRecord(position, entries, cd_size, cd_offset)
    if position >= ZIP64_LOCATOR_STRUCT.size:
        loc = reader.read(position - ZIP64_LOCATOR_STRUCT.size, ZIP64_LOCATOR_STRUCT.size)
        if loc[:4] == ZIP64_LOCATOR:
            _, _, stated, _ = ZIP64_LOCATOR_STRUCT.unpack(loc)
            # Python's zipfile looks right before the locator; the stated offset is wrong when
            # data was prepended, so try both.
            before = position - ZIP64_LOCATOR_STRUCT.size - ZIP64_END_STRUCT.size
            for at in (before, stated):
                if at < 0:
                    continue
                raw = reader.read(at, ZIP64_END_STRUCT.size)
                if len(raw) == ZIP64_END_STRUCT.size and raw[:4] == ZIP64_END:
                    fields = ZIP64_END_STRUCT.unpack(raw)
                    record = EndRecord(at, fields[7], fields[8], fields[9], zip64=True)
                    break
    if record.cd_size > record.position:
        return None  # the directory cannot end where the end record starts: a stray signature
    actual = record.position - record.cd_size
    record.shift = actual - record.cd_offset
    if (record.shift and record.cd_size and reader.read(actual, 4) != CENTRAL
            and reader.read(record.cd_offset, 4) == CENTRAL):
        record.shift = 0  # something sits between the directory and the end record
    return record


def read_directory(reader: RangeReader, ctx: ScanContext, scanner_id: str) -> Directory:
    """Every central directory entry, within the directory and member-count limits."""
    end = find_end(reader)
    if end is None:
        raise FormatError("no end of central directory record")
    limits = ctx.limits
    out = Directory([], end=end)
    start = end.cd_offset + end.shift
    length = end.cd_size
    if start < 0 or start + length > reader.size:
        out.findings.append(finding("CNT112", scanner_id, "central directory lies outside the file",
                                    offset=end.position, cd_offset=end.cd_offset, cd_size=end.cd_size))
        start = max(0, start)
        length = max(0, min(length, reader.size - start))
    if length > limits.max_zip_directory:
        out.findings.append(finding(
            "CNT109", scanner_id,
            f"central directory of {length} bytes exceeds the {limits.max_zip_directory}-byte limit; "
            "members after it were not inspected", offset=start, cd_size=length))
        length = limits.max_zip_directory
    data = reader.read(start, length)
    pos = 0
    while pos < len(data):
        if len(out.entries) >= limits.max_archive_members:
            out.findings.append(finding(
                "CNT109", scanner_id,
                f"more than {limits.max_archive_members} members; the rest were not inspected",
                offset=start + pos, limit=limits.max_archive_members))
            return out
        if data[pos : pos + 4] != CENTRAL or pos + CENTRAL_STRUCT.size > len(data):
            out.findings.append(finding("CNT112", scanner_id, "central directory entry is corrupt",
                                        offset=start + pos))
            break
        (_, _, _, flags, method, _, _, crc, csize, usize, nlen, elen, clen, _, _,
         eattr, offset) = CENTRAL_STRUCT.unpack_from(data, pos)
        name_at = pos + CENTRAL_STRUCT.size
        next_pos = name_at + nlen + elen + clen
        if next_pos > len(data):
            out.findings.append(finding("CNT112", scanner_id, "central directory entry is truncated",
                                        offset=start + pos))
            break
        raw_name = data[name_at : name_at + nlen]
        extra = data[name_at + nlen : name_at + nlen + elen]
        usize, csize, offset = _zip64_sizes(extra, usize, csize, offset)
        out.entries.append(Entry(len(out.entries), raw_name, _decode_name(raw_name, flags), flags,
                                 method, crc, csize, usize, offset + end.shift, eattr, start + pos))
        pos = next_pos
    if len(out.entries) != end.entries and not out.findings and end.entries != U16_MAX:
        out.findings.append(finding(
            "CNT112", scanner_id,
            f"end record counts {end.entries} members, the central directory holds {len(out.entries)}",
            offset=end.position))
    return out


def _zip64_sizes(extra: bytes, usize: int, csize: int, offset: int) -> tuple[int, int, int]:
    """Sizes and offset from the zip64 extra field, present only for the fields that are
    all ones in the fixed header, in this order."""
    pos = 0
    while pos + 4 <= len(extra):
        tag, size = struct.unpack_from("<2H", extra, pos)
        body = extra[pos + 4 : pos + 4 + size]
        pos += 4 + size
        if tag != ZIP64_EXTRA:
            continue
        values = [v for (v,) in struct.iter_unpack("<Q", body[: len(body) // 8 * 8])]
        if usize == U32_MAX and values:
            usize = values.pop(0)
        if csize == U32_MAX and values:
            csize = values.pop(0)
        if offset == U32_MAX and values:
            offset = values.pop(0)
        break
    return usize, csize, offset


def read_local(reader: RangeReader, entry: Entry) -> str | None:
    """Fill in what the local header says; None when it is fine, else why it is unusable."""
    raw = reader.read(entry.header_offset, LOCAL_STRUCT.size)
    if len(raw) < LOCAL_STRUCT.size or raw[:4] != LOCAL:
        return "local header missing"
    _, _, flags, _, _, _, _, _, _, nlen, elen = LOCAL_STRUCT.unpack(raw)
    raw_name = reader.read(entry.header_offset + LOCAL_STRUCT.size, nlen)
    entry.local_name = _decode_name(raw_name, flags)
    entry.local_flags = flags
    entry.data_offset = entry.header_offset + LOCAL_STRUCT.size + nlen + elen
    return None


# --- Expansion of compressed members -----------------------------------------------------------


class Expansion:
    """Decompressed chunks of one member, produced lazily, with the CRC of what came out and
    why it stopped short when it did."""

    def __init__(self, reader: RangeReader, start: int, size: int, method: int, chunk: int,
                 ctx: ScanContext) -> None:
        self.reader, self.start, self.size, self.method, self.chunk = reader, start, size, method, chunk
        self.ctx = ctx
        self.crc = 0
        self.error: str | None = None
        self.complete = False

    def __iter__(self) -> Iterator[bytes]:
        try:
            chunks = self._zlib() if self.method == DEFLATED else self._bz_lzma()
            for out in chunks:
                self.crc = zlib.crc32(out, self.crc)
                yield out
        except (zlib.error, OSError, EOFError, lzma.LZMAError, ValueError) as exc:
            self.error = f"{METHOD_NAMES[self.method]} stream is corrupt: {exc}"

    def _input(self) -> Iterator[bytes]:
        pos = 0
        while pos < self.size:
            self.ctx.check_deadline()
            data = self.reader.read(self.start + pos, min(self.chunk, self.size - pos))
            if not data:
                return
            pos += len(data)
            yield data

    def _zlib(self) -> Iterator[bytes]:
        d = zlib.decompressobj(-15)
        source = self._input()
        data = b""
        exhausted = False
        while not d.eof:
            if not data and not exhausted:
                data = next(source, b"")
                exhausted = not data
            out = d.decompress(data, self.chunk)
            progressed = bool(out) or len(d.unconsumed_tail) != len(data)
            data = d.unconsumed_tail
            if out:
                yield out
            if not progressed and exhausted:
                break
        self.complete = d.eof
        if not self.complete:
            self.error = "deflate stream ends before its last block"

    def _bz_lzma(self) -> Iterator[bytes]:
        source = self._input()
        if self.method == BZIP2:
            d: Any = bz2.BZ2Decompressor()
            data = b""
        else:
            head = b""
            for piece in source:
                head += piece
                if len(head) >= 4:
                    break
            if len(head) < 4:
                raise ValueError("lzma header truncated")
            (props_len,) = struct.unpack_from("<H", head, 2)
            while len(head) < 4 + props_len:
                piece = next(source, b"")
                if not piece:
                    raise ValueError("lzma properties truncated")
                head += piece
            props = head[4 : 4 + props_len]
            filt = lzma._decode_filter_properties(lzma.FILTER_LZMA1, props)  # as zipfile does
            d = lzma.LZMADecompressor(lzma.FORMAT_RAW, filters=[filt])
            data = head[4 + props_len :]
        exhausted = False
        while not d.eof:
            if d.needs_input and not data:
                data = next(source, b"")
                if not data:
                    exhausted = True
                    break
            out = d.decompress(data, self.chunk)
            data = b""
            if out:
                yield out
        # Without its optional end marker an LZMA stream simply ends with its input.
        self.complete = d.eof or (self.method == LZMA and exhausted)
        if not self.complete:
            self.error = f"{METHOD_NAMES[self.method]} stream ends early"





def _is_pickle_name(name: str) -> bool:
    return name.lower().endswith(PICKLE_SUFFIXES)


# --- The scanner ------------------------------------------------------------------------------


@dataclass(slots=True)
class TorchLayout:
    """What makes a zip a PyTorch checkpoint: `<prefix>/data.pkl` and the members around it."""

    prefixes: frozenset[str]

    @classmethod
    def of(cls, entries: list[Entry]) -> TorchLayout:
        prefixes = set()
        for entry in entries:
            for name in entry.names:
                if name.endswith("/data.pkl") and name.count("/") == 1:
                    prefixes.add(name[: -len("/data.pkl")])
        return cls(frozenset(prefixes))

    def __bool__(self) -> bool:
        return bool(self.prefixes)

    def is_data_pkl(self, name: str) -> bool:
        return name.count("/") == 1 and name.endswith("/data.pkl") and name.split("/")[0] in self.prefixes

    def is_storage(self, name: str) -> bool:
        parts = name.split("/")
        return len(parts) == 3 and parts[0] in self.prefixes and parts[1] in STORAGE_DIRS and bool(parts[2])

    def is_torchscript(self, name: str) -> bool:
        parts = name.split("/")
        return len(parts) >= 2 and parts[0] in self.prefixes and (
            parts[1] == "code" or (len(parts) == 2 and parts[1] == "constants.pkl"))


class ZipScanner(Scanner):
    id = "zip"
    description = ("Zip archives (.zip, .npz, .keras), PyTorch zip checkpoints and TorchScript "
                   "archives: every member by content, and the zip tricks loaders tolerate")

    def scan(self, unit: Unit, reader: RangeReader, ctx: ScanContext) -> UnitResult:
        origin = unit.start
        reader = unit_view(unit, reader)
        if ctx.depth >= ctx.limits.max_archive_depth:
            return UnitResult([finding(
                "CNT108", self.id,
                f"archive nested {ctx.depth} deep was not inspected (limit {ctx.limits.max_archive_depth})",
                offset=origin, depth=ctx.depth)])
        try:
            directory = read_directory(reader, ctx, self.id)
        except FormatError as exc:
            result = UnitResult(error=f"not a readable zip: {exc}")
            if reader.read(0, 4) == LOCAL:  # it starts as a zip: a truncated or damaged one
                result.findings.append(finding("CNT112", self.id, f"zip is unreadable: {exc}",
                                               offset=origin))
            return result
        walk = _ArchiveWalk(self.id, reader, ctx, directory)
        result = UnitResult(formats=walk.formats)
        try:
            walk.run()
        except ScanTimeout:
            result.error = "timed out"  # members already inspected keep their findings
        result.findings = rebase(walk.findings, origin)
        result.partials[SPANS] = walk.spans
        return result


class _ArchiveWalk:
    """One pass over the central directory of one archive."""

    def __init__(self, scanner_id: str, reader: RangeReader, ctx: ScanContext, directory: Directory):
        self.id = scanner_id
        self.reader = reader
        self.ctx = ctx
        self.entries = directory.entries
        self.findings: list[Finding] = list(directory.findings)
        self.formats: list[str] = []
        # Local headers first: a member's role (data.pkl, storage) may come from either name.
        self.unusable = {entry.index: read_local(reader, entry) for entry in self.entries}
        self.torch = TorchLayout.of(self.entries)
        self.expanded = 0
        self.sizes: dict[str, int] = {}
        for entry in self.entries:
            for name in entry.names:
                self.sizes.setdefault(name, entry.usize)
        self.torchscript_seen = False
        self.by_name = {name: entry for entry in self.entries for name in entry.names}
        #: Tensors of a PyTorch checkpoint, for the weight analysis.
        self.spans: list[TensorSpan] = []

    def note(self, rule_id: str, message: str, entry: Entry, offset: int | None = None,
             **evidence: object) -> None:
        self.findings.append(finding(rule_id, self.id, message, location=entry.name,
                                     offset=entry.header_offset if offset is None else offset,
                                     **evidence))

    def run(self) -> None:
        seen: set[bytes] = set()
        for entry in self.entries:
            self.ctx.check_deadline()
            if entry.raw_name in seen:
                self.note("CNT106", f"member {entry.name!r} appears more than once", entry,
                          offset=entry.cd_position)
            seen.add(entry.raw_name)
            self.member(entry)

    # -- one member --

    def member(self, entry: Entry) -> None:
        problem = self.unusable[entry.index]
        if problem is not None:
            self.note("CNT112", f"{problem}; member not inspected", entry)
            return
        self.check_names(entry)
        if entry.is_dir:
            return
        if entry.method not in METHOD_NAMES:
            self.note("CNT112", f"unsupported compression method {entry.method}; member not inspected",
                      entry, method=entry.method)
            return
        assert entry.data_offset is not None
        if entry.data_offset + entry.csize > self.reader.size:
            self.note("CNT112", "member data runs past the end of the archive", entry,
                      size=entry.csize)
        if entry.method == STORED:
            if entry.csize != entry.usize:
                self.note("CNT112", f"stored member sizes disagree ({entry.csize} vs {entry.usize})",
                          entry)
            data = SliceReader(self.reader, entry.data_offset, entry.csize)
            verify = not (self.torch and self.torch.is_storage(entry.name)
                          and entry.csize > CRC_SKIP_STORAGE_ABOVE)
            if verify:
                self.check_crc(entry, self._crc_of(data))
            self.inspect(entry, data, entry.data_offset)
            return
        self.expand_and_inspect(entry)

    def check_names(self, entry: Entry) -> None:
        if entry.local_name is not None and entry.local_name != entry.name:
            self.note("CNT101",
                      f"local header names {entry.local_name!r}, central directory {entry.name!r}; "
                      "scanned once under both names", entry, local_name=entry.local_name)
        odd = (entry.flags | entry.local_flags) & ~ORDINARY_FLAGS
        if odd:
            bits = [FLAG_NAMES.get(1 << b, f"bit {b}") for b in range(16) if odd & (1 << b)]
            self.note("CNT102", f"general-purpose flags 0x{odd:04x} ({', '.join(bits)}); "
                      "scanned as if absent, as PyTorch reads it", entry,
                      flags=entry.flags, local_flags=entry.local_flags)
        reasons = {r for r in map(path_escape, entry.names) if r}
        if reasons:
            self.note("CNT104", f"member path escapes the extraction directory ({', '.join(sorted(reasons))})",
                      entry, names=" | ".join(entry.names))

    def check_crc(self, entry: Entry, crc: int) -> None:
        if crc != entry.crc:
            self.note("CNT103", f"CRC is {crc:08x}, the directory says {entry.crc:08x}; scanned anyway",
                      entry, computed=f"{crc:08x}", stated=f"{entry.crc:08x}")

    def _crc_of(self, data: RangeReader) -> int:
        crc, pos, step = 0, 0, self.ctx.limits.stream_chunk
        while pos < data.size:
            chunk = data.read(pos, step)
            if not chunk:
                break
            crc = zlib.crc32(chunk, crc)
            pos += len(chunk)
        return crc

    def expand_and_inspect(self, entry: Entry) -> None:
        limits = self.ctx.limits
        room = limits.max_total_uncompressed - self.expanded
        if room <= 0:
            self.note("CNT107", "archive expands beyond the total decompression limit; member not inspected",
                      entry, limit=limits.max_total_uncompressed)
            return
        assert entry.data_offset is not None
        expansion = Expansion(self.reader, entry.data_offset, entry.csize, entry.method, limits.stream_chunk,
                              self.ctx)
        with spool(expansion, limits, compressed_size=max(entry.csize, 1), max_size=room) as spooled:
            self.expanded += spooled.size
            if spooled.exceeded:
                why = ("ratio" if spooled.exceeded == "ratio" else
                       "size" if room >= limits.max_member_size else "archive total")
                self.note("CNT107", f"member expands beyond the {why} limit; the first {spooled.size} "
                          "bytes were inspected", entry, offset=entry.data_offset, limit=why,
                          expanded=spooled.size, compressed=entry.csize)
            elif expansion.error:
                self.note("CNT112", f"{expansion.error}; the first {spooled.size} bytes were inspected",
                          entry, method=entry.method)
            else:
                self.check_crc(entry, expansion.crc)
            self.inspect(entry, spooled.reader, None)

    def inspect(self, entry: Entry, data: RangeReader, base: int | None) -> None:
        """Judge a member's bytes by the roles its names give it and by its content."""
        names = entry.names
        if entry.is_symlink:
            target = _decode_name(data.read(0, MAX_LINK_TARGET), entry.flags)
            if any(link_escape(n, target, hard=False) for n in names):
                self.note("CNT105", f"symlink member points outside the archive: {target!r}", entry,
                          target=target)
        if self.torch and not self.torchscript_seen and any(map(self.torch.is_torchscript, names)):
            self.torchscript_seen = True
            self.note("TRC101", "TorchScript archive: code/ is compiled when loaded", entry)
        if data.size == 0:
            return
        if self.torch and any(self.torch.is_torchscript(n) and is_code_member(n) for n in names):
            self.findings += [f.within(entry.name, base) for f in analyse_torchscript(data, self.ctx, self.id)]
        detection = _detect(entry.name, data)
        if self.torch and any(map(self.torch.is_data_pkl, names)) and detection.formats == (fmt.PICKLE,):
            self.scan_data_pkl(entry, data, base)
            return
        if self.torch and detection.format in (fmt.TEXT, fmt.UNKNOWN, fmt.EMPTY) and not any(
                map(is_extra_member, names)):
            return  # the checkpoint's own tensor bytes, version strings and TorchScript source
        if fmt.PICKLE in detection.formats and not all(
                _is_pickle_name(n) or (self.torch and self.torch.is_storage(n)) for n in names):
            self.note("CNT110", f"member {entry.name!r} holds a pickle", entry,
                      offset=entry.data_offset, protocol=detection.protocol)
        if self.ctx.scan_member is None:
            return
        part = self.ctx.scan_member(entry.name, data, self.ctx.child())
        if (self.torch and all(map(self.torch.is_storage, names)) and detection.format == fmt.PICKLE
                and detection.protocol in (0, 1)
                and not any(f.severity >= Severity.WARNING for f in part.findings)):
            # Tensor bytes often read as a tiny protocol 0/1 pickle by accident (one float in
            # 256 starts with the STOP byte); torch never unpickles them, so such a "pickle" in
            # data/ matters only when it does something.
            return
        self.findings += [f.within(entry.name, base) for f in part.findings]
        self.formats += [f for f in part.formats if f not in self.formats]
        if part.error and not part.findings:
            self.note("FMT005", f"member could not be scanned: {part.error}", entry,
                      offset=entry.data_offset)

    def scan_data_pkl(self, entry: Entry, data: RangeReader, base: int | None) -> None:
        outcome = scan_pickle_range(data, self.ctx.child(), PickleScanner.id)
        if fmt.PICKLE not in self.formats:
            self.formats.append(fmt.PICKLE)
        self.findings += [f.within(entry.name, base) for f in outcome.findings]
        if outcome.error:
            self.note("FMT005", f"data.pkl could not be parsed: {outcome.error}", entry,
                      offset=entry.data_offset)
        elif outcome.timed_out:
            self.note("FMT005", "data.pkl timed out", entry, offset=entry.data_offset)
        prefix = entry.name.split("/")[0]
        self.findings += [f.within(entry.name, base) for f in self.check_storages(prefix, outcome.persistent)]
        self.spans += torch_spans(outcome.tensors, outcome.persistent, lambda key: self.storage_at(prefix, key))

    def storage_at(self, prefix: str, key: str) -> tuple[int, int] | str:
        """Where a storage member's bytes are in the archive, when they can be read in place."""
        entry = self.by_name.get(f"{prefix}/data/{key}")
        if entry is None or entry.data_offset is None:
            return "missing"
        if entry.method != STORED:
            return "compressed"
        return entry.data_offset, min(entry.csize, max(0, self.reader.size - entry.data_offset))

    def check_storages(self, prefix: str, persistent: list[Persistent]) -> list[Finding]:
        """TRC102: every storage a persistent id declares must fit in its data member."""
        out: list[Finding] = []
        for key, (type_name, numel, offset) in declared_storages(persistent).items():
            size = numel * STORAGE_ELEMENT_SIZES.get(type_name, 1)
            member = f"{prefix}/data/{key}"
            have = self.sizes.get(member)
            if have is None:
                out.append(finding("TRC102", self.id, f"storage {key!r} has no member {member!r}",
                                   offset=offset, key=key, numel=numel, storage=type_name))
            elif size > have:
                out.append(finding("TRC102", self.id,
                                   f"storage {key!r} declares {numel} x {type_name} = {size} bytes; "
                                   f"{member!r} holds {have}",
                                   offset=offset, key=key, numel=numel, storage=type_name,
                                   declared_bytes=size, member_bytes=have))
        return out


def _detect(name: str, data: RangeReader) -> fmt.Detection:
    head = data.read(0, fmt.HEAD_BYTES)
    tail = data.read(max(0, data.size - fmt.TAIL_BYTES), fmt.TAIL_BYTES) if data.size > fmt.HEAD_BYTES else head
    return fmt.detect(head, name, data.size, tail)
