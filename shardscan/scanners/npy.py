"""NumPy `.npy` arrays (and, through the zip scanner, the members of `.npz` files).

A `.npy` file is a magic string, a version, a Python dict literal describing the array and the
raw array bytes. An array of Python objects is different: its bytes are a pickle, which
`np.load(allow_pickle=True)` runs. The header is parsed without evaluating anything (the
literal is checked node by node before `ast.literal_eval`, which itself never runs code), the
declared size is checked against the file, and an object array's pickle is scanned. The
array's place in the file is handed to the weight analysis as a `TensorSpan`.
"""

from __future__ import annotations

import ast
import math
import re
import struct
from dataclasses import dataclass
from typing import Any

from shardscan.model import Finding, Unit, UnitResult
from shardscan.scanners import detect as fmt
from shardscan.scanners.base import FormatError, ScanContext, Scanner, finding
from shardscan.scanners.numpy_dtypes import DescrError, dtype_of
from shardscan.scanners.pickle.scanner import PickleScanner
from shardscan.scanners.pickle.stream import scan_pickle_range
from shardscan.storage.reader import RangeReader
from shardscan.weights.spans import SPANS, TensorSpan, skipped

MAGIC = b"\x93NUMPY"
#: Version -> (header length field, text encoding of the header). Version 3 allows UTF-8 names.
VERSIONS: dict[int, tuple[struct.Struct, str]] = {
    1: (struct.Struct("<H"), "latin-1"),
    2: (struct.Struct("<I"), "latin-1"),
    3: (struct.Struct("<I"), "utf-8"),
}
HEADER_KEYS = frozenset({"descr", "fortran_order", "shape"})
#: AST nodes a header literal may contain: containers, constants and signs, nothing callable.
LITERAL_NODES = (ast.Dict, ast.Tuple, ast.List, ast.Constant, ast.UnaryOp, ast.USub, ast.UAdd, ast.Load)
#: Little-endian floating descrs the weight analysis reads, by their analysis name.
FLOAT_DESCRS = {"<f2": "F16", "<f4": "F32", "<f8": "F64"}
#: Kinds of the other simple descrs, and why the statistics skip them.
KIND_REASONS = {"i": "integer", "u": "integer", "b": "boolean", "?": "boolean", "c": "complex"}
#: Name of the span of a .npy file: the member name of an .npz is the object's, not ours to know.
ARRAY_NAME = "array"

@dataclass(frozen=True, slots=True)
class Header:
    version: int
    data_start: int       # offset of the array bytes in the reader
    descr: Any
    fortran_order: bool
    shape: tuple[int, ...]


def parse_literal(text: str) -> dict[str, Any]:
    """The header dict, accepting only a dict literal of constants, tuples and lists."""
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError:
        # Python 2 wrote shapes as `(3L, 4L)`; NumPy still reads them.
        try:
            tree = ast.parse(re.sub(r"\b(\d+)L\b", r"\1", text.strip()), mode="eval")
        except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
            raise FormatError(f"header is not a Python literal: {exc.__class__.__name__}") from exc
    except (ValueError, RecursionError, MemoryError) as exc:
        raise FormatError(f"header is not a Python literal: {exc.__class__.__name__}") from exc
    if not isinstance(tree.body, ast.Dict):
        raise FormatError("header is not a dict literal")
    for node in ast.walk(tree.body):
        if not isinstance(node, LITERAL_NODES):
            raise FormatError(f"header holds a {type(node).__name__} expression")
    try:
        value = ast.literal_eval(tree.body)
    except (ValueError, TypeError, SyntaxError, RecursionError, MemoryError) as exc:
        raise FormatError(f"header literal is invalid: {exc}") from exc
    if not isinstance(value, dict):
        raise FormatError("header is not a dict")
    return value


def _descr_name(descr: str) -> str:
    """'<f4' -> 'F32', '>i8' -> 'I64', 'S10' -> 'S10': the analysis names where there is one."""
    order, rest = (descr[0], descr[1:]) if descr[:1] in "<>|=" else ("", descr)
    if len(rest) >= 2 and rest[0] in "iufc" and rest[1:].isdigit():
        return f"{rest[0].upper()}{int(rest[1:]) * 8}"
    if rest in ("b1", "?"):
        return "BOOL"
    return (order + rest)[:20]


def array_span(header: Header, itemsize: int, origin: int, available: int) -> TensorSpan:
    """Where the array's bytes are, from the header alone. A Fortran-ordered array is the
    row-major array of the reversed shape (its transpose), which is how it is described;
    the byte order must be explicit: NumPy writes '<', '>' or '|', so '=' or none is a
    writer's native order that this scanner cannot know."""
    shape = tuple(reversed(header.shape)) if header.fortran_order else header.shape
    offset = header.data_start - origin
    nbytes = math.prod(shape) * itemsize
    descr = header.descr
    if not isinstance(descr, str):
        return skipped(ARRAY_NAME, "STRUCT", shape, offset, nbytes, "structured")
    name = _descr_name(descr)
    if descr in FLOAT_DESCRS:
        if nbytes > available:
            return skipped(ARRAY_NAME, FLOAT_DESCRS[descr], shape, offset, max(available, 0), "truncated")
        return TensorSpan(ARRAY_NAME, FLOAT_DESCRS[descr], shape, offset, nbytes)
    return skipped(ARRAY_NAME, name, shape, offset, nbytes, _skip_reason(descr))


def _skip_reason(descr: str) -> str:
    """Why a simple descr other than '<f2', '<f4', '<f8' is not analysed: the kind decides,
    and for floats the byte order, then the size."""
    kind = descr.lstrip("<>|=")[:1]
    if kind and kind in "efdg" and descr[:1] not in "<>|":  # single-character codes and '=': native order
        kind = "f"
    if kind != "f":
        return KIND_REASONS.get(kind, "not numeric")
    if descr[:1] == ">":
        return "big-endian"
    if descr[:1] != "<":
        return "native byte order"
    return "extended precision"


def read_header(reader: RangeReader, start: int, end: int, max_header: int) -> Header:
    """Parse the magic, version and header dict; FormatError(offset=None) means not a .npy."""
    head = reader.read(start, 12)
    if head[:6] != MAGIC:
        raise FormatError("no .npy magic")
    if len(head) < 8:
        raise FormatError("header truncated", start)
    major = head[6]
    if major not in VERSIONS:
        raise FormatError(f"unsupported .npy version {major}.{head[7]}", start + 6)
    length_field, encoding = VERSIONS[major]
    if len(head) < 8 + length_field.size:
        raise FormatError("header truncated", start)
    (length,) = length_field.unpack_from(head, 8)
    text_start = start + 8 + length_field.size
    if length > max_header:
        raise FormatError(f"header of {length} bytes exceeds the {max_header}-byte limit", start + 8)
    if text_start + length > end:
        raise FormatError(f"header of {length} bytes runs past the end of the file", start + 8)
    try:
        text = reader.read(text_start, length).decode(encoding)
    except UnicodeDecodeError as exc:
        raise FormatError(f"header is not {encoding}", text_start + exc.start) from exc
    try:
        d = parse_literal(text)
    except FormatError as exc:
        raise FormatError(exc.reason, text_start) from exc
    keys = set(d)
    if keys != HEADER_KEYS:
        raise FormatError(f"header keys are {sorted(map(str, keys))}, NumPy needs {sorted(HEADER_KEYS)}",
                          text_start)
    shape, fortran = d["shape"], d["fortran_order"]
    if not isinstance(shape, tuple) or not all(
            isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape):
        raise FormatError(f"shape {shape!r} is not a tuple of sizes", text_start)
    if not isinstance(fortran, bool):
        raise FormatError(f"fortran_order {fortran!r} is not a bool", text_start)
    return Header(major, text_start + length, d["descr"], fortran, shape)


class NpyScanner(Scanner):
    id = "npy"
    description = "NumPy .npy arrays: header checks, and the pickle inside object arrays"

    def scan(self, unit: Unit, reader: RangeReader, ctx: ScanContext) -> UnitResult:
        start, end = unit.start, unit.end
        try:
            header = read_header(reader, start, end, ctx.limits.max_npy_header)
        except FormatError as exc:
            if exc.offset is None:
                return UnitResult(error=f"not a .npy file: {exc.reason}")
            return UnitResult([finding("CNT112", self.id, f".npy header is corrupt: {exc.reason}",
                                       offset=exc.offset)])
        findings: list[Finding] = []
        try:
            dtype = dtype_of(header.descr)
        except DescrError as exc:
            findings.append(finding("CNT112", self.id, f".npy header is corrupt: {exc}", offset=start))
            # Without the dtype the array bytes are unknown: scan them if they read as a pickle.
            head = reader.read(header.data_start, fmt.HEAD_BYTES)
            if fmt.detect(head, "", end - header.data_start).format == fmt.PICKLE:
                findings += self._scan_pickle(reader, ctx, header, end).findings
            return UnitResult(findings)
        if dtype.has_object:
            findings.append(finding("NPY101", self.id,
                                    f"object array (descr {header.descr!r}, shape {header.shape}); "
                                    "its pickle was scanned", offset=start, descr=str(header.descr)))
            outcome = self._scan_pickle(reader, ctx, header, end)
            findings += outcome.findings
            if outcome.error:
                findings.append(finding("CNT112", self.id,
                                        f"object array data is not a pickle: {outcome.error}",
                                        offset=header.data_start))
            result = UnitResult(findings)
            if outcome.timed_out:
                result.error = "timed out"
            return result
        need = math.prod(header.shape) * dtype.itemsize
        have = end - header.data_start
        if have < need:
            findings.append(finding(
                "CNT112", self.id,
                f"array data is {have} bytes, the header declares {need} "
                f"({'x'.join(map(str, header.shape)) or 'scalar'} of {dtype.itemsize}-byte items)",
                offset=header.data_start, declared=need, actual=have))
        result = UnitResult(findings)
        result.partials[SPANS] = [array_span(header, dtype.itemsize, start, have)]
        return result

    def _scan_pickle(self, reader: RangeReader, ctx: ScanContext, header: Header, end: int):
        return scan_pickle_range(reader, ctx, PickleScanner.id, header.data_start, end)
