"""SafeTensors files: header checks, the data layout, and whatever hides between tensors.

A `.safetensors` file is an 8-byte little-endian header length N, N bytes of UTF-8 JSON, and
a data section. The JSON maps tensor names to `{"dtype", "shape", "data_offsets": [begin,
end]}` (offsets count from the start of the data section) plus an optional `__metadata__` map
of strings to strings. The format holds no code, so the risks are in what a reader trusts:

* a header length or shape that makes a reader allocate or read what the file never holds;
* a header that parsers read differently (duplicate keys: serde and Python keep the last copy,
  other parsers the first; invalid escapes; non-UTF-8);
* tensors whose byte ranges overlap, leave the data section, or disagree with their shape;
* bytes no tensor covers (gaps, bytes after the last tensor): the reference loader refuses a
  layout with holes because they make polyglots possible, so such bytes are reported with their
  range, and when they read as a pickle, archive, executable or text they are handed to the
  other scanners (`ScanContext.scan_member`) so an embedded payload is judged on its own;
* `__metadata__` strings that some tool may render or run.

The file is parsed here from bytes; the tensor data is never read (only gaps and trailing
bytes, bounded by the limits). The reference's rules are those of the Rust `safetensors` crate
(checked against safetensors 0.8.0): 22 dtypes, header at most 100,000,000 bytes, offsets and
shape entries are unsigned 64-bit integers, tensors sorted by offset must tile the data section
exactly, element count times item size must not overflow 64 bits.

Metadata heuristics (documented, deliberately simple; each is a regular expression over a key
or a value, see the tables below):

* STF011 code, markup or shell: Python code (`__import__(`, `eval(`, `exec(`, `compile(`,
  `import os`..., `os.system(`, `subprocess.*(`, `pickle.loads(`, dunder introspection such as
  `__class__`/`__subclasses__`/`__globals__` used by template injection), markup that runs
  script (`<script`, `javascript:`, `<iframe`, `onerror=`...), shell (`curl ... | sh`,
  `wget http...`, `sh -c`, `rm -rf`, `/dev/tcp/`, `nc -e`, `powershell`, `cmd /c`,
  `chmod +x`, `python -c`, `base64 -d`, `mkfifo`);
* STF012 URLs (`indicators.URL`: `http(s)://`, `ftp://`, `file://`, `s3://`, `gs://`, `hdfs://`,
  `ssh://`, `git://`, `data:...;base64,`...) and file paths (absolute POSIX paths under system or home
  folders, Windows drive paths, `~/...`, `../`): informational, training tools record them;
* BIN002 secrets (the rule every format reports them under): well-known token shapes (`indicators.find_secrets`:
  AWS keys, GitHub, Hugging Face, OpenAI/Anthropic, Slack, Google, Stripe, JWTs, private key
  blocks, credentials in URLs, `password=...`), and the
  values of keys named like a credential (`password`, `token`, `api_key`, `secret`...) that look
  like one. Secret values are masked before anything reaches a Finding: a finding shows the kind,
  a fixed public prefix at most (`hf_`, `AKIA`...) and the length.
"""

from __future__ import annotations

import gc
import json
import re
import struct
from itertools import pairwise
from typing import Any

from shardscan.model import Unit, UnitResult
from shardscan.scanners import detect as fmt
from shardscan.scanners import indicators
from shardscan.scanners.base import CappedFindings, ScanContext, Scanner, ScanTimeout, finding, rebase, unit_view
from shardscan.scanners.indicators import (
    CODE_PATTERNS,
    CREDENTIAL_KEY,
    CREDENTIAL_SHAPE,
    PLACE_PATTERNS,
    SECRET_RULE,
    shown,
)
from shardscan.storage.reader import RangeReader, SliceReader
from shardscan.weights.spans import SPANS, TensorSpan, float_span, skipped

#: dtype -> bits per element, as the reference crate (safetensors 0.8.0) defines them.
DTYPE_BITS: dict[str, int] = {
    "BOOL": 8, "U8": 8, "I8": 8, "F8_E5M2": 8, "F8_E4M3": 8, "F8_E8M0": 8, "F8_E4M3FNUZ": 8,
    "F8_E5M2FNUZ": 8, "I16": 16, "U16": 16, "F16": 16, "BF16": 16, "I32": 32, "U32": 32,
    "F32": 32, "C64": 64, "F64": 64, "I64": 64, "U64": 64,
    "F4": 4, "F6_E2M3": 6, "F6_E3M2": 6,
}
#: The format's own maximum header size: the reference loader refuses larger headers.
FORMAT_MAX_HEADER = 100_000_000
#: Shape entries, offsets and byte counts are unsigned 64-bit integers in the reference.
U64 = 1 << 64
METADATA = "__metadata__"
TENSOR_FIELDS = ("dtype", "shape", "data_offsets")
FIELD_SET = frozenset(TENSOR_FIELDS)
#: String values of undefined entry fields run through the metadata heuristics.
MAX_EXTRA_TEXTS = 1024
#: Findings of one rule listed one by one before the rest are summarised in one more finding.
MAX_REPORTED = 8
#: Longest excerpt of a file's text quoted in a finding.
JSON_SPACE = " \t\n\r"
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def excerpt(text: str, m: re.Match[str], known: list[str]) -> str:
    """Around a match, with `known` secrets (credential-named values) masked as well."""
    part = text[max(0, m.start() - 30) : m.end() + 30]
    for secret in known:
        part = part.replace(secret, f"<credential, {len(secret)} chars masked>")
    return shown(part)


def _span(entry: dict[str, Any], name: str, offset: int, nbytes: int, pytorch: bool) -> TensorSpan:
    """A tensor for the weight analysis. Files written from PyTorch (`format: pt`, what
    `save_file` of transformers and safetensors.torch record) keep Linear weights (out, in)."""
    dtype, shape = entry.get("dtype"), entry.get("shape")
    if not isinstance(dtype, str) or not isinstance(shape, list) or not all(type(d) is int for d in shape):
        return skipped(name, str(dtype)[:20], (), offset, nbytes, "malformed entry")
    return float_span(name, dtype, tuple(shape), offset, nbytes, 0 if pytorch and len(shape) >= 2 else None)


class HeaderError(Exception):
    def __init__(self, reason: str, offset: int = 8) -> None:
        super().__init__(reason)
        self.reason = reason
        self.offset = offset


class _Duplicates:
    """object_pairs_hook that keeps the last copy (as serde_json and Python do) and notes
    every key seen twice in one object."""

    def __init__(self) -> None:
        self.keys: list[str] = []
        self.count = 0

    def __call__(self, pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        d = dict(pairs)
        if len(d) != len(pairs):
            seen: set[str] = set()
            for key, _ in pairs:
                if key in seen:
                    self.count += 1
                    if len(self.keys) < MAX_REPORTED:
                        self.keys.append(key)
                seen.add(key)
        return d


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON (the reference parser refuses it)")


def parse_header(raw: bytes) -> tuple[dict[str, Any], _Duplicates, bool]:
    """The header object, its duplicate keys, and whether it holds a lone surrogate escape."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise HeaderError("header is not UTF-8", 8 + exc.start) from exc
    stripped = text.lstrip(JSON_SPACE)
    if not stripped.startswith("{"):
        raise HeaderError(f"header does not start with a JSON object: {shown(stripped[:20], 20)!r}")
    dups = _Duplicates()
    try:
        value = json.loads(text, object_pairs_hook=dups, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise HeaderError(f"header is not valid JSON: {exc.msg} at character {exc.pos}",
                          8 + len(text[: exc.pos].encode("utf-8", "surrogatepass"))) from exc
    except (ValueError, RecursionError, MemoryError) as exc:
        raise HeaderError(f"header is not valid JSON: {type(exc).__name__}: {str(exc)[:200]}") from exc
    if not isinstance(value, dict):
        raise HeaderError("header is not a JSON object")
    lone = bool(_SURROGATE_ESCAPE.search(text)) and _has_lone_surrogate(value)
    return value, dups, lone


def _has_lone_surrogate(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return True
        elif isinstance(item, dict):
            stack += item.keys()
            stack += item.values()
        elif isinstance(item, list):
            stack += item
    return False


def _u64(value: Any) -> bool:
    return type(value) is int and 0 <= value < U64


#: A tensor's byte range: (begin, end, index in the header, name); sorts by offset.
Span = tuple[int, int, int, str]


class _Report(CappedFindings):
    """Findings with a per-rule cap, offsets defaulting to the header's start (byte 8)."""

    def __init__(self, scanner_id: str) -> None:
        super().__init__(scanner_id, MAX_REPORTED, default_offset=8)
        #: Values of credential-named metadata keys: masked wherever they are quoted.
        self.known_secrets: list[str] = []


class SafeTensorsScanner(Scanner):
    id = "safetensors"
    description = "SafeTensors: header and layout checks, hidden bytes between tensors, metadata heuristics"

    def scan(self, unit: Unit, reader: RangeReader, ctx: ScanContext) -> UnitResult:
        view = unit_view(unit, reader)
        report = _Report(self.id)
        result = UnitResult()
        # A header is one big tree of fresh containers that lives until the scan ends: cyclic
        # collections triggered while it is built and walked only cost time (3x for 1e6 tensors).
        enabled = gc.isenabled()
        gc.disable()
        try:
            self._scan(view, ctx, report, result)
        except ScanTimeout:
            result.error = "timed out"  # what was found before the deadline is kept
        finally:
            if enabled:
                gc.enable()
        report.summarise()
        result.findings = rebase(report.findings + result.findings, unit.start)
        return result

    # -- header ----------------------------------------------------------------------------------

    def _scan(self, reader: RangeReader, ctx: ScanContext, report: _Report, result: UnitResult) -> None:
        limits = ctx.limits
        size = reader.size
        if size < 8:
            report.add("STF001", f"SafeTensors header invalid: a {size}-byte file cannot hold the "
                                 "8-byte header length", offset=0, size=size)
            return
        (n,) = struct.unpack("<Q", reader.read(0, 8))
        if n > size - 8:
            report.add("STF001", f"SafeTensors header invalid: header length {n} runs past the end "
                                 f"of the {size}-byte file", offset=0, declared=n, size=size)
            return
        if n > FORMAT_MAX_HEADER:
            report.add("STF001", f"SafeTensors header invalid: header of {n} bytes exceeds the "
                                 f"format's {FORMAT_MAX_HEADER}-byte maximum; loaders refuse it",
                       offset=0, declared=n)
            return
        if n > limits.max_safetensors_header:
            report.add("FMT005", f"SafeTensors header of {n} bytes exceeds the "
                                 f"{limits.max_safetensors_header}-byte limit: not inspected",
                       offset=0, declared=n, limit=limits.max_safetensors_header)
            return
        raw = reader.read(8, n)
        # A cheap upper bound before the parse (an escaped key could evade it; the count after
        # the parse catches that, and the header limit bounds the parse either way).
        declared = raw.count(b'"data_offsets"')
        if declared > limits.max_safetensors_tensors:
            report.add("FMT005", f"SafeTensors header declares about {declared} tensors, more than the "
                                 f"{limits.max_safetensors_tensors} limit: not inspected",
                       declared=declared, limit=limits.max_safetensors_tensors)
            return
        ctx.check_deadline()
        try:
            header, dups, lone = parse_header(raw)
        except HeaderError as exc:
            report.add("STF001", f"SafeTensors header invalid: {exc.reason}", offset=exc.offset)
            return
        del raw
        ctx.check_deadline()
        if lone:
            report.add("STF001", "SafeTensors header invalid: a \\u escape encodes a lone surrogate "
                                 "(the reference parser refuses it; others substitute it)")
        for key in dups.keys:
            report.add("STF002", f"key {shown(key)!r} appears more than once in one JSON object of the "
                                 "header; parsers disagree on which copy wins", key=shown(key))
        for _ in range(dups.count - len(dups.keys)):
            report.add("STF002", "duplicate key")
        data_start = 8 + n
        data_size = size - data_start
        meta = header.pop(METADATA, None)
        if len(header) > limits.max_safetensors_tensors:
            report.add("FMT005", f"SafeTensors header declares {len(header)} tensors, more than the "
                                 f"{limits.max_safetensors_tensors} limit: tensors not inspected",
                       declared=len(header), limit=limits.max_safetensors_tensors)
            tensors: list[Span] = []
        else:
            tensors = self._tensors(header, ctx, report, data_size)
        if meta is not None:
            self._metadata(meta, ctx, report)
        self._layout(tensors, reader, ctx, report, result, data_start, data_size)
        pytorch = isinstance(meta, dict) and meta.get("format") == "pt"
        result.partials[SPANS] = [_span(header[name], name, data_start + begin, end - begin, pytorch)
                                  for begin, end, _, name in tensors]

    # -- tensor entries --------------------------------------------------------------------------

    def _tensors(self, header: dict[str, Any], ctx: ScanContext, report: _Report,
                 data_size: int) -> list[Span]:
        """Check every entry; returns the byte ranges usable for the layout checks.

        A well-formed entry takes the fast path below (a million entries take about a second);
        anything else is examined again by `_entry`, which says what is wrong.
        """
        max_rank = ctx.limits.max_safetensors_rank
        out: list[Span] = []
        extra: dict[str, int] = {}
        extra_text: list[tuple[str, str]] = []
        for index, (name, entry) in enumerate(header.items()):
            if not index & 0xFFF:
                ctx.check_deadline()
            try:
                if entry.keys() == FIELD_SET:
                    bits = DTYPE_BITS[entry["dtype"]]
                    begin, end = entry["data_offsets"]
                    shape = entry["shape"]
                    if (type(begin) is int and type(end) is int and 0 <= begin <= end <= data_size
                            and type(shape) is list and len(shape) <= max_rank):
                        count = 1
                        for dim in shape:
                            if type(dim) is not int or dim < 0:
                                break
                            count *= dim
                            if count >= U64:
                                break
                        else:
                            if count * bits == (end - begin) * 8:
                                out.append((begin, end, index, name))
                                continue
            except (AttributeError, KeyError, TypeError, ValueError):
                pass
            span = self._entry(name, index, entry, max_rank, data_size, report, extra, extra_text)
            if span is not None:
                out.append(span)
        if extra:
            names = ", ".join(f"{shown(k, 40)!r} ({n}x)" for k, n in sorted(extra.items())[:MAX_REPORTED])
            report.add("STF014", f"tensor entries carry fields the format does not define: {names}",
                       fields=names)
        for where, text in extra_text:
            self._judge_text(where, text, report)
        return out

    def _entry(self, name: str, index: int, entry: Any, max_rank: int, data_size: int, report: _Report,
               extra: dict[str, int], extra_text: list[tuple[str, str]]) -> Span | None:
        """What is wrong with one entry, reported; its byte range when that much is usable."""
        label = shown(name)
        if not isinstance(entry, dict):
            report.add("STF003", f"tensor {label!r}: entry is a JSON {type(entry).__name__}, not an object",
                       tensor=label)
            return None
        missing = [k for k in TENSOR_FIELDS if k not in entry]
        if missing:
            report.add("STF003", f"tensor {label!r}: missing {', '.join(missing)}", tensor=label)
            return None
        for key, value in entry.items():
            if key not in FIELD_SET:
                extra[key] = extra.get(key, 0) + 1
                if isinstance(value, str) and len(extra_text) < MAX_EXTRA_TEXTS:
                    extra_text.append((f"{name}.{key}", value))
        dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
        span: Span | None = None
        if (isinstance(offsets, list) and len(offsets) == 2 and _u64(offsets[0]) and _u64(offsets[1])
                and offsets[0] <= offsets[1]):
            span = (offsets[0], offsets[1], index, name)
        else:
            report.add("STF003", f"tensor {label!r}: data_offsets {shown(repr(offsets))} are not "
                                 "[begin, end] with 0 <= begin <= end < 2**64", tensor=label)
        bits = DTYPE_BITS.get(dtype) if isinstance(dtype, str) else None
        if bits is None:
            report.add("STF003", f"tensor {label!r}: unknown dtype {shown(repr(dtype))}", tensor=label,
                       dtype=shown(repr(dtype)))
        count = self._elements(label, shape, max_rank, report)
        if span is not None and span[1] > data_size:
            report.add("STF005", f"tensor {label!r}: bytes [{span[0]}, {span[1]}) run past the "
                                 f"{data_size}-byte data section", tensor=label,
                       begin=span[0], end=span[1], data_size=data_size)
        if bits is None or count is None:
            return span
        nbits = count * bits
        if nbits % 8:
            report.add("STF004", f"tensor {label!r}: {count} elements of {dtype} end inside a byte",
                       tensor=label, elements=count, dtype=dtype)
        elif nbits // 8 >= U64:
            report.add("STF003", f"tensor {label!r}: its byte size overflows 64 bits", tensor=label)
        elif span is not None and nbits // 8 != span[1] - span[0]:
            report.add("STF004", f"tensor {label!r}: shape {shown(repr(shape))} of {dtype} needs "
                                 f"{nbits // 8} bytes, its data_offsets span {span[1] - span[0]}",
                       tensor=label, declared=nbits // 8, span=span[1] - span[0])
        return span

    @staticmethod
    def _elements(label: str, shape: Any, max_rank: int, report: _Report) -> int | None:
        if not isinstance(shape, list):
            report.add("STF003", f"tensor {label!r}: shape is a JSON {type(shape).__name__}, not a list",
                       tensor=label)
            return None
        if len(shape) > max_rank:
            report.add("STF003", f"tensor {label!r}: shape has {len(shape)} dimensions, more than the "
                                 f"{max_rank} limit", tensor=label, rank=len(shape), limit=max_rank)
            return None
        count = 1
        for dim in shape:
            if not _u64(dim):
                report.add("STF003", f"tensor {label!r}: shape {shown(repr(shape))} holds "
                                     f"{shown(repr(dim), 30)}, not a size in [0, 2**64)", tensor=label)
                return None
            count *= dim
            if count >= U64:
                break
        if count >= U64:
            report.add("STF003", f"tensor {label!r}: shape {shown(repr(shape))} has more than 2**64 "
                                 "elements; the reference overflows", tensor=label)
            return None
        return count

    # -- metadata --------------------------------------------------------------------------------

    def _metadata(self, meta: Any, ctx: ScanContext, report: _Report) -> None:
        if not isinstance(meta, dict):
            report.add("STF010", f"__metadata__ is a JSON {type(meta).__name__}, not a map of strings",
                       type=type(meta).__name__)
            return
        report.known_secrets += [v.strip() for k, v in meta.items() if isinstance(v, str)
                                 and CREDENTIAL_KEY.search(k) and CREDENTIAL_SHAPE.fullmatch(v.strip())]
        for index, (key, value) in enumerate(meta.items()):
            if not index & 0xFF:
                ctx.check_deadline()
            if not isinstance(value, str):
                report.add("STF010", f"__metadata__[{shown(key)!r}] is a JSON {type(value).__name__}, "
                                     "not a string; the reference loader refuses the file",
                           key=shown(key), type=type(value).__name__)
                self._judge_text(key, "", report)
                continue
            self._judge_text(key, value, report)

    def _judge_text(self, key: str, value: str, report: _Report) -> None:
        """STF011, STF012 and secrets (BIN002) for one metadata key and its value."""
        where = f"__metadata__[{shown(key)!r}]" if "." not in key else f"field {shown(key)!r}"
        secrets = indicators.secrets_in(value, key)[:4]
        hidden = any(s.kind == "credential-named value" for s in secrets)
        for secret in secrets:
            report.add(SECRET_RULE, indicators.secret_message(where, secret), key=shown(key), kind=secret.kind,
                       length=secret.length)
        for rule_id, table in (("STF011", CODE_PATTERNS), ("STF012", PLACE_PATTERNS)):
            labels: list[str] = []
            first: tuple[str, re.Match[str]] | None = None
            for label, pattern in table:
                for text in (key, value):
                    m = pattern.search(text)
                    if m is not None:
                        labels.append(label)
                        first = first or (text, m)
                        break
            if first is None:
                continue
            quote = ("value masked: it holds a secret" if hidden and first[0] is value
                     else repr(excerpt(*first, report.known_secrets)))
            report.add(rule_id, f"{where} holds {' and '.join(labels)} text: {quote}",
                       key=shown(key), kinds=",".join(labels))

    # -- layout ----------------------------------------------------------------------------------

    def _layout(self, tensors: list[Span], reader: RangeReader, ctx: ScanContext, report: _Report,
                result: UnitResult, data_start: int, data_size: int) -> None:
        ordered = sorted(tensors)
        if any(a[2] > b[2] for a, b in pairwise(ordered)):
            report.add("STF009", "tensor entries are not listed in the order of their data_offsets "
                                 "(the reference writer lists them in order)")
        hidden: list[tuple[int, int]] = []
        covered = 0
        last: Span | None = None
        for i, (begin, end, _, name) in enumerate(ordered):
            if not i & 0xFFF:
                ctx.check_deadline()
            if begin > covered:
                if covered < data_size:
                    hidden.append((covered, min(begin, data_size)))
            elif begin < covered and last is not None:
                what = "an empty tensor placed inside" if begin == end else "overlaps"
                report.add("STF006", f"tensor {shown(name)!r} [{begin}, {end}) {what} tensor "
                                     f"{shown(last[3])!r} [{last[0]}, {last[1]})",
                           offset=data_start + min(begin, data_size), tensor=shown(name), other=shown(last[3]))
            if end > covered:
                covered, last = end, (begin, end, 0, name)
        if covered < data_size:
            hidden.append((covered, data_size))
        for number, (a, b) in enumerate(hidden):
            self._hidden(a, b, number, reader, ctx, report, result, data_start, data_size)

    def _hidden(self, a: int, b: int, number: int, reader: RangeReader, ctx: ScanContext, report: _Report,
                result: UnitResult, data_start: int, data_size: int) -> None:
        limits = ctx.limits
        start, end = data_start + a, data_start + b
        trailing = b == data_size
        rule_id = "STF008" if trailing else "STF007"
        place = "after the last tensor" if trailing else "between tensors"
        if number >= limits.max_safetensors_hidden_regions:
            report.add(rule_id, f"{b - a} bytes {place} at [{start}, {end}) that no tensor covers "
                                "(not inspected: region limit reached)",
                       offset=start, start=start, end=end, length=b - a)
            return
        ctx.check_deadline()
        kind, scanned = self._classify(reader, start, end)
        self._executables(reader, start, end, place, result)
        note = ""
        if kind not in ("zero bytes", fmt.UNKNOWN):
            scan, note = self._scan_hidden(reader, ctx, start, end, kind)
            if scan is not None:
                result.findings += scan.findings
                result.formats += [f for f in scan.formats if f not in result.formats]
        report.add(rule_id, f"{b - a} bytes {place} at [{start}, {end}) that no tensor covers "
                            f"({kind if kind != fmt.UNKNOWN else 'unrecognised content'}{scanned}){note}; "
                            "the reference loader refuses such a layout",
                   offset=start, start=start, end=end, length=b - a, content=kind)

    def _executables(self, reader: RangeReader, start: int, end: int, place: str, result: UnitResult) -> None:
        """Machine code anywhere in the first and last 64 KiB of a region no tensor covers:
        a program shipped inside a weights file has no innocent reading (BIN001)."""
        spans = [(start, min(end, start + fmt.HEAD_BYTES))]
        if end - start > fmt.HEAD_BYTES:
            spans.append((max(spans[0][1], end - fmt.TAIL_BYTES), end))
        for a, b in spans:
            for hit in indicators.find_executables(reader.read(a, b - a), a):
                if hit.native:
                    result.findings.append(finding("BIN001", self.id, f"{hit.kind} executable {place} at byte "
                                                   f"{hit.offset} ({hit.detail})", offset=hit.offset,
                                                   kind=hit.kind))

    @staticmethod
    def _classify(reader: RangeReader, start: int, end: int) -> tuple[str, str]:
        length = end - start
        head = reader.read(start, min(length, fmt.HEAD_BYTES))
        tail = reader.read(max(start, end - fmt.TAIL_BYTES), min(length, fmt.TAIL_BYTES)) \
            if length > fmt.HEAD_BYTES else head
        if not head.strip(b"\0") and not tail.strip(b"\0"):
            checked = "" if length <= 2 * fmt.HEAD_BYTES else ", first and last 64 KiB checked"
            return "zero bytes", checked
        return fmt.detect(head, "", length, tail).format, ""

    def _scan_hidden(self, reader: RangeReader, ctx: ScanContext, start: int, end: int,
                     kind: str) -> tuple[UnitResult | None, str]:
        limits = ctx.limits
        if ctx.scan_member is None:
            return None, " (no member scanner: not inspected)"
        if ctx.depth >= limits.max_archive_depth:
            return None, " (nesting limit reached: not inspected)"
        length = min(end - start, limits.max_safetensors_hidden_bytes)
        name = f"hidden@{start}"
        part = ctx.scan_member(name, SliceReader(reader, start, length), ctx.child())
        part.findings = [f.within(name, start) for f in part.findings]
        note = f"; read as {kind} and scanned"
        if length < end - start:
            part.findings.append(finding("FMT005", self.id,
                                         f"only the first {length} of {end - start} hidden bytes were scanned",
                                         offset=start, limit=limits.max_safetensors_hidden_bytes))
        if part.error and not part.findings:
            note += f" ({shown(part.error)})"
        return part, note

