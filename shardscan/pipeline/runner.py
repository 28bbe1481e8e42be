"""The sequential runner: list local paths, scan each object, reduce to object reports.

Parallel engines (process pool, Ray) come later and reuse `scan_object`, which is a pure
function of the object's bytes and the options.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path

from shardscan import __version__
from shardscan.limits import DEFAULT_LIMITS, Limits
from shardscan.model import Finding, ObjectRef, ObjectReport, ScanRun, Status, Unit, UnitResult
from shardscan.pipeline.cache import ResultCache
from shardscan.policy import load_policy
from shardscan.rules import STRICT_SEVERITY
from shardscan.scanners import ScannerEntry, registry
from shardscan.scanners.base import ScanContext, ScanTimeout, finding, matches_blacklist
from shardscan.scanners.detect import HEAD_BYTES, TAIL_BYTES, Detection, detect
from shardscan.storage.local import ListingError, list_local
from shardscan.storage.reader import LocalReader, RangeReader

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

    def fingerprint(self) -> str:
        """What, besides the bytes, decides the findings: part of every cache key."""
        return repr((policy_version(), self.strict, sorted(self.blacklist), sorted(self.scanners or ()),
                     sorted(self.exclude), self.limits))


def policy_version() -> str:
    """The policy file's version plus every scanner's version: a change to either may change
    findings, so it keys cached results."""
    scanners = ",".join(f"{s.id}={s.version}" for s in registry().values())
    return f"{load_policy().version}+{scanners}"


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
        self.cache = (ResultCache(options.cache_dir, options.fingerprint())
                      if options.cache_dir is not None else None)

    def context(self, deadline: float | None) -> ScanContext:
        return ScanContext(policy=self.policy, limits=self.options.limits,
                           strict=self.options.strict, blacklist=self.options.blacklist,
                           deadline=deadline, scan_member=self.scan_content)

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
                result.formats += [f for f in part.formats if f not in result.formats]
                if part.error:
                    errors.append(part.error)
        except ScanTimeout:
            errors.append("timed out")
        if errors:
            result.error = "; ".join(dict.fromkeys(errors))
        return result

    def scan_object(self, ref: ObjectRef) -> ObjectReport:
        start = time.monotonic()
        opts = self.options
        if opts.max_size is not None and ref.size > opts.max_size:
            return ObjectReport(ref, "", Status.SKIPPED,
                                error=f"larger than --max-size ({opts.max_size} bytes)")
        if self.cache is not None:
            cached = self.cache.get(ref)
            if cached is not None:
                cached.duration_s = time.monotonic() - start
                return cached
        deadline = None if not opts.timeout else start + opts.timeout
        ctx = self.context(deadline)
        try:
            with LocalReader(ref.uri) as reader:
                result = self.scan_content(ref.uri, reader, ctx)
        except OSError as exc:
            result = UnitResult(error=exc.strerror or str(exc))
        findings = self._finalise(result.findings)
        status = Status.SCANNED if result.error is None else Status.ERROR
        report = ObjectReport(ref, result.formats[0] if result.formats else "", status, findings,
                              result.error, time.monotonic() - start)
        if self.cache is not None:
            self.cache.put(report)
        return report

    def _finalise(self, findings: list[Finding]) -> list[Finding]:
        if self.options.strict:
            findings = [f if f.rule_id not in STRICT_SEVERITY else
                        replace(f, severity=max(f.severity, STRICT_SEVERITY[f.rule_id]))
                        for f in findings]
        return sorted(findings, key=lambda f: (-f.severity, f.location, f.offset or 0, f.rule_id, f.message))

    def run(self, paths: list[str], on_object: Callable[[ObjectReport], None] | None = None) -> ScanRun:
        run = ScanRun(tool_version=__version__, policy_version=policy_version(),
                      started=datetime.now(timezone.utc).isoformat(timespec="seconds"), paths=list(paths))
        began = time.monotonic()
        for item in list_local(paths):
            if isinstance(item, ListingError):
                report = ObjectReport(ObjectRef(item.uri, 0), "", Status.ERROR, error=item.message)
            else:
                report = self.scan_object(item)
            run.objects.append(report)
            if on_object is not None:
                on_object(report)
        run.duration_s = time.monotonic() - began
        return run


def iter_detections(paths: list[str]) -> Iterator[tuple[ObjectRef | ListingError, Detection | None]]:
    """For --dry-run: what would be scanned, reading only each object's head and tail."""
    for item in list_local(paths):
        if isinstance(item, ListingError):
            yield item, None
            continue
        try:
            with LocalReader(item.uri) as reader:
                yield item, detect_reader(item.uri, reader)
        except OSError as exc:
            yield ListingError(item.uri, exc.strerror or str(exc)), None
