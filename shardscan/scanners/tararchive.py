"""Tar archives: `.tar` model bundles (`.nemo`, onnx hub downloads), `.tar.gz` once the
compressed scanner has expanded it, and the legacy PyTorch layout (`sys_info`, `pickle`,
`storages`, `tensors`), which is a tar of pickles found by content like any other member.

Headers are parsed here rather than with `tarfile`, which stops silently at the first bad header
while GNU tar skips to the next one: a scanner that stops there misses members that a loader
still extracts. Member data is read in place through a `SliceReader` of the archive, never
copied or extracted. Names and link targets are checked for what extraction would do with them
(THREATS C11, CVE-2024-5187, CVE-2025-12060).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from shardscan.model import Finding, Unit, UnitResult
from shardscan.scanners.archive_paths import link_escape, normalised, path_escape
from shardscan.scanners.base import ScanContext, Scanner, ScanTimeout, finding, rebase, unit_view
from shardscan.storage.reader import RangeReader, SliceReader

BLOCK = 512
#: Largest PAX extended header or GNU long name read into memory; real ones are a few hundred
#: bytes (a path, a link target, times), so more is a crafted header, reported and skipped.
MAX_META_HEADER = 1024 * 1024

#: Type flags (POSIX ustar, GNU, PAX). Regular files are b"0", b"\0" and b"7" (contiguous);
#: tarfile also extracts GNU sparse files and every type it does not know (volume labels,
#: multi-volume parts, dump dirs, other letters) as regular files, so all of those are scanned.
HARDLINK, SYMLINK, DIRECTORY = b"1", b"2", b"5"
NO_DATA = frozenset({HARDLINK, SYMLINK, DIRECTORY, b"3", b"4", b"6"})  # + devices and FIFOs
PAX_MEMBER, PAX_GLOBAL = b"x", b"g"              # extended headers for the next / all members
GNU_LONGNAME, GNU_LONGLINK = b"L", b"K"          # the next member's name / link target
META = frozenset({PAX_MEMBER, PAX_GLOBAL, GNU_LONGNAME, GNU_LONGLINK})

_CHECKSUM_START = frozenset(b" 01234567")
_HIGH_BYTES = bytes(range(128, 256))


@dataclass(slots=True)
class TarMember:
    name: str
    type: bytes
    #: Offset of the member's (first) header block and of its data in the archive.
    header_offset: int
    data_offset: int
    size: int
    linkname: str = ""
    #: The data runs past the end of the archive.
    truncated: bool = False

    @property
    def is_regular(self) -> bool:
        """Whether the member has data that extraction writes to a file."""
        return self.type not in NO_DATA and self.type not in META


@dataclass(slots=True)
class TarProblem:
    reason: str
    offset: int


@dataclass(slots=True)
class _Pending:
    """Meta headers waiting for the member they describe."""

    pax: dict[str, str] = field(default_factory=dict)
    longname: str | None = None
    longlink: str | None = None
    first_offset: int | None = None


def _cstr(raw: bytes) -> str:
    return raw.split(b"\x00", 1)[0].decode("utf-8", "backslashreplace")


def _number(raw: bytes) -> int:
    """A numeric header field: octal text, or GNU base-256 when the high bit is set."""
    if raw and raw[0] & 0x80:
        value = int.from_bytes(raw[1:], "big")
        if raw[0] == 0xFF:
            value -= 1 << (8 * (len(raw) - 1))
        return value
    text = raw.split(b"\x00", 1)[0].strip(b" ")
    if not text:
        return 0
    if not all(0x30 <= c <= 0x37 for c in text):
        raise ValueError(f"bad octal field {text[:16]!r}")
    return int(text, 8)


def _checksum_ok(block: bytes) -> bool:
    try:
        stored = _number(block[148:156])
    except ValueError:
        return False
    rest = block[:148] + block[156:]
    unsigned = sum(rest) + 8 * 0x20
    if stored == unsigned:
        return True
    # Some old writers summed signed chars.
    high = len(rest) - len(rest.translate(None, _HIGH_BYTES))
    return stored == unsigned - 256 * high


def _pax_records(data: bytes) -> dict[str, str]:
    """`"%d %s=%s\\n"` records; a malformed one ends the header, as in tarfile."""
    records: dict[str, str] = {}
    pos = 0
    while pos < len(data) and data[pos] != 0:
        space = data.find(b" ", pos)
        if space < 0:
            break
        try:
            length = int(data[pos:space])
        except ValueError:
            break
        record = data[space + 1 : pos + length]
        if length <= 0 or not record.endswith(b"\n") or b"=" not in record:
            break
        key, _, value = record[:-1].partition(b"=")
        records[key.decode("utf-8", "backslashreplace")] = value.decode("utf-8", "backslashreplace")
        pos += length
    return records


def _next_header(reader: RangeReader, pos: int, ctx: ScanContext) -> int:
    """The offset of the next block at or after `pos` that reads as a header (or the end)."""
    step = max(ctx.limits.stream_chunk // BLOCK, 1) * BLOCK
    while pos + BLOCK <= reader.size:
        ctx.check_deadline()
        data = reader.read(pos, step)
        for at in range(0, len(data) - BLOCK + 1, BLOCK):
            block = data[at : at + BLOCK]
            # The checksum field starts with a digit or a space in every writer's headers.
            if block[148] in _CHECKSUM_START and _checksum_ok(block):
                return pos + at
        pos += len(data) - len(data) % BLOCK
        if len(data) < BLOCK:
            break
    return reader.size


def iter_tar(reader: RangeReader, ctx: ScanContext) -> Iterator[TarMember | TarProblem]:
    """Every member of the archive in order, with problems where headers are bad.

    After a bad header the walk moves on to the next block whose checksum holds, as GNU tar
    does ("Skipping to next header"). It stops at the first zero block, the end of the archive
    for tar and tarfile alike.
    """
    pos = 0
    pending = _Pending()
    global_pax: dict[str, str] = {}
    while pos + BLOCK <= reader.size:
        ctx.check_deadline()
        block = reader.read(pos, BLOCK)
        if not block.strip(b"\x00"):
            return
        size = -1
        if _checksum_ok(block):
            try:
                size = _number(block[124:136])
            except ValueError:
                yield TarProblem("tar header size field is not a number; skipping to the next header", pos)
        else:
            yield TarProblem("tar header checksum does not match; skipping to the next header", pos)
        if size < 0:
            pos = _next_header(reader, pos + BLOCK, ctx)
            pending = _Pending()
            continue
        kind = block[156:157]
        name = _cstr(block[0:100])
        if block[257:263] == b"ustar\x00":          # POSIX: a prefix field extends the name
            prefix = _cstr(block[345:500])
            if prefix:
                name = f"{prefix}/{name}"
        header_at, data_at = pos, pos + BLOCK
        if kind in META:
            if size > MAX_META_HEADER:
                yield TarProblem(f"tar extended header of {size} bytes exceeds the limit", pos)
            else:
                data = reader.read(data_at, size)
                if kind == PAX_MEMBER:
                    pending.pax.update(_pax_records(data))
                elif kind == PAX_GLOBAL:
                    global_pax.update(_pax_records(data))
                elif kind == GNU_LONGNAME:
                    pending.longname = _cstr(data)
                else:
                    pending.longlink = _cstr(data)
            if pending.first_offset is None:
                pending.first_offset = header_at
            pos = data_at + _padded(size)
            continue
        pax = {**global_pax, **pending.pax}
        if "size" in pax:
            try:
                size = max(int(pax["size"]), 0)
            except ValueError:
                yield TarProblem(f"PAX size {pax['size'][:32]!r} is not a number", header_at)
        member = TarMember(
            name=pax.get("path") or pending.longname or name,
            type=kind,
            header_offset=pending.first_offset if pending.first_offset is not None else header_at,
            data_offset=data_at,
            size=size,
            linkname=pax.get("linkpath") or pending.longlink or _cstr(block[157:257]),
        )
        pending = _Pending()
        # Links, directories and devices carry no data whatever their size field says.
        stored = member.size if member.is_regular else 0
        member.truncated = data_at + stored > reader.size
        yield member
        pos = data_at + _padded(stored)
    if pos < reader.size:
        yield TarProblem("tar archive ends inside a header block", pos)


def _padded(size: int) -> int:
    return (size + BLOCK - 1) // BLOCK * BLOCK


@dataclass(slots=True)
class _Checks:
    """What the scanner remembers across members."""

    names: set[str] = field(default_factory=set)
    count: int = 0
    scanned_bytes: int = 0
    depth_reported: bool = False
    formats: list[str] = field(default_factory=list)


class TarScanner(Scanner):
    id = "tar"
    description = "Tar archives (.tar, .tar.gz via gzip, .nemo, legacy PyTorch tar checkpoints)"

    def scan(self, unit: Unit, reader: RangeReader, ctx: ScanContext) -> UnitResult:
        origin = unit.start
        reader = unit_view(unit, reader)
        result = UnitResult()
        checks = _Checks()
        try:
            self._walk(reader, ctx, checks, result.findings)
        except ScanTimeout:
            result.error = "timed out"     # members already inspected keep their findings
        result.formats = checks.formats
        result.findings = rebase(result.findings, origin)
        return result

    def _walk(self, reader: RangeReader, ctx: ScanContext, checks: _Checks, found: list[Finding]) -> None:
        limits = ctx.limits
        for item in iter_tar(reader, ctx):
            if isinstance(item, TarProblem):
                found.append(finding("CNT112", self.id, item.reason, offset=item.offset))
                continue
            checks.count += 1
            if checks.count > limits.max_archive_members:
                found.append(finding(
                    "CNT109", self.id,
                    f"more than {limits.max_archive_members} members: the rest were not inspected",
                    offset=item.header_offset, limit=limits.max_archive_members))
                return
            found += self._member_checks(item, checks)
            if item.is_regular and item.size > 0:
                found += self._scan_member(item, reader, ctx, checks)

    def _member_checks(self, member: TarMember, checks: _Checks) -> list[Finding]:
        found = []
        at = member.header_offset
        escape = path_escape(member.name)
        if escape is not None:
            found.append(finding("CNT104", self.id, f"member {member.name!r}: {escape}",
                                 location=member.name, offset=at, member=member.name))
        if member.type in (SYMLINK, HARDLINK):
            hard = member.type == HARDLINK
            escape = link_escape(member.name, member.linkname, hard=hard)
            if escape is not None:
                kind = "hard link" if hard else "symbolic link"
                found.append(finding("CNT105", self.id, f"{kind} {member.name!r}: {escape}",
                                     location=member.name, offset=at, member=member.name,
                                     target=member.linkname))
        if member.type != DIRECTORY:
            key = normalised(member.name)
            if key in checks.names:
                found.append(finding("CNT106", self.id, f"member {member.name!r} appears more than once",
                                     location=member.name, offset=at, member=member.name))
            checks.names.add(key)
        if member.truncated:
            found.append(finding(
                "CNT112", self.id,
                f"member {member.name!r} declares {member.size} bytes but the archive ends first",
                location=member.name, offset=at, member=member.name))
        return found

    def _scan_member(self, member: TarMember, reader: RangeReader, ctx: ScanContext,
                     checks: _Checks) -> list[Finding]:
        limits = ctx.limits
        if ctx.depth >= limits.max_archive_depth or ctx.scan_member is None:
            if checks.depth_reported:
                return []
            checks.depth_reported = True
            if ctx.scan_member is None:
                return [finding("FMT005", self.id, "no member scanner: members not inspected",
                                offset=member.header_offset)]
            return [finding("CNT108", self.id,
                            f"tar nested {ctx.depth} deep: its members were not inspected",
                            location=member.name, offset=member.header_offset, depth=ctx.depth,
                            limit=limits.max_archive_depth)]
        found = []
        size = member.size
        room = min(limits.max_member_size, limits.max_total_uncompressed - checks.scanned_bytes)
        if size > room:
            found.append(finding(
                "CNT107", self.id,
                f"member {member.name!r} of {size} bytes exceeds the size limits: only the first "
                f"{max(room, 0)} bytes were inspected",
                location=member.name, offset=member.header_offset, member=member.name, size=size,
                limit=max(room, 0)))
            size = max(room, 0)
        if size == 0:
            return found
        checks.scanned_bytes += size
        ctx.check_deadline()
        part = ctx.scan_member(member.name, SliceReader(reader, member.data_offset, size), ctx.child())
        # Tar stores members as they are: their offsets become offsets in the archive.
        found += [f.within(member.name, member.data_offset) for f in part.findings]
        checks.formats += [f for f in part.formats if f not in checks.formats]
        if part.error and not part.findings:
            found.append(finding("FMT005", self.id, f"member could not be scanned: {part.error}",
                                 location=member.name, offset=member.data_offset, member=member.name))
        return found
