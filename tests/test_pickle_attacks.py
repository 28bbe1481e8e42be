"""Every pickle attack in THREATS.md 4.1-4.2 is caught with the right rule and severity."""

from __future__ import annotations

import pytest

from shardscan.model import Severity
from shardscan.rules import BY_ID
from tests.samples import ATTACKS, INFO_ONLY, nested_loads


@pytest.mark.parametrize(("name", "data", "expected"), ATTACKS, ids=[a[0] for a in ATTACKS])
def test_attack_is_caught(name, data, expected, scan_bytes):
    report = scan_bytes(data, "model.pkl")
    rules = {f.rule_id for f in report.findings}
    assert expected <= rules, (name, [(f.rule_id, f.message) for f in report.findings])
    for rule_id in expected:
        hits = [f for f in report.findings if f.rule_id == rule_id]
        assert all(f.severity == BY_ID[rule_id].severity for f in hits)
        assert all(f.offset is not None for f in hits)
    assert report.max_severity is not None and report.max_severity >= Severity.WARNING


@pytest.mark.parametrize(("name", "data", "expected"), INFO_ONLY, ids=[a[0] for a in INFO_ONLY])
def test_info_only_shapes(name, data, expected, scan_bytes):
    report = scan_bytes(data, "model.pkl")
    assert {f.rule_id for f in report.findings} == expected
    assert report.max_severity == Severity.INFO


def test_nested_findings_are_located(scan_bytes):
    report = scan_bytes(nested_loads(2))
    inner = [f for f in report.findings if f.rule_id == "PKL102"]
    assert inner and inner[0].location.count("nested@") == 2


def test_same_bytes_same_findings(scan_bytes):
    data = b"".join(a[1] for a in ATTACKS[:8])
    first = [(f.key(), f.severity) for f in scan_bytes(data, "a.pkl").findings]
    second = [(f.key(), f.severity) for f in scan_bytes(data, "b.pkl").findings]
    assert first == second and first


def test_getattr_of_a_global_by_literal_name_is_judged_as_that_name(scan_bytes):
    from tests.samples import p4, sbu, sglob

    # pandas 3 pickles time zones as getattr(zoneinfo.ZoneInfo, "_unpickle")(key, 1).
    benign = p4(sglob("builtins", "getattr") + sglob("zoneinfo", "ZoneInfo") + sbu("_unpickle") + b"\x86R"
                + sbu("UTC") + b"K\x01\x86R")
    assert [f.severity for f in scan_bytes(benign).findings if f.severity >= Severity.WARNING] == []
    evil = p4(sglob("builtins", "getattr") + sglob("subprocess", "Popen") + sbu("communicate") + b"\x86R")
    assert "PKL102" in {f.rule_id for f in scan_bytes(evil).findings}
    dunder = p4(sglob("builtins", "getattr") + sglob("zoneinfo", "ZoneInfo") + sbu("__init_subclass__") + b"\x86R")
    assert "PKL103" in {f.rule_id for f in scan_bytes(dunder).findings}


def test_package_attribute_reaches_submodule_denylist(scan_bytes):
    from tests.samples import CMD, p4, sbu, sglob

    report = scan_bytes(p4(sglob("torch", "utils.collect_env.run") + sbu(CMD) + b"\x85R"))
    assert "PKL111" in {f.rule_id for f in report.findings}


def test_crlf_global_is_a_dormant_warning(scan_bytes):
    from tests.samples import DORMANT_CRLF

    (f,) = [f for f in scan_bytes(DORMANT_CRLF).findings if f.rule_id == "PKL102"]
    assert f.severity == Severity.WARNING
    assert "line endings" in f.message
