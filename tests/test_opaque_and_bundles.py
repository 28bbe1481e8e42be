"""Opaque engines (TensorRT `.engine`/`.plan`/`.trt`) and model bundles that are archives
(`.nemo` tar, TorchServe `.mar` zip, OCI image layouts). Samples are only written, never loaded,
extracted or run."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import random
import struct
import tarfile
import zipfile
from pathlib import Path

import pytest

from shardscan.model import Severity, Unit
from shardscan.pipeline.runner import Runner, ScanOptions
from shardscan.policy import load_policy
from shardscan.scanners import detect as fmt
from shardscan.scanners import opaque
from shardscan.scanners.base import ScanContext
from shardscan.storage.reader import BytesReader
from tests.findings import rules

C, W, I = Severity.CRITICAL, Severity.WARNING, Severity.INFO
PAYLOAD = b"\x80\x02cposix\nsystem\nq\x00X\n\x00\x00\x00echo pwnedq\x01\x85q\x02Rq\x03."
#: A valid-looking ELF64 header (x86-64 executable) and some code bytes.
ELF = (b"\x7fELF\x02\x01\x01" + b"\0" * 9
       + struct.pack("<HHIQQQIHHHHHH", 2, 0x3E, 1, 0x401000, 64, 0, 0, 64, 56, 1, 64, 0, 0)
       + b"\x90" * 64)



def of(report, rule_id: str) -> list:
    return [f for f in report.findings if f.rule_id == rule_id]


def noise(n: int, seed: int = 7) -> bytes:
    return random.Random(seed).randbytes(n)


def engine_bytes(body: bytes) -> bytes:
    # Starts like nothing with a magic of its own, as serialized engines do.
    return b"\x00\x00\x00\x00ftrt" + body


# --- detection ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["model.engine", "model.plan", "resnet.TRT"])
def test_engine_extensions_are_detected(name):
    data = engine_bytes(noise(4096))
    assert fmt.detect(data, name, len(data)).format == fmt.OPAQUE_ENGINE


def test_magic_wins_over_the_engine_extension():
    assert fmt.detect(PAYLOAD, "model.engine", len(PAYLOAD)).format == fmt.PICKLE


# --- opaque engines ------------------------------------------------------------------------

def test_engine_with_embedded_elf_and_plugins(scan_bytes):
    body = (noise(3000) + ELF + noise(500) + b"\0libnvinfer_plugin.so.10\0" + noise(100)
            + b"\0custom_nms.dll\0getPluginCreator\0IPluginV2DynamicExt\0IPluginV3\0" + noise(100))
    data = engine_bytes(body)
    report = scan_bytes(data, "model.engine")
    assert report.format == fmt.OPAQUE_ENGINE
    [exe] = of(report, "BIN001")
    assert exe.severity == C and "ELF" in exe.message and exe.offset == data.index(b"\x7fELF")
    names = {f.evidence["name"]: f for f in of(report, "OPQ002")}
    assert set(names) == {"libnvinfer_plugin.so.10", "custom_nms.dll", "getPluginCreator",
                          "IPluginV2DynamicExt", "IPluginV3"}
    assert all(f.severity == W for f in names.values())
    assert names["custom_nms.dll"].offset == data.index(b"custom_nms.dll")
    [info] = of(report, "OPQ001")
    assert info.severity == I and info.evidence["scanned"] == len(data)


def test_random_engine_reports_only_coverage(scan_bytes):
    report = scan_bytes(engine_bytes(noise(3 << 20, seed=11)), "random.plan")
    assert rules(report) == {"OPQ001"}, [(f.rule_id, f.message) for f in report.findings]


def test_names_that_are_not_plugin_libraries_are_ignored():
    data = b"\0.so\0xso.so\0a.dll\0ab.dylib\0readme.sonnet\0IPluginV2x\0libc.so\0"
    assert [name for _, name in opaque.plugin_references(data)] == ["IPluginV2x", "libc.so"]


def test_empty_engine_is_reported_empty(scan_bytes):
    report = scan_bytes(b"", "model.engine")
    assert not report.findings


class _CountingReader(BytesReader):
    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.largest = 0
        self.total = 0

    def read(self, offset: int, length: int) -> bytes:
        self.largest = max(self.largest, length)
        self.total += length
        return super().read(offset, length)


def _scan_direct(data: bytes) -> tuple[list, _CountingReader]:
    reader = _CountingReader(data)
    unit = Unit(object=None, scanner_id="opaque", start=0, length=len(data), context={"format": fmt.OPAQUE_ENGINE})
    result = opaque.OpaqueEngineScanner().scan(unit, reader, ScanContext(policy=load_policy()))
    return result.findings, reader


@pytest.mark.parametrize("cut", [-40, -5, -1, 0, 3, 20])
def test_hits_straddling_a_window_edge_are_found_once(cut):
    edge = opaque.CHUNK  # first window's own bytes end here
    elf_at, lib_at = edge + cut, 2 * edge + cut
    data = bytearray(noise(3 * opaque.CHUNK + 1000, seed=3))
    data[elf_at:elf_at + len(ELF)] = ELF
    name = b"\0libcustom_plugin.so\0"
    data[lib_at:lib_at + len(name)] = name
    findings, reader = _scan_direct(bytes(data))
    [exe] = [f for f in findings if f.rule_id == "BIN001"]
    assert exe.offset == elf_at
    [lib] = [f for f in findings if f.rule_id == "OPQ002"]
    assert (lib.evidence["name"], lib.offset) == ("libcustom_plugin.so", lib_at + 1)
    assert reader.largest <= opaque.CHUNK + opaque.OVERLAP + opaque.BACK


def test_big_engine_is_read_in_bounded_windows_up_to_the_limit(monkeypatch):
    monkeypatch.setattr(opaque, "CHUNK", 64 * 1024)
    monkeypatch.setattr(opaque, "MAX_SCAN_BYTES", 1 << 20)
    data = noise(4 << 20, seed=5) + ELF  # the ELF lies past the limit: not read
    findings, reader = _scan_direct(data)
    assert reader.largest <= 64 * 1024 + opaque.OVERLAP + opaque.BACK
    assert reader.total < 3 << 20
    assert [f.rule_id for f in findings] == ["OPQ001"]
    assert findings[0].evidence == {"scanned": 1 << 20, "size": len(data)}
    assert f"first {1 << 20} of {len(data)} bytes" in findings[0].message


# --- bundles: .nemo (tar) ---------------------------------------------------------------------

def tar_bytes(*members: tuple[str, bytes], compress: str = "") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=f"w:{compress}", format=tarfile.GNU_FORMAT) as tf:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


NEMO_CONFIG = b"""\
name: EncDecCTCModel
preprocessor:
  _target_: os.system
  command: echo pwned
"""


def test_nemo_is_read_as_a_tar_by_content():
    data = tar_bytes(("./model_config.yaml", b"name: x\n"))
    assert fmt.detect(data[:fmt.HEAD_BYTES], "asr.nemo", len(data)).format == fmt.TAR


def test_nemo_hydra_target_and_pickled_checkpoint(scan_bytes):
    report = scan_bytes(tar_bytes(("./model_config.yaml", NEMO_CONFIG), ("./model_weights.ckpt", PAYLOAD)),
                        "asr.nemo")
    assert report.format == fmt.TAR
    [cfg] = of(report, "CFG203")
    assert cfg.severity == C and cfg.location.endswith("model_config.yaml")
    pkl = [f for f in report.findings if f.rule_id.startswith("PKL") and f.severity == C]
    assert pkl and all(f.location.endswith("model_weights.ckpt") for f in pkl)


def test_gzipped_nemo_is_covered_too(scan_bytes):
    report = scan_bytes(tar_bytes(("model_config.yaml", NEMO_CONFIG), ("model_weights.ckpt", PAYLOAD),
                                  compress="gz"), "asr.nemo")
    assert {"CFG203", "PKL102"} <= rules(report)


# --- bundles: TorchServe .mar (zip) -----------------------------------------------------------

def test_mar_handler_running_a_command_at_import(scan_bytes):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("MAR-INF/MANIFEST.json", json.dumps({
            "runtime": "python", "model": {"modelName": "m", "handler": "handler.py",
                                           "serializedFile": "model.pt"}}))
        z.writestr("handler.py", "import os\nos.system('echo pwned')\n\n"
                                 "def handle(data, context):\n    return data\n")
    data = buf.getvalue()
    assert fmt.detect(data[:fmt.HEAD_BYTES], "m.mar", len(data), data[-fmt.TAIL_BYTES:]).format == fmt.ZIP
    report = scan_bytes(data, "m.mar")
    [hit] = of(report, "CFG101")
    assert hit.severity == C and hit.location.endswith("handler.py")


# --- bundles: OCI image layout ------------------------------------------------------------------

def _blob(root: Path, data: bytes) -> str:
    digest = hashlib.sha256(data).hexdigest()
    (root / "blobs" / "sha256" / digest).write_bytes(data)
    return digest


def test_oci_layout_layer_holding_a_pickle(tmp_path):
    root = tmp_path / "image"
    (root / "blobs" / "sha256").mkdir(parents=True)
    (root / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    layer = gzip.compress(tar_bytes(("models/", b""), ("models/model.pkl", PAYLOAD)))
    layer_digest = _blob(root, layer)
    config_digest = _blob(root, json.dumps({"architecture": "amd64", "os": "linux"}).encode())
    manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "config": {"digest": f"sha256:{config_digest}", "size": 10},
                           "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                                       "digest": f"sha256:{layer_digest}", "size": len(layer)}]}).encode()
    manifest_digest = _blob(root, manifest)
    (root / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [
        {"digest": f"sha256:{manifest_digest}", "size": len(manifest)}]}))
    run = Runner(ScanOptions()).run([str(root)])
    by_name = {os.path.basename(o.object.name): o for o in run.objects}
    layer_report = by_name[layer_digest]
    hits = [f for f in layer_report.findings if f.rule_id == "PKL102"]
    assert hits and hits[0].severity == C
    assert "models/model.pkl" in hits[0].location
    others = [o for name, o in by_name.items() if name != layer_digest]
    assert not [f for o in others for f in o.findings if f.severity == C]
