"""Asking a report what it found: the two questions nearly every scanner test asks."""

from __future__ import annotations

from typing import Any


def rules(report: Any) -> set[str]:
    """The rule ids a report (or scan run) holds."""
    return {f.rule_id for f in report.findings}


def only(report: Any, rule_id: str) -> list[Any]:
    """The findings of one rule; fails, listing what was found instead, when there are none."""
    hits = [f for f in report.findings if f.rule_id == rule_id]
    assert hits, (rule_id, [(f.rule_id, f.location, f.message) for f in report.findings])
    return hits
