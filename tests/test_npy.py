"""NumPy .npy and .npz files: THREATS.md C8 and C9, and header robustness.

Malicious samples are written by hand; numpy is used only to WRITE benign arrays.
"""

from __future__ import annotations

import io
import struct
from pathlib import Path

import numpy as np
import pytest

from shardscan.limits import Limits
from shardscan.model import Severity
from shardscan.pipeline.runner import Runner, ScanOptions
from shardscan.scanners.npy import DescrError, dtype_of, parse_literal
from tests.findings import rules

MALICIOUS = b"\x80\x02cposix\nsystem\nq\x00X\n\x00\x00\x00echo pwnedq\x01\x85q\x02Rq\x03."
FIXTURES = Path(__file__).parent / "fixtures" / "benign"


def npy(header: str, payload: bytes, version: int = 1) -> bytes:
    raw = header.encode("latin-1" if version < 3 else "utf-8")
    prefix = 10 if version == 1 else 12
    raw += b" " * (63 - (prefix + len(raw)) % 64) + b"\n"
    length = struct.pack("<H", len(raw)) if version == 1 else struct.pack("<I", len(raw))
    return b"\x93NUMPY" + bytes([version, 0]) + length + raw + payload


def object_npy(payload: bytes, version: int = 1) -> bytes:
    return npy("{'descr': '|O', 'fortran_order': False, 'shape': (2,), }", payload, version)


def saved(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()



def failing(report) -> list:
    return [(f.rule_id, f.message) for f in report.findings if f.severity >= Severity.WARNING]


# --- C8 ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", [1, 2, 3])
def test_c8_object_array_pickle(version, scan_bytes):
    data = object_npy(MALICIOUS, version)
    report = scan_bytes(data, "x.npy")
    assert {"NPY101", "PKL102"} <= rules(report)
    [hit] = [f for f in report.findings if f.rule_id == "PKL102"]
    assert hit.severity == Severity.CRITICAL
    assert data.find(MALICIOUS) <= hit.offset < len(data)
    [info] = [f for f in report.findings if f.rule_id == "NPY101"]
    assert info.severity == Severity.INFO


def test_c8_structured_dtype_with_object_field(scan_bytes):
    data = npy("{'descr': [('a', '<f4'), ('b', '|O')], 'fortran_order': False, 'shape': (1,), }", MALICIOUS)
    assert {"NPY101", "PKL102"} <= rules(scan_bytes(data, "x.npy"))


def test_c8_object_array_under_another_name(scan_bytes):
    # Content decides: the magic makes it a .npy whatever the name.
    assert {"NPY101", "PKL102"} <= rules(scan_bytes(object_npy(MALICIOUS), "weights.bin"))


def test_benign_object_array_is_info_only(scan_bytes):
    report = scan_bytes(object_npy(b"\x80\x02]q\x00(K\x01K\x02e."), "x.npy")
    assert rules(report) == {"NPY101"}


def test_object_array_without_pickle(scan_bytes):
    report = scan_bytes(object_npy(b"\x00" * 16), "x.npy")
    assert "CNT112" in rules(report)


# --- plain arrays -----------------------------------------------------------------------------


@pytest.mark.parametrize("array", [
    np.arange(12, dtype="<f4").reshape(3, 4),
    np.asfortranarray(np.ones((3, 5), dtype=">i8")),
    np.array(["abc", "de"]),
    np.zeros((2,), dtype=[("x", "<f8"), ("y", "<i2", (3,))]),
    np.array(3.5),
    np.zeros((0, 4), dtype=np.uint8),
    np.array(["2020-01-01"], dtype="datetime64[ns]"),
], ids=["f4", "fortran-i8", "unicode", "structured", "scalar", "empty", "datetime"])
def test_benign_arrays_are_clean(array, scan_bytes):
    report = scan_bytes(saved(array), "x.npy")
    assert report.status == "scanned" and report.findings == [], report.findings


def test_truncated_array_data(scan_bytes):
    data = saved(np.arange(100, dtype="<f8"))[:-8]
    [corrupt] = scan_bytes(data, "x.npy").findings
    assert corrupt.rule_id == "CNT112" and corrupt.evidence["declared"] == 800


def test_header_with_code_is_never_evaluated(scan_bytes, tmp_path):
    marker = tmp_path / "ran"
    header = f"{{'descr': __import__('os').system('touch {marker}'), 'fortran_order': False, 'shape': (1,)}}"
    report = scan_bytes(npy(header, b"\0" * 8), "x.npy")
    assert [f.rule_id for f in report.findings] == ["CNT112"]
    assert not marker.exists()


@pytest.mark.parametrize("header", [
    "{'descr': '<f4', 'fortran_order': False}",                           # key missing
    "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'x': 1}",    # extra key
    "{'descr': '<f4', 'fortran_order': 'no', 'shape': (1,)}",
    "{'descr': '<f4', 'fortran_order': False, 'shape': (-1,)}",
    "['descr', '<f4']",
    "{'descr': '<f4', 'fortran_order': False, 'shape': (1,)",             # unbalanced
    "{'descr': 'nonsense', 'fortran_order': False, 'shape': (1,)}",
])
def test_malformed_headers_are_corrupt(header, scan_bytes):
    report = scan_bytes(npy(header, b"\0" * 4), "x.npy")
    assert "CNT112" in rules(report)
    assert report.status == "scanned"


def test_unknown_dtype_still_scans_a_pickle_payload(scan_bytes):
    report = scan_bytes(npy("{'descr': 'mystery', 'fortran_order': False, 'shape': (1,)}", MALICIOUS), "x.npy")
    assert {"CNT112", "PKL102"} <= rules(report)


def test_header_size_limit(scan_bytes):
    data = npy("{'descr': '<f4', 'fortran_order': False, 'shape': (1,)}" + " " * 5000, b"\0" * 4)
    report = scan_bytes(data, "x.npy", limits=Limits(max_npy_header=1024))
    assert [f.rule_id for f in report.findings] == ["CNT112"]


def test_python2_long_shape(scan_bytes):
    report = scan_bytes(npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2L, 2L), }", b"\0" * 16), "x.npy")
    assert report.findings == []


def test_not_npy_content_under_npy_name(scan_bytes):
    report = scan_bytes(b"\x93NUMPX" + b"\0" * 50, "x.npy")
    assert report.status == "error" and "npy" in (report.error or "")


def test_literal_parser_refuses_non_literals():
    with pytest.raises(ValueError):
        parse_literal("{'a': f(1)}")
    with pytest.raises(ValueError):
        parse_literal("{'a': x}")
    assert parse_literal("{'a': (1, -2), 'b': [True, None]}") == {"a": (1, -2), "b": [True, None]}


@pytest.mark.parametrize(("descr", "size", "obj"), [
    ("<f4", 4, False), ("|b1", 1, False), ("<U5", 20, False), ("|S3", 3, False), ("<M8[ns]", 8, False),
    ("|O", 8, True), ("O", 8, True), ("object", 8, True), ("<c16", 16, False), ("?", 1, False),
    ([("a", "<f4"), ("b", "<i2", (3,))], 10, False), ([(("t", "a"), "|O")], 8, True),
    (("<f8", (2, 2)), 32, False), ([("", "|V4"), ("x", [("y", "|O")])], 12, True),
])
def test_dtype_table(descr, size, obj):
    dt = dtype_of(descr)
    assert (dt.itemsize, dt.has_object) == (size, obj)


@pytest.mark.parametrize("descr", ["<x4", "float", 3, [("a",)], ("<f4", "nope")])
def test_dtype_unknown(descr):
    with pytest.raises(DescrError):
        dtype_of(descr)


# --- .npz (zip members go through the NumPy scanner) -------------------------------------------


@pytest.mark.parametrize("writer", [np.savez, np.savez_compressed])
def test_benign_npz_is_clean(writer, scan_bytes):
    buf = io.BytesIO()
    writer(buf, a=np.arange(10), b=np.ones((2, 3), dtype="<f2"))
    report = scan_bytes(buf.getvalue(), "arrays.npz")
    assert report.status == "scanned" and report.findings == [], report.findings


# --- real arrays, when another session has generated them ---------------------------------------

BENIGN = sorted(p for p in FIXTURES.glob("*") if p.suffix in {".npy", ".npz"}) if FIXTURES.is_dir() else []


@pytest.mark.skipif(not BENIGN, reason="tests/fixtures/benign/ has no .npy/.npz files yet")
@pytest.mark.parametrize("path", BENIGN, ids=[p.name for p in BENIGN])
def test_real_benign_arrays_are_clean(path):
    report = Runner(ScanOptions()).run([str(path)]).objects[0]
    assert report.status == "scanned", report.error
    assert not failing(report)
