"""Ordinary pickles of plain data, at every protocol, come out with nothing above INFO."""

from __future__ import annotations

import argparse
import collections
import datetime
import decimal
import pickle

import pytest

from shardscan.model import Severity

PLAIN = {
    "ints": [0, 1, -1, 255, 65535, 2**31, -(2**63), 2**100],
    "floats": [0.0, -1.5, float("inf")],
    "text": ["", "a", "ü" * 300, "x" * 70_000],
    "bytes": [b"", b"\x00\xff" * 10, bytearray(b"abc")],
    "nested": {"t": (1, (2, (3,))), "s": {1, 2}, "f": frozenset({"a"}), "n": None, "b": [True, False]},
    "od": collections.OrderedDict(a=1, b=2),
    "dd": collections.defaultdict(list, {"k": [1]}),
    "deque": collections.deque([1, 2]),
    "counter": collections.Counter("aab"),
    "when": datetime.datetime(2026, 11, 25, 12, 0, tzinfo=datetime.timezone.utc),
    "date": datetime.date(2026, 1, 1),
    "delta": datetime.timedelta(days=2),
    "dec": decimal.Decimal("1.25"),
    "ns": argparse.Namespace(lr=0.1, epochs=3),
    "complex": complex(1, 2),
    "slice": slice(1, 10, 2),
    "range": range(5),
}
shared = [1, 2, 3]
PLAIN["shared"] = [shared, shared]


@pytest.mark.parametrize("protocol", range(0, pickle.HIGHEST_PROTOCOL + 1))
def test_plain_data_is_clean(protocol, scan_bytes):
    report = scan_bytes(pickle.dumps(PLAIN, protocol=protocol), f"plain-p{protocol}.pkl")
    assert report.status == "scanned", report.error
    loud = [f for f in report.findings if f.severity >= Severity.WARNING]
    assert not loud, [(f.rule_id, f.message) for f in loud]


def test_protocol0_pickle_without_extension_is_detected(scan_bytes):
    report = scan_bytes(pickle.dumps({"a": [1, 2]}, protocol=0), "noext")
    assert report.format == "pickle"
    assert report.status == "scanned"


def test_custom_class_is_info_only(scan_bytes):
    # NEWOBJ of a class outside the allowlist with plain BUILD state: the shape of __main__.Net.
    data = b"\x80\x02c__main__\nNet\nq\x00)\x81q\x01}q\x02X\x01\x00\x00\x00aK\x01sb."
    report = scan_bytes(data)
    assert {f.rule_id for f in report.findings} == {"PKL204"}
    assert report.max_severity == Severity.INFO


def test_unknown_callable_called_is_warning(scan_bytes):
    data = b"\x80\x02cmypkg.util\nmake\nq\x00X\x01\x00\x00\x00a\x85R."
    report = scan_bytes(data)
    assert [f.rule_id for f in report.findings] == ["PKL201"]
    assert report.findings[0].severity == Severity.WARNING


def test_strict_makes_unknown_critical(scan_bytes):
    data = b"\x80\x02c__main__\nNet\nq\x00)\x81q\x01}q\x02b."
    report = scan_bytes(data, strict=True)
    assert report.findings[0].rule_id == "PKL204"
    assert report.findings[0].severity == Severity.CRITICAL


def test_pickle_renamed_safetensors_is_scanned_and_flagged(scan_bytes):
    data = b"\x80\x02cposix\nsystem\nX\n\x00\x00\x00echo pwned\x85R."
    report = scan_bytes(data, "model.safetensors")
    rules = {f.rule_id for f in report.findings}
    assert {"PKL102", "FMT004"} <= rules


def test_findings_name_module_opcode_and_offset(scan_bytes):
    data = b"\x80\x02N0cposix\nsystem\nX\n\x00\x00\x00echo pwned\x85R."
    (f,) = [f for f in scan_bytes(data).findings if f.rule_id == "PKL102"]
    assert f.offset == 4
    assert f.evidence["module"] == "posix" and f.evidence["name"] == "system"
    assert f.evidence["opcode"] == "GLOBAL"
    assert "call" in f.evidence["uses"]
