"""Scanning one byte range as a pickle stream: every pickle in it, nested payloads, both
readings of FRAME, and what to report when the stream breaks.

Other scanners (PyTorch zips, NumPy object arrays, joblib, compressed wrappers) call
`scan_pickle_range` for the pickles they hold.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from shardscan.model import Finding
from shardscan.scanners.base import FormatError, ScanContext, ScanTimeout, finding
from shardscan.scanners.pickle.judge import judge
from shardscan.scanners.pickle.machine import Facts, LimitExceeded, PickleMachine, TorchTensor, Truncated
from shardscan.scanners.pickle.opcodes import OPCODES, TORCH_LEGACY_MAGIC, TORCH_LEGACY_PICKLES
from shardscan.scanners.pickle.torch_storages import legacy_storages, torch_spans
from shardscan.scanners.pickle.values import Made, Persistent
from shardscan.storage.reader import BytesReader, RangeReader, ReaderStream, SliceReader
from shardscan.weights.spans import TensorSpan

#: A first pickle that fails within this many opcodes, having imported nothing, was never a
#: pickle: the object could not be parsed, rather than a pickle that broke.
MIN_OPCODES_FOR_BROKEN = 3


@dataclass(slots=True)
class PickleOutcome:
    findings: list[Finding] = field(default_factory=list)
    persistent: list[Persistent] = field(default_factory=list)
    tensors: list[TorchTensor] = field(default_factory=list)
    #: Where the tensors of a legacy PyTorch file are (its storages follow the pickles).
    spans: list[TensorSpan] = field(default_factory=list)
    #: Set when nothing could be parsed: the range is not a pickle.
    error: str | None = None
    timed_out: bool = False


class _Snapshot:
    """Lengths of the fact lists before a stacked pickle, to drop what trailing bytes that
    only looked like a pickle added."""

    FIELDS = ("globals", "events", "code_objects", "nested", "persistent")

    def __init__(self, facts: Facts) -> None:
        self.lengths = {name: len(getattr(facts, name)) for name in self.FIELDS}

    def rollback(self, facts: Facts) -> None:
        for name, length in self.lengths.items():
            del getattr(facts, name)[length:]


def _walk(reader: RangeReader, start: int, end: int | None, ctx: ScanContext, scanner_id: str,
          *, file_mode: bool) -> tuple[Facts, list[Finding], str | None, bool]:
    """Walk every pickle in the range; returns facts, stream-level findings, a parse error
    when nothing parsed, and whether the deadline passed."""
    stream = ReaderStream(reader, start, end, ctx.limits.stream_chunk)
    machine = PickleMachine(stream, ctx.policy, ctx.limits, ctx, file_mode=file_mode)
    facts = machine.facts
    notes: list[Finding] = []
    error: str | None = None
    timed_out = False
    while True:
        begin = stream.tell()
        globals_before = len(facts.globals)
        opcodes_before = facts.opcodes
        mark = _Snapshot(facts)
        try:
            facts.results.append(machine.run_one())
            facts.pickles += 1
        except (Truncated, FormatError) as exc:
            reason = "stream ends before STOP" if isinstance(exc, Truncated) else exc.reason
            at = stream.tell() if isinstance(exc, Truncated) else (exc.offset or stream.tell())
            imported = len(facts.globals) > globals_before
            ran = facts.opcodes - opcodes_before
            if facts.pickles == 0 and not imported and ran < MIN_OPCODES_FOR_BROKEN:
                error = f"not a pickle: {reason} at byte {at}"
            elif facts.pickles == 0 or imported:
                notes.append(finding("PKL301", scanner_id,
                                     f"pickle stream breaks after {ran} opcodes: {reason}",
                                     offset=at, pickle_start=begin))
            else:  # trailing bytes that broke without importing anything: not a pickle
                mark.rollback(facts)
                notes.append(finding("PKL303", scanner_id,
                                     f"{stream.end - begin} bytes after the last STOP",
                                     offset=begin, length=stream.end - begin))
            break
        except LimitExceeded as exc:
            notes.append(finding("PKL305", scanner_id, f"pickle exceeds a limit: {exc.what}",
                                 offset=stream.tell()))
            break
        except ScanTimeout:
            timed_out = True
            break
        legacy = facts.results[0] == TORCH_LEGACY_MAGIC
        if legacy and facts.pickles >= TORCH_LEGACY_PICKLES:
            break  # raw storages follow, which torch reads as bytes and never unpickles
        if stream.remaining() <= 0:
            break
        if not legacy and facts.pickles >= ctx.limits.max_pickles_per_stream:
            notes.append(finding("PKL305", scanner_id, "more stacked pickles than the limit",
                                 offset=stream.tell()))
            break
        nxt = stream.reader.read(stream.tell(), 1)
        if not nxt or nxt[0] not in OPCODES:
            notes.append(finding("PKL303", scanner_id,
                                 f"{stream.end - stream.tell()} bytes after the last STOP",
                                 offset=stream.tell(), length=stream.end - stream.tell()))
            break
    legacy = bool(facts.results) and facts.results[0] == TORCH_LEGACY_MAGIC
    if legacy and facts.pickles == TORCH_LEGACY_PICKLES and error is None and not timed_out:
        problems, storages = legacy_storages(stream.reader, stream.tell(), stream.end, facts.results[-1],
                                             facts.persistent, scanner_id)
        notes += problems
        facts.storages = storages
    if facts.pickles > 1 and not legacy:
        notes.append(finding("PKL304", scanner_id, f"{facts.pickles} pickles in one stream",
                             offset=start, count=facts.pickles))
        if isinstance(facts.results[0], Made):
            notes.append(finding("TRC103", scanner_id,
                                 "the first of several stacked pickles is computed by a call",
                                 offset=start))
    return facts, notes, error, timed_out


def scan_pickle_range(reader: RangeReader, ctx: ScanContext, scanner_id: str, start: int = 0,
                      end: int | None = None, *, nested_depth: int = 0) -> PickleOutcome:
    """Scan `[start, end)` of `reader` as a pickle stream."""
    facts, notes, error, timed_out = _walk(reader, start, end, ctx, scanner_id, file_mode=False)
    outcome = PickleOutcome(persistent=facts.persistent, tensors=facts.tensors, error=error, timed_out=timed_out)
    if facts.storages is not None:
        storages = facts.storages
        outcome.spans = torch_spans(facts.tensors, facts.persistent, lambda key: storages.get(key, "missing"))
    findings = judge(facts, ctx, scanner_id) + notes
    if facts.frame_straddled and not timed_out:
        findings.append(finding("PKL302", scanner_id,
                                "an opcode crosses a FRAME boundary: file and bytes loaders "
                                "read different opcodes; both readings were scanned",
                                offset=start))
        alt, alt_notes, _, timed_out = _walk(reader, start, end, ctx, scanner_id, file_mode=True)
        findings += judge(alt, ctx, scanner_id) + alt_notes
        facts.nested += alt.nested
        outcome.timed_out = timed_out
    findings += _scan_nested(reader, facts, ctx, scanner_id, nested_depth)
    outcome.findings = _dedupe(findings)
    return outcome


def _scan_nested(reader: RangeReader, facts: Facts, ctx: ScanContext, scanner_id: str,
                 depth: int) -> list[Finding]:
    out: list[Finding] = []
    seen: set[tuple[int, int]] = set()
    for payload in facts.nested:
        if payload.blob is not None:
            key = (payload.blob.offset, payload.blob.length)
            sub: RangeReader = SliceReader(reader, payload.blob.offset, payload.blob.length)
        elif payload.data is not None:
            key = (payload.offset, len(payload.data))
            sub = BytesReader(payload.data)
        else:
            continue
        if key in seen:
            continue
        seen.add(key)
        if depth + 1 > ctx.limits.max_nested_pickle_depth:
            out.append(finding("PKL307", scanner_id,
                               f"pickle nested {depth + 1} deep was not inspected",
                               offset=payload.offset, loader=payload.loader))
            continue
        inner = scan_pickle_range(sub, ctx, scanner_id, nested_depth=depth + 1)
        label = f"nested@{payload.offset}"
        out += [f.within(label) for f in inner.findings]
    return out


def _dedupe(findings: list[Finding]) -> list[Finding]:
    seen: set[tuple[Any, ...]] = set()
    out = []
    for f in findings:
        key = f.key()
        if key not in seen:
            seen.add(key)
            out.append(f)
    return out
