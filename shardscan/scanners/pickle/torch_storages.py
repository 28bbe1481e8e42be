"""PyTorch storages as a pickle declares them: `('storage', cls, key, location, numel)`
persistent ids, the bytes per element of each storage class, and the raw storage section of
legacy (pre-zip) files. Shared by the zip checkpoint checks and the pickle stream walk."""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

from shardscan.model import Finding
from shardscan.scanners.base import finding
from shardscan.scanners.pickle.machine import TorchTensor
from shardscan.scanners.pickle.values import Global, Persistent
from shardscan.storage.reader import RangeReader
from shardscan.weights.spans import TensorSpan, float_span, skipped

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
#: Storage classes of floating types, by the dtype name the weight analysis uses.
STORAGE_DTYPES = {"FloatStorage": "F32", "DoubleStorage": "F64", "HalfStorage": "F16", "BFloat16Storage": "BF16"}
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


def legacy_storages(reader: RangeReader, pos: int, end: int, keys: Any, persistent: list[Persistent],
                    scanner_id: str) -> tuple[list[Finding], dict[str, tuple[int, int]]]:
    """The storage section of a legacy file: after its five pickles, each storage of the key
    list (the fifth pickle) is an int64 element count and that many elements. Returns TRC102
    for a count that disagrees with the declaration or data past the end of the file (a file
    cut short), which torch would load as corrupt tensors, and where each storage's bytes are
    (key -> offset, length) up to the first problem."""
    found: dict[str, tuple[int, int]] = {}
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        return [finding("TRC102", scanner_id, "the legacy storage key list is not a list of strings",
                        offset=pos)], found
    declared = declared_storages(persistent)
    for key in keys[:MAX_LEGACY_STORAGES]:
        name, numel, _ = declared.get(key, ("", -1, pos))
        size = STORAGE_ELEMENT_SIZES.get(name, 1)
        head = reader.read(pos, 8) if pos + 8 <= end else b""
        if len(head) < 8:
            return [finding("TRC102", scanner_id, f"the file ends before storage {key!r}: its data is missing",
                            offset=pos, key=key)], found
        (count,) = struct.unpack("<q", head)
        if numel >= 0 and count != numel:
            return [finding("TRC102", scanner_id, f"storage {key!r} holds {count} elements where its persistent id "
                            f"declares {numel} x {name}", offset=pos, key=key, numel=numel, count=count)], found
        if count < 0 or pos + 8 + count * size > end:
            return [finding("TRC102", scanner_id, f"storage {key!r} of {count} x {name or 'bytes'} runs past the "
                            f"end of the file ({end - pos - 8} bytes left)", offset=pos, key=key, count=count)], found
        found[key] = (pos + 8, count * size)
        pos += 8 + count * size
    return [], found


def _dtype(cls: str) -> tuple[str, int]:
    """(dtype name, bytes per element) of a storage class."""
    return STORAGE_DTYPES.get(cls, cls.removesuffix("Storage") or "untyped"), STORAGE_ELEMENT_SIZES.get(cls, 1)


def torch_spans(tensors: list[TorchTensor], persistent: list[Persistent],
                locate: Callable[[str], tuple[int, int] | str]) -> list[TensorSpan]:
    """Where each tensor of a checkpoint is, for the weight analysis: `locate(key)` gives a
    storage's (offset, length) in the reader, or why its bytes cannot be read in place
    ("compressed", "missing"). A contiguous tensor is its own span, under its state-dict name;
    a storage no contiguous tensor reads (strided views only, or no tensor recorded) is
    analysed whole, as a flat run of elements."""
    declared = declared_storages(persistent)
    out: list[TensorSpan] = []
    seen: set[tuple[int, int]] = set()
    read_by_tensor: set[str] = set()
    for t in tensors:
        storage = storage_pid(t.storage)
        if storage is None or not t.contiguous:
            continue
        cls, key, _ = storage
        where = locate(key)
        dtype, size = _dtype(cls)
        elements = 1
        for d in t.shape:
            elements *= d
        name = t.name or f"storage {key}"
        read_by_tensor.add(key)
        if isinstance(where, str):
            out.append(skipped(name, dtype, t.shape, 0, elements * size, where))
            continue
        start, nbytes = where[0] + t.storage_offset * size, elements * size
        if t.storage_offset * size + nbytes > where[1] or (start, nbytes) in seen:
            continue  # past its storage (TRC102 says so), or a second view of the same bytes
        seen.add((start, nbytes))
        out.append(float_span(name, dtype, t.shape, start, nbytes, 0 if len(t.shape) >= 2 else None))
    for key, (cls, numel, _) in declared.items():
        if key in read_by_tensor:
            continue
        where = locate(key)
        dtype, size = _dtype(cls)
        if isinstance(where, str):
            out.append(skipped(f"storage {key}", dtype, (numel,), 0, numel * size, where))
        else:
            out.append(float_span(f"storage {key}", dtype, (min(numel, where[1] // size),), where[0],
                                  min(numel * size, where[1] // size * size)))
    return out
