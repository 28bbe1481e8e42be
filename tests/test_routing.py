"""Every format reaches its scanner by content, whatever the file is called, and every
scanner is listed with the formats it takes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from shardscan.cli import main
from shardscan.model import Severity
from shardscan.pipeline.runner import Runner, ScanOptions
from shardscan.scanners import registry
from shardscan.scanners.detect import detect

FIXTURES = Path(__file__).parent / "fixtures"
#: One real file per format (written by its own library), and the format it must be read as.
ONE_OF_EACH = {
    "benign/torch_mlp_fp32.pt": "zip",
    "benign/torch_legacy_state_dict.pt": "pickle",
    "benign/sklearn_random_forest.joblib.gz": "gzip",
    "benign/numpy_float32.npy": "npy",
    "safetensors/multi.safetensors": "safetensors",
    "gguf/llama3_q8.gguf": "gguf",
    "onnx/mlp.onnx": "onnx",
    "keras/sequential.h5": "hdf5",
    "keras/sequential.keras": "zip",
    "configs/bert-base-uncased.config.json": "text",
    "tensorflow/tiny.tflite": "tflite",
    "pmml/logreg.pmml": "pmml",
    "orbax/manager/1/default/manifest.ocdbt": "ocdbt",
    # Binary formats without magic, sniffed by their structure.
    "tensorflow/frozen_graph.pb": "tensorflow",
    "tensorflow/saved_model/saved_model.pb": "tensorflow",
    "tensorflow/tiny.meta": "tensorflow",
    "flax/mlp.msgpack": "msgpack",
    "flax/bf16.flax": "msgpack",
}
#: Their usual names still route them when the content alone would not decide.
BY_NAME = {"tensorflow/frozen_graph.pb": "tensorflow", "tensorflow/tiny.meta": "tensorflow",
           "flax/mlp.msgpack": "msgpack", "flax/bf16.flax": "msgpack"}


def test_one_file_of_each_format_is_routed_by_content_whatever_its_name(tmp_path: Path):
    for i, source in enumerate(ONE_OF_EACH):
        shutil.copy(FIXTURES / source, tmp_path / f"blob-{i:02d}.bin")
    run = Runner(ScanOptions()).run([str(tmp_path)])
    assert [o.format for o in run.objects] == list(ONE_OF_EACH.values())
    assert all(o.status == "scanned" for o in run.objects)
    assert not [f for f in run.findings if f.severity >= Severity.WARNING], run.findings
    assert not [f for f in run.findings if f.rule_id == "FMT002"]  # every format has its scanner


def test_formats_without_magic_are_routed_by_their_names(tmp_path: Path):
    paths = []
    for source in BY_NAME:
        shutil.copy(FIXTURES / source, tmp_path / Path(source).name)
        paths.append(str(tmp_path / Path(source).name))
    run = Runner(ScanOptions()).run(paths)
    assert [o.format for o in run.objects] == list(BY_NAME.values())
    assert not [f for f in run.findings if f.severity >= Severity.WARNING or f.rule_id == "FMT002"]


def test_names_alone_still_route_formats_without_magic():
    """Content the sniffers cannot judge (a head cut short of any node) keeps its name's format."""
    for name, fmt in (("graph.pb", "tensorflow"), ("model.meta", "tensorflow"), ("params.msgpack", "msgpack"),
                      ("params.flax", "msgpack")):
        det = detect(b"\x00\x01\x02\x03", name, 4)
        assert (det.format, det.by) == (fmt, "extension"), name


def test_list_scanners_shows_every_scanner_and_its_formats(capsys):
    assert main(["scan", "--list-scanners", "-f", "json"]) == 0
    listed = {s["id"]: set(s["formats"]) for s in json.loads(capsys.readouterr().out)}
    assert listed == {entry.id: set(entry.formats) for entry in registry().values()}
    for family in ("safetensors", "gguf", "onnx", "keras", "text", "pickle", "zip", "tensorflow", "tflite", "pmml",
                   "msgpack"):
        assert family in listed, family
    assert {"gguf", "ggml"} <= listed["gguf"] and listed["keras"] == {"hdf5"}


def test_source_in_a_legacy_encoding_is_still_read_as_code(scan_bytes):
    source = b"# -*- coding: latin-1 -*-\n# caf\xe9\nimport os\nos.system('echo pwned')\n"
    report = scan_bytes(source, "setup_model.py")
    assert report.format == "text"
    assert {(f.rule_id, f.severity) for f in report.findings} == {("CFG101", Severity.CRITICAL)}
