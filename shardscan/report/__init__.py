"""Renderers that turn a `ScanRun` into text, JSON or SARIF.

Each renderer is a pure function of the run that returns a string; the command line decides
where it goes. Modules are imported on demand (`renderer`) so that a text scan never pays for
building SARIF, and `shardscan --version` pays for none of them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from importlib import import_module
from typing import Any

from shardscan.model import Finding, ObjectReport, ScanRun, Severity, Status

#: Output formats of `shardscan scan --format`, and the module that renders each.
FORMATS: dict[str, str] = {
    "text": "shardscan.report.text",
    "json": "shardscan.report.json_report",
    "sarif": "shardscan.report.sarif",
}

#: Severities from the most to the least serious: the order every report lists them in.
SEVERITY_ORDER: tuple[Severity, ...] = tuple(sorted(Severity, reverse=True))


def renderer(fmt: str) -> Callable[..., str]:
    """The `render(run, **options) -> str` function of an output format."""
    return import_module(FORMATS[fmt]).render  # type: ignore[no-any-return]


def counts_by_severity(run: ScanRun) -> dict[str, int]:
    """Every severity name, most serious first, with how many findings carry it (zeros kept,
    so consumers never need to test for a missing key)."""
    counts = {sev.name: 0 for sev in SEVERITY_ORDER}
    for finding in run.findings:
        counts[finding.severity.name] += 1
    return counts


def count_status(run: ScanRun, status: str) -> int:
    return sum(1 for obj in run.objects if obj.status == status) + run.omitted.get(status, 0)


def was_read(obj: ObjectReport) -> bool:
    """Whether the object's bytes were opened: scanned, or failed after its format was seen.

    A path that does not exist or was skipped for its size was never read, so it is no
    artifact of the scan.
    """
    return obj.status in (Status.SCANNED, Status.REUSED) or bool(obj.format) or bool(obj.findings)


def finding_order(finding: Finding) -> tuple[int, str, int, str, str]:
    """Most serious first, then by place in the object: the same input always lists the same
    way, whatever order the scanners produced them in."""
    offset = -1 if finding.offset is None else finding.offset
    return (-finding.severity, finding.location, offset, finding.rule_id, finding.message)


def ordered_findings(run: ScanRun) -> Iterator[tuple[ObjectReport, Finding]]:
    """Findings grouped by object in scan order (paths as given, directories walked sorted)."""
    for obj in run.objects:
        for finding in sorted(obj.findings, key=finding_order):
            yield obj, finding


def plain(value: Any) -> Any:
    """Evidence as JSON values with sorted keys: mappings become objects, sequences lists, and
    bytes (which scanners should already have masked) their hex. Anything else becomes its
    string, so a scanner's odd value can never make a report fail to serialise."""
    if isinstance(value, Mapping):
        return {str(k): plain(value[k]) for k in sorted(value, key=str)}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value, key=repr) if isinstance(value, (set, frozenset)) else value
        return [plain(v) for v in items]
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # NaN and infinities are not JSON
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)
