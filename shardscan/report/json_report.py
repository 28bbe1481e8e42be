"""The JSON report: a stable, versioned schema for programs (documented in docs/json-schema.md).

Keys are written in a fixed order and findings in a fixed order, so two runs over the same
bytes differ only in `started` and the durations, and a diff of two reports means something.
Absent values are `null`, never missing keys, so consumers need no existence checks. Adding a
key is compatible; renaming, removing or changing the meaning of one bumps `SCHEMA_VERSION`.
"""

from __future__ import annotations

import json
from typing import Any

from shardscan.model import Finding, ObjectReport, ScanRun, Status
from shardscan.report import count_status, counts_by_severity, ordered_findings, plain
from shardscan.rules import BY_ID

SCHEMA_VERSION = 1
TOOL_NAME = "shardscan"
#: Durations are rounded: sub-microsecond digits are noise and make reports harder to diff.
DURATION_DIGITS = 6


def render(run: ScanRun, **_options: object) -> str:
    """The report as indented JSON text ending in a newline."""
    return json.dumps(to_dict(run), indent=2, ensure_ascii=False, default=str) + "\n"


def to_dict(run: ScanRun) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "tool": {"name": TOOL_NAME, "version": run.tool_version},
        "policy_version": run.policy_version,
        "started": run.started,
        "duration_s": round(run.duration_s, DURATION_DIGITS),
        "paths": list(run.paths),
        "summary": {
            "objects": len(run.objects),
            "scanned": count_status(run, Status.SCANNED),
            "reused": count_status(run, Status.REUSED),
            "errors": count_status(run, Status.ERROR),
            "skipped": count_status(run, Status.SKIPPED),
            "findings_by_severity": counts_by_severity(run),
            "exit_code": run.exit_code,
        },
        "files": [_file(obj) for obj in run.objects],
        "findings": [_finding(obj, f) for obj, f in ordered_findings(run)],
    }


def _file(obj: ObjectReport) -> dict[str, Any]:
    return {
        "path": obj.object.uri,
        "size": obj.object.size,
        "format": obj.format or None,
        "status": obj.status,
        "error": obj.error,
        "duration_s": round(obj.duration_s, DURATION_DIGITS),
        "findings_count": len(obj.findings),
        "content_hash": obj.content_hash,
        "sha256": obj.content_sha256,
        "weights": obj.weights,
    }


def _finding(obj: ObjectReport, finding: Finding) -> dict[str, Any]:
    rule = BY_ID.get(finding.rule_id)
    return {
        "path": obj.object.uri,
        "rule_id": finding.rule_id,
        "severity": finding.severity.name,
        "title": rule.title if rule else None,
        "message": finding.message,
        "why": rule.why if rule else None,
        "scanner": finding.scanner_id,
        "location": finding.location or None,
        "offset": finding.offset,
        "offset_in": finding.offset_in or None,
        "evidence": plain(finding.evidence),
    }

