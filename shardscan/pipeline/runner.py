"""Scanning one object's bytes: detection, the scanners its formats call for, containers
recursing into their members. `Runner` is what every worker holds (one per process); the
driver (pipeline/driver.py) decides which objects reach it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

from shardscan.limits import DEFAULT_LIMITS, Limits
from shardscan.model import Finding, ObjectRef, ObjectReport, ScanRun, Unit, UnitResult
from shardscan.policy import load_policy
from shardscan.rules import STRICT_SEVERITY
from shardscan.scanners import ScannerEntry, registry
from shardscan.scanners.base import ScanContext, ScanTimeout, finding, matches_blacklist
from shardscan.scanners.detect import HEAD_BYTES, TAIL_BYTES, Detection, detect
from shardscan.storage.errors import ListingError, describe_error
from shardscan.storage.objects import list_objects, open_reader
from shardscan.storage.reader import RangeReader
from shardscan.weights.spans import SPANS

PIPELINE_ID = "pipeline"


@dataclass(frozen=True)
class ScanOptions:
    strict: bool = False
    blacklist: tuple[str, ...] = ()
    #: Scanner ids to use (None: all) and to leave out.
    scanners: frozenset[str] | None = None
    exclude: frozenset[str] = frozenset()
    #: Seconds allowed per object.
    timeout: float | None = 300.0
    max_size: int | None = None
    limits: Limits = field(default=DEFAULT_LIMITS)
    #: Where results of unchanged local files are kept between runs (None: no cache).
    cache_dir: Path | None = None
    #: Run the weight analysis on the tensors scanners find (on by default).
    weights: bool = True
    #: Also the opt-in statistics and detectors (`--weights deep`): head class outliers and
    #: same-role layer outliers, INFO only.
    deep_weights: bool = False

    def fingerprint(self) -> str:
        """What, besides the bytes, decides the findings: part of every cache key."""
        return repr((policy_version(), self.strict, sorted(self.blacklist), sorted(self.scanners or ()),
                     sorted(self.exclude), self.limits, self.weights, self.deep_weights))


    def policy_key(self) -> str:
        """The policy version findings are stored and deduplicated under: the policy's own
        version, plus a digest of the options when they differ from the defaults (strict
        findings must not be reused for a default scan, nor the reverse)."""
        if (self.strict, self.blacklist, self.scanners, self.exclude, self.limits, self.weights,
                self.deep_weights) == (False, (), None, frozenset(), DEFAULT_LIMITS, True, False):
            return policy_version()
        import hashlib

        return f"{policy_version()}+options-{hashlib.sha256(self.fingerprint().encode()).hexdigest()[:12]}"


def finalise(findings: list[Finding], strict: bool) -> list[Finding]:
    """Strict severities applied, in the canonical order every report shows."""
    if strict:
        findings = [f if f.rule_id not in STRICT_SEVERITY else
                    replace(f, severity=max(f.severity, STRICT_SEVERITY[f.rule_id]))
                    for f in findings]
    return sorted(findings, key=lambda f: (-f.severity, f.location, f.offset or 0, f.rule_id, f.message))


def policy_version() -> str:
    """The policy file's version plus every scanner's version: a change to either may change
    findings, so it keys cached results."""
    from shardscan.weights.analysis import VERSION as WEIGHTS_VERSION

    scanners = ",".join(f"{s.id}={s.version}" for s in registry().values())
    return f"{load_policy().version}+{scanners},weights={WEIGHTS_VERSION}"


def detect_reader(name: str, reader: RangeReader) -> Detection:
    head = reader.read(0, HEAD_BYTES)
    tail = reader.read(max(0, reader.size - TAIL_BYTES), TAIL_BYTES) if reader.size > HEAD_BYTES else head
    return detect(head, name, reader.size, tail)


class Runner:
    def __init__(self, options: ScanOptions) -> None:
        self.options = options
        all_scanners = registry()
        for wanted in (options.scanners or frozenset()) | options.exclude:
            if wanted not in all_scanners:
                raise ValueError(f"unknown scanner {wanted!r}; see --list-scanners")
        self.scanners: dict[str, ScannerEntry] = {}
        for scanner in all_scanners.values():
            if options.scanners is not None and scanner.id not in options.scanners:
                continue
            if scanner.id in options.exclude:
                continue
            for fmt in scanner.formats:
                self.scanners[fmt] = scanner
        self.policy = load_policy()

    def context(self, deadline: float | None) -> ScanContext:
        """The context of one object's scan; its weight coverage starts empty."""
        from shardscan.weights.analysis import Coverage

        return ScanContext(policy=self.policy, limits=self.options.limits,
                           strict=self.options.strict, blacklist=self.options.blacklist,
                           deadline=deadline, scan_member=self.scan_content,
                           coverage=Coverage(deep=self.options.deep_weights) if self.options.weights else None)

    def scan_content(self, name: str, reader: RangeReader, ctx: ScanContext) -> UnitResult:
        """Detect what `reader` holds and scan it with every scanner its formats call for.

        Containers call this back for their members (through `ctx.scan_member`). It never
        raises for bad content: a timeout or a failing scanner becomes the result's error and
        what was found before it is kept.
        """
        result = UnitResult()
        errors: list[str] = []
        try:
            ctx.check_deadline()
            if matches_blacklist(name.rsplit("/", 1)[-1], ctx.blacklist):
                result.findings.append(finding("BLK001", PIPELINE_ID, f"name {name!r} matches --blacklist"))
            detection = detect_reader(name, reader)
            result.formats.append(detection.format)
            if len(detection.formats) > 1:
                result.findings.append(finding(
                    "CNT111", PIPELINE_ID, f"content reads as {' and '.join(detection.formats)}",
                    offset=0, formats=",".join(detection.formats)))
            ref = ObjectRef(uri=name, size=reader.size)
            for fmt in detection.formats:
                entry = self.scanners.get(fmt)
                if entry is None:
                    result.findings.append(finding("FMT002", PIPELINE_ID,
                                                   f"no enabled scanner analyses {fmt} content",
                                                   offset=0, format=fmt))
                    continue
                scanner = entry.load()
                unit = Unit(ref, scanner.id, 0, reader.size,
                            {"format": fmt, "protocol": detection.protocol, "depth": ctx.depth})
                try:
                    part = scanner.scan(unit, reader, ctx)
                except (ScanTimeout, OSError):
                    raise
                except Exception as exc:  # a scanner bug must not end the scan of everything else
                    errors.append(f"{scanner.id} scanner failed: {type(exc).__name__}: {exc}")
                    continue
                result.findings += part.findings
                result.partials.setdefault(SPANS, []).extend(part.partials.get(SPANS, ()))
                result.formats += [f for f in part.formats if f not in result.formats]
                if part.error:
                    errors.append(part.error)
                spans = part.partials.get(SPANS)
                if spans and ctx.coverage is not None:
                    from shardscan.weights.analysis import weigh

                    result.findings += weigh(reader, spans, ctx)
        except ScanTimeout:
            errors.append("timed out")
        if errors:
            result.error = "; ".join(dict.fromkeys(errors))
        return result

    def finalise(self, findings: list[Finding]) -> list[Finding]:
        return finalise(findings, self.options.strict)

    def run(self, paths: list[str], on_object: Callable[[ObjectReport], None] | None = None) -> ScanRun:
        """Scan in this process, one object after another (tests, single files)."""
        from shardscan.pipeline.driver import Pipeline, PipelineSettings
        from shardscan.pipeline.engines import InlineEngine

        limits = self.options.limits
        settings = PipelineSettings(limits.chunk_size, limits.chunk_size)
        return Pipeline(self.options, InlineEngine(), settings, on_object=on_object).run(paths)


def iter_detections(paths: list[str]) -> Iterator[tuple[ObjectRef | ListingError, Detection | None]]:
    """For --dry-run: what would be scanned, reading only each object's head and tail."""
    for item in list_objects(paths):
        if isinstance(item, ListingError):
            yield item, None
            continue
        try:
            with open_reader(item) as reader:
                yield item, detect_reader(item.uri, reader)
        except Exception as exc:
            yield ListingError(item.uri, describe_error(exc)), None
