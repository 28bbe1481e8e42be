"""The weight analysis of one object: the spans its scanner found, read block by block from the
same reader, merged in block order, judged by the default detectors, reported as findings
(WGT001-006) with a coverage record.

A block is the unit any worker can compute alone (`blocks.block_partial`); here they are
computed in order by the worker that scanned the object, within the object's deadline and the
`max_weight_bytes` budget. What is not analysed is recorded with its reason, and a budget or
deadline cut is a finding (WGT006): missing analysis is never silently clean.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from shardscan.model import Finding
from shardscan.scanners.base import ScanContext, ScanTimeout, finding
from shardscan.weights.spans import ITEM_SIZES, TensorSpan

if TYPE_CHECKING:
    from shardscan.storage.reader import RangeReader
    from shardscan.weights.detectors import Evidence

SCANNER_ID = "weights"
#: Enters the policy version (pipeline.runner): bump it when the findings of the same bytes may
#: change, so stored results are not reused across it.
VERSION = 1
#: Detector id (weights.detectors) -> rule.
RULES = {"W1": "WGT001", "W2": "WGT002", "W3": "WGT003", "W4": "WGT004", "W5": "WGT005"}
#: Offending element offsets quoted per finding.
OFFSETS_SHOWN = 8


@dataclass(slots=True)
class Coverage:
    """What the weight analysis read of an object: tensors and bytes analysed, and skipped by
    reason ("integer", "quantised", "compressed", "over budget"...). Adds up over members."""

    tensors: int = 0
    bytes: int = 0
    skipped: dict[str, list[int]] = field(default_factory=dict)  # reason -> [tensors, bytes]

    def skip(self, reason: str, nbytes: int, tensors: int = 1) -> None:
        entry = self.skipped.setdefault(reason, [0, 0])
        entry[0] += tensors
        entry[1] += nbytes

    def add(self, other: Coverage) -> None:
        self.tensors += other.tensors
        self.bytes += other.bytes
        for reason, (n, b) in other.skipped.items():
            self.skip(reason, b, n)

    def as_dict(self) -> dict[str, Any]:
        return {"tensors": self.tensors, "bytes": self.bytes,
                "skipped": {k: {"tensors": n, "bytes": b} for k, (n, b) in sorted(self.skipped.items())}}


def analyse(reader: RangeReader, spans: list[TensorSpan], ctx: ScanContext) -> tuple[list[Finding], Coverage]:
    """Findings and coverage for the tensors in `spans` (offsets in `reader`)."""
    coverage = Coverage()
    findings: list[Finding] = []
    budget = ctx.limits.max_weight_bytes
    cut: str | None = None
    for span in spans:
        reason = cut or _unreadable(span, reader)
        if reason is None and span.nbytes > budget:
            reason = cut = "over the analysis budget"
        if reason is not None:
            coverage.skip(reason, span.nbytes)
            continue
        try:
            stats = _statistics(span, _source(span, reader), ctx)
        except ScanTimeout:
            cut = "timed out"
            coverage.skip(cut, span.nbytes)
            continue
        except (_ShortRead, OSError):
            coverage.skip("bytes missing", span.nbytes)
            continue
        budget -= span.nbytes
        coverage.tensors += 1
        coverage.bytes += span.nbytes
        findings += [_finding(span, ev) for ev in _detect(stats, span)]
    for reason in ("over the analysis budget", "timed out"):
        if reason in coverage.skipped:
            n, b = coverage.skipped[reason]
            findings.append(finding("WGT006", SCANNER_ID, f"{n} tensors ({b} bytes) not analysed: {reason}",
                                    tensors=n, bytes=b, reason=reason,
                                    budget=ctx.limits.max_weight_bytes if reason != "timed out" else None))
    return findings, coverage


class _ShortRead(Exception):
    """The reader ended inside a tensor (an external file shorter than its declaration)."""


def _unreadable(span: TensorSpan, reader: RangeReader) -> str | None:
    """Why a span cannot be analysed, or None."""
    if span.skip:
        return span.skip
    if not span.analysed:
        return "empty" if span.nbytes == 0 else f"dtype {span.dtype}"
    if span.elements * ITEM_SIZES[span.dtype] != span.nbytes:
        return "shape disagrees with its bytes"
    if not span.source and span.offset + span.nbytes > reader.size:
        return "outside the file"
    return None


def _source(span: TensorSpan, reader: RangeReader) -> RangeReader:
    """The reader holding the span's bytes: the object's, or a local external data file."""
    if not span.source:
        return reader
    from shardscan.storage.reader import LocalReader

    return LocalReader(span.source)


def _statistics(span: TensorSpan, reader: RangeReader, ctx: ScanContext) -> Any:
    """Merged statistics of one tensor, its blocks read one at a time."""
    import numpy as np

    from shardscan.weights import blocks, merge

    size = ITEM_SIZES[span.dtype]
    utype = blocks.DTYPES[span.dtype][1]
    n = span.elements
    per_block = blocks.BLOCK_ELEMENTS
    tail_elements = ctx.limits.weight_tail_elements
    partials = []
    for index in range(math.ceil(n / per_block)):
        ctx.check_deadline()
        first = index * per_block
        count = min(per_block, n - first)
        extra = min(tail_elements, n - first - count)
        data = reader.read(span.offset + first * size, (count + extra) * size)
        if len(data) < (count + extra) * size:
            raise _ShortRead
        elements = np.frombuffer(data, dtype=np.dtype(utype).newbyteorder("<"))
        partials.append(blocks.block_partial(elements[:count], span.dtype, index, row_length=span.row_length,
                                             tail=elements[count:] if extra else None))
    return merge.merge(partials, n_elements=n)


def _detect(stats: Any, span: TensorSpan) -> list[Evidence]:
    from shardscan.weights.detectors import detect

    return detect(stats, name=span.name)


def _finding(span: TensorSpan, ev: Evidence) -> Finding:
    size = ITEM_SIZES[span.dtype]
    offsets = [span.offset + i * size for i in ev.element_indices[:OFFSETS_SHOWN]]
    return finding(
        RULES[ev.rule_id], SCANNER_ID, f"tensor {span.name!r} ({span.dtype} {list(span.shape)}): {ev.message}",
        offset=offsets[0] if offsets else span.offset, severity=ev.severity,
        tensor=span.name, dtype=span.dtype, shape=list(span.shape), byte_range=[span.offset, span.offset + span.nbytes],
        statistic=ev.statistic, value=ev.value, threshold=ev.threshold, benign_reference=ev.benign_reference,
        confidence=ev.confidence, direction=ev.direction or None,
        benign_explanations=list(ev.benign_explanations) or None, offending_offsets=offsets or None,
        offending_elements=list(ev.element_indices[:OFFSETS_SHOWN]) or None, source=span.source or None,
        **{k: _plain(v) for k, v in ev.details.items() if k not in ("tensor", "dtype", "shape")})


def _plain(value: Any) -> Any:
    """Evidence as JSON holds it: NumPy scalars and arrays become numbers and lists."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
