"""The driver: list, plan, hand tasks to an engine, reduce per object, sink.

Per object the order is fixed:

1. the fingerprint index (store identity + size -> content hash) may already know the
   object: it is reused without reading a byte;
2. otherwise its hash blocks are digested, in chunks spread over workers, and reduced in block
   order into the content hash;
3. a content hash already scanned under this policy (in the results store, or earlier in this
   run) is reused; otherwise the object is scanned, and objects with the same content that
   turn up meanwhile wait for that one scan.

Without a results store there is nothing to look a hash up in, so an object is scanned beside
its hashing (a small one in the same task, one read): the report waits for both, and identical
objects in one run are each scanned.

The planner cuts an object into hash chunks of the chunk budget; the scan of an object is one
unit, which scanners walk with bounded buffers (they read their structure, not the tensors).

The listing is pulled only as fast as work drains, so a bucket of millions of objects never
sits in memory, and the in-flight byte budget bounds what workers read at once.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Protocol

from shardscan import __version__
from shardscan.model import Finding, ObjectRef, ObjectReport, ScanRun, Status
from shardscan.pipeline.cache import ResultCache
from shardscan.pipeline.engines import Engine, TaskOutcome
from shardscan.pipeline.hashing import HASH_BLOCK, aligned_chunk, block_count, content_hash
from shardscan.pipeline.runner import PIPELINE_ID, ScanOptions, finalise
from shardscan.pipeline.tasks import HashWork, ScanWork, Task, WeightWork, Work, WorkResult
from shardscan.scanners.base import finding
from shardscan.storage.errors import ListingError
from shardscan.storage.objects import list_objects
from shardscan.weights.analysis import (
    FAILED,
    MISSING,
    TIMED_OUT,
    Coverage,
    cut_findings,
    deep_findings,
    judge,
    plan,
)
from shardscan.weights.spans import TensorSpan


class Prior(Protocol):
    scan_id: str
    n_findings: int
    format: str
    formats: tuple[str, ...]
    weights: dict[str, Any] | None


class Index(Protocol):
    """What the driver needs of the results store to skip work (see storage/results.py)."""

    def content_hash_for(self, fingerprint: str) -> str | None: ...

    def scanned(self, content_hash: str) -> Prior | None: ...

    def findings(self, content_hash: str, scan_id: str) -> list[Finding]: ...


@dataclass(frozen=True)
class PipelineSettings:
    """How the work is cut and paced; none of it changes a finding or a hash."""

    chunk_size: int
    #: Bytes that tasks in flight may read at once (at least one task always runs).
    max_inflight: int
    sha256: bool = False
    max_objects_per_task: int = 256
    #: Workers log each task in this format (None: they do not log).
    log_format: str | None = None


@dataclass
class _Object:
    """An object between listing and its report."""

    ref: ObjectRef
    seq: int
    began: float
    digests: list[bytes | None]
    hashes_left: int
    bytes_read: int = 0
    sha256: str | None = None
    error: str | None = None
    hash: str | None = None
    #: Scanned while it is hashed (no results store to consult): the report waits for both.
    speculative: bool = False
    scan_pending: bool = False
    scan_result: WorkResult | None = None


@dataclass
class _Known:
    """A content hash scanned in this run: what an identical object reuses."""

    findings: list[Finding]
    fmt: str
    formats: tuple[str, ...]
    weights: dict[str, Any] | None = None


@dataclass
class _Weighing:
    """A scanned object whose tensors are being analysed over the workers."""

    result: WorkResult
    spans: list[TensorSpan]
    #: tensor index -> block partials received, and tasks still out.
    parts: dict[int, list[Any]] = field(default_factory=dict)
    left: dict[int, int] = field(default_factory=dict)
    failed: set[int] = field(default_factory=set)
    #: tensor index -> (span, merged statistics), for the object-wide opt-in detectors.
    judged: dict[int, tuple[TensorSpan, Any]] = field(default_factory=dict)
    coverage: Coverage = field(default_factory=Coverage)
    findings: list[Finding] = field(default_factory=list)


@dataclass
class Totals:
    """For progress: what was listed so far, and whether the listing ended."""

    listed: int = 0
    listed_bytes: int = 0
    listing_done: bool = False


def new_scan_id() -> str:
    return f"{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}-{os.urandom(4).hex()}"


class Pipeline:
    def __init__(self, options: ScanOptions, engine: Engine, settings: PipelineSettings, *,
                 scan_id: str | None = None, index: Index | None = None,
                 on_object: Callable[[ObjectReport], None] | None = None,
                 retain: Callable[[ObjectReport], bool] | None = None) -> None:
        self.options = options
        self.engine = engine
        self.settings = settings
        self.chunk = aligned_chunk(settings.chunk_size)
        self.scan_id = scan_id or new_scan_id()
        self.index = index
        self.on_object = on_object
        self.retain = retain
        self.policy_version = options.policy_key()
        self.cache = (ResultCache(options.cache_dir, options.fingerprint())
                      if options.cache_dir is not None else None)
        self.totals = Totals()
        self._queue: deque[Work] = deque()
        #: Works from failed batches, each to run as a task of its own.
        self._isolated: deque[Work] = deque()
        self._queued_bytes = 0
        self._inflight_bytes = 0
        self._objects: dict[str, _Object] = {}
        self._known: dict[str, _Known] = {}
        self._scanning: dict[str, list[_Object]] = {}
        self._run: ScanRun | None = None
        #: (listing position, report): reports are kept in listing order, whatever finished first.
        self._done: list[tuple[int, ObjectReport]] = []
        self._seq = 0
        self._stopping = False
        self._log = (settings.log_format, self.scan_id) if settings.log_format else None
        #: With several workers, an object whose tensors hold more than a chunk has them analysed
        #: block by block across all workers (weights.analysis); results are the same either way.
        self._defer = self.chunk if options.weights and engine.slots > 1 else None
        self._weighing: dict[str, _Weighing] = {}

    def stop(self) -> None:
        """Stop at the next safe point (from a signal handler): no new work, results of
        running tasks dropped, every object already reported kept, sinks consistent."""
        self._stopping = True

    # -- the loop --------------------------------------------------------------------------

    def run(self, targets: list[str]) -> ScanRun:
        run = self._run = ScanRun(tool_version=__version__, policy_version=self.policy_version,
                                  started=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                                  paths=list(targets), scan_id=self.scan_id)
        began = time.monotonic()
        listing: Iterator[ObjectRef | ListingError] | None = iter(list_objects(targets))
        try:
            while not self._stopping:
                while listing is not None and self._wants_more():
                    item = next(listing, None)
                    if item is None:
                        listing = None
                        self.totals.listing_done = True
                    else:
                        self._admit(item)
                self._submit_ready(flush=listing is None)
                if not self.engine.pending():
                    if listing is None and not self._queue and not self._isolated:
                        break
                    continue
                for outcome in self.engine.completed():
                    self._inflight_bytes -= outcome.task.nbytes
                    self._on_outcome(outcome)
            run.interrupted = self._stopping
        except KeyboardInterrupt:  # a second Ctrl-C: stop now
            run.interrupted = True
        finally:
            self.engine.close()
        self._done.sort(key=lambda item: item[0])
        run.objects = [report for _, report in self._done]
        run.duration_s = time.monotonic() - began
        return run

    def _wants_more(self) -> bool:
        """Pull from the listing only while queued work is short of a few tasks' worth."""
        slots = self.engine.slots
        return (len(self._queue) < 2 * slots * self.settings.max_objects_per_task
                and self._queued_bytes < max(self.settings.max_inflight, self.chunk))

    def _submit_ready(self, flush: bool) -> None:
        while self._isolated and self.engine.pending() < 2 * self.engine.slots:
            task = Task(self.options, (self._isolated.popleft(),), self._log)
            self._inflight_bytes += task.nbytes
            self.engine.submit(task)
        while self._queue and self.engine.pending() < 2 * self.engine.slots:
            if self.engine.pending() and self._inflight_bytes >= self.settings.max_inflight:
                return
            task = self._next_task(flush)
            if task is None:
                return
            self._inflight_bytes += task.nbytes
            self.engine.submit(task)

    def _next_task(self, flush: bool) -> Task | None:
        """Batch queued works into one task of about a chunk, or up to the object limit.
        A part-filled batch waits for more unless the listing ended or nothing is running."""
        works: list[Work] = []
        nbytes = 0
        for work in self._queue:
            size = work.nbytes
            if works and (nbytes + size > self.chunk or len(works) >= self.settings.max_objects_per_task):
                break
            works.append(work)
            nbytes += size
        full = nbytes >= self.chunk or len(works) >= self.settings.max_objects_per_task
        if not works or not (full or flush or not self.engine.pending()
                             or len(works) < len(self._queue)):
            return None
        for _ in works:
            self._queue.popleft()
        self._queued_bytes -= nbytes
        return Task(self.options, tuple(works), self._log)

    def _enqueue(self, work: Work) -> None:
        self._queue.append(work)
        self._queued_bytes += work.nbytes

    # -- per object ------------------------------------------------------------------------

    def _admit(self, item: ObjectRef | ListingError) -> None:
        self._seq += 1
        if isinstance(item, ListingError):
            findings = [finding(item.rule_id, PIPELINE_ID, item.message)] if item.rule_id else []
            self._emit(ObjectReport(ObjectRef(item.uri, 0), "", Status.ERROR, findings, error=item.message))
            return
        ref = item
        self.totals.listed += 1
        self.totals.listed_bytes += ref.size
        began = time.monotonic()
        max_size = self.options.max_size
        if max_size is not None and ref.size > max_size:
            self._emit(ObjectReport(ref, "", Status.SKIPPED, error=f"larger than --max-size ({max_size} bytes)"))
            return
        if self.cache is not None:
            cached = self.cache.get(ref)
            if cached is not None:
                cached.duration_s = time.monotonic() - began
                self._emit(cached)
                return
        if self._reuse_by_fingerprint(ref, began):
            return
        n = block_count(ref.size)
        obj = _Object(ref, self._seq, began, [None] * n, 0)
        if ref.uri in self._objects:  # the same object named twice: scanned once
            self._emit(ObjectReport(ref, "", Status.SKIPPED, error="listed twice in this scan"))
            return
        self._objects[ref.uri] = obj
        # With no results store there is nothing to look a content hash up in before scanning,
        # so the scan starts at once, beside the hashing (a small object in the same task).
        obj.speculative = obj.scan_pending = self.index is None
        if obj.speculative and ref.size <= self.chunk and not self.settings.sha256:
            obj.hashes_left = 1
            self._enqueue(ScanWork(ref, with_hash=True, defer_weights_above=self._defer))
            return
        if self.settings.sha256 or ref.size <= self.chunk:
            obj.hashes_left = 1
            self._enqueue(HashWork(ref, 0, ref.size, sha256=self.settings.sha256))
        else:
            for start in range(0, ref.size, self.chunk):
                obj.hashes_left += 1
                self._enqueue(HashWork(ref, start, min(self.chunk, ref.size - start)))
        if obj.speculative:
            self._enqueue(ScanWork(ref, defer_weights_above=self._defer))

    def _reuse_by_fingerprint(self, ref: ObjectRef, began: float) -> bool:
        fingerprint = ref.fingerprint()
        if self.index is None or fingerprint is None:
            return False
        known = self.index.content_hash_for(fingerprint)
        if known is None:
            return False
        obj = _Object(ref, self._seq, began, [], 0, hash=known)
        return self._reuse(obj)

    def _reuse(self, obj: _Object) -> bool:
        """Report `obj` as reused if its content hash was scanned before; False otherwise."""
        assert obj.hash is not None
        mine = self._known.get(obj.hash)
        if mine is not None:
            self._report(obj, Status.REUSED, mine.findings, mine.fmt, mine.formats, self.scan_id,
                         weights=mine.weights)
            return True
        prior = self.index.scanned(obj.hash) if self.index is not None else None
        if prior is None:
            return False
        findings = self.index.findings(obj.hash, prior.scan_id) if prior.n_findings and self.index else []
        self._report(obj, Status.REUSED, findings, prior.format, prior.formats, prior.scan_id,
                     weights=prior.weights)
        return True

    def _on_outcome(self, outcome: TaskOutcome) -> None:
        works = outcome.task.works
        if outcome.results is None and len(works) > 1:
            # A batch whose worker kept dying: run each item alone, so only the object that
            # kills its worker ends in error and its batch mates are still scanned.
            self._isolated.extend(works)
            return
        if outcome.results is None and isinstance(works[0], WeightWork):
            # Statistics that kill their worker cost that tensor's analysis, not the object.
            self._on_weights(WorkResult(works[0], error=FAILED))
            return
        if outcome.results is None:
            self._fail(works[0].ref.uri, outcome.failure or "task failed")
            return
        for result in outcome.results:
            if isinstance(result.work, HashWork):
                self._on_hash(result)
            elif isinstance(result.work, WeightWork):
                self._on_weights(result)
            else:
                self._on_scan(result)

    def _fail(self, uri: str, message: str) -> None:
        obj = self._objects.get(uri)
        if obj is None:
            return
        if obj.hash is not None and obj.hash in self._scanning:  # the scan failed: so do its waiters
            for other in self._scanning.pop(obj.hash):
                self._report(other, Status.ERROR, [], "", (), None, error=message)
            return
        self._report(obj, Status.ERROR, [], "", (), None, error=message)

    def _on_hash(self, result: WorkResult) -> None:
        work = result.work
        assert isinstance(work, HashWork)
        obj = self._objects.get(work.ref.uri)
        if obj is None:
            return  # already reported (an earlier range of it failed)
        obj.bytes_read += result.bytes_read
        if not self._add_digests(obj, work.start, result):
            return
        if obj.speculative:
            self._finish_speculative(obj)
            return
        assert obj.hash is not None
        if self._reuse(obj):
            return
        waiting = self._scanning.get(obj.hash)
        if waiting is not None:
            waiting.append(obj)
            return
        self._scanning[obj.hash] = [obj]
        self._enqueue(ScanWork(obj.ref, defer_weights_above=self._defer))

    def _add_digests(self, obj: _Object, start: int, result: WorkResult) -> bool:
        """Record a range's digests; True once the content hash is complete. A range that
        failed ends the object in error (after its speculative scan, whose findings it keeps)."""
        if result.error is not None:
            obj.error = obj.error or result.error
            if obj.speculative:
                obj.hashes_left = 0
                self._finish_speculative(obj)
            else:
                self._report(obj, Status.ERROR, [], "", (), None, error=result.error)
            return False
        base = start // HASH_BLOCK
        obj.digests[base : base + len(result.digests)] = result.digests
        obj.sha256 = result.sha256 or obj.sha256
        obj.hashes_left -= 1
        if obj.hashes_left:
            return False
        obj.hash = content_hash(obj.ref.size, obj.digests)  # type: ignore[arg-type]
        obj.digests = []
        return True

    def _finish_speculative(self, obj: _Object) -> None:
        """Report once both the hash (or its failure) and the scan are in."""
        if obj.hashes_left or obj.scan_pending or self._objects.get(obj.ref.uri) is not obj:
            return
        result = obj.scan_result
        assert result is not None
        fmt = result.formats[0] if result.formats else ""
        error = obj.error or result.error
        status = Status.SCANNED if error is None else Status.ERROR
        if status == Status.SCANNED and obj.hash is not None:
            self._known.setdefault(obj.hash, _Known(result.findings, fmt, tuple(result.formats), result.weights))
        self._report(obj, status, result.findings, fmt, tuple(result.formats),
                     self.scan_id if result.findings else None, error=error, duration=result.duration_s,
                     weights=result.weights)

    def _on_scan(self, result: WorkResult) -> None:
        obj = self._objects.get(result.work.ref.uri)
        if obj is None:
            return
        if result.deferred and result.error is None:
            self._weigh(obj, result)
            return
        if obj.speculative:
            obj.bytes_read += result.bytes_read
            obj.scan_pending, obj.scan_result = False, result
            if isinstance(result.work, ScanWork) and result.work.with_hash:
                hashed = len(result.digests) == block_count(obj.ref.size)
                self._add_digests(obj, 0, WorkResult(result.work, digests=result.digests) if hashed
                                  else WorkResult(result.work, error=result.error or "not hashed"))
            self._finish_speculative(obj)
            return
        if obj.hash is None:
            return
        obj.bytes_read += result.bytes_read
        fmt = result.formats[0] if result.formats else ""
        formats = tuple(result.formats)
        status = Status.SCANNED if result.error is None else Status.ERROR
        waiters = self._scanning.pop(obj.hash, [obj])
        if status == Status.SCANNED:
            self._known[obj.hash] = _Known(result.findings, fmt, formats, result.weights)
        for other in waiters:
            if other is obj:
                self._report(obj, status, result.findings, fmt, formats,
                             self.scan_id if result.findings else None, error=result.error,
                             duration=result.duration_s, weights=result.weights)
            elif status == Status.SCANNED:
                self._report(other, Status.REUSED, result.findings, fmt, formats, self.scan_id,
                             weights=result.weights)
            else:
                self._report(other, Status.ERROR, result.findings, fmt, formats,
                             self.scan_id if result.findings else None, error=result.error,
                             weights=result.weights)

    # -- weights spread over workers -------------------------------------------------------

    def _weigh(self, obj: _Object, result: WorkResult) -> None:
        """Queue the blocks of a scanned object's tensors; the scan result waits for them."""
        spans, result.deferred = result.deferred, []
        state = _Weighing(result, spans)
        for tensor, span in enumerate(spans):
            ranges = plan(span, self.chunk)
            state.left[tensor] = len(ranges)
            for first, count in ranges:
                self._enqueue(WeightWork(obj.ref, span, first, count, tensor))
        self._weighing[obj.ref.uri] = state

    def _on_weights(self, result: WorkResult) -> None:
        work = result.work
        assert isinstance(work, WeightWork)
        state = self._weighing.get(work.ref.uri)
        obj = self._objects.get(work.ref.uri)
        if state is None or obj is None:
            return
        obj.bytes_read += result.bytes_read
        if result.error is not None and work.tensor not in state.failed:
            state.failed.add(work.tensor)
            reason = result.error if result.error in (TIMED_OUT, FAILED) else MISSING
            state.coverage.skip(reason, work.span.nbytes)
        state.parts.setdefault(work.tensor, []).extend(result.partials)
        state.left[work.tensor] -= 1
        if state.left[work.tensor] == 0 and work.tensor not in state.failed:
            found, stats = judge(work.span, state.parts.pop(work.tensor), state.coverage)
            state.findings += found
            if stats is not None:
                state.judged[work.tensor] = (work.span, stats)
        if any(state.left.values()):
            return
        del self._weighing[work.ref.uri]
        scan = state.result
        total = Coverage.of(scan.weights)
        total.add(state.coverage)
        if self.options.deep_weights:
            state.findings += deep_findings([state.judged[i] for i in sorted(state.judged)])
        scan.findings = finalise(scan.findings + state.findings + cut_findings(state.coverage, 0),
                                 self.options.strict)
        scan.weights = total.as_dict()
        self._on_scan(scan)

    def _report(self, obj: _Object, status: str, findings: list[Finding], fmt: str, formats: tuple[str, ...],
                findings_scan_id: str | None, *, error: str | None = None, duration: float | None = None,
                weights: dict[str, Any] | None = None) -> None:
        self._objects.pop(obj.ref.uri, None)
        report = ObjectReport(obj.ref, fmt, status, list(findings), error,
                              time.monotonic() - obj.began if duration is None else duration,
                              content_hash=obj.hash, content_sha256=obj.sha256, bytes_read=obj.bytes_read,
                              findings_scan_id=findings_scan_id, formats=formats, weights=weights)
        if self.cache is not None and status == Status.SCANNED:
            self.cache.put(report)
        self._emit(report, obj.seq)

    def _emit(self, report: ObjectReport, seq: int | None = None) -> None:
        assert self._run is not None
        if self.retain is None or self.retain(report):
            self._done.append((self._seq if seq is None else seq, report))
        else:
            self._run.omitted[report.status] = self._run.omitted.get(report.status, 0) + 1
        if self.on_object is not None:
            self.on_object(report)
