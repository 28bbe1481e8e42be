"""The scanner interface and the context a scanner is given.

A scanner knows one format family and nothing about engines or sinks. It reads its range
through the reader it is handed, and when it holds members of other formats (a zip, a compressed
stream) it hands them back to the pipeline through `ScanContext.scan_member`, which detects
their format and picks their scanner.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, ClassVar

from shardscan.limits import DEFAULT_LIMITS, Limits
from shardscan.model import Finding, Severity, Unit, UnitResult
from shardscan.rules import rule

if TYPE_CHECKING:
    from shardscan.policy import PicklePolicy
    from shardscan.storage.reader import RangeReader


class FormatError(ValueError):
    """Bytes that do not follow the format; caught at the scanner's edge and reported."""

    def __init__(self, reason: str, offset: int | None = None) -> None:
        super().__init__(reason if offset is None else f"{reason} (at byte {offset})")
        self.reason = reason
        self.offset = offset


class ScanTimeout(Exception):
    """The --timeout deadline passed; what was found so far is kept."""


MemberScan = Callable[[str, "RangeReader", "ScanContext"], UnitResult]


@dataclass(frozen=True)
class ScanContext:
    """Everything a scan depends on, passed explicitly so any worker gives the same result."""

    policy: PicklePolicy
    limits: Limits = DEFAULT_LIMITS
    strict: bool = False
    blacklist: tuple[str, ...] = ()
    depth: int = 0
    deadline: float | None = None
    #: Set by the pipeline: scan a member of a container with whatever scanner fits it.
    scan_member: MemberScan | None = field(default=None, compare=False)
    #: Set by the pipeline: the weight coverage of the object (weights.analysis.Coverage), one
    #: record shared by the object and all its members.
    coverage: Any = field(default=None, compare=False)
    #: Set by the pipeline for a worker's scan of a large object: its tensors are handed back
    #: (weights.analysis.Deferred) to be analysed block by block over all workers.
    deferred: Any = field(default=None, compare=False)

    def child(self) -> ScanContext:
        return replace(self, depth=self.depth + 1)

    def check_deadline(self) -> None:
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise ScanTimeout("scan timed out")


def embedded_member(ctx: ScanContext, name: str, reader: RangeReader, members: int,
                    limit: int) -> tuple[UnitResult | None, str]:
    """Content found inside a format (a pickle in a value, a payload in a gap) handed to the
    pipeline as a member, unless a bound says no: then the result is None and the note says
    why, so the caller reports it as not inspected rather than clean. `members` counts this one."""
    if ctx.scan_member is None:
        return None, "no member scanner: not inspected"
    if ctx.depth >= ctx.limits.max_archive_depth:
        return None, "nesting limit reached: not inspected"
    if members > limit:
        return None, "member limit reached: not inspected"
    return ctx.scan_member(name, reader, ctx.child()), ""


def finding(rule_id: str, scanner_id: str, message: str, *, offset: int | None = None,
            location: str = "", severity: Severity | None = None, **evidence: object) -> Finding:
    """A finding at its rule's default severity unless told otherwise."""
    return Finding(rule_id=rule_id, severity=severity or rule(rule_id).severity,
                   scanner_id=scanner_id, message=message, location=location, offset=offset,
                   evidence={k: v for k, v in evidence.items() if v is not None})


class Scanner:
    """Base of every scanner: its id (as registered in `scanners.SCANNERS`, with its version
    and formats) and a pure `scan`."""

    id: ClassVar[str]
    description: ClassVar[str] = ""

    def scan(self, unit: Unit, reader: RangeReader, ctx: ScanContext) -> UnitResult:
        raise NotImplementedError


def matches_blacklist(text: str, patterns: tuple[str, ...]) -> bool:
    """ModelAudit-compatible --blacklist: a glob if it has wildcards, else a case-insensitive
    substring."""
    if not patterns:
        return False
    from fnmatch import fnmatchcase

    lowered = text.lower()
    for pattern in patterns:
        p = pattern.lower()
        if (any(ch in p for ch in "*?[") and fnmatchcase(lowered, p)) or p in lowered:
            return True
    return False


def unit_view(unit: Unit, reader: RangeReader) -> RangeReader:
    """The unit's byte range as a reader of its own, so a scanner counts offsets from 0."""
    from shardscan.storage.reader import SliceReader

    if unit.start or unit.end != reader.size:
        return SliceReader(reader, unit.start, unit.end - unit.start)
    return reader


def rebase(findings: list[Finding], origin: int) -> list[Finding]:
    """Findings counted in a unit's view, moved to object offsets (those counted inside an
    expanded member keep their own origin)."""
    if not origin:
        return findings
    return [f if f.offset is None or f.offset_in else replace(f, offset=f.offset + origin) for f in findings]


class CappedFindings:
    """Findings with a per-rule cap: the first `cap` of a rule are listed, the rest counted in
    one summary finding, so a hostile file cannot turn a report into a million lines."""

    def __init__(self, scanner_id: str, cap: int = 8, default_offset: int | None = None) -> None:
        self.scanner_id = scanner_id
        self.cap = cap
        self.default_offset = default_offset
        self.findings: list[Finding] = []
        self.counts: dict[str, int] = {}

    def add(self, rule_id: str, message: str, *, offset: int | None = -1, **evidence: object) -> None:
        n = self.counts.get(rule_id, 0)
        self.counts[rule_id] = n + 1
        if n < self.cap:
            self.findings.append(finding(rule_id, self.scanner_id, message,
                                         offset=self.default_offset if offset == -1 else offset, **evidence))

    def summarise(self) -> None:
        for rule_id, n in self.counts.items():
            if n > self.cap:
                self.findings.append(finding(rule_id, self.scanner_id,
                                             f"{n - self.cap} more findings of this rule not listed ({n} in all)",
                                             offset=self.default_offset, count=n))
