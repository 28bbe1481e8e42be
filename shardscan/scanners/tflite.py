"""TensorFlow Lite models (`TFL3` flatbuffers), parsed here and never loaded (THREATS.md 4.5).

A TFLite model holds no code, but running it can still reach outside it:

- a CUSTOM operator (builtin code 32) runs a kernel the application registers under the
  operator's `custom_code` name: native code outside the model (TFL001, WARNING);
- `Flex*` custom operators (Select TF ops) run full TensorFlow kernels through the Flex delegate
  (TFL002, INFO); one naming a TF op that touches files, the network or Python (the tables of
  the TensorFlow scanner) is TFL003, WARNING (the delegate's allowlist decides whether it runs);
- buffers of large models are stored after the flatbuffer by `offset`/`size`; one pointing past
  the end of the file, a metadata entry naming a missing buffer, or an operator naming a
  missing opcode is TFL004 (integrity, WARNING);
- the description and metadata buffers (TFLITE_METADATA, min_runtime_version...) are searched
  with the ONNX scanner's free-text heuristics for code and URLs (TFL005-006) and secrets (BIN002).

The flatbuffer is read by hand with every offset checked against the file: root uoffset at 0,
tables through their vtables, vectors and strings length-prefixed. Schema (tensorflow/compiler/
mlir/lite/schema/schema.fbs), fields by vtable slot:

    Model         0 version, 1 operator_codes, 2 subgraphs, 3 description, 4 buffers,
                  5 metadata_buffer, 6 metadata, 7 signature_defs
    OperatorCode  0 deprecated_builtin_code (int8), 1 custom_code, 2 version, 3 builtin_code (int32)
    SubGraph      3 operators;  Operator 0 opcode_index (uint32)
    Buffer        0 data ([ubyte]), 1 offset (uint64), 2 size (uint64)
    Metadata      0 name, 1 buffer (uint32)

The builtin code is the larger of the two code fields, as TFLite's GetBuiltinCode reads it.
Malformed flatbuffers are TFL009, limits (tables and vector elements visited, string size)
TFL008, both with what was found before.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass

from shardscan.model import Finding, Unit, UnitResult
from shardscan.scanners import indicators
from shardscan.scanners.base import FormatError, ScanContext, Scanner, ScanTimeout, finding, unit_view
from shardscan.scanners.onnx_model import mask, text_hits
from shardscan.scanners.tensorflow import op_rule
from shardscan.storage.reader import RangeReader

CUSTOM = 32
TEXT_RULES = {"ONX107": "TFL005", "ONX108": "TFL006", indicators.SECRET_RULE: indicators.SECRET_RULE}
MAX_TRACKED = 10_000
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffd]+")

M_OPCODES, M_SUBGRAPHS, M_DESCRIPTION, M_BUFFERS, M_METADATA = 1, 2, 3, 4, 6
OC_DEPRECATED, OC_CUSTOM, OC_BUILTIN = 0, 1, 3
SG_OPERATORS = 3
OP_OPCODE = 0
B_DATA, B_OFFSET, B_SIZE = 0, 1, 2
MD_NAME, MD_BUFFER = 0, 1


class FlatError(FormatError):
    """Bytes that are not a well-formed flatbuffer."""


class FlatLimit(Exception):
    def __init__(self, limit: str, reason: str, offset: int | None = None) -> None:
        super().__init__(reason if offset is None else f"{reason} (at byte {offset})")
        self.limit = limit
        self.offset = offset


class _Flat:
    """Bounded access to flatbuffer tables, vectors and strings inside a RangeReader."""

    def __init__(self, reader: RangeReader, ctx: ScanContext) -> None:
        self.reader = reader
        self.size = reader.size
        self.ctx = ctx
        self.max_items = ctx.limits.max_tflite_items
        self.items = 0
        self._buf = b""
        self._start = 0
        self._chunk = 1 << 16

    def count(self, n: int = 1, offset: int | None = None) -> None:
        self.items += n
        if self.items > self.max_items:
            raise FlatLimit("max_tflite_items", f"more than {self.max_items} tables and vector elements", offset)
        if not self.items % 4096:
            self.ctx.check_deadline()

    def read(self, pos: int, n: int) -> bytes:
        if pos < 0 or n < 0 or pos + n > self.size:
            raise FlatError(f"{n} bytes at {pos} lie outside the {self.size}-byte file", pos)
        if not (self._start <= pos and pos + n <= self._start + len(self._buf)):
            if n > self._chunk:
                return self.reader.read(pos, n)
            self._buf = self.reader.read(pos, min(self._chunk, self.size - pos))
            self._start = pos
        i = pos - self._start
        return self._buf[i : i + n]

    def unpack(self, fmt: str, pos: int) -> int:
        return struct.unpack(fmt, self.read(pos, struct.calcsize(fmt)))[0]

    def table(self, pos: int) -> tuple[int, int, int]:
        """(table, vtable, vtable size) of the table at `pos`, checked."""
        self.count(1, pos)
        vt = pos - self.unpack("<i", pos)
        vt_size = self.unpack("<H", vt)
        t_size = self.unpack("<H", vt + 2)
        if vt_size < 4 or vt_size % 2 or vt + vt_size > self.size:
            raise FlatError(f"vtable of {vt_size} bytes at {vt} is malformed", pos)
        if t_size < 4 or pos + t_size > self.size:
            raise FlatError(f"table of {t_size} bytes runs past the end of the file", pos)
        return pos, vt, vt_size

    def slot(self, t: tuple[int, int, int], i: int, width: int) -> int:
        """Absolute position of field `i` (`width` bytes), or 0 when absent."""
        pos, vt, vt_size = t
        if 4 + 2 * i + 2 > vt_size:
            return 0
        off = self.unpack("<H", vt + 4 + 2 * i)
        if not off:
            return 0
        if off < 4 or pos + off + width > self.size or off + width > self.unpack("<H", vt + 2):
            raise FlatError(f"field {i} at table offset {off} lies outside its table", pos)
        return pos + off

    def scalar(self, t: tuple[int, int, int], i: int, fmt: str, default: int = 0) -> int:
        p = self.slot(t, i, struct.calcsize(fmt))
        return self.unpack(fmt, p) if p else default

    def ref(self, t: tuple[int, int, int], i: int) -> int:
        p = self.slot(t, i, 4)
        if not p:
            return 0
        target = p + self.unpack("<I", p)
        if target + 4 > self.size:
            raise FlatError(f"field {i} points to {target}, outside the file", p)
        return target

    def vector(self, t: tuple[int, int, int], i: int, elem: int) -> tuple[int, int]:
        """(first element, length) of a vector field; (0, 0) when absent."""
        target = self.ref(t, i)
        if not target:
            return 0, 0
        n = self.unpack("<I", target)
        if n * elem > self.size - target - 4:
            raise FlatError(f"vector of {n} elements of {elem} bytes runs past the end of the file", target)
        return target + 4, n

    def tables(self, t: tuple[int, int, int], i: int) -> list[int]:
        start, n = self.vector(t, i, 4)
        self.count(n, start)
        return [start + 4 * k + self.unpack("<I", start + 4 * k) for k in range(n)]

    def string(self, t: tuple[int, int, int], i: int, limit: int) -> bytes:
        start, n = self.vector(t, i, 1)
        if n > limit:
            raise FlatLimit("max_tflite_string", f"string of {n} bytes exceeds the {limit}-byte limit", start)
        return self.read(start, n) if n else b""


@dataclass
class _OpCode:
    builtin: int
    custom: str
    offset: int
    uses: int = 0


@dataclass
class _TextHit:
    count: int
    what: str
    offset: int
    sample: str


class _Walk:
    def __init__(self, reader: RangeReader, ctx: ScanContext, scanner_id: str) -> None:
        self.fb = _Flat(reader, ctx)
        self.sid = scanner_id
        self.max_string = ctx.limits.max_tflite_string
        self.findings: list[Finding] = []
        self.opcodes: list[_OpCode] = []
        self.text_hits: dict[tuple[str, str], _TextHit] = {}
        self.bad_opcode: tuple[int, int, int] | None = None  # (index, offset, count)

    def model(self) -> None:
        fb = self.fb
        if fb.size < 8:
            raise FlatError(f"{fb.size} bytes cannot hold a flatbuffer root and identifier", 0)
        m = fb.table(fb.unpack("<I", 0))
        for pos in fb.tables(m, M_OPCODES):
            t = fb.table(pos)
            deprecated = fb.scalar(t, OC_DEPRECATED, "<b")
            builtin = max(deprecated, fb.scalar(t, OC_BUILTIN, "<i"))
            custom = fb.string(t, OC_CUSTOM, self.max_string).decode("utf-8", "replace") \
                if builtin == CUSTOM else ""
            self.opcodes.append(_OpCode(builtin, custom, pos))
        self.check_text(fb.string(m, M_DESCRIPTION, self.max_string), "description", m[0])
        buffers = fb.tables(m, M_BUFFERS)
        self.metadata(m, buffers)
        for k, pos in enumerate(buffers):
            self.buffer(k, fb.table(pos))
        for pos in fb.tables(m, M_SUBGRAPHS):
            for op_pos in fb.tables(fb.table(pos), SG_OPERATORS):
                index = fb.scalar(fb.table(op_pos), OP_OPCODE, "<I")
                if index < len(self.opcodes):
                    self.opcodes[index].uses += 1
                elif self.bad_opcode is None:
                    self.bad_opcode = (index, op_pos, 1)
                else:
                    self.bad_opcode = (*self.bad_opcode[:2], self.bad_opcode[2] + 1)

    def metadata(self, m: tuple[int, int, int], buffers: list[int]) -> None:
        fb = self.fb
        for pos in fb.tables(m, M_METADATA):
            t = fb.table(pos)
            name = fb.string(t, MD_NAME, self.max_string).decode("utf-8", "replace")
            index = fb.scalar(t, MD_BUFFER, "<I")
            label = f"metadata {mask(name)[:100]!r}"
            self.check_text(name.encode(), label, pos)
            if index >= len(buffers):
                self.findings.append(finding(
                    "TFL004", self.sid, f"{label} names buffer {index}, but the model has {len(buffers)} buffers",
                    offset=pos, metadata=name[:200], buffer=index))
                continue
            start, n = fb.vector(fb.table(buffers[index]), B_DATA, 1)
            if n:
                self.check_text(fb.read(start, min(n, self.max_string)), label, start)

    def buffer(self, k: int, t: tuple[int, int, int]) -> None:
        fb = self.fb
        fb.vector(t, B_DATA, 1)  # checks its bounds
        offset, size = fb.scalar(t, B_OFFSET, "<Q"), fb.scalar(t, B_SIZE, "<Q")
        if offset > 1 and offset + size > fb.size:
            self.findings.append(finding(
                "TFL004", self.sid, f"buffer {k} reads bytes {offset}..{offset + size}, past the end of the "
                f"{fb.size}-byte file", offset=t[0], buffer=k, data_offset=offset, data_size=size))

    def check_text(self, data: bytes, what: str, offset: int) -> None:
        if not data:
            return
        text = _CONTROL.sub("\n", data.decode("utf-8", "replace"))
        for rule_id, label, sample in text_hits(text):
            key = (TEXT_RULES[rule_id], label)
            hit = self.text_hits.get(key)
            if hit is None:
                self.text_hits[key] = _TextHit(1, what, offset, sample)
            else:
                hit.count += 1

    def finish(self) -> None:
        sid = self.sid
        for k, op in enumerate(self.opcodes[:MAX_TRACKED]):
            if op.builtin != CUSTOM:
                continue
            name = op.custom
            uses = f" ({op.uses} operators)" if op.uses != 1 else ""
            if name.startswith("Flex"):
                tf = op_rule(name[4:], {})
                if tf is not None:
                    self.findings.append(finding(
                        "TFL003", sid, f"Flex operator {name[:200]!r}{uses} runs TensorFlow op {name[4:204]!r}, "
                        f"which {_KINDS[tf[0]]}", offset=op.offset, op=name[:200], opcode=k, operators=op.uses,
                        tf_rule=tf[0]))
                else:
                    self.findings.append(finding(
                        "TFL002", sid, f"Flex operator {name[:200]!r}{uses} runs a TensorFlow kernel",
                        offset=op.offset, op=name[:200], opcode=k, operators=op.uses))
            else:
                shown = repr(mask(name)[:200]) if name else "without a name"
                self.findings.append(finding(
                    "TFL001", sid, f"custom operator {shown}{uses}: its kernel is native code the application "
                    "must register", offset=op.offset, op=name[:200], opcode=k, operators=op.uses))
        if self.bad_opcode is not None:
            index, offset, n = self.bad_opcode
            self.findings.append(finding(
                "TFL004", sid, f"operator names opcode {index}, but the model has {len(self.opcodes)} "
                f"({n} operator{'s' * (n != 1)})", offset=offset, opcode=index, operators=n))
        for (rule_id, label), hit in self.text_hits.items():
            count = f" ({hit.count} fields)" if hit.count > 1 else ""
            self.findings.append(finding(
                rule_id, sid, f"{hit.what} holds {'a ' if rule_id != 'TFL005' else ''}{label}{count}: {hit.sample}",
                offset=hit.offset, kind=label, field=hit.what, fields=hit.count, excerpt=hit.sample))


_KINDS = {"TFG001": "runs Python", "TFG002": "reads or lists files", "TFG003": "writes files",
          "TFG004": "contacts the network"}


class TFLiteScanner(Scanner):
    id = "tflite"
    description = "TensorFlow Lite models: custom and Flex operators, buffer bounds, metadata text"

    def scan(self, unit: Unit, reader: RangeReader, ctx: ScanContext) -> UnitResult:
        walk = _Walk(unit_view(unit, reader), ctx, self.id)
        result = UnitResult()
        try:
            walk.model()
        except FlatError as exc:
            walk.findings.append(finding("TFL009", self.id, f"not a valid TensorFlow Lite flatbuffer: {exc}",
                                         offset=exc.offset))
        except FlatLimit as exc:
            walk.findings.append(finding(
                "TFL008", self.id, f"TensorFlow Lite model exceeds the {exc.limit} limit: {exc}; the rest was not "
                "inspected", offset=exc.offset, limit=exc.limit))
        except ScanTimeout:
            result.error = "timed out"
        walk.finish()
        result.findings = walk.findings
        return result
