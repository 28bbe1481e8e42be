"""PyTorch storages as a pickle declares them: `('storage', cls, key, location, numel)`
persistent ids, the bytes per element of each storage class, and the raw storage section of
legacy (pre-zip) files. Shared by the zip checkpoint checks and the pickle stream walk."""

from __future__ import annotations

import struct
from typing import Any

from shardscan.model import Finding
from shardscan.scanners.base import finding
from shardscan.scanners.pickle.values import Global, Persistent
from shardscan.storage.reader import RangeReader

#: Bytes per element of each legacy storage class named in a persistent id; `numel` counts
#: elements of this size. Unknown classes count as one byte, the smallest any storage can use.
STORAGE_ELEMENT_SIZES: dict[str, int] = {
    "FloatStorage": 4,            # float32
    "DoubleStorage": 8,           # float64
    "HalfStorage": 2,             # float16
    "BFloat16Storage": 2,         # bfloat16
    "LongStorage": 8,             # int64
    "IntStorage": 4,              # int32
    "ShortStorage": 2,            # int16
    "CharStorage": 1,             # int8
    "ByteStorage": 1,             # uint8
    "BoolStorage": 1,             # bool
    "ComplexFloatStorage": 8,     # complex64
    "ComplexDoubleStorage": 16,   # complex128
    "QInt8Storage": 1,            # quantised int8
    "QUInt8Storage": 1,           # quantised uint8
    "QInt32Storage": 4,           # quantised int32
    "QUInt4x2Storage": 1,         # two 4-bit values per byte
    "QUInt2x4Storage": 1,         # four 2-bit values per byte
    "UntypedStorage": 1,          # torch >= 2.0 untyped storages count bytes
}
#: Storages of a legacy file walked at most; each costs one 8-byte read.
MAX_LEGACY_STORAGES = 1_000_000


def storage_pid(pid: Any) -> tuple[str, str, int] | None:
    """(storage class name, key, numel) from `('storage', cls, key, location, numel)`, with a
    sixth item (view metadata, None since torch 1.x) in legacy files."""
    if not (isinstance(pid, tuple) and len(pid) in (5, 6) and pid[0] == "storage"):
        return None
    cls, key, _, numel = pid[1:5]
    if not isinstance(key, str) or not isinstance(numel, int) or isinstance(numel, bool):
        return None
    name = cls.name if isinstance(cls, Global) else ""
    return name, key, numel


def declared_storages(persistent: list[Persistent]) -> dict[str, tuple[str, int, int]]:
    """key -> (storage class, numel, offset of the persistent id), the largest declaration of
    each key (views of one storage repeat its key)."""
    out: dict[str, tuple[str, int, int]] = {}
    for pid in persistent:
        storage = storage_pid(pid.pid)
        if storage is None:
            continue
        name, key, numel = storage
        if key not in out or numel > out[key][1]:
            out[key] = (name, numel, pid.offset)
    return out


def legacy_storage_findings(reader: RangeReader, pos: int, end: int, keys: Any, persistent: list[Persistent],
                            scanner_id: str) -> list[Finding]:
    """TRC102 for the storage section of a legacy file: after its five pickles, each storage of
    the key list (the fifth pickle) is an int64 element count and that many elements. A count
    that disagrees with the declaration, or data past the end of the file (a file cut short),
    is reported; torch reads the counts it finds, so either corrupts what it loads."""
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        return [finding("TRC102", scanner_id, "the legacy storage key list is not a list of strings", offset=pos)]
    declared = declared_storages(persistent)
    for key in keys[:MAX_LEGACY_STORAGES]:
        name, numel, _ = declared.get(key, ("", -1, pos))
        size = STORAGE_ELEMENT_SIZES.get(name, 1)
        head = reader.read(pos, 8) if pos + 8 <= end else b""
        if len(head) < 8:
            return [finding("TRC102", scanner_id, f"the file ends before storage {key!r}: its data is missing",
                            offset=pos, key=key)]
        (count,) = struct.unpack("<q", head)
        if numel >= 0 and count != numel:
            return [finding("TRC102", scanner_id, f"storage {key!r} holds {count} elements where its persistent id "
                            f"declares {numel} x {name}", offset=pos, key=key, numel=numel, count=count)]
        if count < 0 or pos + 8 + count * size > end:
            return [finding("TRC102", scanner_id, f"storage {key!r} of {count} x {name or 'bytes'} runs past the "
                            f"end of the file ({end - pos - 8} bytes left)", offset=pos, key=key, count=count)]
        pos += 8 + count * size
    return []
