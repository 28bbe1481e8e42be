"""Flax/JAX msgpack checkpoints (`.msgpack`, `.flax`, Orbax's legacy `checkpoint` file).

`flax.serialization.msgpack_serialize` writes one msgpack document: nested maps of parameter
names to leaves, where a NumPy/JAX array is `ExtType(1, packb((shape, dtype.name,
arr.tobytes('C'))))`, a complex number `ExtType(2, packb((real, imag)))` and a NumPy scalar
`ExtType(3, ...)` laid out as an ndarray of shape `()`. Arrays over 2**30 bytes are split into
maps `{"__msgpack_chunked_array__": True, "shape": {...}, "chunks": {...}}`. The loader
(`msgpack_restore`) uses `msgpack.unpackb(raw=False, strict_map_key=False)` and
`np.frombuffer(buffer, dtype=np.dtype(name)).reshape(shape)` (checked against flax 0.12.8).

The format holds no code, so the risks are in what a reader trusts and what rides along:

* MPK001 (WARNING) the document is malformed or truncated (integrity; `unpackb` refuses it);
* MPK002 (WARNING) nesting, value count or a string beyond a parser limit: the rest not analysed;
* MPK003 (WARNING) an ext type Flax does not define (1-3): custom loaders may decode it as they
  like; its payload is classified and scanned like bytes values;
* MPK004 (WARNING) a bytes value or ext payload that is another format (pickle, archive,
  executable): Flax never writes one; it is handed to the other scanners (`ctx.scan_member`),
  whose own findings (a pickle's calls, CRITICAL) are added;
* MPK005 (WARNING) an array whose shape and dtype disagree with its payload length, a malformed
  array record (not `(shape, dtype, bytes)`), or a dtype NumPy would refuse or that holds objects;
* MPK006 (WARNING) strings with code, markup or shell; MPK007 (INFO) URLs and file paths;
  BIN002 (WARNING, shared by every format) secrets, masked;
* MPK009 (WARNING) bytes after the document (`unpackb` refuses them; a polyglot's place),
  classified and scanned like MPK004.

The parser is this module's own: it reads through the reader in chunks, never builds the tree,
and never reads array data (only lengths; payload heads are read to classify bytes values).
Orbax checkpoint directories hold msgpack only in legacy `checkpoint` files (found by content,
detect.py); their metadata and OCDBT/zarr files are the `orbax` scanner's.
"""

from __future__ import annotations

import re
import struct
from typing import Any

from shardscan.model import Unit, UnitResult
from shardscan.scanners import detect as fmt
from shardscan.scanners import indicators
from shardscan.scanners.base import (
    CappedFindings,
    ScanContext,
    Scanner,
    ScanTimeout,
    embedded_member,
    rebase,
    unit_view,
)
from shardscan.scanners.indicators import CODE_PATTERNS, PLACE_PATTERNS, SECRET_RULE, shown
from shardscan.storage.reader import RangeReader, SliceReader
from shardscan.weights.spans import SPANS, SpanList, TensorSpan, float_span, skipped

MAX_REPORTED = 8
EXT_NDARRAY, EXT_COMPLEX, EXT_SCALAR = 1, 2, 3
#: Strings no code, place or secret pattern can match.
PLAIN = re.compile(r"[\w.-]*")
#: NumPy 2 allows 64 dimensions; Flax writes what NumPy holds.
MAX_RANK = 64
#: Bytes per element of NumPy/ml_dtypes dtype names (sub-byte types are stored a byte each).
DTYPE_SIZES: dict[str, int] = {
    "bool": 1, "int8": 1, "uint8": 1, "int16": 2, "uint16": 2, "int32": 4, "uint32": 4, "int64": 8,
    "uint64": 8, "float16": 2, "bfloat16": 2, "float32": 4, "float64": 8, "complex64": 8,
    "complex128": 16, "longdouble": 16, "float128": 16, "complex256": 32, "clongdouble": 32,
    "int2": 1, "uint2": 1, "int4": 1, "uint4": 1, "float4_e2m1fn": 1, "float8_e3m4": 1,
    "float8_e4m3": 1, "float8_e4m3fn": 1, "float8_e4m3fnuz": 1, "float8_e4m3b11fnuz": 1,
    "float8_e5m2": 1, "float8_e5m2fnuz": 1, "float8_e8m0fnu": 1, "float6_e2m3fn": 1, "float6_e3m2fn": 1,
}
#: Formats of embedded bytes worth handing to the other scanners.
INERT = (fmt.UNKNOWN, fmt.EMPTY, fmt.TEXT)


class Malformed(Exception):
    def __init__(self, reason: str, offset: int) -> None:
        super().__init__(reason)
        self.reason, self.offset = reason, offset


class Limit(Exception):
    def __init__(self, reason: str, offset: int) -> None:
        super().__init__(reason)
        self.reason, self.offset = reason, offset


class _Buf:
    """Reads through a reader with one cached window, so small reads cost no round trip."""

    def __init__(self, reader: RangeReader, chunk: int) -> None:
        self.reader, self.chunk, self.size = reader, chunk, reader.size
        self.start, self.data = 0, b""

    def read(self, pos: int, n: int) -> bytes:
        if pos + n > self.size:
            raise Malformed(f"value of {n} bytes runs past the end of the {self.size}-byte document", pos)
        if n > self.chunk:
            return self.reader.read(pos, n)
        if not (self.start <= pos and pos + n <= self.start + len(self.data)):
            self.start, self.data = pos, self.reader.read(pos, min(self.size - pos, max(self.chunk, n)))
        return self.data[pos - self.start : pos - self.start + n]


class _Bin:
    __slots__ = ("length", "offset")

    def __init__(self, offset: int, length: int) -> None:
        self.offset, self.length = offset, length


class _Ext:
    __slots__ = ("code", "length", "offset")

    def __init__(self, code: int, offset: int, length: int) -> None:
        self.code, self.offset, self.length = code, offset, length


#: Flax dtype names of the floating types the weight analysis reads.
FLOAT_DTYPES = {"float64": "F64", "float32": "F32", "float16": "F16", "bfloat16": "BF16"}


def _span(path: str, dtype: str, shape: tuple[int, ...], offset: int, nbytes: int) -> TensorSpan:
    """An array record as a tensor: Flax kernels are (in, out), outputs on the last axis.
    NumPy writes the bytes in the host's order, little-endian on every platform JAX runs on."""
    name = path.lstrip("/")
    if dtype in FLOAT_DTYPES:
        kernel = name.rsplit("/", 1)[-1] == "kernel" and len(shape) >= 2
        return float_span(name, FLOAT_DTYPES[dtype], shape, offset, nbytes, len(shape) - 1 if kernel else None)
    reason = ("fp8" if dtype.startswith(("float8", "float6", "float4")) else "complex" if dtype.startswith("complex")
              else "extended precision" if dtype in ("longdouble", "float128") else "integer")
    return skipped(name, dtype, shape, offset, nbytes, reason)


class _Walker:
    def __init__(self, scanner: MsgpackScanner, buf: _Buf, reader: RangeReader, ctx: ScanContext,
                 report: CappedFindings, result: UnitResult) -> None:
        self.scanner, self.buf, self.reader, self.ctx = scanner, buf, reader, ctx
        self.report, self.result, self.limits = report, result, ctx.limits
        self.values = 0
        self.members = 0
        #: Array records, for the weight analysis (kept when the walk stops early).
        self.spans = result.partials[SPANS]

    # -- decoding ----------------------------------------------------------------------------------

    def value(self, pos: int, depth: int, path: str, build: bool = False) -> tuple[int, Any]:
        """Decode the value at `pos`; containers are walked, and built only when `build`."""
        self.values += 1
        if self.values > self.limits.max_msgpack_values:
            raise Limit(f"more than {self.limits.max_msgpack_values} values", pos)
        if not self.values & 0xFFF:
            self.ctx.check_deadline()
        b = self.buf.read(pos, 1)[0]
        pos += 1
        if b <= 0x7F:
            return pos, b
        if b >= 0xE0:
            return pos, b - 0x100
        if 0x80 <= b <= 0x8F:
            return self.map(pos, b & 0x0F, depth, path, build)
        if 0x90 <= b <= 0x9F:
            return self.array(pos, b & 0x0F, depth, path, build)
        if 0xA0 <= b <= 0xBF:
            return self.string(pos, b & 0x1F, path)
        if b == 0xC0:
            return pos, None
        if b in (0xC2, 0xC3):
            return pos, b == 0xC3
        if b in (0xC4, 0xC5, 0xC6):
            n, pos = self.length(pos, {0xC4: 1, 0xC5: 2, 0xC6: 4}[b])
            self.buf.read(pos, 0) if n == 0 else self.buf.read(pos + n - 1, 1)  # bounds
            return pos + n, _Bin(pos, n)
        if b in (0xC7, 0xC8, 0xC9):
            n, pos = self.length(pos, {0xC7: 1, 0xC8: 2, 0xC9: 4}[b])
            return self.ext(pos, n, path)
        if 0xD4 <= b <= 0xD8:
            return self.ext(pos, 1 << (b - 0xD4), path)
        if b in (0xCA, 0xCB):
            n = 4 if b == 0xCA else 8
            return pos + n, struct.unpack(">f" if n == 4 else ">d", self.buf.read(pos, n))[0]
        if 0xCC <= b <= 0xD3:
            n = 1 << ((b - 0xCC) & 3)
            return pos + n, int.from_bytes(self.buf.read(pos, n), "big", signed=b >= 0xD0)
        if b in (0xD9, 0xDA, 0xDB):
            n, pos = self.length(pos, {0xD9: 1, 0xDA: 2, 0xDB: 4}[b])
            return self.string(pos, n, path)
        if b in (0xDC, 0xDD):
            n, pos = self.length(pos, 2 if b == 0xDC else 4)
            return self.array(pos, n, depth, path, build)
        if b in (0xDE, 0xDF):
            n, pos = self.length(pos, 2 if b == 0xDE else 4)
            return self.map(pos, n, depth, path, build)
        raise Malformed("byte 0xc1 is never used in msgpack", pos - 1)

    def length(self, pos: int, n: int) -> tuple[int, int]:
        return int.from_bytes(self.buf.read(pos, n), "big"), pos + n

    def _enter(self, pos: int, n: int, per: int, depth: int) -> None:
        if depth >= self.limits.max_msgpack_depth:
            raise Limit(f"nesting deeper than {self.limits.max_msgpack_depth}", pos)
        if n * per > self.buf.size - pos:
            raise Malformed(f"container declares {n} entries, more than the remaining "
                            f"{self.buf.size - pos} bytes can hold", pos)

    def array(self, pos: int, n: int, depth: int, path: str, build: bool) -> tuple[int, Any]:
        self._enter(pos, n, 1, depth)
        out: list[Any] | None = [] if build else None
        for i in range(n):
            pos, v = self.value(pos, depth + 1, f"{path}[{i}]", build)
            if isinstance(v, _Bin) and not build:
                self.embedded(v.offset, v.length, f"{path}[{i}]", "bytes value")
            if out is not None:
                out.append(v)
        return pos, out

    def map(self, pos: int, n: int, depth: int, path: str, build: bool) -> tuple[int, Any]:
        self._enter(pos, n, 2, depth)
        out: dict[Any, Any] | None = {} if build else None
        for _ in range(n):
            key_pos = pos
            pos, key = self.value(pos, depth + 1, path, build=False)
            sub = f"{path}/{str(key)[:80]}"
            if isinstance(key, str):
                self.text(key, sub, key_pos, is_key=True)
            pos, v = self.value(pos, depth + 1, sub, build)
            if isinstance(v, str):
                self.text(v, sub, pos, key=str(key))
            elif isinstance(v, _Bin) and not build:
                self.embedded(v.offset, v.length, sub, "bytes value")
            if out is not None:
                out[key if not isinstance(key, list) else str(key)] = v
        return pos, out

    def string(self, pos: int, n: int, path: str) -> tuple[int, Any]:
        if n > self.limits.max_msgpack_string:
            self.buf.read(pos + n - 1, 1)  # bounds first: a truncation is malformed
            self.report.add("MPK002", f"{shown(path)}: a {n}-byte string exceeds the "
                                      f"{self.limits.max_msgpack_string}-byte limit: not analysed",
                            offset=pos, length=n)
            return pos + n, ""
        raw = self.buf.read(pos, n)
        try:
            return pos + n, raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise Malformed(f"string is not UTF-8 (the loader decodes with raw=False): {exc.reason}",
                            pos + exc.start) from exc

    def ext(self, pos: int, n: int, path: str) -> tuple[int, Any]:
        code = struct.unpack(">b", self.buf.read(pos, 1))[0]
        pos += 1
        if n:
            self.buf.read(pos + n - 1, 1)
        if code in (EXT_NDARRAY, EXT_SCALAR):
            self.ndarray(pos, n, path, scalar=code == EXT_SCALAR)
        elif code == EXT_COMPLEX:
            self.sub(pos, n, path, "complex number", expect=2)
        else:
            self.report.add("MPK003", f"{shown(path)}: ext type {code} ({n} bytes) is not one Flax defines "
                                      "(1 ndarray, 2 complex, 3 numpy scalar)", offset=pos - 1, code=code, length=n)
            self.embedded(pos, n, path, f"ext type {code} payload")
        return pos + n, _Ext(code, pos, n)

    def sub(self, pos: int, n: int, path: str, what: str, expect: int) -> list[Any] | None:
        """A payload that is itself one msgpack document (bounded, built)."""
        inner = _Walker(self.scanner, _Buf(SliceReader(self.reader, pos, n), self.limits.stream_chunk),
                        SliceReader(self.reader, pos, n), self.ctx, self.report, self.result)
        inner.values = self.values
        try:
            end, value = inner.value(0, 0, path, build=True)
        except Malformed as exc:
            self.report.add("MPK005", f"{shown(path)}: malformed {what} record: {exc.reason}",
                            offset=pos + exc.offset)
            return None
        finally:
            self.values = inner.values
        if end != n or not isinstance(value, list) or len(value) != expect:
            self.report.add("MPK005", f"{shown(path)}: malformed {what} record (expected a {expect}-item "
                                      f"array filling the {n}-byte payload)", offset=pos)
            return None
        return value

    def ndarray(self, pos: int, n: int, path: str, *, scalar: bool) -> None:
        rec = self.sub(pos, n, path, "numpy scalar" if scalar else "array", expect=3)
        if rec is None:
            return
        shape, dtype, data = rec
        if isinstance(dtype, _Bin):
            dtype = self.reader.read(pos + dtype.offset, min(dtype.length, 64)).decode("latin-1")
        label = shown(path)
        if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0
                                                  for d in shape):
            self.report.add("MPK005", f"{label}: array shape {shown(repr(shape), 60)} is not a list of "
                                      "non-negative integers", offset=pos)
            return
        if len(shape) > MAX_RANK:
            self.report.add("MPK005", f"{label}: array rank {len(shape)} exceeds NumPy's maximum of {MAX_RANK}",
                            offset=pos, rank=len(shape))
            return
        if not isinstance(data, _Bin):
            self.report.add("MPK005", f"{label}: array data is a {type(data).__name__}, not bytes", offset=pos)
            return
        size = DTYPE_SIZES.get(dtype) if isinstance(dtype, str) else None
        if size is None:
            self.report.add("MPK005", f"{label}: dtype {shown(repr(dtype), 60)} is not a numeric dtype Flax "
                                      "writes (object, structured or unknown)", offset=pos,
                            dtype=shown(repr(dtype), 60))
            self.embedded(pos + data.offset, data.length, path, "array data of unknown dtype")
            return
        count = 1
        for d in shape:
            count *= d
        if count * size != data.length:
            self.report.add("MPK005", f"{label}: shape {shown(repr(shape), 60)} of {dtype} needs "
                                      f"{count * size} bytes but the payload holds {data.length}",
                            offset=pos + data.offset, expected=count * size, actual=data.length)
            return
        self.spans.add(_span(path, dtype, tuple(shape), pos + data.offset, data.length))

    # -- content ---------------------------------------------------------------------------------

    def text(self, value: str, path: str, offset: int, *, is_key: bool = False, key: str = "") -> None:
        """Code, places and secrets in a key or value (`key`: the key a value is stored under,
        whose name may say the value is a credential)."""
        if not value or (len(value) < 12 and PLAIN.fullmatch(value) and "__" not in value):
            return  # too short and plain for any pattern below (fast path for parameter names)
        where = shown(path)
        for secret in indicators.secrets_in(value, key)[:4]:
            self.report.add(SECRET_RULE, indicators.secret_message(where, secret), offset=offset, kind=secret.kind,
                            length=secret.length)
        for rule_id, table in (("MPK006", CODE_PATTERNS), ("MPK007", PLACE_PATTERNS)):
            labels = [label for label, p in table if p.search(value)]
            if labels:
                self.report.add(rule_id, f"{where} {'key' if is_key else 'value'} holds "
                                         f"{', '.join(labels)}: {shown(value)!r}", offset=offset,
                                patterns=", ".join(labels))

    def embedded(self, pos: int, n: int, path: str, what: str) -> None:
        if n == 0:
            return
        head = self.reader.read(pos, min(n, fmt.HEAD_BYTES))
        tail = self.reader.read(max(pos, pos + n - fmt.TAIL_BYTES), min(n, fmt.TAIL_BYTES))
        kind = fmt.detect(head, "", n, tail).format
        if kind in INERT:
            return
        self.scanner.member(self, pos, n, path, what, kind)


class MsgpackScanner(Scanner):
    id = "msgpack"
    description = "Flax/JAX msgpack checkpoints: structure, array records, ext types, embedded payloads, strings"

    def scan(self, unit: Unit, reader: RangeReader, ctx: ScanContext) -> UnitResult:
        view = unit_view(unit, reader)
        report = CappedFindings(self.id, MAX_REPORTED)
        result = UnitResult()
        spans = result.partials[SPANS] = SpanList(ctx.limits.max_tensor_spans)
        try:
            self._scan(view, ctx, report, result)
        except ScanTimeout:
            result.error = "timed out"
        finally:
            result.partials[SPANS] = spans.finish()
        report.summarise()
        result.findings = rebase(report.findings + result.findings, unit.start)
        return result

    def _scan(self, reader: RangeReader, ctx: ScanContext, report: CappedFindings, result: UnitResult) -> None:
        size = reader.size
        if size == 0:
            report.add("MPK001", "msgpack document is empty", offset=0)
            return
        walker = _Walker(self, _Buf(reader, ctx.limits.stream_chunk), reader, ctx, report, result)
        try:
            end, top = walker.value(0, 0, "")
            if isinstance(top, _Bin):
                walker.embedded(top.offset, top.length, "", "bytes value")
        except Malformed as exc:
            report.add("MPK001", f"msgpack document is malformed: {exc.reason}", offset=exc.offset)
            return
        except Limit as exc:
            report.add("MPK002", f"msgpack document exceeds a parser limit ({exc.reason}): the rest was "
                                 "not analysed", offset=exc.offset)
            return
        except RecursionError:
            report.add("MPK002", "msgpack document nests too deeply: the rest was not analysed", offset=0)
            return
        if end < size:
            report.add("MPK009", f"{size - end} bytes after the msgpack document at [{end}, {size}): the Flax "
                                 "loader refuses trailing data; a place to hide a payload",
                       offset=end, start=end, end=size, length=size - end)
            walker.embedded(end, size - end, "", "trailing bytes")

    def member(self, walker: _Walker, pos: int, n: int, path: str, what: str, kind: str) -> None:
        walker.members += 1
        name = f"{path or 'msgpack'}@{pos}"
        part, why = embedded_member(walker.ctx, name, SliceReader(walker.reader, pos, n), walker.members,
                                    walker.limits.max_msgpack_members)
        if part is not None:
            walker.result.findings += [f.within(name, pos) for f in part.findings]
            walker.result.formats += [f for f in part.formats if f not in walker.result.formats]
        note = f" ({why})" if why else "; scanned"
        walker.report.add("MPK004", f"{shown(path) or 'document'}: {what} of {n} bytes at {pos} reads as {kind}{note}",
                   offset=pos, content=kind, length=n)
