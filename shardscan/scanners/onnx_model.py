"""ONNX models (`ModelProto`), read as protobuf wire format and never loaded (THREATS.md 4.6).

ONNX has no code of its own, but loading a model can still reach outside it:

- a node whose operator domain is not built into the runtime needs a custom-op library
  (native code the user registers) to load at all (O4): ONX101; ops that dispatch to Python
  (onnxruntime's `PyOp`, which names a module and function to import, TensorFlow-style
  `PyFunc`, ORT training's `PythonOp`) run Python chosen by the file: ONX102;
- a tensor stored as external data names a file by path; `..`, absolute paths and symlinks
  read (and on re-save overwrite) files outside the model directory (O1, O2): ONX103, with
  the entries' keys and numbers checked too (O5): ONX106. For a local model the files are
  checked next to it (existence, size, symlinks: ONX104); for a remote one or an archive member
  the locations are only listed (ONX105);
- free text (doc strings, metadata_props) is searched for code and URLs (ONX107-108,
  heuristic) and for secrets (BIN002, the rule every format shares); URLs and secrets are those
  of `scanners.indicators`, and secrets are masked in the evidence.

Standard domains, needing no extra library: "" and "ai.onnx" (the ONNX operator set),
"ai.onnx.ml", "ai.onnx.training", "ai.onnx.preview.training", and the contrib domains built into
onnxruntime itself ("com.microsoft", "com.microsoft.nchwc", "com.microsoft.experimental",
"com.ms.internal.nhwc"). Functions defined in the model (`ModelProto.functions`, as onnxscript
and the dynamo exporter write) are not custom operators. "ai.onnx.contrib" (onnxruntime-
extensions) is custom: its ops are a native library, or Python functions registered by the
loading process, whose bodies are not in the file; only the `Py*` names its examples use are
taken as Python.

Field numbers are those of onnx.proto (onnx 1.23). Tensor data (`raw_data` and the typed
fields), value_info and types are skipped without being read; where each tensor's bytes are
(in the model, or in its external file next to a local model) is handed to the weight
analysis as `weights.spans.TensorSpan`s, with the output axis of the weights MatMul and Gemm
consume. Every walk is bounded by the
ONNX limits (nodes, graph nesting, message nesting, fields, string size): a model beyond one
is reported (ONX110), bytes that are not protobuf too (ONX111), with what was found before.
"""

from __future__ import annotations

import math
import os
import re
import stat
from dataclasses import dataclass, field, replace

from shardscan.model import Finding, Unit, UnitResult
from shardscan.scanners import indicators
from shardscan.scanners.archive_paths import path_escape
from shardscan.scanners.base import ScanContext, Scanner, ScanTimeout, finding, unit_view
from shardscan.scanners.protobuf import I32, I64, LEN, VARINT, Field, ProtoError, ProtoLimit, WireReader, signed64
from shardscan.storage.reader import LocalReader, RangeReader
from shardscan.weights.spans import ITEM_SIZES, SPANS, SpanList, TensorSpan, skipped

STANDARD_DOMAINS = frozenset({
    "", "ai.onnx", "ai.onnx.ml", "ai.onnx.training", "ai.onnx.preview.training",
    "com.microsoft", "com.microsoft.nchwc", "com.microsoft.experimental", "com.ms.internal.nhwc",
})
#: Op types that call into Python, in any domain.
PYTHON_OPS = frozenset({"PyOp", "PyFunc", "PyFuncStateless", "EagerPyFunc", "PythonOp", "PythonOpGrad"})
CONTRIB_DOMAIN = "ai.onnx.contrib"
_CONTRIB_PYTHON = re.compile(r"^Py[A-Z_]")
#: Attributes of onnxruntime's PyOp (and ORT training's PythonOp) that name what Python runs.
PYTHON_ATTRS = frozenset({"module", "class_name", "compute", "func_name", "input_types", "output_types"})
EXTERNAL_KEYS = frozenset({"location", "offset", "length", "checksum"})
EXTERNAL = 1  # TensorProto.DataLocation.EXTERNAL

#: Short attribute strings kept for the evidence of a Python op; distinct ops and external
#: locations tracked; findings of one heuristic kind before the rest are only counted.
MAX_ATTR_TEXT = 4096
MAX_TRACKED = 10_000
MAX_LISTED = 10

# Field numbers (onnx.proto).
M_IR_VERSION, M_PRODUCER, M_PRODUCER_VERSION, M_DOC, M_GRAPH, M_OPSET = 1, 2, 3, 6, 7, 8
M_METADATA, M_TRAINING, M_FUNCTIONS = 14, 20, 25
G_NODE, G_INITIALIZER, G_DOC, G_SPARSE_INITIALIZER, G_METADATA = 1, 5, 10, 15, 16
N_NAME, N_OP_TYPE, N_ATTRIBUTE, N_DOC, N_DOMAIN, N_METADATA = 3, 4, 5, 6, 7, 9
A_NAME, A_S, A_T, A_G, A_TENSORS, A_GRAPHS, A_DOC, A_SPARSE, A_SPARSES = 1, 4, 5, 6, 10, 11, 13, 22, 23
T_NAME, T_DOC, T_EXTERNAL, T_LOCATION, T_METADATA = 8, 12, 13, 14, 16
T_DIMS, T_DATA_TYPE, T_FLOAT_DATA, T_RAW_DATA, T_DOUBLE_DATA = 1, 2, 4, 9, 10
#: Typed data fields holding varints (int32_data, int64_data, uint64_data) or strings (string_data).
T_OTHER_DATA = frozenset({5, 6, 7, 11})
N_INPUT, A_I = 1, 3
S_VALUES, S_INDICES = 1, 2
F_NAME, F_ATTRIBUTE_PROTO, F_NODE, F_DOC, F_DOMAIN, F_METADATA = 1, 11, 7, 8, 10, 14
TI_INITIALIZATION, TI_ALGORITHM = 1, 2
KV_KEY, KV_VALUE = 1, 2
OPSET_DOMAIN = 1

# --- tensor spans for the weight analysis -------------------------------------------------------

#: TensorProto.DataType -> (dtype name for the weight analysis, why it is skipped; "" = analysed).
ONNX_DTYPES: dict[int, tuple[str, str]] = {
    1: ("F32", ""), 2: ("U8", "integer"), 3: ("I8", "integer"), 4: ("U16", "integer"), 5: ("I16", "integer"),
    6: ("I32", "integer"), 7: ("I64", "integer"), 8: ("STRING", "string"), 9: ("BOOL", "boolean"),
    10: ("F16", ""), 11: ("F64", ""), 12: ("U32", "integer"), 13: ("U64", "integer"), 14: ("C64", "complex"),
    15: ("C128", "complex"), 16: ("BF16", ""), 17: ("F8_E4M3", "fp8"), 18: ("F8_E4M3FNUZ", "fp8"),
    19: ("F8_E5M2", "fp8"), 20: ("F8_E5M2FNUZ", "fp8"), 21: ("U4", "integer"), 22: ("I4", "integer"),
    23: ("F4_E2M1", "fp4"), 24: ("F8_E8M0", "fp8"),
}
#: Packed typed fields whose payload is little-endian IEEE data: field -> item size.
PACKED_FLOATS = {T_FLOAT_DATA: 4, T_DOUBLE_DATA: 8}
#: Dimensions kept per tensor: NumPy's maximum rank; a longer shape is recorded as invalid.
MAX_TENSOR_RANK = 64
#: Standard ops whose input 1 is a weight with a known output axis (MatMul B is (..., in, out),
#: Gemm B is (in, out), or (out, in) with transB=1).
WEIGHT_OPS = frozenset({"MatMul", "Gemm"})
ONNX_DOMAINS = frozenset({"", "ai.onnx"})
#: A tensor consumed by ops that disagree about its output axis.
AMBIGUOUS = "ambiguous"

# --- free-text heuristics ------------------------------------------------------------------------

_CODE = [(label, re.compile(rx)) for label, rx in (
    ("python import", r"__import__\s*\(|\bimport\s+(?:os|sys|subprocess|socket|shutil|ctypes|pty|pickle|marshal"
                      r"|base64|urllib|requests|importlib)\b|\bfrom\s+(?:os|subprocess|socket|ctypes|pty|importlib)"
                      r"\s+import\b"),
    ("process call", r"\bos\.(?:system|popen|exec[lv]p?e?|spawn[lv]p?e?|fork)\s*\(|\bsubprocess\.[a-z_]+\s*\("),
    ("eval/exec", r"(?<![\w.])(?:eval|exec|compile)\s*\(\s*[\"'a-zA-Z_]"),
    ("deserialisation", r"\b(?:pickle|marshal|dill|cloudpickle)\.loads?\s*\(|\bbase64\.b64decode\s*\("),
    ("shell download", r"\b(?:curl|wget)\s+[^\n|;]{0,200}\|\s*(?:ba|z|da)?sh\b|\b(?:ba)?sh\s+-c\s+[\"']"),
    ("powershell", r"(?i)\bpowershell(?:\.exe)?\s+-(?:e|enc|encodedcommand|c|command)\b"),
    ("script tag", r"(?i)<script\b"),
    ("template injection", r"__subclasses__\s*\(|__globals__|__builtins__|\{\{[^}]{0,200}__class__"),
)]
#: Cheap screens run first: text matching none of them cannot match the patterns they guard.
_CODE_SCREEN = re.compile(r"(?i)import|eval|exec|compile|os\.|subprocess|pickle|marshal|dill|base64|curl|wget|sh\s+-c"
                          r"|powershell|<script|__")


def _onnx_display(secret: indicators.Secret) -> str:
    return f"{secret.prefix}…[masked]"


def mask(text: str) -> str:
    """`text` with anything credential-like (`indicators.find_secrets`) cut to its public prefix."""
    return indicators.mask(text, _onnx_display)


def excerpt(text: str, start: int, end: int, width: int = 60) -> str:
    a, b = max(0, start - width), min(len(text), end + width)
    snippet = ("…" if a else "") + text[a:b] + ("…" if b < len(text) else "")
    return mask(snippet.replace("\n", "\\n").replace("\r", "\\r"))


def text_hits(text: str) -> list[tuple[str, str, str]]:
    """(rule, kind, masked sample) for each heuristic that matches `text`."""
    hits: list[tuple[str, str, str]] = []
    if _CODE_SCREEN.search(text):
        for label, rx in _CODE:
            m = rx.search(text)
            if m:
                hits.append(("ONX107", label, excerpt(text, m.start(), m.end())))
    if "://" in text:
        m = indicators.URL.search(text[:1 << 20])
        if m:
            hits.append(("ONX108", "url", mask(m.group(0))[:200]))
    kinds: set[str] = set()
    for secret in indicators.find_secrets(text):
        if secret.kind not in kinds:
            kinds.add(secret.kind)
            hits.append((indicators.SECRET_RULE, secret.kind, secret.masked))
    return hits


# --- the walk ------------------------------------------------------------------------------------


@dataclass
class _OpUse:
    count: int
    offset: int
    node: str
    attrs: dict[str, str] = field(default_factory=dict)


@dataclass
class _External:
    tensors: int = 0
    first_tensor: str = ""
    offset: int = 0
    problems: list[tuple[str, str, int]] = field(default_factory=list)


@dataclass
class _Entries:
    """A tensor's external_data entries: the known keys (the last of each wins, as onnx's
    setattr loop does) and what is wrong with the rest."""

    info: dict[str, str] = field(default_factory=dict)
    unknown: list[str] = field(default_factory=list)
    unknown_count: int = 0
    repeated: set[str] = field(default_factory=set)
    count: int = 0

    def add(self, key: str, value: str) -> None:
        self.count += 1
        if key not in EXTERNAL_KEYS:
            self.unknown_count += 1
            if len(self.unknown) < 3:
                self.unknown.append(key)
            return
        if key in self.info:
            self.repeated.add(key)
        self.info[key] = value


@dataclass
class _Tensor:
    """What a TensorProto says about where its data is: collected while walking, read never."""

    name: str = ""
    dims: list[int] = field(default_factory=list)
    bad_dims: bool = False
    data_type: int = 0
    location: int = 0
    entries: _Entries = field(default_factory=_Entries)
    raw: tuple[int, int] | None = None
    #: (offset, length, item size) of each packed float_data/double_data field.
    packed: list[tuple[int, int, int]] = field(default_factory=list)
    unpacked: int = 0
    other_data: bool = False

    @property
    def elements(self) -> int:
        return math.prod(self.dims)

    def data(self, g: Field) -> None:
        """Note where a data field's bytes are (raw_data, packed or unpacked floats, varints)."""
        n = g.number
        if n == T_RAW_DATA and g.wire_type == LEN:
            self.raw = (g.offset, g.length)
        elif n in PACKED_FLOATS and g.wire_type == LEN:
            self.packed.append((g.offset, g.length, PACKED_FLOATS[n]))
        elif n in PACKED_FLOATS and g.wire_type in (I32, I64):
            self.unpacked += 1
        elif n in T_OTHER_DATA:
            self.other_data = True

    def add_dim(self, value: int) -> None:
        if value < 0 or len(self.dims) >= MAX_TENSOR_RANK:
            self.bad_dims = True
        else:
            self.dims.append(value)


def _varints(data: bytes) -> list[int]:
    """The int64 values of a packed repeated varint field (dims written packed)."""
    out: list[int] = []
    value = shift = 0
    for b in data:
        value |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            out.append(signed64(value & ((1 << 64) - 1)))
            value = shift = 0
    if shift:
        raise ProtoError("truncated packed varint")
    return out


def _inline_span(t: _Tensor, dtype: str, shape: tuple[int, ...], reason: str) -> TensorSpan:
    """The span of a tensor whose data is in the model itself: raw_data, or one packed
    float_data/double_data field (whose payload is little-endian IEEE too)."""
    offset = nbytes = 0
    if t.raw is not None:
        offset, nbytes = t.raw
    elif len(t.packed) == 1 and not t.unpacked:
        offset, nbytes, width = t.packed[0]
        if not reason and ITEM_SIZES[dtype] != width:
            reason = "malformed"
    elif t.packed:
        reason = reason or "split packed data"
    elif t.unpacked:
        reason = reason or "unpacked"
    elif t.other_data:
        reason = reason or "varint-encoded"
    elif not reason:
        reason = "empty" if t.elements == 0 else "no data"
    return _checked(t.name, dtype, shape, offset, nbytes, reason)


def _checked(name: str, dtype: str, shape: tuple[int, ...], offset: int, nbytes: int, reason: str,
             source: str = "") -> TensorSpan:
    """An analysed span only when its bytes are exactly the shape's elements."""
    if not reason and nbytes != _elements(shape) * ITEM_SIZES[dtype]:
        reason = "size mismatch"
    if reason:
        return skipped(name, dtype, shape, offset, nbytes, reason)
    return TensorSpan(name, dtype, shape, offset, nbytes, source=source)


def _elements(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def _out_axis(role: str, shape: tuple[int, ...]) -> int | None:
    """The output axis a consumer fixes: MatMul B is (..., in, out); Gemm B is (in, out), or
    (out, in) with transB=1."""
    if role == "MatMul" and len(shape) >= 2:
        return len(shape) - 1
    if role in ("Gemm", "Gemm transB") and len(shape) == 2:
        return 0 if role == "Gemm transB" else 1
    return None


@dataclass
class _TextHit:
    count: int
    what: str
    offset: int
    sample: str


class _Walk:
    """One pass over a ModelProto; findings are gathered while walking and on `finish()`."""

    def __init__(self, reader: RangeReader, ctx: ScanContext, scanner_id: str, model_dir: str | None) -> None:
        limits = ctx.limits
        self.limits = limits
        self.scanner_id = scanner_id
        self.model_dir = model_dir
        self.wire = WireReader(reader, max_depth=limits.max_onnx_proto_depth, max_fields=limits.max_onnx_fields,
                               chunk=limits.stream_chunk, check=ctx.check_deadline,
                               depth_limit="max_onnx_proto_depth", fields_limit="max_onnx_fields")
        self.findings: list[Finding] = []
        self.nodes = 0
        self.ir_version: int | None = None
        self.ops: dict[tuple[str, str], _OpUse] = {}
        self.more_ops = 0
        self.functions: set[tuple[str, str]] = set()
        self.external: dict[str, _External] = {}
        self.text_hits: dict[tuple[str, str], _TextHit] = {}
        self._files: dict[str, os.stat_result | str] = {}
        self._seen: dict[str, list[tuple[str, str, str]]] = {}
        self.spans = SpanList(limits.max_tensor_spans)
        #: Tensor name -> the role of the ops consuming it as input 1 (MatMul, Gemm), or AMBIGUOUS.
        self.consumers: dict[str, str] = {}

    # --- helpers ----------------------------------------------------------------------------

    def text(self, f: Field, what: str) -> str:
        return self.wire.text(f, self.limits.max_onnx_string, what, "max_onnx_string")

    def entry(self, f: Field, what: str) -> tuple[str, str]:
        key = value = ""
        for g in self.wire.message(f):
            if g.wire_type != LEN:
                continue
            if g.number == KV_KEY:
                key = self.text(g, f"{what} key")
            elif g.number == KV_VALUE:
                value = self.text(g, f"{what} value")
        return key, value

    def free_text(self, f: Field, what: str) -> None:
        if f.wire_type == LEN and f.length:
            self.check_text(self.text(f, what), what, f.tag_offset)

    def metadata(self, f: Field, what: str) -> None:
        if f.wire_type == LEN:
            key, value = self.entry(f, what)
            self.check_text(f"{key}={value}", f"{what} {mask(key)[:100]!r}", f.tag_offset)

    def check_text(self, text: str, what: str, offset: int) -> None:
        if not text:
            return
        # Exporters repeat the same doc strings (stack traces) on thousands of nodes: each
        # distinct short text is searched once.
        cached = self._seen.get(text) if len(text) <= 4096 else None
        if cached is None:
            cached = text_hits(text)
            if len(text) <= 4096 and len(self._seen) < MAX_TRACKED:
                self._seen[text] = cached
        for rule_id, label, sample in cached:
            self._hit(rule_id, label, what, offset, sample)

    def _hit(self, rule_id: str, label: str, what: str, offset: int, sample: str) -> None:
        hit = self.text_hits.get((rule_id, label))
        if hit is None:
            self.text_hits[(rule_id, label)] = _TextHit(1, what, offset, sample)
        else:
            hit.count += 1

    # --- messages ---------------------------------------------------------------------------

    def model(self) -> None:
        wire = self.wire
        seen_graph = False
        for f in wire.fields(0, wire.size):
            n, wt = f.number, f.wire_type
            if n == M_IR_VERSION and wt == VARINT:
                self.ir_version = signed64(f.value or 0)
            elif wt != LEN:
                continue
            elif n == M_GRAPH:
                seen_graph = True
                self.graph(f, 0)
            elif n in (M_PRODUCER, M_PRODUCER_VERSION):
                self.free_text(f, "producer")
            elif n == M_DOC:
                self.free_text(f, "model doc_string")
            elif n == M_OPSET:
                for g in wire.message(f):
                    if g.number == OPSET_DOMAIN and g.wire_type == LEN:
                        self.text(g, "opset domain")
            elif n == M_METADATA:
                self.metadata(f, "model metadata_props")
            elif n == M_TRAINING:
                for g in wire.message(f):
                    if g.number in (TI_INITIALIZATION, TI_ALGORITHM) and g.wire_type == LEN:
                        self.graph(g, 0)
            elif n == M_FUNCTIONS:
                self.function(f)
        if not seen_graph:
            raise ProtoError("parses as protobuf but holds no graph: not an ONNX model" if self.ir_version is None
                             else "ONNX protobuf without a graph")

    def graph(self, f: Field, level: int) -> None:
        if level > self.limits.max_onnx_graph_depth:
            raise ProtoLimit("max_onnx_graph_depth",
                             f"subgraphs nested deeper than {self.limits.max_onnx_graph_depth} levels", f.tag_offset)
        for g in self.wire.message(f):
            if g.wire_type != LEN:
                continue
            n = g.number
            if n == G_NODE:
                self.node(g, level)
            elif n == G_INITIALIZER:
                self.tensor(g)
            elif n == G_SPARSE_INITIALIZER:
                self.sparse(g)
            elif n == G_DOC:
                self.free_text(g, "graph doc_string")
            elif n == G_METADATA:
                self.metadata(g, "graph metadata_props")

    def function(self, f: Field) -> None:
        name = domain = ""
        for g in self.wire.message(f):
            if g.wire_type != LEN:
                continue
            n = g.number
            if n == F_NAME:
                name = self.text(g, "function name")
            elif n == F_DOMAIN:
                domain = self.text(g, "function domain")
            elif n == F_NODE:
                self.node(g, 1)
            elif n == F_ATTRIBUTE_PROTO:
                self.attribute(g, 1, {})
            elif n == F_DOC:
                self.free_text(g, "function doc_string")
            elif n == F_METADATA:
                self.metadata(g, "function metadata_props")
        self.functions.add((domain, name))

    def node(self, f: Field, level: int) -> None:
        self.nodes += 1
        if self.nodes > self.limits.max_onnx_nodes:
            raise ProtoLimit("max_onnx_nodes", f"more than {self.limits.max_onnx_nodes} nodes", f.tag_offset)
        op_type = domain = name = weight = ""
        attrs: dict[str, str] = {}
        inputs = 0
        trans_b: int | None = None
        for g in self.wire.message(f):
            if g.wire_type != LEN:
                continue
            n = g.number
            if n == N_INPUT:
                inputs += 1
                if inputs == 2:  # input 1: B of MatMul and Gemm, read whatever the op turns out to be
                    weight = self.text(g, "node input")
            elif n == N_OP_TYPE:
                op_type = self.text(g, "op_type")
            elif n == N_DOMAIN:
                domain = self.text(g, "node domain")
            elif n == N_NAME:
                name = self.text(g, "node name")
            elif n == N_ATTRIBUTE:
                attr, value = self.attribute(g, level, attrs)
                if attr == "transB":
                    trans_b = value
            elif n == N_DOC:
                self.free_text(g, "node doc_string")
            elif n == N_METADATA:
                self.metadata(g, "node metadata_props")
        if weight and op_type in WEIGHT_OPS and domain in ONNX_DOMAINS:
            self.consumer(weight, "Gemm transB" if op_type == "Gemm" and trans_b == 1 else op_type)
        if domain in STANDARD_DOMAINS and op_type not in PYTHON_OPS:
            return
        use = self.ops.get((domain, op_type))
        if use is not None:
            use.count += 1
        elif len(self.ops) < MAX_TRACKED:
            self.ops[(domain, op_type)] = _OpUse(1, f.tag_offset, name[:200], attrs)
        else:
            self.more_ops += 1

    def consumer(self, tensor: str, role: str) -> None:
        """Remember how an op reads `tensor` (bounded as the spans are); disagreeing ops leave
        its output axis unknown."""
        known = self.consumers.get(tensor)
        if known is None and len(self.consumers) < self.limits.max_tensor_spans:
            self.consumers[tensor] = role
        elif known is not None and known != role:
            self.consumers[tensor] = AMBIGUOUS

    def attribute(self, f: Field, level: int, attrs: dict[str, str]) -> tuple[str, int | None]:
        """Walks one attribute; returns its name and its integer value (`i`), if any."""
        name = ""
        s: bytes | None = None
        i: int | None = None
        for g in self.wire.message(f):
            if g.number == A_I and g.wire_type == VARINT:
                i = signed64(g.value or 0)
            if g.wire_type != LEN:
                continue
            n = g.number
            if n == A_NAME:
                name = self.text(g, "attribute name")
            elif n == A_S:
                s = self.wire.prefix(g, MAX_ATTR_TEXT)
            elif n in (A_G, A_GRAPHS):
                self.graph(g, level + 1)
            elif n in (A_T, A_TENSORS):
                self.tensor(g)
            elif n in (A_SPARSE, A_SPARSES):
                self.sparse(g)
            elif n == A_DOC:
                self.free_text(g, "attribute doc_string")
        if s is not None and name in PYTHON_ATTRS:
            attrs[name] = mask(s.decode("utf-8", "replace"))[:256]
        return name, i

    def sparse(self, f: Field) -> None:
        for g in self.wire.message(f):
            if g.number in (S_VALUES, S_INDICES) and g.wire_type == LEN:
                self.tensor(g)

    def tensor(self, f: Field) -> None:
        t = _Tensor()
        for g in self.wire.message(f):
            n = g.number
            if n == T_LOCATION and g.wire_type == VARINT:
                t.location = signed64(g.value or 0)
            elif n == T_DATA_TYPE and g.wire_type == VARINT:
                t.data_type = signed64(g.value or 0)
            elif n == T_DIMS:
                self.dims(g, t)
            elif n == T_RAW_DATA or n in PACKED_FLOATS or n in T_OTHER_DATA:
                t.data(g)
            elif g.wire_type != LEN:
                continue
            elif n == T_NAME:
                t.name = self.text(g, "tensor name")
            elif n == T_EXTERNAL:
                t.entries.add(*self.entry(g, "external_data"))
            elif n == T_DOC:
                self.free_text(g, "tensor doc_string")
            elif n == T_METADATA:
                self.metadata(g, "tensor metadata_props")
        if t.entries.count or t.location == EXTERNAL:
            self.external_data(t.name[:200], t.location, t.entries, f.tag_offset)
        self.spans.add(self.span(t))

    def dims(self, g: Field, t: _Tensor) -> None:
        """One dimension (a varint), or several written packed (read: at most 10 bytes each)."""
        if g.wire_type == VARINT:
            t.add_dim(signed64(g.value or 0))
        elif g.wire_type == LEN and g.length <= 10 * MAX_TENSOR_RANK:
            for d in _varints(self.wire.read(g, 10 * MAX_TENSOR_RANK, "packed dims", "max_onnx_string")):
                t.add_dim(d)
        else:
            t.bad_dims = True

    # --- tensor spans -----------------------------------------------------------------------

    def span(self, t: _Tensor) -> TensorSpan:
        """Where a tensor's bytes are, from its structure alone (never read)."""
        dtype, reason = ONNX_DTYPES.get(t.data_type, (f"type {t.data_type}", "unknown type"))
        shape = tuple(t.dims)
        if t.bad_dims:
            return skipped(t.name, dtype, shape, 0, 0, "invalid shape")
        if t.location == EXTERNAL:
            return self.external_span(t, dtype, shape, reason)
        return _inline_span(t, dtype, shape, reason)

    def external_span(self, t: _Tensor, dtype: str, shape: tuple[int, ...], reason: str) -> TensorSpan:
        """A span in the external file next to a local model; the location was checked by
        `external_data` (escapes, symbolic links) before it is trusted here."""
        info = t.entries.info
        location = info.get("location") or ""
        numbers = {k: int(info[k].strip()) for k in ("offset", "length")
                   if k in info and info[k].strip().isdigit() and len(info[k].strip()) <= 19}
        offset, length = numbers.get("offset", 0), numbers.get("length")
        ext = self.external.get(location)
        if self.model_dir is None:
            why = "external data"
        elif ext is None:
            why = "external data not checked"
        elif any(k in info and k not in numbers for k in ("offset", "length")):
            why = "malformed external data"
        elif any(p[0] == "escape" for p in ext.problems):
            why = "external data outside the local directory"
        else:
            st = self._stat(location)
            if isinstance(st, str):
                why = "external data missing"
            else:
                length = st.st_size - offset if length is None else length
                why = "" if offset >= 0 and offset + length <= st.st_size else "external data out of bounds"
        if why:
            return skipped(t.name, dtype, shape, offset, length or 0, reason or why)
        source = os.path.abspath(os.path.join(self.model_dir or "", location))
        return _checked(t.name, dtype, shape, offset, length or 0, reason, source)

    def tensor_spans(self) -> list[TensorSpan]:
        """The spans found, with the output axis of the weights MatMul and Gemm consume."""
        spans = self.spans.finish()
        if not self.consumers:
            return spans
        out: list[TensorSpan] = []
        for span in spans:
            role = self.consumers.get(span.name)
            axis = _out_axis(role, span.shape) if role and span.analysed else None
            out.append(span if axis is None else replace(span, out_axis=axis))
        return out

    # --- external data ----------------------------------------------------------------------

    def external_data(self, tensor: str, location_flag: int, entries: _Entries, offset: int) -> None:
        info = entries.info
        problems: list[str] = [f"unknown key {mask(k)[:80]!r}" if k else "entry without a key"
                               for k in entries.unknown]
        if entries.unknown_count > len(entries.unknown):
            problems.append(f"{entries.unknown_count - len(entries.unknown)} more unknown keys")
        problems += [f"key {k!r} given twice (the last one wins)" for k in sorted(entries.repeated)]
        numbers: dict[str, int] = {}
        for key in ("offset", "length"):
            if key in info:
                text = info[key].strip()
                if not text.isdigit() or len(text) > 19:
                    problems.append(f"{key} {info[key][:40]!r} is not a non-negative integer")
                else:
                    numbers[key] = int(text)
        location = info.get("location")
        if location_flag != EXTERNAL:
            problems.append(f"external_data entries on a tensor whose data_location is {location_flag}, not EXTERNAL")
        if location is None:
            problems.append("no location")
        elif not location.strip():
            problems.append("empty location")
        elif "\x00" in location:
            problems.append("location contains a NUL byte")
        if problems:
            self.findings.append(finding(
                "ONX106", self.scanner_id,
                f"external data of tensor {tensor!r} is malformed: {'; '.join(problems)}",
                offset=offset, tensor=tensor, external_path=mask(location or "")[:300] or None))
        if not location or "\x00" in location:
            return
        ext = self.external.get(location)
        if ext is None:
            if len(self.external) >= MAX_TRACKED:
                return
            ext = self.external[location] = _External(first_tensor=tensor, offset=offset)
            why = path_escape(location)
            if why is not None:
                self.findings.append(finding(
                    "ONX103", self.scanner_id,
                    f"external data location {mask(location)[:300]!r} of tensor {tensor!r} escapes the model "
                    f"directory: {why}", offset=offset, external_path=mask(location)[:300], tensor=tensor, reason=why))
                ext.problems.append(("escape", why, offset))
            elif self.model_dir is not None:
                self._check_link(location, ext, tensor, offset)
        ext.tensors += 1
        if self.model_dir is not None and not any(p[0] == "escape" for p in ext.problems):
            self._check_extent(location, ext, tensor, numbers, offset)

    def _check_link(self, location: str, ext: _External, tensor: str, offset: int) -> None:
        assert self.model_dir is not None
        base = os.path.realpath(self.model_dir)
        target = os.path.realpath(os.path.join(self.model_dir, location))
        if os.path.commonpath([base, target]) != base:
            why = f"resolves through a symbolic link to {target}"
            self.findings.append(finding(
                "ONX103", self.scanner_id,
                f"external data location {mask(location)[:300]!r} of tensor {tensor!r} escapes the model "
                f"directory: {why}", offset=offset, external_path=mask(location)[:300], tensor=tensor, reason=why))
            ext.problems.append(("escape", why, offset))

    def _stat(self, location: str) -> os.stat_result | str:
        if location not in self._files:
            assert self.model_dir is not None
            path = os.path.join(self.model_dir, location)
            try:
                st = os.stat(path)
                self._files[location] = st if stat.S_ISREG(st.st_mode) else "is not a regular file"
            except OSError as exc:
                self._files[location] = "does not exist" if isinstance(exc, FileNotFoundError) else \
                    f"cannot be read ({exc.strerror or exc})"
        return self._files[location]

    def _check_extent(self, location: str, ext: _External, tensor: str, numbers: dict[str, int],
                      offset: int) -> None:
        st = self._stat(location)
        if isinstance(st, str):
            if not ext.problems:
                ext.problems.append(("missing", f"{location!r} {st}", offset))
            return
        start = numbers.get("offset", 0)
        length = numbers.get("length")
        end = start + (length or 0)
        if max(start, end) > st.st_size and not any(p[0] == "extent" for p in ext.problems):
            span = f"bytes {start}..{end}" if length is not None else f"offset {start}"
            ext.problems.append(("extent", f"tensor {tensor!r} reads {span} of {location!r}, "
                                           f"which holds {st.st_size} bytes", offset))

    # --- the end ----------------------------------------------------------------------------

    def finish(self) -> None:
        sid = self.scanner_id
        for (domain, op_type), use in self.ops.items():
            if (domain, op_type) in self.functions:
                continue  # a function defined in the model
            where = f"node {use.node!r} " if use.node else ""
            count = f" ({use.count} nodes)" if use.count > 1 else ""
            python = op_type in PYTHON_OPS or (domain == CONTRIB_DOMAIN and _CONTRIB_PYTHON.match(op_type))
            if python:
                detail = ", ".join(f"{k}={v!r}" for k, v in sorted(use.attrs.items()))
                self.findings.append(finding(
                    "ONX102", sid,
                    f"{where}runs Python: op {op_type!r} in domain {domain!r}{count}"
                    + (f"; {detail}" if detail else ""),
                    offset=use.offset, op_type=op_type, domain=domain, nodes=use.count, **use.attrs))
            else:
                note = (" (onnxruntime-extensions: a native library, or Python functions registered by the loader)"
                        if domain == CONTRIB_DOMAIN else "")
                self.findings.append(finding(
                    "ONX101", sid,
                    f"{where}uses custom operator {op_type!r} of domain {domain!r}{count}: loading it needs a "
                    f"custom-op library{note}", offset=use.offset, op_type=op_type, domain=domain, nodes=use.count))
        if self.more_ops:
            self.findings.append(finding("ONX101", sid, f"{self.more_ops} more nodes of further custom operators",
                                         nodes=self.more_ops))
        for location, ext in self.external.items():
            for kind, why, offset in ext.problems:
                if kind in ("missing", "extent"):
                    self.findings.append(finding(
                        "ONX104", sid, f"external data of tensor {ext.first_tensor!r}: {why}; its data was not "
                        "checked", offset=offset, external_path=location[:300], tensors=ext.tensors))
        if self.external:
            listed = sorted(self.external)[:MAX_LISTED]
            where = ("checked next to the model" if self.model_dir is not None
                     else "not checked: the model is not a local file")
            names = ", ".join(repr(mask(n)[:200]) for n in listed)
            more = f" and {len(self.external) - len(listed)} more" if len(self.external) > len(listed) else ""
            tensors, files = sum(e.tensors for e in self.external.values()), len(self.external)
            self.findings.append(finding(
                "ONX105", sid, f"{tensors} tensor{'s' * (tensors != 1)} read their data from {files} external "
                f"file{'s' * (files != 1)} ({where}): {names}{more}",
                offset=min(e.offset for e in self.external.values()), files=files, tensors=tensors))
        for (rule_id, label), hit in self.text_hits.items():
            count = f" ({hit.count} fields)" if hit.count > 1 else ""
            self.findings.append(finding(
                rule_id, sid, f"{hit.what} holds {'a ' if rule_id != 'ONX107' else ''}{label}{count}: {hit.sample}",
                offset=hit.offset, kind=label, field=hit.what, fields=hit.count, excerpt=hit.sample))


def local_model_dir(unit: Unit, reader: RangeReader, ctx: ScanContext) -> str | None:
    """The directory of the model when it is a local file read as itself (not an archive
    member or a remote object): only then can its external data files be looked at."""
    if ctx.depth or unit.start or not isinstance(reader, LocalReader):
        return None
    path = unit.object.uri
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    if not stat.S_ISREG(st.st_mode) or st.st_size != reader.size:
        return None
    return os.path.dirname(os.path.abspath(path))


class OnnxScanner(Scanner):
    id = "onnx"
    description = "ONNX models: custom and Python operators, external data paths, free-text payloads"

    def scan(self, unit: Unit, reader: RangeReader, ctx: ScanContext) -> UnitResult:
        view = unit_view(unit, reader)
        walk = _Walk(view, ctx, self.id, local_model_dir(unit, reader, ctx))
        result = UnitResult()
        try:
            walk.model()
        except ProtoError as exc:
            walk.findings.append(finding("ONX111", self.id, f"not a valid ONNX model: {exc}", offset=exc.offset))
        except ProtoLimit as exc:
            walk.findings.append(finding(
                "ONX110", self.id, f"ONNX model exceeds the {exc.limit} limit: {exc}; the rest was not inspected",
                offset=exc.offset, limit=exc.limit))
        except ScanTimeout:
            result.error = "timed out"
        walk.finish()
        result.findings = walk.findings
        result.partials[SPANS] = walk.tensor_spans()
        return result
