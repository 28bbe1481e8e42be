"""TensorFlow graphs (SavedModel `saved_model.pb`, MetaGraphDef `.meta`, frozen GraphDef `.pb`),
and the Keras `keras_metadata.pb` next to a SavedModel, read as protobuf wire format and never
loaded (THREATS.md 4.5, T1/T2). TensorFlow is never imported.

What a graph can do when a signature runs, by op name (in the graph and in every function of
its library, where `tf.function` bodies live):

- PyFunc, PyFuncStateless, EagerPyFunc call Python registered by the process (TFG001, CRITICAL:
  the body is not serialised, so this is an indicator rather than portable code execution);
- ops that read or list files (ReadFile, MatchingFiles, readers, file datasets, ImmutableConst's
  memory region): TFG002, WARNING;
- ops that write files (WriteFile, PrintV2 to a file:// stream, Debug* to file:// URLs, TFRecord
  and dataset writers, summary file writers): TFG003, CRITICAL - a served model has no reason
  to write where its graph says, and a write is how a payload persists;
- ops that contact the network (RPC ops, tf.data service, Debug* to grpc:// URLs): TFG004,
  WARNING.

The ordinary checkpoint ops (SaveV2, RestoreV2, MergeV2Checkpoints, the legacy Save/Restore)
are in every SavedModel and are not reported. TensorFlow has no graph op that loads a native
library: custom ops need `tf.load_op_library` by the loader, which an unknown op name would hint
at, but TF's op set is too large to list here, so unknown ops are not reported.

Which message the file holds: `keras_metadata.pb` by name (a SavedMetadata whose nodes carry
JSON metadata, handed to the Keras config analyser), `saved_model.pb` by name or a varint field 1
(SavedModel.saved_model_schema_version), `.meta` by extension, otherwise a GraphDef unless its
field 4 holds map entries (MetaGraphDef.collection_def) rather than a VersionDef.

Field numbers, from tensorflow/core/protobuf/{saved_model,meta_graph}.proto and
tensorflow/core/framework/{graph,function,node_def,attr_value}.proto as remembered (checked
against real files written by TF 2.x where the fixtures allow; keras' saved_metadata.proto
field numbers are the least certain, node metadata = 5):

    SavedModel      1 saved_model_schema_version, 2 meta_graphs
    MetaGraphDef    1 meta_info_def, 2 graph_def, 3 saver_def, 4 collection_def, 5 signature_def,
                    6 asset_file_def, 7 object_graph_def
    GraphDef        1 node, 2 library, 3 version (deprecated), 4 versions
    FunctionDefLib  1 function;  FunctionDef 1 signature (OpDef, 1 name), 3 node_def
    NodeDef         1 name, 2 op, 3 input, 4 device, 5 attr (map: 1 key, 2 AttrValue)
    AttrValue       1 list (ListValue, 2 s), 2 s
    SavedMetadata   1 nodes (SavedObject: 3 node_path, 4 identifier, 5 metadata JSON)
"""

from __future__ import annotations

from dataclasses import dataclass

from shardscan.limits import Limits
from shardscan.model import Finding, Severity, Unit, UnitResult
from shardscan.scanners import indicators
from shardscan.scanners.base import ScanContext, Scanner, ScanTimeout, finding, unit_view
from shardscan.scanners.protobuf import LEN, VARINT, Field, ProtoError, ProtoLimit, WireReader
from shardscan.storage.reader import RangeReader

PYTHON_OPS = frozenset({"PyFunc", "PyFuncStateless", "EagerPyFunc"})
FILE_READ_OPS = frozenset({
    "ReadFile", "MatchingFiles", "MatchingFilesDataset", "ExperimentalMatchingFilesDataset",
    "WholeFileReader", "WholeFileReaderV2", "TextLineReader", "TextLineReaderV2",
    "FixedLengthRecordReader", "FixedLengthRecordReaderV2", "TFRecordReader", "TFRecordReaderV2",
    "LMDBReader", "IdentityReader", "IdentityReaderV2",
    "TextLineDataset", "TFRecordDataset", "TFRecordDatasetV2", "FixedLengthRecordDataset",
    "FixedLengthRecordDatasetV2", "CSVDataset", "CSVDatasetV2", "ExperimentalCSVDataset",
    "LMDBDataset", "ExperimentalLMDBDataset", "SqlDataset", "ExperimentalSqlDataset",
    "LoadDataset", "ImmutableConst",
})
FILE_WRITE_OPS = frozenset({
    "WriteFile", "DatasetToTFRecord", "ExperimentalDatasetToTFRecord", "SaveDataset", "SaveDatasetV2",
    "CreateSummaryFileWriter", "CreateSummaryDbWriter", "SummaryWriter", "WriteRawProtoSummary",
})
NETWORK_OPS = frozenset({
    "RpcClient", "RpcCall", "RpcServer", "RpcServerStart", "RpcServerRegister", "RpcCheckStatus",
    "RpcGetValue", "Rpc", "TryRpc", "DataServiceDataset", "DataServiceDatasetV2", "DataServiceDatasetV3",
    "DataServiceDatasetV4", "RegisterDataset", "RegisterDatasetV2", "DistributedSave",
})
#: Debug ops whose `debug_urls` attribute names where tensors are dumped (file:// or grpc://).
DEBUG_OPS = frozenset({"DebugIdentity", "DebugNanCount", "DebugNumericSummary", "DebugIdentityV2",
                       "DebugIdentityV3", "DebugNumericSummaryV2", "Copy", "CopyHost"})
#: What each rule means, for evidence: ops decided by name alone.
BY_NAME: dict[str, str] = {
    **{op: "TFG001" for op in PYTHON_OPS}, **{op: "TFG002" for op in FILE_READ_OPS},
    **{op: "TFG003" for op in FILE_WRITE_OPS}, **{op: "TFG004" for op in NETWORK_OPS},
}
KIND = {"TFG001": "runs Python", "TFG002": "reads or lists files", "TFG003": "writes files",
        "TFG004": "contacts the network"}
MAX_TRACKED = 10_000
#: Secrets listed one by one; the rest are counted.
MAX_SECRETS = 8
MAX_ATTR_TEXT = 4096

# Field numbers (see the module docstring).
SM_VERSION, SM_META_GRAPHS = 1, 2
MG_GRAPH, MG_SAVER, MG_COLLECTION, MG_ASSETS, MG_OBJECT_GRAPH = 2, 3, 4, 6, 7
GD_NODE, GD_LIBRARY, GD_VERSIONS = 1, 2, 4
LIB_FUNCTION = 1
FD_SIGNATURE, FD_NODE = 1, 3
OPDEF_NAME = 1
ND_NAME, ND_OP, ND_ATTR = 1, 2, 5
MAP_KEY, MAP_VALUE = 1, 2
AV_LIST, AV_S = 1, 2
LV_S = 2
KM_NODES = 1
SO_NODE_PATH, SO_IDENTIFIER, SO_METADATA = 3, 4, 5


def op_rule(op: str, attrs: dict[str, list[str]]) -> tuple[str, str] | None:
    """(rule, detail) for a node's op and its string attributes, or None when harmless."""
    rule_id = BY_NAME.get(op)
    if rule_id is not None:
        detail = ""
        if op == "ImmutableConst" and attrs.get("memory_region_name"):
            detail = f"memory_region_name={attrs['memory_region_name'][0][:200]!r}"
        return rule_id, detail
    if op == "PrintV2":
        stream = (attrs.get("output_stream") or [""])[0]
        if stream.lower().startswith("file://"):
            return "TFG003", f"output_stream={stream[:200]!r}"
        return None
    if op in DEBUG_OPS or op.startswith("Debug"):
        urls = attrs.get("debug_urls", [])
        if any(u.lower().startswith("file://") for u in urls):
            return "TFG003", f"debug_urls={urls[:3]!r}"
        if any("://" in u for u in urls):
            return "TFG004", f"debug_urls={urls[:3]!r}"
    return None


#: String attributes kept for the decisions above.
WATCHED_ATTRS = frozenset({"memory_region_name", "output_stream", "debug_urls"})


@dataclass
class _OpUse:
    rule_id: str
    count: int
    offset: int
    node: str
    where: str
    detail: str


class _Walk:
    def __init__(self, reader: RangeReader, ctx: ScanContext, scanner_id: str) -> None:
        limits: Limits = ctx.limits
        self.limits = limits
        self.sid = scanner_id
        self.wire = WireReader(reader, max_depth=limits.max_tf_proto_depth, max_fields=limits.max_tf_fields,
                               chunk=limits.stream_chunk, check=ctx.check_deadline,
                               depth_limit="max_tf_proto_depth", fields_limit="max_tf_fields")
        self.findings: list[Finding] = []
        self.nodes = 0
        self.uses: dict[tuple[str, str], _OpUse] = {}
        self.more = 0
        self.n_secrets = 0

    def text(self, f: Field, what: str) -> str:
        if f.wire_type != LEN:
            raise ProtoError(f"{what} (field {f.number}) is not a string", f.tag_offset)
        return self.wire.text(f, self.limits.max_tf_string, what, "max_tf_string")

    # --- message kinds ----------------------------------------------------------------------

    def kind(self, name: str) -> str:
        base = name.rsplit("/", 1)[-1].lower()
        if base == "keras_metadata.pb":
            return "keras_metadata"
        if base == "saved_model.pb":
            return "saved_model"
        if base.endswith(".meta"):
            return "meta_graph"
        wire = self.wire
        checked_first = False
        for f in wire.fields(0, wire.size):
            n, wt = f.number, f.wire_type
            if n == SM_VERSION and wt == VARINT:
                return "saved_model"
            if wt == LEN and n in (MG_SAVER, MG_ASSETS, MG_OBJECT_GRAPH):
                return "meta_graph"
            if n == MG_COLLECTION and wt == LEN:
                first = next(iter(wire.message(f)), None)
                return "meta_graph" if first is not None and first.wire_type == LEN else "graph"
            if n == 1 and wt == LEN and not checked_first:
                checked_first = True
                if self._meta_info(f):
                    return "meta_graph"
        return "graph"

    def _meta_info(self, f: Field) -> bool:
        """Whether a top-level field 1 is a MetaInfoDef rather than a NodeDef: MetaInfoDef's
        stripped_op_list (2) is a message, where NodeDef's op (2) is an op name; its
        tensorflow_version (5) a string, where NodeDef's attr (5) is a map entry; its
        stripped_default_attrs (7) a bool, where NodeDef's experimental_type (7) is a message."""
        for g in self.wire.message(f):
            if g.number == 7 and g.wire_type == VARINT:
                return True
            if g.number in (2, 5) and g.wire_type == LEN and g.length:
                return self.wire.prefix(g, 1) == b"\n" if g.number == 2 else self.wire.prefix(g, 1) != b"\n"
        return False

    def run(self, kind: str) -> None:
        wire = self.wire
        if kind == "keras_metadata":
            return self.keras_metadata()
        seen = False
        for f in wire.fields(0, wire.size):
            if f.wire_type != LEN:
                continue
            if kind == "saved_model" and f.number == SM_META_GRAPHS:
                seen = True
                self.meta_graph(f)
            elif kind == "meta_graph" and f.number == MG_GRAPH:
                seen = True
                self.graph(f, "graph")
            elif kind == "graph" and f.number in (GD_NODE, GD_LIBRARY):
                seen = True
                self.graph_field(f, "graph")
        if not seen and wire.size:
            what = {"saved_model": "no meta graph", "meta_graph": "no graph_def", "graph": "no nodes"}[kind]
            raise ProtoError(f"parses as protobuf but holds {what}: not a TensorFlow {kind.replace('_', ' ')}")

    def meta_graph(self, f: Field) -> None:
        for g in self.wire.message(f):
            if g.number == MG_GRAPH and g.wire_type == LEN:
                self.graph(g, "graph")

    def graph(self, f: Field, where: str) -> None:
        for g in self.wire.message(f):
            if g.wire_type == LEN:
                self.graph_field(g, where)

    def graph_field(self, g: Field, where: str) -> None:
        if g.number == GD_NODE:
            self.node(g, where)
        elif g.number == GD_LIBRARY:
            for h in self.wire.message(g):
                if h.number == LIB_FUNCTION and h.wire_type == LEN:
                    self.function(h)

    def function(self, f: Field) -> None:
        name = ""
        for g in self.wire.message(f):  # the name first: nodes are reported under it
            if g.number == FD_SIGNATURE and g.wire_type == LEN:
                for h in self.wire.message(g):
                    if h.number == OPDEF_NAME and h.wire_type == LEN:
                        name = self.text(h, "function name")
        where = f"function {name[:200]!r}" if name else "function"
        for g in self.wire.message(f):
            if g.number == FD_NODE and g.wire_type == LEN:
                self.node(g, where)

    def node(self, f: Field, where: str) -> None:
        self.nodes += 1
        if self.nodes > self.limits.max_tf_nodes:
            raise ProtoLimit("max_tf_nodes", f"more than {self.limits.max_tf_nodes} nodes", f.tag_offset)
        name = op = ""
        attrs: dict[str, list[str]] = {}
        for g in self.wire.message(f):
            if g.wire_type != LEN:
                continue
            if g.number == ND_OP:
                op = self.text(g, "op")
            elif g.number == ND_NAME:
                name = self.text(g, "node name")
            elif g.number == ND_ATTR:
                self.attr(g, attrs)
        hit = op_rule(op, attrs)
        if hit is None:
            return
        rule_id, detail = hit
        use = self.uses.get((op, where))
        if use is not None:
            use.count += 1
        elif len(self.uses) < MAX_TRACKED:
            self.uses[(op, where)] = _OpUse(rule_id, 1, f.tag_offset, name[:200], where, detail)
        else:
            self.more += 1

    def attr(self, f: Field, attrs: dict[str, list[str]]) -> None:
        key = ""
        value: Field | None = None
        for g in self.wire.message(f):
            if g.number == MAP_KEY and g.wire_type == LEN:
                key = self.text(g, "attr name")
            elif g.number == MAP_VALUE and g.wire_type == LEN:
                value = g
        if value is None:
            return
        watched = key in WATCHED_ATTRS
        out: list[str] = []
        for g in self.wire.message(value):
            if g.number == AV_S and g.wire_type == LEN:
                out.append(self.wire.prefix(g, MAX_ATTR_TEXT).decode("utf-8", "replace"))
            elif watched and g.number == AV_LIST and g.wire_type == LEN:
                for h in self.wire.message(g):
                    if h.number == LV_S and h.wire_type == LEN and len(out) < 16:
                        out.append(self.wire.prefix(h, MAX_ATTR_TEXT).decode("utf-8", "replace"))
        for text in out:
            self.secrets(key, text, f.tag_offset)
        if watched:
            attrs[key] = out

    def secrets(self, key: str, text: str, offset: int) -> None:
        """Secrets in an attr string, any attr: graphs carry connection strings and file names."""
        if len(text) < self.limits.min_secret_text:
            return
        for secret in indicators.secrets_in(text, key):
            self.n_secrets += 1
            if self.n_secrets <= MAX_SECRETS:
                self.findings.append(finding(
                    indicators.SECRET_RULE, self.sid, indicators.secret_message(f"attr {indicators.shown(key)!r}",
                                                                              secret),
                    offset=offset, kind=secret.kind, length=secret.length))

    def keras_metadata(self) -> None:
        from shardscan.scanners.keras import analyse_keras_config

        wire = self.wire
        for f in wire.fields(0, wire.size):
            if f.number != KM_NODES or f.wire_type != LEN:
                continue
            path = ""
            metadata: Field | None = None
            for g in wire.message(f):
                if g.number == SO_NODE_PATH and g.wire_type == LEN:
                    path = self.text(g, "node_path")
                elif g.number == SO_METADATA and g.wire_type == LEN:
                    metadata = g
            if metadata is None or not metadata.length:
                continue
            text = self.text(metadata, "Keras metadata")
            self.findings.extend(analyse_keras_config(text, scanner_id=self.sid, location=path[:200]))

    # --- the end ----------------------------------------------------------------------------

    def finish(self) -> None:
        for (op, _), use in self.uses.items():
            name = f"node {use.node!r} " if use.node else ""
            count = f" ({use.count} nodes)" if use.count > 1 else ""
            detail = f"; {use.detail}" if use.detail else ""
            self.findings.append(finding(
                use.rule_id, self.sid, f"{name}in {use.where} {KIND[use.rule_id]}: op {op!r}{count}{detail}",
                offset=use.offset, op=op, nodes=use.count, where=use.where, detail=use.detail or None))
        if self.more:
            self.findings.append(finding("TFG002", self.sid, f"{self.more} more nodes of further flagged ops",
                                         severity=Severity.WARNING, nodes=self.more))
        if self.n_secrets > MAX_SECRETS:
            self.findings.append(finding(indicators.SECRET_RULE, self.sid,
                                         f"{self.n_secrets - MAX_SECRETS} more secrets in attrs not listed",
                                         count=self.n_secrets))


class TensorFlowScanner(Scanner):
    id = "tensorflow"
    description = ("TensorFlow SavedModel, MetaGraphDef and GraphDef: Python, file and network ops in graphs "
                   "and functions; Keras metadata of SavedModels")

    def scan(self, unit: Unit, reader: RangeReader, ctx: ScanContext) -> UnitResult:
        view = unit_view(unit, reader)
        walk = _Walk(view, ctx, self.id)
        result = UnitResult()
        try:
            walk.run(walk.kind(unit.object.name))
        except ProtoError as exc:
            walk.findings.append(finding("TFG006", self.id, f"not a valid TensorFlow protobuf: {exc}",
                                         offset=exc.offset))
        except ProtoLimit as exc:
            walk.findings.append(finding(
                "TFG005", self.id, f"TensorFlow model exceeds the {exc.limit} limit: {exc}; the rest was not "
                "inspected", offset=exc.offset, limit=exc.limit))
        except ScanTimeout:
            result.error = "timed out"
        walk.finish()
        result.findings = walk.findings
        return result
