"""GGUF and legacy GGML files: THREATS.md 4.7 (CVE-2024-34359 chat templates, parser DoS).

Hostile files are built byte by byte here; the benign ones in tests/fixtures/gguf/ were written
by gguf-py's GGUFWriter (generate.py there). Nothing is ever loaded or rendered.
"""

from __future__ import annotations

import pickle
import random
import struct
import time
from pathlib import Path

import pytest

from shardscan.limits import Limits
from shardscan.model import Severity
from shardscan.pipeline.runner import Runner, ScanOptions
from shardscan.scanners.gguf import TENSOR_TYPES, VALUE_TYPES
from tests.findings import rules

FIXTURES = Path(__file__).parent / "fixtures" / "gguf"
BENIGN = sorted(FIXTURES.glob("*.gguf"))
CHATML = (FIXTURES / "templates" / "chatml.jinja").read_text("utf-8").strip()
CVE_PAYLOAD = ("{% for c in [].__class__.__base__.__subclasses__() %}{% if c.__name__ == 'catch_warnings' %}"
               "{{ c()._module.__builtins__['__import__']('os').system('echo pwned') }}{% endif %}{% endfor %}")
MALICIOUS_PICKLE = b"\x80\x02cposix\nsystem\nq\x00X\n\x00\x00\x00echo pwnedq\x01\x85q\x02Rq\x03."

U8, I8, U16, I16, U32, I32, F32, BOOL, STR, ARR, U64, I64, F64 = range(13)


# --- byte builders ------------------------------------------------------------------------------


class G:
    """Field encoders for one GGUF version and byte order."""

    def __init__(self, version: int = 3, endian: str = "<") -> None:
        self.version, self.e = version, endian

    def n(self, value: int) -> bytes:
        return struct.pack(self.e + ("I" if self.version == 1 else "Q"), value)

    def u32(self, value: int) -> bytes:
        return struct.pack(self.e + "I", value)

    def s(self, text: str | bytes) -> bytes:
        raw = text.encode() if isinstance(text, str) else text
        return self.n(len(raw)) + raw

    def kv(self, key: str | bytes, type_id: int, payload: bytes) -> bytes:
        return self.s(key) + self.u32(type_id) + payload

    def kv_str(self, key: str, value: str | bytes) -> bytes:
        return self.kv(key, STR, self.s(value))

    def scalar(self, type_id: int, value: float | int) -> bytes:
        code = VALUE_TYPES[type_id][1]
        assert code
        return struct.pack(self.e + code, value)

    def array(self, item_type: int, items: list[bytes], count: int | None = None) -> bytes:
        return self.u32(item_type) + self.n(len(items) if count is None else count) + b"".join(items)

    def tensor(self, name: str, dims: tuple[int, ...], type_id: int, offset: int, n_dims: int | None = None) -> bytes:
        dim = "I" if self.version == 1 else "Q"
        return (self.s(name) + self.u32(len(dims) if n_dims is None else n_dims)
                + b"".join(struct.pack(self.e + dim, d) for d in dims) + self.u32(type_id)
                + struct.pack(self.e + "Q", offset))

    def file(self, kvs: list[bytes], tensors: list[bytes] = (), data: bytes = b"", *, alignment: int = 32,
             n_tensors: int | None = None, n_kv: int | None = None) -> bytes:
        head = (b"GGUF" + self.u32(self.version) + self.n(len(tensors) if n_tensors is None else n_tensors)
                + self.n(len(kvs) if n_kv is None else n_kv) + b"".join(kvs) + b"".join(tensors))
        if tensors:
            head += b"\0" * (-len(head) % alignment)
        return head + data


def f32_tensor_file(g: G, template: str | None = CHATML, extra: list[bytes] = ()) -> bytes:
    kvs = [g.kv_str("general.architecture", "llama"), *extra]
    if template is not None:
        kvs.append(g.kv_str("tokenizer.chat_template", template))
    tensors = [g.tensor("a.weight", (8, 2), 0, 0), g.tensor("b.weight", (32,), 1, 64)]
    return g.file(kvs, tensors, b"\0" * (64 + 64))



def failing(report) -> list:
    return [(f.rule_id, f.message) for f in report.findings if f.severity >= Severity.WARNING]


def hits(report, rule_id: str) -> list:
    return [f for f in report.findings if f.rule_id == rule_id]


# --- benign -----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", BENIGN, ids=[p.name for p in BENIGN])
def test_real_gguf_files_are_clean(path):
    report = Runner(ScanOptions()).run([str(path)]).objects[0]
    assert report.status == "scanned", report.error
    assert report.format == "gguf"
    assert report.findings == [], report.findings


def test_real_file_truncated_reports_tensor_data(scan_bytes):
    data = (FIXTURES / "llama3_q8.gguf").read_bytes()
    report = scan_bytes(data[:-100], "m.gguf")
    assert rules(report) == {"GGF104"}


def test_real_file_with_payload_patched_into_its_template(scan_bytes):
    data = (FIXTURES / "llama3_q8.gguf").read_bytes()
    assert data.count(b"message['role']") >= 1
    report = scan_bytes(data.replace(b"message['role']", b"x.__globals__()", 1), "m.gguf")
    assert {f.rule_id for f in report.findings if f.severity == Severity.CRITICAL} == {"TPL101"}


def test_fixtures_were_generated():
    assert len(BENIGN) >= 3
    assert all(p.stat().st_size < 64 * 1024 for p in BENIGN)


@pytest.mark.parametrize(("version", "endian"), [(1, "<"), (2, "<"), (3, "<"), (3, ">")])
def test_every_value_and_tensor_type_is_clean(version, endian, scan_bytes):
    g = G(version, endian)
    kvs = [
        g.kv("u8", U8, g.scalar(U8, 255)), g.kv("i8", I8, g.scalar(I8, -1)), g.kv("u16", U16, g.scalar(U16, 7)),
        g.kv("i16", I16, g.scalar(I16, -7)), g.kv("u32", U32, g.scalar(U32, 7)), g.kv("i32", I32, g.scalar(I32, -7)),
        g.kv("f32", F32, g.scalar(F32, 0.5)), g.kv("b", BOOL, g.scalar(BOOL, 1)),
        g.kv("u64", U64, g.scalar(U64, 2**64 - 1)),
        g.kv("i64", I64, g.scalar(I64, -(2**63))), g.kv("f64", F64, g.scalar(F64, 1e300)),
        g.kv_str("general.name", "tiny"),
        g.kv("general.alignment", U32, g.u32(64)),
        g.kv("tokenizer.ggml.tokens", ARR, g.array(STR, [g.s(t) for t in ("<s>", "</s>", "a" * 300, "")])),
        g.kv("scores", ARR, g.array(F32, [g.scalar(F32, x) for x in (0.0, -1.0)])),
        g.kv("nested", ARR, g.array(ARR, [g.array(I32, [g.scalar(I32, 1)]), g.array(STR, [g.s("x")])])),
        g.kv_str("tokenizer.chat_template", CHATML),
    ]
    tensors, offset = [], 0
    for type_id, (name, block, size) in sorted(TENSOR_TYPES.items()):
        tensors.append(g.tensor(f"t.{name}", (block * 2, 3), type_id, offset))
        offset += -(-(2 * 3 * size) // 64) * 64
    data = g.file(kvs, tensors, b"\0" * offset, alignment=64)
    report = scan_bytes(data, "m.gguf")
    assert report.status == "scanned", report.error
    assert report.findings == [], report.findings


def test_empty_gguf_is_clean(scan_bytes):
    report = scan_bytes(G().file([]), "m.gguf")
    assert report.status == "scanned" and report.findings == []


# --- CVE-2024-34359: chat templates -------------------------------------------------------------

SSTI = {
    "cve-2024-34359": CVE_PAYLOAD,
    "mro-subclasses": "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "cycler-globals-popen": "{{ cycler.__init__.__globals__.os.popen('echo pwned').read() }}",
    "hex-escapes": r"{{ lipsum['\x5f\x5fglobals\x5f\x5f']['os'].popen('id').read() }}",
    "attr-concat": "{{ ''|attr('__cla'+'ss__')|attr('__ba' ~ 'se__')|attr('__subcla' + 'sses__')() }}",
    "join-reverse": "{{ ()|attr(['__cl', 'ass__']|join)|attr('__esab__'|reverse)|attr('__sessalcbus__'|reverse)() }}",
    "format": "{{ joiner|attr('%c%cinit%c%c'|format(95,95,95,95))|attr('%c%cglobals%c%c'|format(95,95,95,95)) }}",
    "unicode-escapes": r"{{ namespace.__init__['\u005f\u005fglobals\u005f\u005f'] }}",
}


@pytest.mark.parametrize("template", SSTI.values(), ids=SSTI.keys())
def test_ssti_template_in_gguf_is_critical(template, scan_bytes):
    report = scan_bytes(f32_tensor_file(G(), template), "evil.gguf")
    assert report.status == "scanned"
    critical = [f for f in report.findings if f.severity == Severity.CRITICAL]
    assert critical and {f.rule_id for f in critical} <= {"TPL101", "TPL102"}, report.findings
    assert all(f.scanner_id == "gguf" and "tokenizer.chat_template" in f.message for f in critical)


def test_cve_payload_rules_and_offset(scan_bytes):
    data = f32_tensor_file(G(), CVE_PAYLOAD)
    report = scan_bytes(data, "evil.gguf")
    assert {"TPL101", "TPL102"} <= rules(report)
    [hit] = [f for f in hits(report, "TPL101") if f.evidence["name"] == "__subclasses__"]
    assert hit.offset == data.find(CVE_PAYLOAD.encode())
    assert hit.severity == Severity.CRITICAL


def test_named_template_is_analysed(scan_bytes):
    g = G()
    extra = [g.kv_str("tokenizer.chat_template.tool_use", SSTI["cycler-globals-popen"])]
    report = scan_bytes(f32_tensor_file(g, CHATML, extra), "m.gguf")
    assert {"TPL101", "TPL102"} <= rules(report)
    assert all("tokenizer.chat_template.tool_use" in f.message for f in failing_findings(report))


def failing_findings(report) -> list:
    return [f for f in report.findings if f.severity >= Severity.WARNING]


def test_same_gguf_renamed_bin_is_routed_by_content(scan_bytes):
    report = scan_bytes(f32_tensor_file(G(), CVE_PAYLOAD), "pytorch_model.bin")
    assert report.format == "gguf"
    assert "TPL101" in rules(report)


def test_duplicate_template_key_every_copy_is_analysed(scan_bytes):
    # A loader keeping the last copy renders the payload; a scanner keeping the first sees ChatML.
    g = G()
    report = scan_bytes(f32_tensor_file(g, CHATML, [g.kv_str("tokenizer.chat_template", CVE_PAYLOAD)]), "m.gguf")
    assert {"GGF106", "TPL101"} <= rules(report)
    assert hits(report, "GGF106")[0].severity == Severity.WARNING


def test_template_over_size_bound(scan_bytes):
    report = scan_bytes(f32_tensor_file(G(), CHATML + " " * 200), "m.gguf", limits=Limits(max_template_chars=100))
    assert rules(report) == {"TPL104"}
    assert all(f.severity == Severity.WARNING for f in report.findings)


def test_template_beyond_read_bound_is_reported(scan_bytes):
    report = scan_bytes(f32_tensor_file(G(), CHATML + " " * 2000), "m.gguf", limits=Limits(max_template_chars=100))
    assert "TPL104" in rules(report)


def test_broken_template_is_a_warning(scan_bytes):
    report = scan_bytes(f32_tensor_file(G(), "{% for m in messages %}{{ m['content'] "), "m.gguf")
    assert rules(report) == {"TPL104"}


def test_template_not_utf8(scan_bytes):
    g = G()
    data = g.file([g.kv_str("tokenizer.chat_template", b"{{ x }}\xff\xfe")])
    assert rules(scan_bytes(data, "m.gguf")) == {"GGF101"}


# --- embedded content in metadata ---------------------------------------------------------------


def test_pickle_in_metadata_string_is_scanned(scan_bytes):
    g = G()
    payload = MALICIOUS_PICKLE + b"\0" * 300
    data = f32_tensor_file(g, CHATML, [g.kv_str("general.description", payload)])
    report = scan_bytes(data, "m.gguf")
    assert {"GGF107", "PKL102"} <= rules(report)
    [embedded] = hits(report, "GGF107")
    assert embedded.offset == data.find(MALICIOUS_PICKLE) and embedded.evidence["format"] == "pickle"
    [pkl] = hits(report, "PKL102")
    assert pkl.severity == Severity.CRITICAL and pkl.location == "general.description"


def test_executable_in_token_array(scan_bytes):
    g = G()
    elf = b"\x7fELF" + b"\x02\x01\x01" + b"\0" * 400
    kv = g.kv("tokenizer.ggml.tokens", ARR, g.array(STR, [g.s("a"), g.s(elf)]))
    report = scan_bytes(f32_tensor_file(g, CHATML, [kv]), "m.gguf")
    assert {"GGF107", "FMT003"} <= rules(report)


def test_long_text_metadata_is_not_embedded_content(scan_bytes):
    g = G()
    report = scan_bytes(f32_tensor_file(g, CHATML, [g.kv_str("general.license", "MIT License. " * 100)]), "m.gguf")
    assert report.findings == []


# --- header robustness: hostile counts and sizes ------------------------------------------------


@pytest.mark.parametrize(("what", "data"), [
    ("n_tensors 2**63", b"GGUF" + struct.pack("<IQQ", 3, 2**63, 0)),
    ("n_tensors 2**64-1", b"GGUF" + struct.pack("<IQQ", 3, 2**64 - 1, 0) + b"\0" * 64),
    ("n_kv 2**63", b"GGUF" + struct.pack("<IQQ", 3, 0, 2**63)),
    ("n_kv beyond bytes", b"GGUF" + struct.pack("<IQQ", 3, 0, 1000) + b"\0" * 100),
    ("v1 n_tensors 2**32-1", b"GGUF" + struct.pack("<III", 1, 2**32 - 1, 0)),
])
def test_hostile_counts(what, data, scan_bytes):
    started = time.monotonic()
    report = scan_bytes(data, "m.gguf")
    assert time.monotonic() - started < 5
    assert rules(report) == {"GGF102"}, what
    assert report.status == "scanned"


def test_count_limits_are_configurable(scan_bytes):
    g = G()
    data = f32_tensor_file(g)
    assert "GGF102" in rules(scan_bytes(data, "m.gguf", limits=Limits(max_gguf_tensors=1)))
    assert "GGF102" in rules(scan_bytes(data, "m.gguf", limits=Limits(max_gguf_kv=1)))


def test_string_length_2_40(scan_bytes):
    g = G()
    data = g.file([g.s("general.name") + g.u32(STR) + g.n(2**40) + b"abc"])
    report = scan_bytes(data, "m.gguf")
    [hit] = hits(report, "GGF102")
    assert hit.evidence["declared"] == 2**40 and hit.offset == data.index(b"general.name") + 12 + 4


def test_string_past_end_of_file(scan_bytes):
    g = G()
    data = g.file([g.s("general.name") + g.u32(STR) + g.n(1000) + b"abc"])
    assert rules(scan_bytes(data, "m.gguf")) == {"GGF101"}


def test_key_length_2_63(scan_bytes):
    data = b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + struct.pack("<Q", 2**63) + b"\0" * 32
    assert rules(scan_bytes(data, "m.gguf")) == {"GGF102"}


def test_array_count_hostile(scan_bytes):
    g = G()
    huge = g.file([g.kv("tokens", ARR, g.u32(U8) + g.n(2**62) + b"\0" * 16)])
    assert rules(scan_bytes(huge, "m.gguf")) == {"GGF102"}
    past_end = g.file([g.kv("tokens", ARR, g.u32(STR) + g.n(1000) + g.s("a"))])
    assert rules(scan_bytes(past_end, "m.gguf")) == {"GGF101"}
    limited = g.file([g.kv("tokens", ARR, g.array(U8, [b"\0"] * 10))])
    assert rules(scan_bytes(limited, "m.gguf", limits=Limits(max_gguf_array_items=5))) == {"GGF102"}


def test_deeply_nested_arrays(scan_bytes):
    g = G()
    value = g.array(U8, [b"\1"])
    for _ in range(5000):
        value = g.array(ARR, [value])
    started = time.monotonic()
    report = scan_bytes(g.file([g.kv("deep", ARR, value)]), "m.gguf")
    assert time.monotonic() - started < 5
    assert rules(report) == {"GGF102"}


def test_array_of_many_strings_is_bounded_in_time(scan_bytes):
    g = G()
    data = g.file([g.kv("tokens", ARR, g.array(STR, [g.s("t")] * 200_000))])
    started = time.monotonic()
    report = scan_bytes(data, "m.gguf")
    assert time.monotonic() - started < 10
    assert report.findings == []


@pytest.mark.parametrize(("what", "data"), [
    ("version 0", b"GGUF" + struct.pack("<IQQ", 0, 0, 0)),
    ("version 4", b"GGUF" + struct.pack("<IQQ", 4, 0, 0)),
    ("header cut", b"GGUF\x03\x00"),
    ("counts cut", b"GGUF" + struct.pack("<I", 3) + b"\0" * 5),
    ("unknown value type", G().file([G().s("k") + G().u32(13) + b"\0" * 8])),
    ("unknown array item type", G().file([G().kv("k", ARR, G().u32(99) + G().n(1) + b"\0")])),
    ("key not utf-8", G().file([G().kv(b"k\xff", U8, b"\1")])),
])
def test_corrupt_headers(what, data, scan_bytes):
    report = scan_bytes(data, "m.gguf")
    assert rules(report) == {"GGF101"}, (what, report.findings)
    assert all(f.severity == Severity.WARNING for f in report.findings)


@pytest.mark.parametrize("cut", [5, 9, 17, 24, 30, 60, 100, 200, -200, -129, -1])
def test_truncated_files(cut, scan_bytes):
    data = f32_tensor_file(G())
    report = scan_bytes(data[:cut], "m.gguf")
    assert report.status == "scanned"
    assert rules(report) & {"GGF101", "GGF102", "GGF104"}, (cut, report.findings)


def test_random_bytes_after_magic(scan_bytes):
    rng = random.Random(7)
    for i in range(30):
        body = bytes(rng.getrandbits(8) for _ in range(rng.randrange(0, 4096)))
        head = b"GGUF" + struct.pack("<I", 1 + i % 3) if i % 2 else b"GGUF"
        started = time.monotonic()
        report = scan_bytes(head + body, f"r{i}.gguf")
        assert time.monotonic() - started < 5
        assert report.status == "scanned" and failing(report), (i, report.error)


def test_no_magic_under_gguf_name_is_an_error(scan_bytes):
    report = scan_bytes(b"GGUX" + b"\0" * 40, "m.gguf")
    assert report.status == "error" and "GGUF" in (report.error or "")


# --- alignment and tensors ------------------------------------------------------------------------


@pytest.mark.parametrize(("payload", "type_id"), [
    (struct.pack("<I", 48), U32), (struct.pack("<I", 0), U32), (struct.pack("<f", 32.0), F32),
])
def test_bad_alignment(payload, type_id, scan_bytes):
    g = G()
    report = scan_bytes(g.file([g.kv("general.alignment", type_id, payload)]), "m.gguf")
    assert rules(report) == {"GGF105"}


def test_alignment_of_another_integer_type_is_used(scan_bytes):
    g = G()
    kv = g.kv("general.alignment", U64, struct.pack("<Q", 64))
    data = g.file([kv], [g.tensor("a", (16,), 0, 0), g.tensor("b", (16,), 0, 64)], b"\0" * 128, alignment=64)
    assert rules(scan_bytes(data, "m.gguf")) == {"GGF105"}


@pytest.mark.parametrize(("what", "tensor", "rule"), [
    ("five dims", G().tensor("t", (1, 1, 1, 1, 1), 0, 0), "GGF103"),
    ("n_dims 2**31", G().tensor("t", (), 0, 0, n_dims=2**31), "GGF103"),
    ("unknown type", G().tensor("t", (4,), 99, 0), "GGF103"),
    ("removed type Q4_2", G().tensor("t", (32,), 4, 0), "GGF103"),
    ("misaligned offset", G().tensor("t", (4,), 0, 4), "GGF103"),
    ("partial Q8_0 block", G().tensor("t", (33,), 8, 0), "GGF103"),
    ("name too long", G().tensor("t" * 64, (4,), 0, 0), "GGF103"),
    ("element count overflow", G().tensor("t", (2**40, 2**40), 0, 0), "GGF103"),
    ("data past end", G().tensor("t", (1024,), 0, 0), "GGF104"),
    ("offset past end", G().tensor("t", (4,), 0, 2**40), "GGF104"),
])
def test_bad_tensor_infos(what, tensor, rule, scan_bytes):
    g = G()
    data = g.file([g.kv_str("general.architecture", "llama")], [tensor], b"\0" * 64)
    report = scan_bytes(data, "m.gguf")
    assert rule in rules(report), (what, report.findings)
    assert all(f.severity == Severity.WARNING for f in report.findings)


def test_overlapping_tensors(scan_bytes):
    g = G()
    tensors = [g.tensor("big", (40,), 0, 0), g.tensor("a", (8,), 0, 32), g.tensor("b", (8,), 0, 128),
               g.tensor("c", (8,), 0, 192)]
    report = scan_bytes(g.file([], tensors, b"\0" * 256), "m.gguf")
    overlaps = hits(report, "GGF104")
    assert {f.evidence["tensor"] for f in overlaps} == {"a", "b"}


def test_duplicate_tensor_name(scan_bytes):
    g = G()
    data = g.file([], [g.tensor("a", (8,), 0, 0), g.tensor("a", (8,), 0, 32)], b"\0" * 64)
    assert rules(scan_bytes(data, "m.gguf")) == {"GGF106"}


def test_many_bad_tensors_are_summarised(scan_bytes):
    g = G()
    tensors = [g.tensor(f"t{i}", (4,), 99, 0) for i in range(100)]
    report = scan_bytes(g.file([], tensors, b""), "m.gguf")
    assert len(hits(report, "GGF103")) == 21
    assert any(f.evidence.get("count") == 100 for f in hits(report, "GGF103"))


def test_timeout_is_reported_not_raised():
    from shardscan.model import ObjectRef, Unit
    from shardscan.policy import load_policy
    from shardscan.scanners.base import ScanContext
    from shardscan.scanners.gguf import GgufScanner
    from shardscan.storage.reader import BytesReader

    g = G()
    data = g.file([g.kv("tokens", ARR, g.array(STR, [g.s("t")] * 50_000))])
    ctx = ScanContext(policy=load_policy(), deadline=time.monotonic() - 1)
    result = GgufScanner().scan(Unit(ObjectRef("m.gguf", len(data)), "gguf"), BytesReader(data), ctx)
    assert result.error == "timed out"


# --- legacy GGML family -----------------------------------------------------------------------


def llama_hparams(n_vocab: int = 3, n_embd: int = 64, n_head: int = 4) -> bytes:
    return struct.pack("<7i", n_vocab, n_embd, 256, n_head, 2, 16, 1)


def vocab(scored: bool, tokens=(b"a", b"bc", b"")) -> bytes:
    return b"".join(struct.pack("<I", len(t)) + t + (struct.pack("<f", 0.0) if scored else b"") for t in tokens)


@pytest.mark.parametrize(("magic", "version", "scored"), [
    (b"lmgg", None, False), (b"fmgg", 1, True), (b"tjgg", 1, True), (b"tjgg", 3, True),
])
def test_legacy_llama_files_are_info(magic, version, scored, scan_bytes):
    data = magic + (struct.pack("<I", version) if version else b"") + llama_hparams() + vocab(scored) + b"\0" * 64
    report = scan_bytes(data, "model.bin")
    assert report.format == "ggml"
    [info] = report.findings
    assert info.rule_id == "GGF001" and info.severity == Severity.INFO
    assert "vocabulary" in info.message and "not walked" in info.message


def test_legacy_lora_and_session(scan_bytes):
    lora = scan_bytes(b"algg" + struct.pack("<Iii", 1, 8, 16) + b"\0" * 32, "adapter.bin")
    assert rules(lora) == {"GGF001"}
    session = scan_bytes(b"asgg" + struct.pack("<I", 1) + b"\0" * 32, "session.bin")
    assert rules(session) == {"GGF001"}


@pytest.mark.parametrize(("what", "data", "rule"), [
    ("bad ggjt version", b"tjgg" + struct.pack("<I", 9) + llama_hparams(), "GGF101"),
    ("hparams cut", b"tjgg" + struct.pack("<I", 3) + b"\0" * 10, "GGF101"),
    ("n_vocab negative", b"lmgg" + struct.pack("<7i", -1, 64, 256, 4, 2, 16, 1), "GGF101"),
    ("n_head zero", b"lmgg" + struct.pack("<7i", 3, 64, 256, 0, 2, 16, 1), "GGF101"),
    ("n_embd not multiple", b"lmgg" + llama_hparams(n_embd=65), "GGF101"),
    ("vocab cut", b"lmgg" + llama_hparams(n_vocab=1000) + vocab(False), "GGF101"),
    ("vocab entry 2**31", b"lmgg" + llama_hparams() + struct.pack("<I", 2**31) + b"\0" * 16, "GGF102"),
    ("lora rank", b"algg" + struct.pack("<Iii", 1, 0, 16), "GGF101"),
    ("magic only", b"fmgg", "GGF101"),
])
def test_legacy_corrupt(what, data, rule, scan_bytes):
    report = scan_bytes(data, "m.ggml")
    assert rules(report) == {rule}, (what, report.findings)


# --- pickles named .gguf stay pickles ---------------------------------------------------------


def test_pickle_named_gguf(scan_bytes):
    report = scan_bytes(pickle.dumps({"a": 1}, protocol=4), "model.gguf")
    assert report.format == "pickle" and "FMT004" in rules(report)
