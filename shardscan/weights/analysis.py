"""The weight analysis of one object: the spans its scanner found, read block by block from the
same reader, merged in block order, judged by the default detectors, reported as findings
(WGT001-006) with a coverage record.

A block is the unit any worker can compute alone (`blocks.block_partial`). A small object's
blocks are computed in order by the worker that scanned it (`weigh`); a large object's tensors are
handed back (`Deferred`) and the driver spreads ranges of blocks over every worker (`plan`,
`block_partials` in pipeline/tasks.py) and judges each tensor when its partials are in (`judge`).
Either way the merge is in block order, so the findings do not depend on the workers. Within
the `max_weight_bytes` budget and the deadline; what is not analysed is recorded with its
reason, and a cut is a finding (WGT006): missing analysis is never silently clean.
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
RULES = {"W1": "WGT001", "W2": "WGT002", "W3": "WGT003", "W4": "WGT004", "W5": "WGT005",
         "O1": "WGT101", "O2": "WGT102"}
#: Offending element offsets quoted per finding.
OFFSETS_SHOWN = 8


@dataclass(slots=True)
class Coverage:
    """What the weight analysis read of an object: tensors and bytes analysed, and skipped by
    reason ("integer", "quantised", "compressed", "over budget"...). Adds up over members."""

    tensors: int = 0
    bytes: int = 0
    skipped: dict[str, list[int]] = field(default_factory=dict)  # reason -> [tensors, bytes]
    #: `--weights deep` (not part of the record: it says how, not what, was analysed).
    deep: bool = False

    def skip(self, reason: str, nbytes: int, tensors: int = 1) -> None:
        entry = self.skipped.setdefault(reason, [0, 0])
        entry[0] += tensors
        entry[1] += nbytes

    def add(self, other: Coverage) -> None:
        self.tensors += other.tensors
        self.bytes += other.bytes
        for reason, (n, b) in other.skipped.items():
            self.skip(reason, b, n)

    @classmethod
    def of(cls, record: dict[str, Any] | None) -> Coverage:
        """From `as_dict` (what a worker sends back)."""
        out = cls()
        if record:
            out.tensors, out.bytes = record["tensors"], record["bytes"]
            for reason, entry in record["skipped"].items():
                out.skip(reason, entry["bytes"], entry["tensors"])
        return out

    def as_dict(self) -> dict[str, Any]:
        return {"tensors": self.tensors, "bytes": self.bytes,
                "skipped": {k: {"tensors": n, "bytes": b} for k, (n, b) in sorted(self.skipped.items())}}


@dataclass(slots=True)
class Deferred:
    """Set by the pipeline on a worker's scan: the tensors of a large object are not analysed
    there but handed back (`spans`), and the driver spreads their blocks over its workers."""

    above: int  # analysable bytes beyond which an object's tensors are deferred
    spans: list[TensorSpan] = field(default_factory=list)


#: Skip reasons that are a cut of the analysis (WGT006), not a property of the tensor.
BUDGET, TIMED_OUT, MISSING, FAILED = "over the analysis budget", "timed out", "bytes missing", "analysis failed"


def weigh(reader: RangeReader, spans: list[TensorSpan], ctx: ScanContext) -> list[Finding]:
    """The runner's entry for one scanner's spans: coverage goes to `ctx.coverage`; the tensors
    are analysed here, or handed to `ctx.deferred` when the object is large and these are its
    own tensors (depth 0, in the object's reader, not in an external file)."""
    chosen, coverage = select(spans, reader.size, ctx.limits.max_weight_bytes)
    deferred = ctx.deferred
    if (deferred is not None and ctx.depth == 0 and not any(s.source for s in chosen)
            and sum(s.nbytes for s in chosen) > deferred.above):
        deferred.spans += chosen
        ctx.coverage.add(coverage)
        return cut_findings(coverage, ctx.limits.max_weight_bytes)
    findings: list[Finding] = []
    judged: list[tuple[TensorSpan, Any]] = []
    for span in chosen:
        try:
            with _source(span, reader) as source:
                parts = block_partials(span, source, 0, blocks_of(span), ctx.limits.weight_tail_elements,
                                       ctx.check_deadline, deep=is_deep(ctx))
        except ScanTimeout:
            coverage.skip(TIMED_OUT, span.nbytes)
            continue
        except (ShortRead, OSError):
            coverage.skip(MISSING, span.nbytes)
            continue
        except Exception:  # a defect here must not cost the object its format findings
            coverage.skip(FAILED, span.nbytes)
            continue
        found, stats = judge(span, parts, coverage)
        findings += found
        if stats is not None:
            judged.append((span, stats))
    ctx.coverage.add(coverage)
    if is_deep(ctx):
        findings += deep_findings(judged)
    return findings + cut_findings(coverage, ctx.limits.max_weight_bytes)


def is_deep(ctx: ScanContext) -> bool:
    """`--weights deep`: the opt-in statistics (per-row sums, moments) and detectors run too."""
    return bool(getattr(ctx.coverage, "deep", False))


def deep_findings(judged: list[tuple[TensorSpan, Any]]) -> list[Finding]:
    """The opt-in detectors (weights.deep): class outliers of classification heads (O1, per
    tensor) and layers whose spread is unlike their same-role peers (O2, over the object)."""
    from shardscan.weights.deep import head_outliers, layer_shift

    by_name = {span.name: span for span, _ in judged}
    try:
        out = [_finding(span, ev) for span, stats in judged for ev in head_outliers(span, stats)]
        for ev in layer_shift(judged):
            span = by_name.get(str(ev.details.get("layer", "")))
            if span is not None:
                out.append(_finding(span, ev))
    except Exception:  # informational statistics: a defect costs them, not the scan
        return [finding("WGT006", SCANNER_ID, "the opt-in weight statistics could not be computed",
                        reason=FAILED, tensors=len(judged))]
    return out


def select(spans: list[TensorSpan], size: int, budget: int) -> tuple[list[TensorSpan], Coverage]:
    """The spans to analyse, in order, within `budget` bytes; the others recorded with why."""
    coverage = Coverage()
    chosen: list[TensorSpan] = []
    over = False
    for span in spans:
        reason = _unreadable(span, size)
        if reason is None and (over or span.nbytes > budget):
            reason, over = BUDGET, True
        if reason is not None:
            coverage.skip(reason, span.nbytes)
            continue
        budget -= span.nbytes
        chosen.append(span)
    return chosen, coverage


def cut_findings(coverage: Coverage, budget: int) -> list[Finding]:
    """WGT006 for each way the analysis was cut short: never silently clean."""
    out = []
    for reason in (BUDGET, TIMED_OUT, MISSING, FAILED):
        if reason in coverage.skipped:
            n, b = coverage.skipped[reason]
            out.append(finding("WGT006", SCANNER_ID, f"{n} tensors ({b} bytes) not analysed: {reason}",
                               tensors=n, bytes=b, reason=reason, budget=budget if reason == BUDGET else None))
    return out


def blocks_of(span: TensorSpan) -> int:
    from shardscan.weights.thresholds import BLOCK_ELEMENTS

    return math.ceil(span.elements / BLOCK_ELEMENTS)


def plan(span: TensorSpan, chunk_bytes: int) -> list[tuple[int, int]]:
    """(first block, block count) ranges of about `chunk_bytes` each: one task's work."""
    from shardscan.weights.thresholds import BLOCK_ELEMENTS

    per = max(1, chunk_bytes // (BLOCK_ELEMENTS * ITEM_SIZES[span.dtype]))
    total = blocks_of(span)
    return [(first, min(per, total - first)) for first in range(0, total, per)]


class ShortRead(Exception):
    """The reader ended inside a tensor (an external file shorter than its declaration)."""


def _unreadable(span: TensorSpan, size: int) -> str | None:
    """Why a span cannot be analysed, or None."""
    if span.skip:
        return span.skip
    if not span.analysed:
        return "empty" if span.nbytes == 0 else f"dtype {span.dtype}"
    if span.elements * ITEM_SIZES[span.dtype] != span.nbytes:
        return "shape disagrees with its bytes"
    if not span.source and span.offset + span.nbytes > size:
        return "outside the file"
    return None


def _source(span: TensorSpan, reader: RangeReader) -> Any:
    """A context holding the reader of the span's bytes: the object's, or a local external
    data file (opened for the span and closed after it)."""
    from contextlib import nullcontext

    if not span.source:
        return nullcontext(reader)
    from shardscan.storage.reader import LocalReader

    return LocalReader(span.source)


def block_partials(span: TensorSpan, reader: RangeReader, first: int, count: int, tail_elements: int,
                   check: Any = None, *, deep: bool = False) -> list[Any]:
    """The partials of blocks [first, first + count) of a tensor, each read on its own (with a
    few elements after it, so a low-bit header that starts at its end is still validated)."""
    import numpy as np

    from shardscan.weights import blocks

    size = ITEM_SIZES[span.dtype]
    utype = np.dtype(blocks.DTYPES[span.dtype][1]).newbyteorder("<")
    n = span.elements
    out = []
    for index in range(first, first + count):
        if check is not None:
            check()
        start = index * blocks.BLOCK_ELEMENTS
        take = min(blocks.BLOCK_ELEMENTS, n - start)
        extra = min(tail_elements, n - start - take)
        data = reader.read(span.offset + start * size, (take + extra) * size)
        if len(data) < (take + extra) * size:
            raise ShortRead
        elements = np.frombuffer(data, dtype=utype)
        out.append(blocks.block_partial(elements[:take], span.dtype, index, row_length=span.row_length,
                                        tail=elements[take:] if extra else None, deep=deep))
    return out


def judge(span: TensorSpan, partials: list[Any], coverage: Coverage) -> tuple[list[Finding], Any]:
    """Merge a tensor's partials in block order, run the default detectors, count it as
    analysed; returns the findings and the merged statistics (None when the merge failed)."""
    from shardscan.weights.merge import merge

    try:
        stats = merge(partials, n_elements=span.elements)
        found = [_finding(span, ev) for ev in _detect(stats, span)]
    except Exception:  # see weigh(): recorded, never fatal
        coverage.skip(FAILED, span.nbytes)
        return [], None
    coverage.tensors += 1
    coverage.bytes += span.nbytes
    return found, stats


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
