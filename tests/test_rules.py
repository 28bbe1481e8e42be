"""The rule catalogue is well-formed data that the tests walk."""

from __future__ import annotations

import re
from pathlib import Path

from shardscan.model import Severity
from shardscan.policy import load_policy
from shardscan.rules import BY_ID, RULES, STRICT_SEVERITY

TESTS = Path(__file__).parent


def test_ids_unique_and_well_formed():
    ids = [r.id for r in RULES]
    assert len(ids) == len(set(ids))
    for rule in RULES:
        assert re.fullmatch(r"[A-Z]{3}\d{3}", rule.id), rule.id


def test_every_rule_explains_itself():
    for rule in RULES:
        assert rule.why.strip() and rule.title.strip(), rule.id
        assert not re.match(r"(?i)(avoid|use|prefer)\b", rule.title), rule.id
        assert isinstance(rule.severity, Severity)


def test_every_rule_is_exercised_by_a_test():
    source = "\n".join(p.read_text("utf-8") for p in TESTS.rglob("test_*.py"))
    source += (TESTS / "samples.py").read_text("utf-8")
    missing = [r.id for r in RULES if r.id not in source]
    assert not missing, missing


def test_strict_table_and_policy_name_real_rules():
    assert set(STRICT_SEVERITY) <= set(BY_ID)
    assert set(load_policy().capability_rules.values()) <= set(BY_ID)
