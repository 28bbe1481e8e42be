"""Every pickle attack in THREATS.md 4.1-4.2 is caught with the right rule and severity."""

from __future__ import annotations

import pytest

from shardscan.model import Severity
from shardscan.rules import BY_ID
from tests.samples import ATTACKS


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
