"""Functions serialised by value by the real cloudpickle and dill (tests/fixtures/latent/):
stored code is latent (WARNING), code called while loading is critical."""

from __future__ import annotations

from pathlib import Path

import pytest

from shardscan.model import Severity
from shardscan.pipeline.runner import Runner, ScanOptions

LATENT = Path(__file__).parent / "fixtures" / "latent"
FILES = sorted(LATENT.glob("*.pkl"))


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_latent_and_called_code(path: Path):
    findings = Runner(ScanOptions()).run([str(path)]).objects[0].findings
    rules = {f.rule_id for f in findings}
    if path.name.startswith("called_"):
        assert "PKL104" in rules
        assert max(f.severity for f in findings) == Severity.CRITICAL
    else:
        assert "PKL202" in rules
        assert max(f.severity for f in findings) == Severity.WARNING


def test_fixtures_present():
    assert {p.name.split("_")[1] for p in FILES} == {"cloudpickle", "dill"}
