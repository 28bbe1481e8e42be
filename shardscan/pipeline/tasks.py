"""What a worker does: the pure functions both engines run, on plain-data work items.

A task is a small batch of work items (hash ranges, whole-object scans) plus the scan options.
Workers open each object themselves from its URI, so bytes never travel through the driver;
a task returns findings and digests as data, never through logs.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field, replace
from typing import Any

from shardscan.model import Finding, ObjectRef
from shardscan.pipeline.hashing import block_digests
from shardscan.pipeline.runner import Runner, ScanOptions
from shardscan.scanners.base import ScanTimeout
from shardscan.storage.errors import describe_error
from shardscan.storage.objects import open_reader
from shardscan.weights.analysis import FAILED, MISSING, TIMED_OUT, Deferred, ShortRead, block_partials
from shardscan.weights.spans import ITEM_SIZES, TensorSpan


@dataclass(frozen=True, slots=True)
class HashWork:
    """Digest the hash blocks of `[start, start + length)`; with `sha256`, the range is the
    whole object, read front to back."""

    ref: ObjectRef
    start: int
    length: int
    sha256: bool = False

    @property
    def nbytes(self) -> int:
        return self.length


@dataclass(frozen=True, slots=True)
class ScanWork:
    """Detect and scan a whole object with every scanner its formats call for; with
    `with_hash`, digest its hash blocks first through the same reader (a small object is then
    one task and one round trip)."""

    ref: ObjectRef
    with_hash: bool = False
    #: Hand the object's tensors back instead of analysing them when they hold more than this
    #: many bytes (weights.analysis.Deferred): the driver spreads their blocks over workers.
    defer_weights_above: int | None = None

    @property
    def nbytes(self) -> int:
        return self.ref.size


@dataclass(frozen=True, slots=True)
class WeightWork:
    """Compute the weight partials of blocks `[first, first + count)` of one tensor of an
    object: any worker gives the same partials for the same blocks."""

    ref: ObjectRef
    span: TensorSpan
    first: int
    count: int
    #: The tensor's place among the object's deferred spans.
    tensor: int = 0

    @property
    def nbytes(self) -> int:
        from shardscan.weights.thresholds import BLOCK_ELEMENTS

        return min(self.count * BLOCK_ELEMENTS * ITEM_SIZES[self.span.dtype], self.span.nbytes)


Work = HashWork | ScanWork | WeightWork


@dataclass(slots=True)
class WorkResult:
    work: Work
    digests: list[bytes] = field(default_factory=list)
    sha256: str | None = None
    findings: list[Finding] = field(default_factory=list)
    formats: list[str] = field(default_factory=list)
    #: The weight analysis coverage (weights.analysis.Coverage.as_dict), when it ran.
    weights: dict[str, Any] | None = None
    #: A scan's tensors left for the driver to spread over workers (ScanWork.defer_weights_above).
    deferred: list[TensorSpan] = field(default_factory=list)
    #: A WeightWork's block partials, in block order.
    partials: list[Any] = field(default_factory=list)
    error: str | None = None
    bytes_read: int = 0
    duration_s: float = 0.0


@dataclass(frozen=True, slots=True)
class Task:
    options: ScanOptions
    works: tuple[Work, ...]
    #: (log format, scan id) when the run logs: the worker logs each task the same way.
    log: tuple[str, str] | None = None

    @property
    def nbytes(self) -> int:
        """Bytes the task reads at most: what the in-flight budget counts."""
        return sum(w.nbytes for w in self.works)


_runners: dict[ScanOptions, Runner] = {}


def _runner(options: ScanOptions) -> Runner:
    """One Runner per options per process: policy and scanners load once per worker."""
    runner = _runners.get(options)
    if runner is None:
        runner = _runners[options] = Runner(options)
    return runner


def run_task(task: Task) -> list[WorkResult]:
    """Run every work item of a task; an item that fails becomes an error result and the
    others still run."""
    began = time.monotonic()
    runner = _runner(task.options)
    results = [_hash(work) if isinstance(work, HashWork) else _weigh(runner, work) if isinstance(work, WeightWork)
               else _scan(runner, work) for work in task.works]
    if task.log is not None:
        from shardscan.logs import configure_worker, get_logger

        configure_worker(*task.log)
        get_logger().info("task done", items=len(results), bytes_read=sum(r.bytes_read for r in results),
                          errors=sum(r.error is not None for r in results),
                          seconds=round(time.monotonic() - began, 3))
    return results


def _hash(work: HashWork) -> WorkResult:
    began = time.monotonic()
    result = WorkResult(work)
    sha = hashlib.sha256() if work.sha256 else None
    try:
        with open_reader(work.ref) as reader:
            try:
                result.digests = block_digests(reader, work.start, work.length, sha)
            finally:
                result.bytes_read = reader.bytes_read
        if sha is not None:
            result.sha256 = sha.hexdigest()
    except Exception as exc:  # the store's failure is this object's error, not the task's
        result.error = describe_error(exc)
    result.duration_s = time.monotonic() - began
    return result


def _scan(runner: Runner, work: ScanWork) -> WorkResult:
    began = time.monotonic()
    result = WorkResult(work)
    ctx = runner.context(None if not runner.options.timeout else began + runner.options.timeout)
    if work.defer_weights_above is not None and ctx.coverage is not None:
        ctx = replace(ctx, deferred=Deferred(work.defer_weights_above))
    try:
        with open_reader(work.ref) as reader:
            try:
                if work.with_hash:
                    result.digests = block_digests(reader, 0, work.ref.size)
                unit = runner.scan_content(work.ref.uri, reader, ctx)
            finally:
                result.bytes_read = reader.bytes_read
        result.findings, result.formats, result.error = runner.finalise(unit.findings), unit.formats, unit.error
        if ctx.coverage is not None and (ctx.coverage.tensors or ctx.coverage.skipped or ctx.deferred):
            result.weights = ctx.coverage.as_dict()
        if ctx.deferred is not None:
            result.deferred = ctx.deferred.spans
    except Exception as exc:
        result.error = describe_error(exc)
    result.duration_s = time.monotonic() - began
    return result


def _weigh(runner: Runner, work: WeightWork) -> WorkResult:
    """Block partials of one range of one tensor; a read failure or the deadline is the
    result's error, which the driver records as that tensor's coverage gap."""
    began = time.monotonic()
    result = WorkResult(work)
    deadline = began + runner.options.timeout if runner.options.timeout else None

    def check() -> None:
        if deadline is not None and time.monotonic() > deadline:
            raise ScanTimeout("timed out")

    try:
        with open_reader(work.ref) as reader:
            try:
                result.partials = block_partials(work.span, reader, work.first, work.count,
                                                 runner.options.limits.weight_tail_elements, check,
                                                 deep=runner.options.deep_weights)
            finally:
                result.bytes_read = reader.bytes_read
    except ScanTimeout:
        result.error = TIMED_OUT
    except ShortRead:
        result.error = MISSING
    except OSError as exc:
        result.error = describe_error(exc)
    except Exception:  # a defect in the statistics: the tensor's coverage says so
        result.error = FAILED
    result.duration_s = time.monotonic() - began
    return result
