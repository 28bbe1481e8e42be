"""Content sniffers for the binary formats without magic: TensorFlow protobufs (SavedModel,
MetaGraphDef, frozen GraphDef) and Flax msgpack. They must find real files under any name and
claim nothing else: no ONNX, text, zip, pickle or random bytes."""

from __future__ import annotations

import io
import pickle
import random
import struct
import zipfile
from pathlib import Path

import pytest

from benchmarks.inputs import flax_msgpack_file, onnx_file, tf_graph_file
from shardscan.pipeline.runner import Runner, ScanOptions
from shardscan.scanners.detect import HEAD_BYTES, TAIL_BYTES, _is_msgpack, _is_onnx, _is_tf_graph, detect

FIXTURES = Path(__file__).parent / "fixtures"
TF_FILES = ["tensorflow/frozen_graph.pb", "tensorflow/saved_model/saved_model.pb", "tensorflow/tiny.meta"]
FLAX_FILES = ["flax/mlp.msgpack", "flax/bf16.flax", "flax/conv.msgpack", "flax/mixed.msgpack"]
KiB = 1024


def sniffed(data: bytes, name: str = "blob.bin") -> tuple[str, str]:
    det = detect(data[:HEAD_BYTES], name, len(data), data[-TAIL_BYTES:])
    return det.format, det.by


def claims(data: bytes) -> list[str]:
    head = data[:HEAD_BYTES]
    return [fmt for fmt, sniff in (("tensorflow", _is_tf_graph), ("msgpack", _is_msgpack)) if sniff(head, len(data))]


def fixstr(text: str) -> bytes:
    raw = text.encode()
    return bytes([0xA0 | len(raw)]) + raw


def field(number: int, payload: bytes) -> bytes:
    assert len(payload) < 128
    return bytes([number << 3 | 2, len(payload)]) + payload


# --- real files, any name -------------------------------------------------------------------------


@pytest.mark.parametrize("source", TF_FILES + FLAX_FILES)
def test_real_files_are_found_by_content_under_any_name(source):
    data = (FIXTURES / source).read_bytes()
    fmt = "tensorflow" if source.startswith("tensorflow/") else "msgpack"
    for name in ("blob.bin", "model.onnx.bak", "weights", "params.txt"):
        assert sniffed(data, name) == (fmt, "content"), name
    assert claims(data) == [fmt]


def test_large_files_are_found_from_their_head(tmp_path):
    """A head cut inside a tensor's bytes is enough: names, ops and keys come first."""
    for write, fmt in ((tf_graph_file, "tensorflow"), (flax_msgpack_file, "msgpack")):
        path = write(tmp_path / fmt, 3 * (1 << 20), tensor_bytes=1 << 20)
        assert sniffed(path.read_bytes()) == (fmt, "content")


def test_onnx_is_never_taken_for_tensorflow(tmp_path):
    for path in [*sorted((FIXTURES / "onnx").rglob("*.onnx")),
                 onnx_file(tmp_path / "big.onnx", 2 * (1 << 20), tensor_bytes=1 << 20)]:
        data = path.read_bytes()
        if _is_onnx(data[:HEAD_BYTES], len(data)):
            assert sniffed(data)[0] == "onnx", path.name
        assert "tensorflow" not in claims(data), path.name


def test_renamed_tensorflow_files_are_judged_as_under_their_names(tmp_path):
    """The scanner tells SavedModel, MetaGraphDef and GraphDef apart by content too."""
    for source in TF_FILES:
        named = tmp_path / Path(source).name
        renamed = tmp_path / f"blob-{named.stem}"
        data = (FIXTURES / source).read_bytes()
        named.write_bytes(data)
        renamed.write_bytes(data)
        by_name, by_content = Runner(ScanOptions()).run([str(named), str(renamed)]).objects
        assert by_content.format == by_name.format == "tensorflow"
        strip = [(f.rule_id, f.severity, f.message) for f in by_name.findings]
        assert [(f.rule_id, f.severity, f.message) for f in by_content.findings] == strip, source


# --- no false positives ---------------------------------------------------------------------------


def test_no_other_fixture_is_claimed():
    mine = {FIXTURES / s for s in TF_FILES + FLAX_FILES}
    for path in sorted(p for p in FIXTURES.rglob("*") if p.is_file() and p not in mine):
        data = path.read_bytes()
        assert claims(data) == [], path
        assert sniffed(data, path.name)[0] not in ("tensorflow", "msgpack") or path.suffix in (".pb", ".msgpack"), path


@pytest.mark.parametrize("lead", [b"", b"\x0a", b"\x12", b"\x08\x01\x12", b"\x81", b"\x82\xa6params",
                                  b"\xde\x00\x03", b"\x0a\x05\x0a\x01x\x12"])
def test_random_bytes_are_not_claimed(lead):
    for seed in range(400):
        rng = random.Random(seed)
        data = lead + rng.randbytes(rng.choice([8, 100, 4 * KiB, HEAD_BYTES + 5000]))
        assert claims(data) == [], (seed, data[:32])


@pytest.mark.parametrize("text", [
    "plain words\nand lines\n" * 50,
    "\n\nname: x\nop: Const\n" * 20,
    '{"params": {"Dense_0": {"kernel": [1, 2, 3]}}}',
    "ޅޮ ތާނަ ލިޔުން " * 40,   # Thaana: UTF-8 lead byte 0xDE, msgpack's map16
    "日本語のテキスト\n" * 40,
    "\x12\x05Const\n\x01x" * 3,
])
def test_text_is_not_claimed(text):
    data = text.encode()
    assert claims(data) == []
    assert sniffed(data)[0] == "text"


def test_archives_and_pickles_are_not_claimed():
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("a.pb", (FIXTURES / TF_FILES[0]).read_bytes())
    samples = [buf.getvalue(), pickle.dumps({"params": {"w": [1.0] * 10}}, protocol=0),
               pickle.dumps({"params": [1, 2]}, protocol=4)]
    for data in samples:
        assert sniffed(data)[0] in ("zip", "pickle")
        assert claims(data) == [] or sniffed(data)[0] in ("zip", "pickle")


# --- protobuf sniffer details --------------------------------------------------------------------


def graph(name: bytes = b"x", op: bytes = b"Placeholder") -> bytes:
    return field(1, field(1, name) + field(2, op)) + field(4, b"\x08\x01")


def test_graph_def_needs_a_node_with_identifier_name_and_op():
    assert _is_tf_graph(graph(), len(graph()))
    for bad in (graph(op=b"Place holder"), graph(name=b""), graph(op=b"\xff\xfe"),
                field(1, field(2, b"Const") + field(1, b"x"))):  # op before name
        assert not _is_tf_graph(bad, len(bad)), bad


def test_protobuf_lengths_must_fit_the_object():
    data = graph()
    assert not _is_tf_graph(data[:-1], len(data) - 1)  # the versions message cut by the end
    assert not _is_tf_graph(data + b"\x22\x7f", len(data) + 2)  # a length past the end
    assert not _is_tf_graph(data + b"\x58\x01", len(data) + 2)  # field 11: not a GraphDef field


def test_saved_model_needs_a_meta_graph():
    meta = field(1, field(1, b"v1.0")) + field(2, graph())
    saved = b"\x08\x01" + field(2, meta)
    assert _is_tf_graph(saved, len(saved))
    assert not _is_tf_graph(b"\x08\x01", 2)
    assert not _is_tf_graph(b"\x08\x01" + field(2, b"pytorch"), 11)  # ONNX: ir_version, producer_name


# --- msgpack sniffer details ---------------------------------------------------------------------


def test_msgpack_top_level_map_of_string_keys():
    flat = b"\x82" + fixstr("step") + b"\x01" + fixstr("lr") + b"\xcb" + struct.pack(">d", 0.1)
    assert _is_msgpack(flat, len(flat))  # parses to exactly the end
    assert not _is_msgpack(flat + b"\x00", len(flat) + 1)  # trailing bytes
    assert not _is_msgpack(b"\x81\x01\x02", 3)  # an integer key
    assert not _is_msgpack(b"\x81\xa0\x01", 3)  # an empty key
    assert not _is_msgpack(b"\x81\xa2\x00\x01\x01", 5)  # a key that is not printable
    assert not _is_msgpack(b"\x80", 1)  # an empty map
    assert not _is_msgpack(b"\x81" + fixstr("a") + b"\xc1", 4)  # the never-used byte


def test_msgpack_cut_by_the_head_needs_a_nested_map_or_ext():
    payload = b"\x93\x91\x04" + fixstr("float32") + b"\xc6" + struct.pack(">I", 1 << 20)
    ext = b"\xc9" + struct.pack(">I", len(payload) + (1 << 20)) + b"\x01" + payload
    nested = b"\x81" + fixstr("params") + b"\x81" + fixstr("kernel") + ext
    size = len(nested) + (1 << 20)
    assert _is_msgpack(nested, size)
    flat = b"\x81" + fixstr("blob") + b"\xc6" + struct.pack(">I", 1 << 20)
    assert not _is_msgpack(flat, len(flat) + (1 << 20))  # a lone bytes value, cut: not enough
    assert not _is_msgpack(nested, len(nested) + 10)  # the ext's length does not fit the object
