"""One rule for secrets across every format that holds strings (BIN002), masked in every
report, and machine code in pickled bytes (BIN001). The same token is planted in each format's
own place for text; each sample is written as bytes and scanned, never loaded."""

from __future__ import annotations

import io
import json
import pickle
import zipfile
from pathlib import Path

import pytest

from shardscan.model import Severity
from shardscan.pipeline.runner import Runner, ScanOptions
from shardscan.report import renderer
from tests.findings import only
from tests.test_gguf import G
from tests.test_indicators import elf64
from tests.test_msgpack import pk
from tests.test_onnx import simple
from tests.test_safetensors import st
from tests.test_tensorflow import attr_s, graph, node

TOKEN_BODY = "Q7vK2mXw9LpR4tYz8NbC3hJd6FgS1aEu0"
TOKEN = "hf_" + TOKEN_BODY


def keras_zip(config: dict) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("config.json", json.dumps(config))
        z.writestr("metadata.json", json.dumps({"keras_version": "3.6.0"}))
    return buf.getvalue()


def pmml(extension: str) -> bytes:
    return (f'<?xml version="1.0"?>\n<PMML xmlns="http://www.dmg.org/PMML-4_4" version="4.4">'
            f'<Header><Extension name="deploy" value="{extension}"/></Header>'
            '<DataDictionary numberOfFields="0"/></PMML>').encode()


#: name -> (file name, bytes holding TOKEN in that format's place for text)
SAMPLES = {
    "safetensors metadata": ("m.safetensors", st({"__metadata__": {"format": "pt", "upload": f"with {TOKEN}"}})),
    "onnx metadata_props": ("m.onnx", simple(metadata=[("deploy", f"use {TOKEN}")])),
    "gguf metadata string": ("m.gguf", G().file([G().kv_str("general.source.token", f"pushed by {TOKEN}")])),
    "tensorflow attr": ("frozen.pb", graph(node("Const", "c", (attr_s("_note", f"from {TOKEN}"),)))),
    "keras config": ("m.keras", keras_zip({"class_name": "Sequential", "config": {
        "name": "seq", "layers": [{"class_name": "Dense", "config": {"name": f"d {TOKEN}", "units": 1}}]}})),
    "pmml extension": ("m.pmml", pmml(f"token {TOKEN}")),
    "flax msgpack": ("m.msgpack", pk({"params": {"note": f"by {TOKEN}"}})),
    "pickle string": ("m.pkl", pickle.dumps({"weights": [1.0], "pushed_by": TOKEN}, protocol=4)),
    "pickle protocol 0": ("m0.pkl", pickle.dumps({"pushed_by": TOKEN}, protocol=0)),
    "json config": ("config.json", json.dumps({"model_type": "bert", "hub": TOKEN}).encode()),
    "python source": ("upload.py", f'import os\nTOKEN = "{TOKEN}"\n'.encode()),
    "model card": ("README.md", f"# Model\n\nDownload with `huggingface-cli login --token {TOKEN}`.\n".encode()),
}


def scan(tmp_path: Path, name: str, data: bytes):
    (tmp_path / name).write_bytes(data)
    return Runner(ScanOptions()).run([str(tmp_path / name)])


@pytest.mark.parametrize("where", list(SAMPLES))
def test_secret_is_one_rule_in_every_format_and_never_shown(tmp_path: Path, where: str):
    name, data = SAMPLES[where]
    run = scan(tmp_path, name, data)
    hits = only(run.objects[0], "BIN002")
    assert {f.severity for f in hits} == {Severity.WARNING}
    assert any(f.evidence.get("kind") == "Hugging Face token" for f in hits), hits
    for fmt in ("json", "text", "sarif"):
        out = renderer(fmt)(run)
        assert TOKEN_BODY[:12] not in out, (fmt, where)
        assert "hf_<Hugging Face token" in out or fmt == "sarif"


@pytest.mark.parametrize("text", [
    "hf_" + "x" * 34,
    "AKIAIOSFODNN7EXAMPLE",  # the key id AWS documentation uses
    "sk-YOUR_OPENAI_API_KEY_HERE_123456",
])
def test_documented_placeholders_are_not_secrets(tmp_path: Path, text: str):
    run = scan(tmp_path, "README.md", f"Set the key:\n\n    export KEY={text}\n".encode())
    assert not [f for f in run.findings if f.rule_id == "BIN002"]


def test_code_reading_a_secret_from_elsewhere_is_not_a_leak(tmp_path: Path):
    source = b'import os\ntoken = os.environ["HF_TOKEN"]\napi_key = get_secret("prod/api_key")\n'
    run = scan(tmp_path, "train.py", source)
    assert not [f for f in run.findings if f.rule_id == "BIN002"]


def test_machine_code_in_pickled_bytes_is_critical(tmp_path: Path):
    run = scan(tmp_path, "dropper.pkl", pickle.dumps({"blob": elf64() + bytes(256), "w": [0.5]}, protocol=4))
    [hit] = only(run.objects[0], "BIN001")
    assert hit.severity == Severity.CRITICAL and hit.evidence["kind"] == "ELF"
    assert not [f for f in run.findings if f.severity >= Severity.WARNING and f.rule_id != "BIN001"]


def test_benign_bytes_in_a_pickle_are_not_executables(tmp_path: Path):
    import numpy as np

    weights = np.random.default_rng(0).standard_normal(4096).astype("<f4").tobytes()
    run = scan(tmp_path, "plain.pkl", pickle.dumps({"raw": weights, "mask": bytes(range(256)) * 8}, protocol=4))
    assert not [f for f in run.findings if f.severity >= Severity.WARNING]
