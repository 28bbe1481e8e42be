"""The Parquet results store: round trips, batching, atomic publication and the dedupe index.

Everything is written through the real writer and read back through DuckDB or pyarrow; the
kill tests run a real writer in a child process and kill it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from datetime import date, datetime, timezone
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from shardscan.model import Finding, ObjectRef, ObjectReport, Severity, Status
from shardscan.rules import BY_ID
from shardscan.storage import results
from shardscan.storage.query import connect
from shardscan.storage.results import (
    FINDINGS_SCHEMA,
    OBJECTS_SCHEMA,
    SCANS_SCHEMA,
    SCHEMA_VERSION,
    SCHEMA_VERSION_KEY,
    TMP_DIR,
    ResultsStore,
)
from shardscan.storage.results_index import KnownIndex, Prior

POLICY = "policy-1"
DAY1 = datetime(2026, 11, 4, 9, 30, tzinfo=timezone.utc)
DAY2 = datetime(2026, 11, 5, 23, 59, tzinfo=timezone.utc)
REPO_ROOT = Path(__file__).resolve().parents[1]

EVAL = Finding("PKL101", Severity.CRITICAL, "pickle", "builtins.eval called", "data.pkl", 123,
               {"global": "builtins.eval", "args": ["print(1)"], "nested": {"b": 2, "a": 1}})
UNKNOWN = Finding("PKL201", Severity.WARNING, "pickle", "unknown global acme.Model", "archive/data.pkl", None,
                  {"global": "acme.Model", "note": "ünïcode"}, offset_in="")
INNER = Finding("PKL102", Severity.CRITICAL, "pickle", "os.system called", "inner.gz/data.pkl", 7,
                {}, offset_in="inner.gz")


def report(uri: str, status: str, content_hash: str | None, findings: list[Finding] = (), *,
           etag: str | None = "e1", size: int = 1000, fmt: str = "pickle", formats: tuple[str, ...] = ("pickle",),
           findings_scan_id: str | None = None, error: str | None = None, bytes_read: int = 1000) -> ObjectReport:
    return ObjectReport(ObjectRef(uri, size, etag=etag), fmt, status, list(findings), error=error, duration_s=0.25,
                        content_hash=content_hash, content_sha256=None, bytes_read=bytes_read,
                        findings_scan_id=findings_scan_id, formats=formats)


def write_scan(root: str, scan_id: str, started: datetime, reports: list[ObjectReport],
               policy: str = POLICY, **scan_row: object) -> dict:
    with ResultsStore(root).writer(scan_id, started) as writer:
        for rep in reports:
            writer.add_report(rep, policy)
        return writer.close({"targets": ["s3://bucket/models"], "engine": "local", "workers": 4, **scan_row})


def first_scan_reports() -> list[ObjectReport]:
    return [
        report("s3://bucket/models/a.pkl", Status.SCANNED, "h-a", [EVAL, UNKNOWN], etag="ea"),
        report("s3://bucket/models/b.zip", Status.SCANNED, "h-b", [INNER], etag="eb", fmt="zip",
               formats=("zip", "pickle")),
        report("s3://bucket/models/copy-of-a.pkl", Status.REUSED, "h-a", [EVAL, UNKNOWN], etag="ec",
               findings_scan_id="scan-1", bytes_read=0),
        report("s3://bucket/models/clean.safetensors", Status.SCANNED, "h-c", [], etag="ed", fmt="safetensors",
               formats=("safetensors",)),
        report("s3://bucket/models/gone.pkl", Status.ERROR, None, [], etag="ee", error="not found", bytes_read=0),
    ]


def one(con: duckdb.DuckDBPyConnection, sql: str) -> tuple:
    """The single row a query returns."""
    (row,) = con.sql(sql).fetchall()
    return row


# --- round trip ----------------------------------------------------------------------------------


def test_round_trip_through_duckdb(tmp_path: Path) -> None:
    root = str(tmp_path / "store")
    row = write_scan(root, "scan-1", DAY1, first_scan_reports(), arguments={"paths": ["s3://bucket/models"]})
    assert (row["objects"], row["scanned"], row["reused"], row["errors"], row["skipped"]) == (5, 3, 1, 1, 0)
    assert row["findings"] == 5 and row["bytes_total"] == 5000 and row["bytes_read"] == 3000

    con = connect(root)
    scans = con.sql("SELECT * FROM scans").to_arrow_table().to_pylist()
    assert len(scans) == 1
    scan = scans[0]
    assert scan["scan_date"] == date(2026, 11, 4)
    assert scan["status"] == "complete" and scan["policy_version"] == POLICY
    assert scan["started"] == DAY1 and scan["finished"] >= DAY1
    assert scan["targets"] == ["s3://bucket/models"] and scan["workers"] == 4 and scan["engine"] == "local"
    assert json.loads(scan["arguments"]) == {"paths": ["s3://bucket/models"]}
    assert one(con, "SELECT typeof(scan_date) FROM objects LIMIT 1")[0] == "DATE"

    objects = {o["uri"]: o for o in con.sql("SELECT * FROM objects").to_arrow_table().to_pylist()}
    a = objects["s3://bucket/models/a.pkl"]
    assert (a["scan_id"], a["size"], a["etag"], a["status"], a["content_hash"]) == (
        "scan-1", 1000, "ea", "scanned", "h-a")
    assert a["fingerprint"] == ObjectRef("s3://bucket/models/a.pkl", 1000, etag="ea").fingerprint()
    assert (a["n_findings"], a["max_severity"], a["findings_scan_id"]) == (2, "CRITICAL", "scan-1")
    assert (a["policy_version"], a["bytes_read"], a["duration_s"], a["scan_date"]) == (
        POLICY, 1000, 0.25, date(2026, 11, 4))
    assert objects["s3://bucket/models/b.zip"]["formats"] == ["zip", "pickle"]
    copy = objects["s3://bucket/models/copy-of-a.pkl"]
    assert (copy["status"], copy["findings_scan_id"], copy["bytes_read"]) == ("reused", "scan-1", 0)
    gone = objects["s3://bucket/models/gone.pkl"]
    assert (gone["status"], gone["error"], gone["content_hash"], gone["max_severity"]) == (
        "error", "not found", None, None)
    assert objects["s3://bucket/models/clean.safetensors"]["max_severity"] is None

    # Findings are stored once per content hash: the reused copy wrote none of its own.
    findings = con.sql("SELECT * FROM findings ORDER BY content_hash, rule_id").to_arrow_table().to_pylist()
    assert [(f["content_hash"], f["rule_id"]) for f in findings] == [("h-a", "PKL101"), ("h-a", "PKL201"),
                                                                      ("h-b", "PKL102")]
    eval_row, unknown_row, inner_row = findings
    assert (eval_row["severity"], eval_row["severity_level"], eval_row["byte_offset"]) == ("CRITICAL", 40, 123)
    assert eval_row["evidence"] == '{"args": ["print(1)"], "global": "builtins.eval", "nested": {"a": 1, "b": 2}}'
    assert eval_row["why"] == BY_ID["PKL101"].why and eval_row["scanner"] == "pickle"
    assert (unknown_row["severity"], unknown_row["byte_offset"]) == ("WARNING", None)
    assert json.loads(unknown_row["evidence"])["note"] == "ünïcode"
    assert (inner_row["offset_in"], inner_row["location"]) == ("inner.gz", "inner.gz/data.pkl")

    # The reused copy shows the findings of the scan it reused.
    joined = con.sql("SELECT uri, count(*) FROM object_findings GROUP BY uri ORDER BY uri").fetchall()
    assert joined == [("s3://bucket/models/a.pkl", 2), ("s3://bucket/models/b.zip", 1),
                      ("s3://bucket/models/copy-of-a.pkl", 2)]


def test_second_scan_lands_in_its_own_partition(tmp_path: Path) -> None:
    root = str(tmp_path / "store")
    write_scan(root, "scan-1", DAY1, first_scan_reports())
    write_scan(root, "scan-2", DAY2, [
        report("s3://bucket/models/a.pkl", Status.REUSED, "h-a", [EVAL, UNKNOWN], etag="ea",
               findings_scan_id="scan-1", bytes_read=0),
        report("s3://bucket/models/new.pkl", Status.SCANNED, "h-n", [EVAL], etag="en"),
    ])
    for table in ("scans", "objects", "findings"):
        partitions = sorted(p.name for p in (tmp_path / "store" / table).iterdir())
        assert partitions == ["scan_date=2026-11-04", "scan_date=2026-11-05"]
    con = connect(root)
    assert con.sql("SELECT scan_id, scan_date, objects FROM scans ORDER BY started").fetchall() == [
        ("scan-1", date(2026, 11, 4), 5), ("scan-2", date(2026, 11, 5), 2)]
    assert con.sql("SELECT scan_date, count(*) FROM objects GROUP BY ALL ORDER BY 1").fetchall() == [
        (date(2026, 11, 4), 5), (date(2026, 11, 5), 2)]
    assert one(con, "SELECT count(*) FROM object_findings WHERE scan_id = 'scan-2'") == (3,)
    # Partition pruning works on the DATE column.
    assert one(con, "SELECT count(*) FROM objects WHERE scan_date = DATE '2026-11-05'") == (2,)


def test_files_carry_schema_version_and_zstd(tmp_path: Path) -> None:
    root = tmp_path / "store"
    write_scan(str(root), "scan-1", DAY1, first_scan_reports())
    for table, schema in (("scans", SCANS_SCHEMA), ("objects", OBJECTS_SCHEMA), ("findings", FINDINGS_SCHEMA)):
        (path,) = (root / table).glob("*/*.parquet")
        meta = pq.ParquetFile(path)
        assert meta.schema_arrow.metadata[SCHEMA_VERSION_KEY] == str(SCHEMA_VERSION).encode()
        assert meta.schema_arrow.remove_metadata() == schema.remove_metadata()
        assert "scan_date" not in meta.schema_arrow.names
        assert meta.metadata.row_group(0).column(0).compression == "ZSTD"
    assert not list((root / TMP_DIR).iterdir())  # nothing left behind by a clean close


def test_pyarrow_dataset_reads_scan_date_as_date(tmp_path: Path) -> None:
    root = str(tmp_path / "store")
    write_scan(root, "scan-1", DAY1, first_scan_reports())
    table = ResultsStore(root).dataset("objects").to_table(columns=["uri", "scan_date"])
    assert table.num_rows == 5
    assert set(table.column("scan_date").to_pylist()) == {date(2026, 11, 4)}


# --- batching ------------------------------------------------------------------------------------


def _many(writer: results.ResultsWriter, objects: int, findings_per_object: int) -> None:
    for i in range(objects):
        findings = [Finding("PKL201", Severity.WARNING, "pickle", f"unknown global m{j}", "data.pkl", j * 10,
                            {"i": i, "j": j}) for j in range(findings_per_object)]
        writer.add_report(report(f"s3://bucket/m/{i:05d}.pkl", Status.SCANNED, f"h{i:05d}", findings,
                                 etag=f"e{i}"), POLICY)


def test_ten_thousand_objects_make_a_handful_of_files(tmp_path: Path) -> None:
    root = tmp_path / "store"
    with ResultsStore(str(root)).writer("big", DAY1) as writer:
        _many(writer, 10_000, 5)
    objects = list((root / "objects").glob("*/*.parquet"))
    findings = list((root / "findings").glob("*/*.parquet"))
    assert len(objects) == 1 and len(findings) == 1
    assert pq.ParquetFile(objects[0]).metadata.num_row_groups == 1
    meta = pq.ParquetFile(findings[0]).metadata
    assert meta.num_rows == 50_000 and meta.num_row_groups == 1
    con = connect(str(root))
    assert one(con, "SELECT count(*) FROM objects") == (10_000,)
    assert one(con, "SELECT count(*), count(DISTINCT content_hash) FROM findings") == (50_000, 10_000)


def test_parts_rotate_by_rows_and_row_groups_stay_large(tmp_path: Path) -> None:
    root = tmp_path / "store"
    with ResultsStore(str(root)).writer("big", DAY1, object_part_rows=4_000, finding_part_rows=40_000,
                                        row_group_rows=2_500) as writer:
        _many(writer, 10_000, 5)
    objects = sorted((root / "objects").glob("*/*.parquet"))
    assert [p.name for p in objects] == ["big-00000.parquet", "big-00001.parquet", "big-00002.parquet"]
    assert [pq.ParquetFile(p).metadata.num_rows for p in objects] == [4_000, 4_000, 2_000]
    assert [pq.ParquetFile(p).metadata.num_row_groups for p in objects] == [2, 2, 1]
    findings = sorted((root / "findings").glob("*/*.parquet"))
    assert 3 <= len(findings) <= 5
    for path in findings:
        meta = pq.ParquetFile(path).metadata
        assert all(meta.row_group(i).num_rows >= 2_500 or i == meta.num_row_groups - 1
                   for i in range(meta.num_row_groups))
    assert one(connect(str(root)), "SELECT count(*) FROM findings") == (50_000,)


def test_old_parts_are_published_and_findings_come_first(tmp_path: Path) -> None:
    """A part older than part_seconds is published at the next row; every visible object row
    has its findings visible at every moment."""
    root = str(tmp_path / "store")
    writer = ResultsStore(root).writer("slow", DAY1, part_seconds=0.0)
    for i in range(5):
        writer.add_report(report(f"s3://b/{i}.pkl", Status.SCANNED, f"h{i}", [EVAL], etag=f"e{i}"), POLICY)
        con = connect(root)
        visible = one(con, "SELECT count(*) FROM objects")[0]
        assert visible == i  # everything but the row just added
        assert one(con, "SELECT count(*) FROM objects o WHERE n_findings > 0 AND NOT EXISTS "
                       "(SELECT 1 FROM findings f WHERE f.content_hash = o.content_hash)") == (0,)
    writer.close()
    assert one(connect(root), "SELECT count(*) FROM object_findings") == (5,)


# --- atomicity -----------------------------------------------------------------------------------

_CHILD = textwrap.dedent("""
    import os, sys, time
    from datetime import datetime, timezone
    from shardscan.model import Finding, ObjectRef, ObjectReport, Severity, Status
    from shardscan.storage.results import ResultsStore

    root, mode = sys.argv[1], sys.argv[2]
    writer = ResultsStore(root).writer("killed", datetime(2026, 11, 4, tzinfo=timezone.utc),
                                       object_part_rows=1000, finding_part_rows=10**9, row_group_rows=250)
    for i in range(2600):  # two objects parts published, 600 rows open (two row groups on disk)
        finding = Finding("PKL101", Severity.CRITICAL, "pickle", f"eval {i}", "data.pkl", i, {"i": i})
        writer.add_report(ObjectReport(ObjectRef(f"s3://b/{i}.pkl", 10, etag=str(i)), "pickle", Status.SCANNED,
                                       [finding], content_hash=f"h{i}"), "policy-1")
    if mode == "exit":
        os._exit(9)
    print("ready", flush=True)
    time.sleep(60)
""")


@pytest.mark.parametrize("mode", ["exit", "sigkill"])
def test_killed_writer_leaves_only_published_parts(tmp_path: Path, mode: str) -> None:
    root = tmp_path / "store"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", _CHILD, str(root), mode], stdout=subprocess.PIPE, env=env,
                            text=True)
    if mode == "sigkill":
        assert proc.stdout.readline().strip() == "ready"
        os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=120)
    assert proc.returncode == (9 if mode == "exit" else -signal.SIGKILL)

    published = sorted(p.name for p in (root / "objects").glob("*/*.parquet"))
    assert published == ["killed-00000.parquet", "killed-00001.parquet"]
    leftovers = list((root / TMP_DIR).iterdir())
    assert leftovers and all(p.name.endswith(".tmp") for p in leftovers)  # the open parts, unseen
    con = connect(str(root))
    assert one(con, "SELECT count(*), count(DISTINCT uri) FROM objects") == (2000, 2000)
    assert one(con, "SELECT count(*) FROM scans") == (0,)  # no scans row: never finished
    # Every visible object has its findings; the open part's objects are not visible at all.
    assert one(con, "SELECT count(*) FROM object_findings") == (2000,)
    assert one(con, "SELECT max(size) FROM objects") == (10,)

    # The store stays writable, and a later writer clears only stale temporaries.
    write_scan(str(root), "after", DAY2, first_scan_reports())
    assert list((root / TMP_DIR).iterdir())
    old = time.time() - results.STALE_TMP_SECONDS - 60
    for path in leftovers:
        os.utime(path, (old, old))
    ResultsStore(str(root)).writer("later", DAY2).abort()
    assert not list((root / TMP_DIR).iterdir())


def test_abort_publishes_and_marks_interrupted(tmp_path: Path) -> None:
    root = str(tmp_path / "store")
    writer = ResultsStore(root).writer("stopped", DAY1)
    for rep in first_scan_reports()[:2]:
        writer.add_report(rep, POLICY)
    row = writer.abort({"targets": ["s3://bucket/models"]})
    assert row["status"] == "interrupted" and row["objects"] == 2
    con = connect(root)
    assert con.sql("SELECT scan_id, status, objects, findings FROM scans").fetchall() == [
        ("stopped", "interrupted", 2, 3)]
    assert one(con, "SELECT count(*) FROM object_findings") == (3,)
    with pytest.raises(RuntimeError):
        writer.add_object(first_scan_reports()[3], POLICY)


def test_context_manager_marks_failures(tmp_path: Path) -> None:
    root = str(tmp_path / "store")
    with pytest.raises(ZeroDivisionError), ResultsStore(root).writer("boom", DAY1) as writer:
        writer.add_report(first_scan_reports()[0], POLICY)
        raise ZeroDivisionError
    with pytest.raises(KeyboardInterrupt), ResultsStore(root).writer("ctrl-c", DAY1) as writer:
        raise KeyboardInterrupt
    assert connect(root).sql("SELECT scan_id, status, objects FROM scans ORDER BY 1").fetchall() == [
        ("boom", "failed", 1), ("ctrl-c", "interrupted", 0)]


def test_writer_refuses_what_would_break_the_store(tmp_path: Path) -> None:
    store = ResultsStore(str(tmp_path / "store"))
    for bad in ("", "a/b", "scan*", "../x", "x y"):
        with pytest.raises(ValueError):
            store.writer(bad, DAY1)
    write_scan(store.root, "scan-1", DAY1, [])
    with pytest.raises(FileExistsError):
        store.writer("scan-1", DAY1)
    writer = store.writer("scan-2", DAY1)
    with pytest.raises(ValueError, match="unknown scans columns"):
        writer.close({"objectz": 1})
    writer = store.writer("scan-3", DAY1)
    with pytest.raises(ValueError, match="status"):
        writer.close({"status": "great"})
    with pytest.raises(ValueError):
        store.writer("scan-4", DAY1).add_findings("", POLICY, "scan-4", [EVAL])


def test_same_content_twice_in_one_run_writes_findings_once(tmp_path: Path) -> None:
    root = str(tmp_path / "store")
    with ResultsStore(root).writer("dup", DAY1) as writer:
        writer.add_findings("h-a", POLICY, "dup", [EVAL, UNKNOWN])
        writer.add_findings("h-a", POLICY, "dup", [EVAL, UNKNOWN])
        writer.add_object(report("s3://b/1.pkl", Status.SCANNED, "h-a", [EVAL, UNKNOWN]), POLICY)
        writer.add_object(report("s3://b/2.pkl", Status.SCANNED, "h-a", [EVAL, UNKNOWN], etag="e2"), POLICY)
    con = connect(root)
    assert one(con, "SELECT count(*) FROM findings") == (2,)
    assert one(con, "SELECT count(*) FROM object_findings") == (4,)


def test_naive_start_is_taken_as_utc(tmp_path: Path) -> None:
    root = str(tmp_path / "store")
    write_scan(root, "naive", datetime(2026, 11, 4, 23, 0), [])
    assert one(connect(root), "SELECT scan_date, started FROM scans") == (
        date(2026, 11, 4), datetime(2026, 11, 4, 23, 0, tzinfo=timezone.utc))


# --- the index -----------------------------------------------------------------------------------


def test_index_of_missing_or_empty_store_is_empty(tmp_path: Path) -> None:
    for root in (tmp_path / "missing", tmp_path):
        index = ResultsStore(str(root)).index(POLICY)
        assert len(index) == 0 and index.fingerprints == 0
        assert index.content_hash_for("anything") is None and index.scanned("h") is None
        assert index.findings("h", "scan-1") == []


def test_index_fingerprints_and_scanned_hashes(tmp_path: Path) -> None:
    root = str(tmp_path / "store")
    write_scan(root, "scan-1", DAY1, first_scan_reports())
    # Day 2: a.pkl changed under the same fingerprint (an ETag reused): the most recent wins.
    # h-a is scanned again (a concurrent run): the earliest scan stays the one reused.
    write_scan(root, "scan-2", DAY2, [
        report("s3://bucket/models/a.pkl", Status.SCANNED, "h-a2", [EVAL], etag="ea"),
        report("s3://bucket/other/a.pkl", Status.SCANNED, "h-a", [EVAL, UNKNOWN], etag="x"),
    ])
    write_scan(root, "scan-3", DAY2, [report("s3://bucket/models/z.pkl", Status.SCANNED, "h-z", [INNER], etag="ez")],
               policy="policy-2")
    index = ResultsStore(root).index(POLICY)

    fp = ObjectRef("s3://bucket/models/a.pkl", 1000, etag="ea").fingerprint()
    assert index.content_hash_for(fp) == "h-a2"
    assert index.content_hash_for(ObjectRef("s3://bucket/models/copy-of-a.pkl", 1000, etag="ec").fingerprint()) == "h-a"
    assert index.content_hash_for(ObjectRef("s3://bucket/models/gone.pkl", 1000, etag="ee").fingerprint()) is None
    assert index.content_hash_for(ObjectRef("s3://bucket/models/a.pkl", 1000, etag="other").fingerprint()) is None
    assert index.content_hash_for(None) is None
    # The fingerprint index is about bytes, not policy: another policy's rows count too.
    assert index.content_hash_for(ObjectRef("s3://bucket/models/z.pkl", 1000, etag="ez").fingerprint()) == "h-z"

    assert index.scanned("h-a") == Prior("scan-1", 2, Severity.CRITICAL, "pickle", ("pickle",))
    assert index.scanned("h-c") == Prior("scan-1", 0, None, "safetensors", ("safetensors",))
    assert index.scanned("h-a2") == Prior("scan-2", 1, Severity.CRITICAL, "pickle", ("pickle",))
    assert index.scanned("h-z") is None  # scanned under another policy version only
    assert ResultsStore(root).index("policy-2").scanned("h-z") == Prior("scan-3", 1, Severity.CRITICAL, "pickle",
                                                                        ("pickle",))
    assert len(index) == 4  # h-a, h-b, h-c, h-a2


def test_index_reconstructs_findings(tmp_path: Path) -> None:
    root = str(tmp_path / "store")
    write_scan(root, "scan-1", DAY1, first_scan_reports())
    write_scan(root, "scan-2", DAY2, [report("s3://x/a.pkl", Status.SCANNED, "h-a", [UNKNOWN], etag="q")],
               policy="policy-2")
    index = ResultsStore(root).index(POLICY)
    assert index.findings("h-a", "scan-1") == [EVAL, UNKNOWN]
    assert index.findings("h-b", "scan-1") == [INNER]
    restored = index.findings("h-b", "scan-1")[0]
    assert restored.offset_in == "inner.gz" and isinstance(restored.severity, Severity)
    assert index.findings("h-c", "scan-1") == []
    assert index.findings("h-a", "scan-2") == []  # another policy's findings are not this policy's
    assert index.findings("h-a", "no-such-scan") == []
    index.close()


def test_index_finds_findings_across_parts_and_row_groups(tmp_path: Path) -> None:
    """Many parts and row groups: every hash's findings come back whole and in order, whatever
    order they are asked in (the row-group cache evicts)."""
    root = str(tmp_path / "store")
    expected = {}
    with ResultsStore(root).writer("many", DAY1, finding_part_rows=200, row_group_rows=45) as writer:
        for i in range(400):
            findings = [Finding("PKL201", Severity(10 * (1 + (i + j) % 4)), "pickle", f"global m{i}.{j}",
                                f"dir/{i}.pkl", None if j == 1 else i * 100 + j, {"i": i, "j": [j]},
                                offset_in="inner" if j == 2 else "") for j in range(i % 4)]
            expected[f"h{i}"] = findings
            writer.add_report(report(f"s3://b/{i}.pkl", Status.SCANNED, f"h{i}", findings, etag=str(i)), POLICY)
    assert len(list((tmp_path / "store" / "findings").glob("*/*.parquet"))) > 1
    index = ResultsStore(root).index(POLICY)
    for order in (range(400), reversed(range(400))):
        for i in order:
            assert index.findings(f"h{i}", "many") == expected[f"h{i}"]
    assert index.findings("h-unknown", "many") == []


def test_remember_reuses_within_a_run(tmp_path: Path) -> None:
    index = ResultsStore(str(tmp_path / "store")).index(POLICY)
    index.remember("h-new", "run-1", 2, "critical", findings=[EVAL, UNKNOWN],
                   fingerprint=ObjectRef("s3://b/x.pkl", 5, etag="1").fingerprint())
    index.remember("h-clean", "run-1", 0, None)
    assert index.scanned("h-new") == Prior("run-1", 2, Severity.CRITICAL)
    assert index.scanned("h-clean") == Prior("run-1", 0, None)
    assert index.findings("h-new", "run-1") == [EVAL, UNKNOWN]
    assert index.content_hash_for(ObjectRef("s3://b/x.pkl", 5, etag="1").fingerprint()) == "h-new"
    # A store hit is never replaced by a later remember(): the earliest scan stays the one reused.
    index.remember("h-new", "run-2", 1, Severity.INFO)
    assert index.scanned("h-new").scan_id == "run-1"


def test_loaded_index_is_a_known_index(tmp_path: Path) -> None:
    assert isinstance(ResultsStore(str(tmp_path)).index(POLICY), KnownIndex)


# --- a non-local root ----------------------------------------------------------------------------


@pytest.fixture
def memory_root():
    import fsspec

    root = f"memory://shardscan-tests/{uuid.uuid4().hex}"
    yield root
    fs = fsspec.filesystem("memory")
    if fs.exists(root):
        fs.rm(root, recursive=True)


def test_memory_store_round_trip_and_index(memory_root: str) -> None:
    write_scan(memory_root, "scan-1", DAY1, first_scan_reports())
    store = ResultsStore(memory_root)
    assert not store.local
    keys = sorted(store.fs.find(store.path))
    assert keys and all(k.endswith(".parquet") for k in keys)  # no temporaries on the object store
    assert any("/objects/scan_date=2026-11-04/scan-1-00000.parquet" in k for k in keys)
    con = connect(memory_root)
    assert one(con, "SELECT count(*) FROM objects") == (5,)
    assert con.sql("SELECT DISTINCT scan_date FROM findings").fetchall() == [(date(2026, 11, 4),)]
    assert one(con, "SELECT count(*) FROM object_findings") == (5,)
    index = store.index(POLICY)
    assert index.scanned("h-a") == Prior("scan-1", 2, Severity.CRITICAL, "pickle", ("pickle",))
    assert index.content_hash_for(ObjectRef("s3://bucket/models/b.zip", 1000, etag="eb").fingerprint()) == "h-b"
    assert index.findings("h-a", "scan-1") == [EVAL, UNKNOWN]


def test_memory_store_parts_appear_whole(memory_root: str) -> None:
    store = ResultsStore(memory_root)
    writer = store.writer("parts", DAY1, object_part_rows=100, row_group_rows=40)
    for i in range(250):
        writer.add_report(report(f"s3://b/{i}.pkl", Status.SCANNED, f"h{i}", [EVAL], etag=str(i)), POLICY)
    # Two parts published, the third still open and nowhere in the store.
    assert len(store.files("objects")) == 2
    assert one(connect(memory_root), "SELECT count(*) FROM object_findings") == (200,)
    writer.close()
    assert one(connect(memory_root), "SELECT count(*) FROM objects") == (250,)
