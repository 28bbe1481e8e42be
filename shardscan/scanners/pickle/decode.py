"""Pure evaluations the machine may perform on literal arguments, never by importing them.

Payloads hide behind encodings (base64, hex, rot13, zlib) and computed names (`str.join`,
`codecs.decode`). Evaluating those few pure functions on literals, with bounded output, lets
the scanner see the payload that the loader would see.
"""

from __future__ import annotations

import base64
import binascii
import bz2
import codecs
import lzma
import re
import zlib
from typing import Any

from shardscan.limits import Limits
from shardscan.scanners.pickle.values import Blob, Made
from shardscan.storage.reader import RangeReader

#: Codec names `codecs.decode`/`encode` is evaluated for; all pure and bounded here.
TEXT_CODECS = frozenset({"latin1", "latin-1", "iso-8859-1", "utf-8", "utf8", "ascii",
                         "rot13", "rot_13", "raw_unicode_escape", "unicode_escape"})
BYTES_CODECS = {"base64": "base64", "base_64": "base64", "base64_codec": "base64",
                "hex": "hex", "hex_codec": "hex", "zlib": "zlib", "zlib_codec": "zlib",
                "zip": "zlib", "bz2": "bz2", "bz2_codec": "bz2"}

#: Pure builtins evaluated on literal arguments to resolve computed names.
PURE_FUNCTIONS: dict[tuple[str, str], str] = {
    ("builtins", "str.join"): "join",
    ("builtins", "bytes.join"): "join",
    ("builtins", "str"): "str",
    ("builtins", "bytes"): "bytes",
    ("builtins", "bytearray"): "bytes",
}


class Deferred:
    """A decoder call kept unevaluated: most decoded values (NumPy's latin-1 bytes in
    protocol 2) are never needed, and decoding them all would copy every tensor."""

    __slots__ = ("args", "kind", "limits", "reader")

    def __init__(self, kind: str, args: Any, limits: Limits, reader: RangeReader) -> None:
        self.kind, self.args, self.limits, self.reader = kind, args, limits, reader

    def __call__(self) -> Any:
        args = self.args
        if isinstance(args, tuple):
            args = tuple(materialise(a, self.reader, self.limits) for a in args)
        return evaluate(self.kind, args, self.limits)


def materialise(value: Any, reader: RangeReader, limits: Limits) -> Any:
    """A skipped literal read back from the stream, when it is small enough to decode."""
    if isinstance(value, Blob) and value.length <= limits.max_decoded_payload:
        data = reader.read(value.offset, value.length)
        return data.decode("utf-8", "surrogatepass") if value.kind == "str" else data
    return value


def value_of(value: Any) -> Any:
    """The literal a symbolic value stands for, when the machine can evaluate it."""
    if isinstance(value, Made):
        if value.lazy is not None:
            lazy, value.lazy = value.lazy, None
            try:
                value.value = lazy()
            except UnicodeDecodeError:
                value.value = None
        if value.value is not None:
            return value.value
    return value


def pure_function(module: str, name: str) -> str | None:
    module = {"__builtin__": "builtins"}.get(module, module)
    return PURE_FUNCTIONS.get((module, name))


def _bounded_decompress(kind: str, data: bytes, limit: int) -> bytes | None:
    if kind == "zlib":
        d = zlib.decompressobj()
        out = d.decompress(data, limit)
        return out if not d.unconsumed_tail else None
    decomp = bz2.BZ2Decompressor() if kind == "bz2" else lzma.LZMADecompressor()
    out = decomp.decompress(data, max_length=limit)
    return out if decomp.eof or len(out) < limit else None


def _decode_bytes(kind: str, data: Any, limit: int) -> Any:
    if isinstance(data, str):
        data = data.encode("latin-1", "replace")
    if not isinstance(data, (bytes, bytearray)):
        return None
    data = bytes(data)
    if kind in ("base64", "base64-url"):
        cleaned = re.sub(rb"\s+", b"", data)
        if kind == "base64-url":
            cleaned = cleaned.replace(b"-", b"+").replace(b"_", b"/")
        return base64.b64decode(cleaned + b"=" * (-len(cleaned) % 4))
    if kind == "base32":
        return base64.b32decode(data)
    if kind == "ascii85":
        return base64.a85decode(data)
    if kind == "base85":
        return base64.b85decode(data)
    if kind == "hex":
        return binascii.unhexlify(re.sub(rb"\s+", b"", data))
    if kind in ("zlib", "gzip"):
        if kind == "gzip":
            d = zlib.decompressobj(wbits=31)
            out = d.decompress(data, limit)
            return out if not d.unconsumed_tail else None
        return _bounded_decompress("zlib", data, limit)
    if kind in ("bz2", "lzma"):
        return _bounded_decompress(kind, data, limit)
    return None


def evaluate(kind: str, args: Any, limits: Limits) -> Any:
    """Evaluate one pure function on literal arguments; None when it cannot be done safely."""
    if not isinstance(args, tuple) or not args:
        return None
    first = value_of(args[0])
    limit = limits.max_decoded_payload
    try:
        if kind == "codec":
            encoding = value_of(args[1]) if len(args) > 1 else "utf-8"
            if not isinstance(encoding, str):
                return None
            enc = encoding.lower().replace(" ", "")
            if enc in BYTES_CODECS:
                return _decode_bytes(BYTES_CODECS[enc], first, limit)
            if enc in TEXT_CODECS:
                if isinstance(first, str) and enc.startswith("rot"):
                    return codecs.decode(first, "rot13")
                if isinstance(first, str):  # codecs.encode(text, 'latin1'): protocol 2 bytes
                    return first.encode(enc, "surrogatepass")
                if isinstance(first, (bytes, bytearray)):
                    return bytes(first).decode(enc, "surrogateescape")
            return None
        if kind == "join":
            items = value_of(args[1]) if len(args) > 1 else None
            if isinstance(first, (str, bytes)) and isinstance(items, (list, tuple)):
                parts = [value_of(p) for p in items]
                if all(isinstance(p, type(first)) for p in parts):
                    return first.join(parts)
            return None
        if kind == "str":
            return first if isinstance(first, str) else None
        if kind == "bytes":
            return bytes(first) if isinstance(first, (bytes, bytearray)) else None
        out = _decode_bytes(kind, first, limit)
        return out if out is None or len(out) <= limit else None
    except (ValueError, TypeError, binascii.Error, zlib.error, lzma.LZMAError, OSError,
            UnicodeError):
        return None


def numpy_itemsize(dtype: Any) -> tuple[int | None, bool]:
    """(item size, holds Python objects) of a pickled `numpy.dtype(...)`, from its arguments
    and BUILD state, the way NumPy would compute it."""
    from shardscan.scanners.numpy_dtypes import DescrError, dtype_of

    if not isinstance(dtype, Made) or not isinstance(dtype.args, tuple) or not dtype.args:
        return None, False
    try:
        parsed = dtype_of(value_of(dtype.args[0]))
    except DescrError:
        return None, False
    state = dtype.state
    itemsize = parsed.itemsize
    if isinstance(state, tuple) and len(state) > 5 and isinstance(state[5], int) and state[5] > 0:
        itemsize = state[5]  # void, structured and flexible types carry their size here
    has_object = parsed.has_object or (isinstance(state, tuple) and len(state) > 7
                                       and isinstance(state[7], int) and bool(state[7] & 1))
    return (itemsize or None), has_object
