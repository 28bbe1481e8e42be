"""TensorRT engines and other opaque compiled binaries (`.engine`, `.plan`, `.trt`).

A serialized engine is a vendor blob of compiled kernels for one GPU and one TensorRT version:
its layout is undocumented and nothing in it can be checked as a graph. What can be checked
without loading it is what it carries besides kernels:

* machine code for the host (ELF, PE, Mach-O, headers checked by `indicators.find_executables`):
  BIN001 CRITICAL, as in any model blob;
* references to native plugin code (`lib*.so`, `*.dll`, `*.dylib` names, `getPluginCreator`,
  `IPluginV2`/`IPluginV3` interfaces): OPQ002 WARNING, since deserialising such an engine loads
  and runs plugin libraries found on the host;
* and, always, OPQ001 INFO: the rest of the engine is opaque to this scanner.

The file is read front to back in windows of `CHUNK` bytes that overlap by `OVERLAP` bytes (enough
for the largest header check and the longest name), with `BACK` bytes before each window so that
a name's first character is judged against the byte before it; a hit counts in the window where
it starts, so one that straddles a window edge is found once. At most `MAX_SCAN_BYTES` are read.
"""

from __future__ import annotations

import re

from shardscan.model import Finding, Unit, UnitResult
from shardscan.scanners import indicators
from shardscan.scanners.base import ScanContext, Scanner, ScanTimeout, finding, unit_view
from shardscan.storage.reader import RangeReader

CHUNK = 1 << 20
#: A PE header may sit up to 64 KiB past its `MZ` (e_lfanew); names are at most `_NAME_MAX` long.
OVERLAP = 64 * 1024 + 512
BACK = 256
#: Bytes of one object read at most; beyond them OPQ001 says how much was left unread.
MAX_SCAN_BYTES = 64 * (1 << 30)
#: Distinct plugin references reported per object.
MAX_PLUGIN_NAMES = 32

_NAME_MAX = 128
_NAME_CHARS = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.+-")
#: Library suffixes; the name before them is walked back byte by byte (no backtracking regex).
_LIBRARY = re.compile(rb"\.(?:so(?:\.[0-9]{1,6}){0,4}|dll|dylib)(?![A-Za-z0-9_])", re.IGNORECASE)
_PLUGIN_API = re.compile(rb"(?<![A-Za-z0-9_])(?:getPluginCreator|IPluginV[23](?:[A-Za-z0-9_]{0,40})"
                         rb"|IPluginCreator(?:V[0-9])?(?:[A-Za-z0-9_]{0,20}))(?![A-Za-z0-9_])")


def _library_name(data: bytes, m: re.Match[bytes]) -> tuple[int, str] | None:
    """The library name that ends with suffix match `m`, and where it starts; None when it is
    not a plausible name (shorter than 3, too long, or a `.so` that is not `lib*`)."""
    start = m.start()
    while start > 0 and m.start() - start < _NAME_MAX and data[start - 1] in _NAME_CHARS:
        start -= 1
    if start > 0 and data[start - 1] in _NAME_CHARS:  # longer than any real file name
        return None
    stem = data[start:m.start()]
    start += len(stem) - len(stem.lstrip(b"."))
    stem = stem.lstrip(b".")
    # Three name characters at least: short runs of them occur by chance in compiled kernels.
    if len(stem) < 3 or not any(65 <= c <= 90 or 97 <= c <= 122 for c in stem):
        return None
    if m.group(0)[:3].lower() == b".so" and (not stem.startswith(b"lib") or len(stem) < 4):
        return None
    return start, (stem + m.group(0)).decode("ascii")


def plugin_references(data: bytes) -> list[tuple[int, str]]:
    """(position, name) of native-plugin references in `data`, in order."""
    out: list[tuple[int, str]] = [(m.start(), m.group(0).decode("ascii")) for m in _PLUGIN_API.finditer(data)]
    for m in _LIBRARY.finditer(data):
        named = _library_name(data, m)
        if named is not None:
            out.append(named)
    out.sort()
    return out


class OpaqueEngineScanner(Scanner):
    id = "opaque"
    description = "TensorRT engines and opaque binaries: embedded executables and native plugin references"

    def scan(self, unit: Unit, reader: RangeReader, ctx: ScanContext) -> UnitResult:
        view = unit_view(unit, reader)
        size = view.size
        limit = min(size, MAX_SCAN_BYTES)
        findings: list[Finding] = []
        executables: set[int] = set()
        plugins: dict[str, int] = {}
        more_plugins = 0
        pos = 0
        timed_out = False
        try:
            while pos < limit:
                ctx.check_deadline()
                lo = max(0, pos - BACK)
                hi = min(limit, pos + CHUNK + OVERLAP)
                data = view.read(lo, hi - lo)
                own_end = pos + CHUNK if hi < limit else hi  # the last window owns its overlap
                for hit in indicators.find_executables(data, lo):
                    if hit.native and pos <= hit.offset < own_end and hit.offset not in executables:
                        executables.add(hit.offset)
                        findings.append(finding("BIN001", self.id, f"{hit.kind} executable inside the engine at "
                                                f"byte {hit.offset} ({hit.detail})", offset=hit.offset,
                                                kind=hit.kind))
                for at, name in plugin_references(data):
                    at += lo
                    if not pos <= at < own_end or name in plugins:
                        continue
                    if len(plugins) >= MAX_PLUGIN_NAMES:
                        more_plugins += 1
                        continue
                    plugins[name] = at
                pos += CHUNK
        except ScanTimeout:
            timed_out = True
        for name, at in plugins.items():
            findings.append(finding("OPQ002", self.id, f"engine references native plugin code: {name!r} at byte {at}; "
                                    "loading it runs plugin libraries from the host", offset=at, name=name))
        if more_plugins:
            findings.append(finding("OPQ002", self.id, f"{more_plugins} more plugin references not listed "
                                    f"(first {MAX_PLUGIN_NAMES} distinct names shown)", offset=None,
                                    omitted=more_plugins))
        scanned = min(pos, limit)
        note = "" if scanned >= size else f"; only the first {scanned} of {size} bytes were searched"
        findings.append(finding("OPQ001", self.id, "opaque compiled engine: only searched for embedded executables "
                                f"and native plugin references, its kernels and layers are not analysed{note}",
                                offset=0, scanned=scanned, size=size))
        return UnitResult(findings, error="timed out" if timed_out else None)
