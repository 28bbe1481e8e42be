"""GGUF (llama.cpp) files, and the legacy GGML/GGMF/GGJT/GGLA/GGSA files before it.

A GGUF file is a header (magic, version, tensor count, metadata count), typed metadata
key/value pairs, one record per tensor (name, dimensions, type, offset) and, after padding to
`general.alignment`, the tensor data. Nothing in the format runs code, with one exception:
`tokenizer.chat_template` (and the named `tokenizer.chat_template.<name>` templates) is a
Jinja template that servers render, which is how CVE-2024-34359 ran commands. Those templates
are analysed statically by `templates.py`.

The rest is parser robustness: every count and length is checked against the limits and the
bytes left before anything is read or skipped, so a file declaring 2**63 tensors or a 2**40-byte
string gives a finding, not an allocation. Tensor data is never read; its extent is checked
against the file and the other tensors. Long metadata strings are peeked at for embedded
pickles, archives and executables, which are then scanned as members.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from shardscan.limits import Limits
from shardscan.model import Finding, Unit, UnitResult
from shardscan.scanners import detect as fmt
from shardscan.scanners import indicators
from shardscan.scanners.base import FormatError, ScanContext, Scanner, ScanTimeout, finding, rebase, unit_view
from shardscan.scanners.templates import analyse as analyse_template
from shardscan.storage.reader import RangeReader, ReaderStream, SliceReader
from shardscan.weights.spans import SPANS, TensorSpan, float_span, skipped

MAGIC = b"GGUF"
VERSIONS = (1, 2, 3)
#: Value type id -> (name, struct code or None for string/array). From gguf.h `gguf_type`.
VALUE_TYPES: dict[int, tuple[str, str | None]] = {
    0: ("uint8", "B"),
    1: ("int8", "b"),
    2: ("uint16", "H"),
    3: ("int16", "h"),
    4: ("uint32", "I"),
    5: ("int32", "i"),
    6: ("float32", "f"),
    7: ("bool", "B"),
    8: ("string", None),
    9: ("array", None),
    10: ("uint64", "Q"),
    11: ("int64", "q"),
    12: ("float64", "d"),
}
STRING, ARRAY = 8, 9
INTEGER_TYPES = frozenset({0, 1, 2, 3, 4, 5, 10, 11})
#: ggml tensor type id -> (name, elements per block, bytes per block). From ggml.h `ggml_type`
#: and gguf-py's GGML_QUANT_SIZES; ids 4, 5 (Q4_2, Q4_3) were removed before GGUF existed.
TENSOR_TYPES: dict[int, tuple[str, int, int]] = {
    0: ("F32", 1, 4),
    1: ("F16", 1, 2),
    2: ("Q4_0", 32, 18),
    3: ("Q4_1", 32, 20),
    6: ("Q5_0", 32, 22),
    7: ("Q5_1", 32, 24),
    8: ("Q8_0", 32, 34),
    9: ("Q8_1", 32, 40),
    10: ("Q2_K", 256, 84),
    11: ("Q3_K", 256, 110),
    12: ("Q4_K", 256, 144),
    13: ("Q5_K", 256, 176),
    14: ("Q6_K", 256, 210),
    15: ("Q8_K", 256, 292),
    16: ("IQ2_XXS", 256, 66),
    17: ("IQ2_XS", 256, 74),
    18: ("IQ3_XXS", 256, 98),
    19: ("IQ1_S", 256, 50),
    20: ("IQ4_NL", 32, 18),
    21: ("IQ3_S", 256, 110),
    22: ("IQ2_S", 256, 82),
    23: ("IQ4_XS", 256, 136),
    24: ("I8", 1, 1),
    25: ("I16", 1, 2),
    26: ("I32", 1, 4),
    27: ("I64", 1, 8),
    28: ("F64", 1, 8),
    29: ("IQ1_M", 256, 56),
    30: ("BF16", 1, 2),
    31: ("Q4_0_4_4", 32, 18),   # removed from ggml in 2024 (repacked at load); files remain
    32: ("Q4_0_4_8", 32, 18),
    33: ("Q4_0_8_8", 32, 18),
    34: ("TQ1_0", 256, 54),
    35: ("TQ2_0", 256, 66),
    36: ("IQ4_NL_4_4", 32, 18),  # removed likewise
    37: ("IQ4_NL_4_8", 32, 18),
    38: ("IQ4_NL_8_8", 32, 18),
    39: ("MXFP4", 32, 17),
    40: ("NVFP4", 64, 36),
    41: ("Q1_0", 128, 18),
}
#: GGML_MAX_DIMS: ggml tensors have at most four dimensions.
MAX_DIMS = 4
#: GGML_MAX_NAME: llama.cpp refuses tensor names of this many bytes or more.
MAX_TENSOR_NAME = 64
DEFAULT_ALIGNMENT = 32
INT64_MAX = 2**63 - 1
TEMPLATE_KEY = "tokenizer.chat_template"
#: Strings at least this long are peeked at for embedded binaries; tokens and names are shorter.
EMBED_MIN_BYTES = 256
#: Bytes of a string's head handed to format detection.
EMBED_PEEK = 4096
#: Formats that have no business inside a metadata string.
EMBEDDED_FORMATS = frozenset({fmt.PICKLE, fmt.ZIP, fmt.SEVENZ, fmt.GZIP, fmt.BZIP2, fmt.XZ, fmt.ZSTD,
                              fmt.LZ4, fmt.NPY, fmt.GGUF, fmt.GGML, fmt.TAR, *fmt.EXECUTABLES})
#: Findings of one rule per file beyond which only a count is reported.
MAX_FINDINGS_PER_RULE = 20
#: Loop iterations between deadline checks.
DEADLINE_EVERY = 4096


class Truncated(FormatError):
    """The bytes end before a field that the header promises."""


@dataclass(slots=True)
class TensorInfo:
    name: str
    dims: tuple[int, ...]
    type_id: int
    offset: int
    nbytes: int | None
    record_offset: int


@dataclass(slots=True)
class _Gguf:
    reader: RangeReader
    ctx: ScanContext
    scanner_id: str
    endian: str = "<"
    version: int = 3
    findings: list[Finding] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    formats: list[str] = field(default_factory=list)
    #: Where each tensor's bytes are, for the weight analysis.
    spans: list[TensorSpan] = field(default_factory=list)
    alignment: int = DEFAULT_ALIGNMENT
    keys: set[str] = field(default_factory=set)
    stream: ReaderStream = field(init=False)

    def __post_init__(self) -> None:
        self.stream = ReaderStream(self.reader, 0, self.reader.size, self.ctx.limits.stream_chunk)

    @property
    def limits(self) -> Limits:
        return self.ctx.limits

    def note(self, rule_id: str, message: str, offset: int | None = None, **evidence: object) -> None:
        self.counts[rule_id] = self.counts.get(rule_id, 0) + 1
        if self.counts[rule_id] <= MAX_FINDINGS_PER_RULE:
            self.findings.append(finding(rule_id, self.scanner_id, message, offset=offset, **evidence))

    def summarise(self) -> None:
        for rule_id, count in self.counts.items():
            if count > MAX_FINDINGS_PER_RULE:
                self.findings.append(finding(rule_id, self.scanner_id,
                                             f"{count - MAX_FINDINGS_PER_RULE} more {rule_id} findings "
                                             "not listed", count=count))

    # --- primitive reads ------------------------------------------------------------------------

    def unpack(self, code: str) -> int | float:
        size = struct.calcsize(code)
        at = self.stream.tell()
        data = self.stream.read(size)
        if len(data) < size:
            raise Truncated("file ends inside a field", at)
        return struct.unpack(self.endian + code, data)[0]

    def count(self) -> int:
        """A count or length: uint32 in version 1, uint64 after."""
        return int(self.unpack("I" if self.version == 1 else "Q"))

    def string_length(self, what: str, bound: int) -> tuple[int, int]:
        """(offset of the bytes, length) of a string, checked against `bound` and the file."""
        at = self.stream.tell()
        length = self.count()
        start = self.stream.tell()
        if length > bound:
            raise _Limit(f"{what} declares {length} bytes, over the {bound}-byte limit", at, length)
        if length > self.stream.remaining():
            raise Truncated(f"{what} declares {length} bytes, only {self.stream.remaining()} remain", at)
        return start, length

    def text(self, what: str, bound: int) -> tuple[str, int]:
        start, length = self.string_length(what, bound)
        raw = self.stream.read(length)
        try:
            return raw.decode("utf-8"), start
        except UnicodeDecodeError as exc:
            self.note("GGF101", f"{what} is not valid UTF-8", start + exc.start)
            return raw.decode("utf-8", "replace"), start

    # --- header and metadata ----------------------------------------------------------------------

    def parse(self) -> None:
        head = self.reader.read(0, 8)
        if len(head) < 8:
            raise Truncated("file ends inside the header", 0)
        (version,) = struct.unpack_from("<I", head, 4)
        if version not in VERSIONS:
            (swapped,) = struct.unpack_from(">I", head, 4)
            if swapped in VERSIONS and swapped >= 3:
                self.endian, version = ">", swapped  # big-endian files exist from version 3
            else:
                raise FormatError(f"unsupported GGUF version {version}", 4)
        self.version = version
        self.stream.seek(8)
        n_tensors, n_kv = self.count(), self.count()
        left = self.stream.remaining()
        # Smallest records: a kv is an empty key, a type and one byte; a tensor info an empty
        # name, n_dims, type and offset (8-byte lengths from version 2).
        width = 4 if version == 1 else 8
        min_kv, min_tensor = width + 4 + 1, width + 4 + 4 + 8
        if n_kv > self.limits.max_gguf_kv or n_kv * min_kv > left:
            raise _Limit(f"header declares {n_kv} metadata pairs (limit {self.limits.max_gguf_kv}, "
                         f"{left} bytes left)", 16 if version > 1 else 12, n_kv)
        if n_tensors > self.limits.max_gguf_tensors or n_tensors * min_tensor > left:
            raise _Limit(f"header declares {n_tensors} tensors (limit {self.limits.max_gguf_tensors}, "
                         f"{left} bytes left)", 8, n_tensors)
        for i in range(n_kv):
            if i % DEADLINE_EVERY == 0:
                self.ctx.check_deadline()
            self.key_value()
        tensors = self.tensor_infos(n_tensors)
        self.check_data(tensors)

    def key_value(self) -> None:
        key, key_offset = self.text("metadata key", self.limits.max_gguf_key)
        if key in self.keys:
            self.note("GGF106", f"metadata key {key!r} appears twice", key_offset, key=key)
        self.keys.add(key)
        type_at = self.stream.tell()
        type_id = int(self.unpack("I"))
        if type_id not in VALUE_TYPES:
            raise FormatError(f"metadata {key!r} has unknown value type {type_id}", type_at)
        if key == "general.alignment":
            self.read_alignment(key, type_id, type_at)
        elif type_id == STRING and (key == TEMPLATE_KEY or key.startswith(TEMPLATE_KEY + ".")):
            self.read_template(key)
        else:
            self.value(key, type_id, depth=0, budget=[self.limits.max_gguf_array_items])

    def value(self, key: str, type_id: int, depth: int, budget: list[int]) -> None:
        """Skip over one value, checking its lengths (arrays recursively)."""
        if type_id == STRING:
            start, length = self.string_length(f"metadata {key!r} string", self.limits.max_gguf_string)
            if length >= EMBED_MIN_BYTES:
                self.peek_embedded(key, start, length)
            if depth == 0 and self.limits.min_secret_text <= length <= self.limits.max_secret_text:
                self.secrets(key, self.stream.read(length).decode("utf-8", "replace"), start)
            else:
                self.stream.skip(length)
            return
        if type_id != ARRAY:
            code = VALUE_TYPES[type_id][1]
            assert code is not None
            size = struct.calcsize(code)
            if self.stream.skip(size) < size:
                raise Truncated(f"file ends inside metadata {key!r}", self.stream.tell())
            return
        if depth >= self.limits.max_gguf_array_depth:
            raise _Limit(f"metadata {key!r} nests arrays deeper than {self.limits.max_gguf_array_depth}",
                         self.stream.tell(), depth)
        type_at = self.stream.tell()
        item_type = int(self.unpack("I"))
        if item_type not in VALUE_TYPES:
            raise FormatError(f"metadata {key!r} array has unknown item type {item_type}", type_at)
        count_at = self.stream.tell()
        n = self.count()
        budget[0] -= n
        if budget[0] < 0:
            raise _Limit(f"metadata {key!r} array declares {n} items, over the "
                         f"{self.limits.max_gguf_array_items}-item limit", count_at, n)
        code = VALUE_TYPES[item_type][1]
        min_item = struct.calcsize(code) if code else (4 if self.version == 1 else 8) + (4 if item_type == ARRAY else 0)
        if n * min_item > self.stream.remaining():
            raise Truncated(f"metadata {key!r} array of {n} {VALUE_TYPES[item_type][0]} items runs past "
                            "the end of the file", count_at)
        if code:
            self.stream.skip(n * min_item)
            return
        for i in range(n):
            if i % DEADLINE_EVERY == 0:
                self.ctx.check_deadline()
            self.value(key, item_type, depth + 1, budget)

    def read_alignment(self, key: str, type_id: int, type_at: int) -> None:
        if type_id not in INTEGER_TYPES:
            self.note("GGF105", f"general.alignment has type {VALUE_TYPES[type_id][0]}, not uint32", type_at,
                      type=VALUE_TYPES[type_id][0])
            self.value(key, type_id, depth=0, budget=[self.limits.max_gguf_array_items])
            return
        at = self.stream.tell()
        code = VALUE_TYPES[type_id][1]
        assert code is not None
        value = int(self.unpack(code))
        if value <= 0 or value & (value - 1):
            self.note("GGF105", f"general.alignment is {value}, not a power of two", at, alignment=value)
            return
        if type_id != 4:
            self.note("GGF105", f"general.alignment has type {VALUE_TYPES[type_id][0]}, not uint32", type_at,
                      type=VALUE_TYPES[type_id][0])
        self.alignment = value

    def read_template(self, key: str) -> None:
        start, length = self.string_length(f"metadata {key!r} string", self.limits.max_gguf_string)
        # A template longer than the analysis bound is read only as far as the bound (in UTF-8
        # at most four bytes a character); the analyser reports the rest as not inspected.
        want = min(length, self.limits.max_template_chars * 4)
        raw = self.stream.read(want)
        self.stream.skip(length - want)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            if want == length or exc.start < want - 3:
                self.note("GGF101", f"metadata {key!r} is not valid UTF-8", start + exc.start, key=key)
            text = raw.decode("utf-8", "replace")
        if length > want:
            self.findings.append(finding("TPL104", self.scanner_id,
                                         f"metadata {key!r}: template of {length} bytes exceeds the "
                                         f"{self.limits.max_template_chars}-character bound; only the start "
                                         "was analysed", offset=start, bytes=length))
        self.findings += analyse_template(text, scanner_id=self.scanner_id, offset=start,
                                          limits=self.limits, source=f"metadata {key!r}")

    def secrets(self, key: str, value: str, start: int) -> None:
        """A top-level string value: arrays (token vocabularies) are not searched."""
        for secret in indicators.secrets_in(value, key):
            name = indicators.shown(key)
            self.note(indicators.SECRET_RULE, indicators.secret_message(f"metadata {name!r}", secret), start,
                      key=name, kind=secret.kind, length=secret.length)

    def peek_embedded(self, key: str, start: int, length: int) -> None:
        head = self.reader.read(start, min(length, EMBED_PEEK))
        detection = fmt.detect(head, "", length)
        if detection.format not in EMBEDDED_FORMATS:
            return
        self.note("GGF107", f"metadata {key!r} holds {detection.format} content ({length} bytes)", start,
                  key=key, format=detection.format)
        if self.ctx.scan_member is None or self.ctx.depth >= self.limits.max_archive_depth:
            self.note("FMT005", f"content embedded in metadata {key!r} was not scanned", start, key=key)
            return
        part = self.ctx.scan_member(key, SliceReader(self.reader, start, length), self.ctx.child())
        self.findings += [f.within(key, start) for f in part.findings]
        self.formats += [f for f in part.formats if f not in self.formats]

    # --- tensors ---------------------------------------------------------------------------------

    def tensor_infos(self, n_tensors: int) -> list[TensorInfo]:
        tensors: list[TensorInfo] = []
        names: set[str] = set()
        dim_code = "I" if self.version == 1 else "Q"
        for i in range(n_tensors):
            if i % DEADLINE_EVERY == 0:
                self.ctx.check_deadline()
            record = self.stream.tell()
            name, name_at = self.text("tensor name", self.limits.max_gguf_key)
            if len(name.encode("utf-8", "replace")) >= MAX_TENSOR_NAME:
                self.note("GGF103", f"tensor name of {len(name)} characters: llama.cpp refuses names of "
                          f"{MAX_TENSOR_NAME} bytes or more", name_at, tensor=name[:80])
            if name in names:
                self.note("GGF106", f"tensor {name!r} appears twice", record, tensor=name)
            names.add(name)
            dims_at = self.stream.tell()
            n_dims = int(self.unpack("I"))
            if n_dims > MAX_DIMS:
                raise _Invalid(f"tensor {name!r} has {n_dims} dimensions, ggml allows {MAX_DIMS}", dims_at)
            dims = tuple(int(self.unpack(dim_code)) for _ in range(n_dims))
            type_at = self.stream.tell()
            type_id = int(self.unpack("I"))
            offset = int(self.unpack("Q"))
            nbytes = self.tensor_size(name, dims, type_id, record, type_at)
            if offset % self.alignment:
                self.note("GGF103", f"tensor {name!r} offset {offset} is not a multiple of the alignment "
                          f"{self.alignment}", record, tensor=name, tensor_offset=offset)
            tensors.append(TensorInfo(name, dims, type_id, offset, nbytes, record))
        return tensors

    def tensor_size(self, name: str, dims: tuple[int, ...], type_id: int, record: int, type_at: int) -> int | None:
        if type_id not in TENSOR_TYPES:
            self.note("GGF103", f"tensor {name!r} has unknown type {type_id}", type_at, tensor=name, type=type_id)
            return None
        type_name, block, block_bytes = TENSOR_TYPES[type_id]
        elements = 1
        for d in dims:
            elements *= d
        if any(d > INT64_MAX for d in dims) or elements > INT64_MAX:
            self.note("GGF103", f"tensor {name!r} dimensions {list(dims)} overflow 64-bit element counts",
                      record, tensor=name)
            return None
        if dims and dims[0] % block:
            self.note("GGF103", f"tensor {name!r} row of {dims[0]} elements is not whole {type_name} blocks "
                      f"of {block}", record, tensor=name)
        return -(-elements // block) * block_bytes

    def check_data(self, tensors: list[TensorInfo]) -> None:
        if not tensors:
            return
        info_end = self.stream.tell()
        data_start = -(-info_end // self.alignment) * self.alignment
        size = self.reader.size
        spans = sorted((t for t in tensors if t.nbytes is not None), key=lambda t: (t.offset, t.nbytes))
        for t in spans:
            assert t.nbytes is not None
            end = data_start + t.offset + t.nbytes
            if end > size:
                self.note("GGF104", f"tensor {t.name!r} data [{data_start + t.offset}, {end}) runs past the end "
                          f"of the file ({size} bytes)", t.record_offset, tensor=t.name, end=end, size=size)
        self.spans = [_span_of(t, data_start + t.offset, self.endian == ">")
                      for t in spans if data_start + t.offset + t.nbytes <= size]
        reach: TensorInfo | None = None  # the tensor reaching furthest so far
        for t in spans:
            assert t.nbytes is not None
            if reach is not None and reach.nbytes is not None and t.offset < reach.offset + reach.nbytes:
                self.note("GGF104", f"tensors {reach.name!r} and {t.name!r} overlap in the data section",
                          t.record_offset, tensor=t.name, other=reach.name)
            if reach is None or reach.nbytes is None or t.offset + t.nbytes > reach.offset + reach.nbytes:
                reach = t


def _span_of(t: TensorInfo, start: int, big_endian: bool) -> TensorSpan:
    """ggml lists dimensions innermost first: a matrix of ne0 inputs and ne1 outputs is
    (ne1, ne0) in row-major order, outputs on axis 0. Quantised types are not dequantised."""
    assert t.nbytes is not None
    shape = tuple(reversed(t.dims))
    dtype = TENSOR_TYPES[t.type_id][0]
    if big_endian:
        return skipped(t.name, dtype, shape, start, t.nbytes, "big-endian")
    return float_span(t.name, dtype, shape, start, t.nbytes, 0 if len(shape) >= 2 else None,
                      other="integer" if dtype.startswith("I") else "quantised")


class _Limit(FormatError):
    """A declared count or length beyond the limits (GGF102)."""

    def __init__(self, reason: str, offset: int, declared: int) -> None:
        super().__init__(reason, offset)
        self.declared = declared


class _Invalid(FormatError):
    """A tensor record that cannot be walked past (GGF103)."""


# --- legacy GGML family -----------------------------------------------------------------------------

#: magic (as read little-endian) -> (name, versions accepted or None for unversioned, layout).
LEGACY: dict[bytes, tuple[str, tuple[int, ...] | None, str]] = {
    b"lmgg": ("ggml", None, "llama"),         # llama.cpp before May 2023, no version field
    b"fmgg": ("ggmf", (1,), "llama"),         # versioned, vocabulary with scores
    b"tjgg": ("ggjt", (1, 2, 3), "llama"),    # mmap-able, tensors aligned to 32 bytes
    b"algg": ("ggla", (1,), "lora"),          # LoRA adapters: rank and alpha
    b"asgg": ("ggsa", (1, 2, 3), "session"),  # saved sessions (KV cache), not models
}
#: The seven int32 llama hparams after the magic (and version): bounds well above any model.
LLAMA_HPARAMS: tuple[tuple[str, int], ...] = (
    ("n_vocab", 1 << 22), ("n_embd", 1 << 17), ("n_mult", 1 << 17), ("n_head", 1 << 12),
    ("n_layer", 1 << 12), ("n_rot", 1 << 17), ("ftype", 1 << 10),
)
#: Longest vocabulary entry in a legacy file (llama's are a few dozen bytes).
MAX_LEGACY_TOKEN = 1 << 16


def scan_legacy(reader: RangeReader, ctx: ScanContext, scanner_id: str) -> list[Finding]:
    head = reader.read(0, 64)
    name, versions, layout = LEGACY[head[:4]]
    pos = 4
    out: list[Finding] = []

    def corrupt(reason: str, offset: int) -> list[Finding]:
        return [*out, finding("GGF101", scanner_id, f"legacy {name} file is corrupt: {reason}", offset=offset)]

    version = None
    if versions is not None:
        if len(head) < 8:
            return corrupt("file ends inside the header", 0)
        (version,) = struct.unpack_from("<I", head, 4)
        pos = 8
        if version not in versions:
            return corrupt(f"unknown {name} version {version}", 4)
    walked = "header"
    if layout == "llama":
        if len(head) < pos + 28:
            return corrupt("file ends inside the hyperparameters", pos)
        values = struct.unpack_from("<7i", head, pos)
        for (field_name, bound), value in zip(LLAMA_HPARAMS, values, strict=True):
            if not 0 <= value <= bound or (value == 0 and field_name in ("n_vocab", "n_embd", "n_head", "n_layer")):
                return corrupt(f"{field_name} = {value} is not plausible", pos)
        n_vocab = values[0]
        if values[1] % values[3]:
            return corrupt(f"n_embd {values[1]} is not a multiple of n_head {values[3]}", pos)
        pos += 28
        stream = ReaderStream(reader, pos, reader.size, ctx.limits.stream_chunk)
        scored = name != "ggml"
        for i in range(n_vocab):
            if i % DEADLINE_EVERY == 0:
                ctx.check_deadline()
            at = stream.tell()
            raw = stream.read(4)
            if len(raw) < 4:
                return corrupt(f"vocabulary ends at entry {i} of {n_vocab}", at)
            (length,) = struct.unpack("<I", raw)
            if length > MAX_LEGACY_TOKEN:
                return [*out, finding("GGF102", scanner_id, f"legacy {name} vocabulary entry {i} declares "
                                      f"{length} bytes", offset=at, declared=length)]
            need = length + (4 if scored else 0)
            if stream.skip(need) < need:
                return corrupt(f"vocabulary entry {i} runs past the end of the file", at)
        walked = "header and vocabulary"
    elif layout == "lora":
        if len(head) < pos + 8:
            return corrupt("file ends inside the LoRA parameters", pos)
        rank, alpha = struct.unpack_from("<ii", head, pos)
        if not 0 < rank <= 1 << 16 or alpha < 0:
            return corrupt(f"LoRA rank {rank} / alpha {alpha} are not plausible", pos)
    label = f"{name} v{version}" if version is not None else name
    out.append(finding("GGF001", scanner_id, f"legacy {label} file ({layout}): {walked} checked, tensor "
                       "records not walked", offset=0, format=name, version=version))
    return out


class GgufScanner(Scanner):
    id = "gguf"
    description = "GGUF and legacy GGML files: header bounds, tensor extents, chat-template injection"

    def scan(self, unit: Unit, reader: RangeReader, ctx: ScanContext) -> UnitResult:
        view = unit_view(unit, reader)
        head = view.read(0, 4)
        if head in LEGACY:
            return UnitResult(scan_legacy(view, ctx, self.id))
        if head != MAGIC:
            return UnitResult(error="not a GGUF file: no GGUF magic")
        parser = _Gguf(view, ctx, self.id)
        timed_out = False
        try:
            parser.parse()
        except ScanTimeout:
            timed_out = True
        except _Limit as exc:
            parser.note("GGF102", f"GGUF {exc.reason}; the rest was not inspected", exc.offset,
                        declared=exc.declared)
        except _Invalid as exc:
            parser.note("GGF103", f"GGUF {exc.reason}; the rest was not inspected", exc.offset)
        except FormatError as exc:
            parser.note("GGF101", f"GGUF {exc.reason}; the rest was not inspected", exc.offset)
        parser.summarise()
        result = UnitResult(rebase(parser.findings, unit.start), formats=parser.formats)
        result.partials[SPANS] = parser.spans
        if timed_out:
            result.error = "timed out"
        return result
