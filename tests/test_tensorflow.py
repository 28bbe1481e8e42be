"""TensorFlow SavedModel / MetaGraphDef / GraphDef and keras_metadata.pb: THREATS.md 4.5 (T1, T2).

Hostile graphs are protobuf written byte by byte with the small encoder below (field numbers
from TensorFlow's graph/node_def/function/meta_graph/saved_model protos); benign ones are real
files written by TensorFlow 2.21 (tests/fixtures/tensorflow/generate.py). TensorFlow itself is
never imported.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from shardscan.limits import Limits
from shardscan.model import ObjectRef, Severity, Unit
from shardscan.policy import load_policy
from shardscan.scanners.base import ScanContext
from shardscan.scanners.protobuf import LEN
from shardscan.scanners.tensorflow import TensorFlowScanner
from shardscan.storage.reader import BytesReader
from tests.protowire import ld, varint, vi

FIXTURES = Path(__file__).parent / "fixtures" / "tensorflow"

# --- a protobuf encoder -------------------------------------------------------------------------


def attr_s(name: str, s: str) -> bytes:
    return ld(5, ld(1, name) + ld(2, ld(2, s)))  # NodeDef.attr entry: key, AttrValue.s


def attr_list(name: str, values: list[str]) -> bytes:
    return ld(5, ld(1, name) + ld(2, ld(1, b"".join(ld(2, v) for v in values))))  # AttrValue.list.s


def node(op: str, name: str = "", attrs: tuple[bytes, ...] = ()) -> bytes:
    return ld(1, name or op.lower()) + ld(2, op) + ld(3, "x") + b"".join(attrs)


def graph(*nodes: bytes, functions: tuple[bytes, ...] = ()) -> bytes:
    out = b"".join(ld(1, n) for n in nodes)
    if functions:
        out += ld(2, b"".join(ld(1, f) for f in functions))
    return out + ld(4, vi(1, 1882))  # versions: producer


def function(name: str, *nodes: bytes) -> bytes:
    return ld(1, ld(1, name)) + b"".join(ld(3, n) for n in nodes)


def meta_graph(graph_bytes: bytes) -> bytes:
    return ld(1, ld(4, "serve") + ld(5, "2.21.0")) + ld(2, graph_bytes) + ld(3, ld(1, "save/Const"))


def saved_model(graph_bytes: bytes) -> bytes:
    return vi(1, 1) + ld(2, meta_graph(graph_bytes))


# --- helpers --------------------------------------------------------------------------------------


def scan(data: bytes, name: str = "model.pb", **limits):
    ctx = ScanContext(policy=load_policy(), limits=Limits(**limits))
    unit = Unit(ObjectRef(name, len(data)), "tensorflow", 0, len(data))
    return TensorFlowScanner().scan(unit, BytesReader(data), ctx)


def rules(result) -> dict[str, Severity]:
    return {f.rule_id: f.severity for f in result.findings}


def loud(report) -> list:
    return [(f.rule_id, f.message) for f in report.findings if f.severity >= Severity.WARNING]


# --- benign -----------------------------------------------------------------------------------------

BENIGN = [FIXTURES / "saved_model" / "saved_model.pb", FIXTURES / "frozen_graph.pb", FIXTURES / "tiny.meta"]


@pytest.mark.parametrize("path", BENIGN, ids=lambda p: p.name)
def test_real_benign_fixture_is_clean(path: Path, scan_bytes):
    report = scan_bytes(path.read_bytes(), path.name)
    assert report.status == "scanned", report.error
    assert report.format == "tensorflow"
    assert report.findings == []


@pytest.mark.parametrize("path", BENIGN, ids=lambda p: p.name)
def test_message_kind_is_told_by_content(path: Path):
    from shardscan.scanners.tensorflow import _Walk

    data = path.read_bytes()
    walk = _Walk(BytesReader(data), ScanContext(policy=load_policy()), "tensorflow")
    expected = {"saved_model.pb": "saved_model", "frozen_graph.pb": "graph", "tiny.meta": "meta_graph"}[path.name]
    assert walk.kind("renamed.pb") == expected
    walk.run(expected)
    assert walk.nodes > 5


def test_checkpoint_ops_and_stderr_print_are_not_findings():
    data = saved_model(graph(node("SaveV2"), node("RestoreV2"), node("MergeV2Checkpoints"), node("Save"),
                             node("PrintV2", attrs=(attr_s("output_stream", "stderr"),)),
                             node("DebugIdentity", attrs=(attr_list("debug_urls", []),))))
    assert scan(data, "saved_model.pb").findings == []


# --- hostile graphs -----------------------------------------------------------------------------------

CASES = [
    (node("PyFunc", attrs=(attr_s("token", "pyfunc_0"),)), "TFG001", Severity.CRITICAL),
    (node("EagerPyFunc"), "TFG001", Severity.CRITICAL),
    (node("PyFuncStateless"), "TFG001", Severity.CRITICAL),
    (node("ReadFile"), "TFG002", Severity.WARNING),
    (node("MatchingFiles"), "TFG002", Severity.WARNING),
    (node("ImmutableConst", attrs=(attr_s("memory_region_name", "/etc/shadow"),)), "TFG002", Severity.WARNING),
    (node("WriteFile"), "TFG003", Severity.CRITICAL),
    (node("PrintV2", attrs=(attr_s("output_stream", "file:///tmp/out"),)), "TFG003", Severity.CRITICAL),
    (node("DebugIdentity", attrs=(attr_list("debug_urls", ["file:///tmp/dump"]),)), "TFG003", Severity.CRITICAL),
    (node("DebugIdentity", attrs=(attr_list("debug_urls", ["grpc://evil:6064"]),)), "TFG004", Severity.WARNING),
    (node("RpcClient"), "TFG004", Severity.WARNING),
    (node("DataServiceDatasetV4"), "TFG004", Severity.WARNING),
]


@pytest.mark.parametrize(("nd", "rule_id", "severity"), CASES, ids=[f"{c[1]}-{i}" for i, c in enumerate(CASES)])
@pytest.mark.parametrize("wrap", ["graph", "meta", "saved", "function"])
def test_dangerous_op_is_flagged(nd: bytes, rule_id: str, severity: Severity, wrap: str):
    g = graph(node("MatMul"), functions=(function("__inference_f_1", nd),)) if wrap == "function" else \
        graph(node("MatMul"), nd)
    data, name = {"graph": (g, "frozen.pb"), "meta": (meta_graph(g), "model.meta"),
                  "saved": (saved_model(g), "saved_model.pb"), "function": (saved_model(g), "m.pb")}[wrap]
    result = scan(data, name)
    assert rules(result) == {rule_id: severity}, result.findings
    if wrap == "function":
        assert "__inference_f_1" in result.findings[0].message


def test_detail_names_the_file_and_nodes_are_counted():
    result = scan(graph(*[node("PrintV2", name=f"p{i}", attrs=(attr_s("output_stream", "file:///x"),))
                          for i in range(3)],
                        node("ImmutableConst", attrs=(attr_s("memory_region_name", "/etc/shadow"),))))
    messages = " ".join(f.message for f in result.findings)
    assert "file:///x" in messages and "(3 nodes)" in messages and "/etc/shadow" in messages


def test_hostile_saved_model_end_to_end(scan_bytes):
    data = saved_model(graph(node("EagerPyFunc"), node("WriteFile")))
    report = scan_bytes(data, "export/saved_model.pb")
    assert report.format == "tensorflow"
    assert {f.rule_id for f in report.findings} == {"TFG001", "TFG003"}


# --- keras_metadata.pb ------------------------------------------------------------------------------------


def keras_metadata(*metadata: str) -> bytes:
    return b"".join(ld(1, vi(2, i) + ld(3, f"root.layer-{i}") + ld(4, "_tf_keras_layer") + ld(5, m))
                    for i, m in enumerate(metadata))


def test_keras_metadata_is_analysed_as_keras_config():
    bad = ('{"class_name": "Dense", "name": "d", "config": {"name": "d", "units": 2, "activation": '
           '{"module": "os", "class_name": "function", "config": "system", "registered_name": "function"}}}')
    result = scan(keras_metadata('{"class_name": "InputLayer", "config": {}}', bad), "keras_metadata.pb")
    ker = [f for f in result.findings if f.rule_id.startswith("KER")]
    assert ker and max(f.severity for f in ker) == Severity.CRITICAL, result.findings
    assert all(f.scanner_id == "tensorflow" for f in ker)


def test_benign_keras_metadata_is_quiet():
    ok = '{"class_name": "Dense", "name": "d", "config": {"name": "d", "units": 2, "activation": "relu"}}'
    result = scan(keras_metadata(ok), "keras_metadata.pb")
    assert not [f for f in result.findings if f.severity >= Severity.WARNING]


# --- limits and robustness -----------------------------------------------------------------------------------


def test_node_limit():
    result = scan(graph(*[node("Relu") for _ in range(5)], node("WriteFile")), max_tf_nodes=3)
    assert rules(result) == {"TFG005": Severity.WARNING}


def test_string_limit_and_depth_limit():
    assert "TFG005" in rules(scan(graph(node("A" * 500)), max_tf_string=100))
    # The walk follows the schema (at most a handful of levels) and skips what it does not
    # need, so deep nesting elsewhere costs nothing; the depth limit still bounds the schema path.
    deep = ld(1, b"")
    for _ in range(200):
        deep = ld(9, deep)
    assert scan(ld(1, ld(2, "Relu") + deep)).findings == []
    assert rules(scan(saved_model(graph(node("Relu"))), max_tf_proto_depth=2)) == {"TFG005": Severity.WARNING}


@pytest.mark.parametrize("path", BENIGN, ids=lambda p: p.name)
def test_truncated_files_give_a_finding_not_a_traceback(path: Path):
    data = path.read_bytes()
    for cut in range(1, len(data), max(1, len(data) // 97)):
        result = scan(data[:cut], path.name)
        assert result.error is None
        assert set(rules(result)) <= {"TFG006"}
    assert "TFG006" in rules(scan(data[: len(data) // 2], path.name))


def test_random_and_foreign_protobuf():
    rng = random.Random(7)
    for _ in range(200):
        blob = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300)))
        result = scan(blob, rng.choice(["x.pb", "saved_model.pb", "a.meta", "keras_metadata.pb"]))
        assert result.error is None
    assert rules(scan(ld(1, "just a string, not a NodeDef"))) == {"TFG006": Severity.WARNING}
    assert rules(scan(vi(3, 5), "saved_model.pb")) == {"TFG006": Severity.WARNING}


def test_hostile_length_claims_do_not_allocate():
    claim = varint(1 << 3 | LEN) + varint(1 << 60)
    assert rules(scan(claim)) == {"TFG006": Severity.WARNING}
    assert rules(scan(vi(1, 1) + varint(2 << 3 | LEN) + varint(2**40), "saved_model.pb")) == \
        {"TFG006": Severity.WARNING}
