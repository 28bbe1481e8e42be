"""A local result cache: an unchanged file is not read again.

The key is what identifies the bytes on this machine (absolute path, size, mtime, ctime,
inode) plus everything that can change the findings: the policy version (policy file and
scanner versions) and the options. A changed file, policy or option misses the cache. The
fleet-wide equivalent, keyed by content hash, belongs to the results store.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from shardscan.model import Finding, ObjectRef, ObjectReport, Severity, Status

CACHE_FORMAT = 2


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "shardscan" / f"results-v{CACHE_FORMAT}"


class ResultCache:
    def __init__(self, directory: Path, fingerprint: str) -> None:
        """`fingerprint` names the policy version and options the results depend on."""
        self.directory = directory
        self.fingerprint = fingerprint

    def _key(self, ref: ObjectRef) -> str | None:
        try:
            st = os.stat(ref.uri)
        except OSError:
            return None
        ident = [os.path.abspath(ref.uri), st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino,
                 self.fingerprint]
        return hashlib.sha256(json.dumps(ident).encode()).hexdigest()

    def get(self, ref: ObjectRef) -> ObjectReport | None:
        key = self._key(ref)
        if key is None:
            return None
        try:
            data = json.loads((self.directory / key[:2] / f"{key}.json").read_text("utf-8"))
            return _report_from(data, ref)
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def put(self, report: ObjectReport) -> None:
        if report.status != Status.SCANNED:
            return  # errors and timeouts are retried, never remembered
        key = self._key(report.object)
        if key is None:
            return
        folder = self.directory / key[:2]
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(_report_to(report), fh, default=str)
            os.replace(tmp, folder / f"{key}.json")  # readers never see half a file
        except (OSError, TypeError, ValueError):
            pass  # a read-only or full cache must not fail the scan


def _report_to(report: ObjectReport) -> dict[str, Any]:
    return {
        "format": report.format,
        "scanners": list(report.scanners),
        "formats": list(report.formats),
        "content_hash": report.content_hash,
        "weights": report.weights,
        "findings": [
            {"rule_id": f.rule_id, "severity": int(f.severity), "scanner_id": f.scanner_id,
             "message": f.message, "location": f.location, "offset": f.offset,
             "evidence": dict(f.evidence), "offset_in": f.offset_in}
            for f in report.findings
        ],
    }


def _report_from(data: dict[str, Any], ref: ObjectRef) -> ObjectReport:
    findings = [Finding(rule_id=f["rule_id"], severity=Severity(f["severity"]), scanner_id=f["scanner_id"],
                        message=f["message"], location=f["location"], offset=f["offset"],
                        evidence=f["evidence"], offset_in=f["offset_in"]) for f in data["findings"]]
    return ObjectReport(ref, data["format"], Status.SCANNED, findings, scanners=tuple(data["scanners"]),
                        formats=tuple(data["formats"]), content_hash=data["content_hash"],
                        weights=data.get("weights"))
