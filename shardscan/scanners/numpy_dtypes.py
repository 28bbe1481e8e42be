"""NumPy dtype descriptions and their item sizes, read without NumPy.

Shared by the .npy scanner (header `descr`) and the pickle machine (joblib's array wrappers
carry a pickled `numpy.dtype`): one table, so both size arrays the way NumPy does.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

#: A dtype string as NumPy writes it: byte order, kind, count, datetime unit.
DESCR = re.compile(r"^([<>|=]?)([a-zA-Z?])(\d*)(\[[A-Za-z0-9]+\])?$")
#: Kinds followed by a count, and the bytes per counted unit.
KIND_UNIT_BYTES: dict[str, int] = {
    "b": 1,   # bool ('b1')
    "i": 1,   # signed integer ('i8')
    "u": 1,   # unsigned integer
    "f": 1,   # float ('f4')
    "c": 1,   # complex ('c16')
    "S": 1,   # bytes ('S10')
    "a": 1,   # bytes, old name
    "V": 1,   # raw void ('V8')
    "M": 1,   # datetime64 ('M8[ns]')
    "m": 1,   # timedelta64
    "U": 4,   # unicode, UCS-4 code points ('U5' is 20 bytes)
    "O": 1,   # object pointers ('O8'); the data is a pickle, not pointers
}
#: Single-character type codes without a count, and their size.
CHAR_BYTES: dict[str, int] = {
    "?": 1, "b": 1, "B": 1, "h": 2, "H": 2, "i": 4, "I": 4, "l": 8, "L": 8, "q": 8, "Q": 8,
    "p": 8, "P": 8, "e": 2, "f": 4, "d": 8, "g": 16, "F": 8, "D": 16, "G": 32, "c": 1,
    "S": 0, "a": 0, "U": 0, "V": 0, "M": 8, "m": 8, "O": 8,
}
#: Names NumPy also accepts for the object dtype.
OBJECT_NAMES = frozenset({"o", "object", "object_", "object0", "o8", "o4"})


class DescrError(ValueError):
    """A dtype description this parser does not understand."""


@dataclass(frozen=True, slots=True)
class DType:
    itemsize: int
    has_object: bool


def dtype_of(descr: Any, depth: int = 0) -> DType:
    """Item size and whether any field is an object, from a descr as NumPy writes it."""
    if depth > 32:
        raise DescrError("dtype nested too deep")
    if isinstance(descr, str):
        if descr.lower().lstrip("<>|=") in OBJECT_NAMES:
            return DType(8, True)
        m = DESCR.match(descr)
        if m is None:
            raise DescrError(f"dtype {descr!r} not recognised")
        kind, count, unit = m.group(2), m.group(3), m.group(4)
        if unit and kind not in "Mm":
            raise DescrError(f"dtype {descr!r} not recognised")
        if count:
            if kind not in KIND_UNIT_BYTES:
                raise DescrError(f"dtype {descr!r} not recognised")
            return DType(int(count) * KIND_UNIT_BYTES[kind], kind == "O")
        if kind not in CHAR_BYTES:
            raise DescrError(f"dtype {descr!r} not recognised")
        return DType(CHAR_BYTES[kind], kind == "O")
    if isinstance(descr, tuple) and len(descr) == 2:  # a subarray: (base, shape)
        base = dtype_of(descr[0], depth + 1)
        return DType(base.itemsize * _count(descr[1]), base.has_object)
    if isinstance(descr, list):
        size, has_object = 0, False
        for fld in descr:
            if not isinstance(fld, tuple) or len(fld) not in (2, 3):
                raise DescrError(f"structured field {fld!r} not recognised")
            sub = dtype_of(fld[1], depth + 1)
            size += sub.itemsize * (_count(fld[2]) if len(fld) == 3 else 1)
            has_object = has_object or sub.has_object
        return DType(size, has_object)
    raise DescrError(f"dtype {descr!r} not recognised")


def _count(shape: Any) -> int:
    if isinstance(shape, int) and not isinstance(shape, bool) and shape >= 0:
        return shape
    if isinstance(shape, tuple) and all(isinstance(n, int) and not isinstance(n, bool) and n >= 0
                                        for n in shape):
        return math.prod(shape)
    raise DescrError(f"subarray shape {shape!r} not recognised")
