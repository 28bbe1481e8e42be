"""SARIF 2.1.0, for code-scanning dashboards (GitHub, GitLab, Azure DevOps) and SARIF viewers.

Model files have no lines, so a result is placed by byte: `region.byteOffset` when the offset
is known. A finding inside a container keeps the container file as its artifact (that is what
exists in the repository) and names the member in `logicalLocations`. (The offset of a finding
inside a member is the finding's own: in the file for a member stored as-is, in the member's
content for a compressed member or a nested payload; see docs/json-schema.md.) `partialFingerprints`
hash only the rule, member and offset, so an alert keeps its identity across runs and
machines and is not re-raised when unrelated bytes or paths change.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import re
from pathlib import Path
from typing import Any
from urllib.parse import quote

from shardscan.model import Finding, ObjectReport, ScanRun, Severity, Status
from shardscan.report import ordered_findings, plain, was_read
from shardscan.rules import BY_ID, RULES, Rule

SARIF_VERSION = "2.1.0"
SARIF_SCHEMA = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
TOOL_NAME = "shardscan"
#: Where a reader of a SARIF log learns about the tool; the project's published page.
INFORMATION_URI = "https://pypi.org/project/shardscan/"
#: Bump when the fingerprint recipe changes, so old and new alerts are not confused.
FINGERPRINT_KEY = "shardscan/v1"

LEVELS: dict[Severity, str] = {
    Severity.CRITICAL: "error",
    Severity.WARNING: "warning",
    Severity.INFO: "note",
    Severity.DEBUG: "note",
}
#: GitHub code scanning ranks security alerts by this property (critical >= 9.0, high >= 7.0,
#: medium >= 4.0, low > 0.0).
SECURITY_SEVERITY: dict[Severity, str] = {
    Severity.CRITICAL: "9.0",
    Severity.WARNING: "5.0",
    Severity.INFO: "1.0",
    Severity.DEBUG: "0.0",
}


def render(run: ScanRun, **_options: object) -> str:
    return json.dumps(to_sarif(run), indent=2, ensure_ascii=False) + "\n"


def to_sarif(run: ScanRun) -> dict[str, Any]:
    artifacts, artifact_index = _artifacts(run)
    pairs = list(ordered_findings(run))
    used = {f.rule_id for _, f in pairs}
    rules = [r for r in RULES if r.id in used]
    rules += [Rule(rid, Severity.WARNING, rid, "") for rid in sorted(used - set(BY_ID))]
    rule_index = {r.id: i for i, r in enumerate(rules)}
    return {
        "$schema": SARIF_SCHEMA,
        "version": SARIF_VERSION,
        "runs": [{
            "tool": {"driver": {
                "name": TOOL_NAME,
                "version": run.tool_version,
                "semanticVersion": run.tool_version,
                "informationUri": INFORMATION_URI,
                "rules": [_descriptor(r) for r in rules],
                "properties": {"policyVersion": run.policy_version},
            }},
            "invocations": [_invocation(run, artifact_index)],
            "artifacts": artifacts,
            "results": [_result(obj, f, rule_index, artifact_index) for obj, f in pairs],
        }],
    }


def artifact_uri(path: str) -> str:
    """A path as given on the command line, as a URI reference: relative paths stay relative
    (forward slashes, `./` dropped, unsafe characters escaped) so results match the checkout
    they are uploaded for; absolute paths become `file://` URIs."""
    if os.path.isabs(path):
        return Path(path).as_uri()
    # fsencode keeps names that are not valid UTF-8 (surrogate-escaped) as their raw bytes.
    return quote(os.fsencode(posixpath.normpath(path.replace("\\", "/"))), safe="/")


def fingerprint(finding: Finding) -> str:
    offset = "" if finding.offset is None else str(finding.offset)
    key = "\x00".join((finding.rule_id, finding.location, offset))
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]


def _artifacts(run: ScanRun) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Every file whose bytes were read, once each, with its length."""
    artifacts: list[dict[str, Any]] = []
    index: dict[str, int] = {}
    for obj in run.objects:
        uri = artifact_uri(obj.object.uri)
        if not was_read(obj) or uri in index:
            continue
        index[uri] = len(artifacts)
        artifacts.append({"location": {"uri": uri}, "length": obj.object.size})
    return artifacts, index


def _artifact_location(path: str, artifact_index: dict[str, int]) -> dict[str, Any]:
    uri = artifact_uri(path)
    location: dict[str, Any] = {"uri": uri}
    if uri in artifact_index:
        location["index"] = artifact_index[uri]
    return location


def _descriptor(rule: Rule) -> dict[str, Any]:
    descriptor: dict[str, Any] = {
        "id": rule.id,
        "name": _identifier(rule.title),
        "shortDescription": {"text": rule.title},
        "fullDescription": {"text": rule.why or rule.title},
        "help": {"text": _help(rule)},
        "defaultConfiguration": {"level": LEVELS[rule.severity]},
        "properties": {
            "tags": ["security", _family(rule.id)],
            "references": list(rule.references),
            "security-severity": SECURITY_SEVERITY[rule.severity],
        },
    }
    urls = [ref for ref in rule.references if ref.startswith(("https://", "http://"))]
    if urls:
        descriptor["helpUri"] = urls[0]
    return descriptor


def _help(rule: Rule) -> str:
    text = rule.why or rule.title
    if rule.references:
        text += "\nReferences: " + ", ".join(rule.references)
    return text


def _identifier(title: str) -> str:
    """A rule title as the PascalCase identifier SARIF's `name` expects."""
    return "".join(word[:1].upper() + word[1:] for word in re.findall(r"[A-Za-z0-9]+", title))


def _family(rule_id: str) -> str:
    return rule_id.rstrip("0123456789").lower()


def _result(obj: ObjectReport, finding: Finding, rule_index: dict[str, int],
            artifact_index: dict[str, int]) -> dict[str, Any]:
    physical: dict[str, Any] = {"artifactLocation": _artifact_location(obj.object.uri, artifact_index)}
    location: dict[str, Any] = {"physicalLocation": physical}
    message = finding.message
    if finding.offset is not None and not finding.offset_in:
        physical["region"] = {"byteOffset": finding.offset, "byteLength": 1}
    if finding.location:
        location["logicalLocations"] = [{"fullyQualifiedName": finding.location, "kind": "member"}]
        message += f" (in {finding.location})"
    return {
        "ruleId": finding.rule_id,
        "ruleIndex": rule_index[finding.rule_id],
        "level": LEVELS[finding.severity],
        "message": {"text": message},
        "locations": [location],
        "partialFingerprints": {FINGERPRINT_KEY: fingerprint(finding)},
        "properties": {
            "severity": finding.severity.name,
            "scanner": finding.scanner_id,
            "evidence": plain(finding.evidence),
        },
    }


def _invocation(run: ScanRun, artifact_index: dict[str, int]) -> dict[str, Any]:
    """The run itself; objects that could not be scanned become notifications, since they
    have no rule and must still reach whoever reads the log."""
    notifications = []
    for obj in run.objects:
        if obj.status in (Status.SCANNED, Status.REUSED):
            continue
        level = "warning" if obj.status == Status.SKIPPED else "error"
        notifications.append({
            "level": level,
            "message": {"text": f"{obj.object.uri}: {obj.status}: {obj.error or 'not scanned'}"},
            "locations": [{"physicalLocation": {
                "artifactLocation": _artifact_location(obj.object.uri, artifact_index)}}],
        })
    invocation: dict[str, Any] = {
        "executionSuccessful": not any(obj.status == Status.ERROR for obj in run.objects),
        "exitCode": run.exit_code,
    }
    if run.started:
        invocation["startTimeUtc"] = run.started.replace("+00:00", "Z")
    if notifications:
        invocation["toolExecutionNotifications"] = notifications
    return invocation
