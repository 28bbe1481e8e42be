"""The values that flow through a scan: what is scanned, the units of work and what they find.

Everything here is a frozen value so that a unit can be shipped to any worker and a finding
compared, hashed and deduplicated without reference to where or when it was produced.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import IntEnum
from types import MappingProxyType
from typing import Any


class Severity(IntEnum):
    """Ordered so that `max()` and comparisons give the verdict directly."""

    DEBUG = 10
    INFO = 20
    WARNING = 30
    CRITICAL = 40

    @classmethod
    def parse(cls, text: str) -> Severity:
        return cls[text.strip().upper()]


#: Findings at or above this severity make `shardscan scan` exit 1.
FAILING_SEVERITY = Severity.WARNING


@dataclass(frozen=True, slots=True)
class ObjectRef:
    """One object in a store, with whatever identity the store gives for it."""

    uri: str
    size: int
    etag: str | None = None
    version: str | None = None
    sha256: str | None = None

    @property
    def name(self) -> str:
        return self.uri.rstrip("/").rsplit("/", 1)[-1]

    def fingerprint(self) -> str | None:
        """What the fingerprint index keys this object by, so an unchanged object is known
        without reading it: the size and sha256 where the store gives a content hash (the
        hub's LFS), else the URI, size, ETag and version. None when the store gives no identity.
        """
        if self.sha256:
            return f"sha256:{self.sha256}:{self.size}"
        if self.etag or self.version:
            return f"{self.uri}\x00{self.size}\x00{self.etag or ''}\x00{self.version or ''}"
        return None


def _frozen(mapping: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return MappingProxyType(dict(mapping or {}))


@dataclass(frozen=True, slots=True)
class Unit:
    """A piece of work: one scanner over one byte range of one object.

    `context` carries what the planner learned that the scanner needs (member path inside a
    container, nesting depth); it is plain data so the same unit runs anywhere.
    """

    object: ObjectRef
    scanner_id: str
    start: int = 0
    length: int | None = None
    context: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "context", _frozen(self.context))

    def __reduce__(self) -> tuple[Any, ...]:
        return (Unit, (self.object, self.scanner_id, self.start, self.length, dict(self.context)))

    @property
    def end(self) -> int:
        return self.object.size if self.length is None else self.start + self.length


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing a scanner found, with the byte offset and member path that locate it.

    Its identity for deduplication is (rule_id, location, offset, message): nothing about the
    URI or time. Evidence holds plain, already masked values only.
    """

    rule_id: str
    severity: Severity
    scanner_id: str
    message: str
    location: str = ""
    offset: int | None = None
    evidence: Mapping[str, Any] = field(default_factory=dict)
    #: The content `offset` counts in: "" for the object's own bytes, else the path of a
    #: member whose bytes do not appear as-is in the object (compressed, nested payload).
    offset_in: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "evidence", _frozen(self.evidence))

    def __reduce__(self) -> tuple[Any, ...]:
        # Findings cross process boundaries (worker pools, Ray); a mappingproxy cannot.
        return (Finding, (self.rule_id, self.severity, self.scanner_id, self.message, self.location,
                          self.offset, dict(self.evidence), self.offset_in))

    def key(self) -> tuple[str, str, int, str]:
        return (self.rule_id, self.location, -1 if self.offset is None else self.offset, self.message)

    def within(self, member: str, base_offset: int | None = None) -> Finding:
        """The same finding seen from the container that holds `member`.

        `base_offset` is where the member's bytes start in the container when they are stored
        as-is; without it the offset stays relative to the member's own content.
        """
        location = f"{member}/{self.location}" if self.location else member
        offset, offset_in = self.offset, self.offset_in
        if offset is not None:
            if base_offset is not None:
                offset += base_offset
            else:
                offset_in = f"{member}/{offset_in}" if offset_in else member
        return replace(self, location=location, offset=offset, offset_in=offset_in)

    def with_severity(self, severity: Severity) -> Finding:
        return replace(self, severity=severity)


@dataclass(slots=True)
class UnitResult:
    """What one unit produced: findings, and mergeable partial summaries for the reducer."""

    findings: list[Finding] = field(default_factory=list)
    partials: dict[str, Any] = field(default_factory=dict)
    #: Set when the unit could not be scanned at all (nothing parsed); findings may still exist.
    error: str | None = None
    #: Formats recognised while scanning (the object's own first, then container members).
    formats: list[str] = field(default_factory=list)


class Status:
    """Outcome of one object in a scan."""

    SCANNED = "scanned"
    #: Not scanned again: the same content was scanned under the same policy before (or
    #: earlier in this run); the findings are those of that scan.
    REUSED = "reused"
    ERROR = "error"
    SKIPPED = "skipped"


@dataclass(slots=True)
class ObjectReport:
    """Everything the reports need about one object once its units are reduced."""

    object: ObjectRef
    format: str
    status: str
    findings: list[Finding] = field(default_factory=list)
    error: str | None = None
    duration_s: float = 0.0
    scanners: tuple[str, ...] = ()
    #: xxh3-128 over the object's chunk digests and size (see pipeline/hashing.py); None when
    #: the bytes could not be read.
    content_hash: str | None = None
    #: SHA-256 of the whole object, with --sha256.
    content_sha256: str | None = None
    #: Bytes fetched from the store for this object in this run (0 for a fingerprint hit).
    bytes_read: int = 0
    #: The scan whose findings these are: this run's id when scanned, an earlier one when reused.
    findings_scan_id: str | None = None
    #: Every format recognised (the object's own first, then container members).
    formats: tuple[str, ...] = ()
    #: Weight analysis coverage: tensors and bytes analysed, and skipped by reason
    #: (`weights.analysis.Coverage.as_dict`); None when the analysis did not run.
    weights: dict[str, Any] | None = None

    @property
    def max_severity(self) -> Severity | None:
        return max((f.severity for f in self.findings), default=None)


@dataclass(slots=True)
class ScanRun:
    """One invocation of `shardscan scan`: what every report format renders."""

    tool_version: str
    policy_version: str
    started: str
    paths: list[str]
    objects: list[ObjectReport] = field(default_factory=list)
    duration_s: float = 0.0
    scan_id: str = ""
    #: Stopped before every object was scanned (Ctrl-C): the objects here are all that finished.
    interrupted: bool = False
    #: Objects finished clean and not kept in `objects` (a text report of a large scan lists
    #: only what needs attention), by status: they still count in totals.
    omitted: dict[str, int] = field(default_factory=dict)

    @property
    def total_objects(self) -> int:
        return len(self.objects) + sum(self.omitted.values())

    @property
    def findings(self) -> list[Finding]:
        return [f for obj in self.objects for f in obj.findings]

    @property
    def exit_code(self) -> int:
        """0 clean, 1 a finding at WARNING or above, 2 something could not be scanned and
        nothing was found: a finding wins over an error."""
        if any(f.severity >= FAILING_SEVERITY for f in self.findings):
            return 1
        if any(obj.status not in (Status.SCANNED, Status.REUSED) for obj in self.objects):
            return 2
        return 0
