"""SQL over the results store: the views, the analyst questions the README promises, rendering
and errors. Stores are written with the real writer."""

from __future__ import annotations

import csv
import io
import json
import uuid
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from shardscan.model import Finding, ObjectRef, ObjectReport, Severity, Status
from shardscan.storage.query import QueryError, connect, render, run_query
from shardscan.storage.results import FINDINGS_SCHEMA, OBJECTS_SCHEMA, SCANS_SCHEMA, ResultsStore

POLICY = "policy-1"

EVAL = Finding("PKL101", Severity.CRITICAL, "pickle", "builtins.eval called", "data.pkl", 40,
               {"global": "builtins.eval"})
SYSTEM = Finding("PKL102", Severity.CRITICAL, "pickle", "os.system called", "data.pkl", 88, {"global": "os.system"})
UNKNOWN = Finding("PKL201", Severity.WARNING, "pickle", "unknown global acme.Net", "data.pkl", None,
                  {"global": "acme.Net"})


def one(con: duckdb.DuckDBPyConnection, sql: str) -> tuple:
    (row,) = con.sql(sql).fetchall()
    return row


def obj(uri: str, status: str, content_hash: str | None, findings: list[Finding] = (), *, fmt: str = "pickle",
        formats: tuple[str, ...] = ("pickle",), findings_scan_id: str | None = None) -> ObjectReport:
    return ObjectReport(ObjectRef(uri, 100, etag=f"etag-{uri}"), fmt, status, list(findings),
                        content_hash=content_hash, findings_scan_id=findings_scan_id, formats=formats,
                        bytes_read=0 if status == Status.REUSED else 100)


def write(root: str, scan_id: str, started: datetime, reports: list[ObjectReport]) -> None:
    with ResultsStore(root).writer(scan_id, started) as writer:
        for rep in reports:
            writer.add_report(rep, POLICY)


@pytest.fixture
def today() -> date:
    """DuckDB's current_date, so `scan_date = current_date` means the same day to the test."""
    return duckdb.connect().sql("SELECT current_date").fetchall()[0][0]


@pytest.fixture
def fleet(tmp_path: Path, today: date) -> str:
    """Yesterday's scan and today's: one object changed to a new malicious version, one new file."""
    root = str(tmp_path / "store")
    yesterday = datetime.combine(today - timedelta(days=1), time(12), tzinfo=timezone.utc)
    now = datetime.combine(today, time(12), tzinfo=timezone.utc)
    write(root, "scan-1", yesterday, [
        obj("s3://acme-models/team-a/resnet/model.pkl", Status.SCANNED, "h1", [UNKNOWN]),
        obj("s3://acme-models/team-a/bert/pytorch_model.bin", Status.SCANNED, "h2", [], fmt="zip",
            formats=("zip", "pickle")),
        obj("s3://acme-models/team-b/old/evil.pkl", Status.SCANNED, "h3", [EVAL]),
        obj("s3://acme-models/team-c/llm/model.safetensors", Status.SCANNED, "h4", [], fmt="safetensors",
            formats=("safetensors",)),
    ])
    write(root, "scan-2", now, [
        # Changed since yesterday: same URI, new content with a new critical finding.
        obj("s3://acme-models/team-a/resnet/model.pkl", Status.SCANNED, "h5", [UNKNOWN, SYSTEM]),
        obj("s3://acme-models/team-a/bert/pytorch_model.bin", Status.REUSED, "h2", [], fmt="zip",
            formats=("zip", "pickle"), findings_scan_id="scan-1"),
        # Unchanged and still critical: reused, so not new.
        obj("s3://acme-models/team-b/old/evil.pkl", Status.REUSED, "h3", [EVAL], findings_scan_id="scan-1"),
        obj("s3://acme-models/team-c/llm/model.safetensors", Status.REUSED, "h4", [], fmt="safetensors",
            formats=("safetensors",), findings_scan_id="scan-1"),
        obj("s3://acme-models/team-a/new/model.pkl", Status.SCANNED, "h6", [EVAL]),
        obj("s3://other-bucket/x/evil.pkl", Status.SCANNED, "h7", [EVAL]),
        obj("s3://acme-models/team-d/broken.pkl", Status.ERROR, None, []),
    ])
    return root


# --- views -----------------------------------------------------------------------------------


def test_empty_store_has_every_view_with_its_columns(tmp_path: Path) -> None:
    for root in (str(tmp_path / "missing"), str(tmp_path)):
        con = connect(root)
        for name, schema in (("scans", SCANS_SCHEMA), ("objects", OBJECTS_SCHEMA), ("findings", FINDINGS_SCHEMA)):
            columns = con.sql(f"DESCRIBE {name}").fetchall()
            assert [c[0] for c in columns] == [*schema.names, "scan_date"]
            assert dict((c[0], c[1]) for c in columns)["scan_date"] == "DATE"
            assert one(con, f"SELECT count(*) FROM {name}") == (0,)
        assert one(con, "SELECT count(*) FROM object_findings") == (0,)


def test_views_match_when_files_exist(fleet: str) -> None:
    con = connect(fleet)
    for name, schema in (("scans", SCANS_SCHEMA), ("objects", OBJECTS_SCHEMA), ("findings", FINDINGS_SCHEMA)):
        assert [c[0] for c in con.sql(f"DESCRIBE {name}").fetchall()] == [*schema.names, "scan_date"]
    # A table that has files next to tables that do not.
    root = Path(fleet).parent / "objects-only"
    write(str(root), "s", datetime(2026, 1, 1, tzinfo=timezone.utc), [obj("s3://b/x", Status.ERROR, None)])
    con = connect(str(root))
    assert one(con, "SELECT count(*) FROM objects") == (1,)
    assert one(con, "SELECT count(*) FROM findings") == (0,)


def test_files_missing_a_column_read_it_as_null(tmp_path: Path) -> None:
    """A file from an older schema (no `formats`) still reads, with the column NULL."""
    folder = tmp_path / "objects" / "scan_date=2026-01-01"
    folder.mkdir(parents=True)
    old_schema = pa.schema([f for f in OBJECTS_SCHEMA if f.name != "formats"])
    pq.write_table(pa.Table.from_pylist([{"scan_id": "old", "uri": "s3://b/x.pkl", "format": "pickle",
                                          "status": "scanned"}], schema=old_schema), folder / "old-00000.parquet")
    con = connect(str(tmp_path))
    assert one(con, "SELECT uri, formats, scan_date FROM objects") == ("s3://b/x.pkl", None, date(2026, 1, 1))


def test_object_findings_joins_the_scan_that_produced_them(fleet: str) -> None:
    con = connect(fleet)
    rows = con.sql("SELECT scan_id, uri, status, findings_scan_id, rule_id FROM object_findings "
                   "WHERE uri LIKE '%team-b%' ORDER BY scan_id").fetchall()
    assert rows == [("scan-1", "s3://acme-models/team-b/old/evil.pkl", "scanned", "scan-1", "PKL101"),
                    ("scan-2", "s3://acme-models/team-b/old/evil.pkl", "reused", "scan-1", "PKL101")]
    # One row per (object, finding): the changed resnet has two findings today, one yesterday.
    assert con.sql("SELECT scan_id, count(*) FROM object_findings WHERE uri LIKE '%resnet%' "
                   "GROUP BY ALL ORDER BY 1").fetchall() == [("scan-1", 1), ("scan-2", 2)]


# --- the analyst questions -------------------------------------------------------------------

CRITICAL_TODAY = """
SELECT DISTINCT uri
FROM object_findings
WHERE scan_date = current_date
  AND uri LIKE 's3://acme-models/team-a/%'
  AND severity = 'CRITICAL'
ORDER BY uri
"""

NEW_SINCE_PREVIOUS = """
WITH ordered AS (
  SELECT scan_id, row_number() OVER (ORDER BY started DESC) AS age FROM scans WHERE status = 'complete'
),
latest AS (SELECT * FROM object_findings WHERE scan_id = (SELECT scan_id FROM ordered WHERE age = 1)),
previous AS (SELECT * FROM object_findings WHERE scan_id = (SELECT scan_id FROM ordered WHERE age = 2))
SELECT l.uri, l.rule_id, l.severity, l.location, l.byte_offset
FROM latest l
WHERE NOT EXISTS (
  SELECT 1 FROM previous p
  WHERE p.uri = l.uri AND p.rule_id = l.rule_id AND p.location = l.location
    AND p.byte_offset IS NOT DISTINCT FROM l.byte_offset AND p.message = l.message
)
ORDER BY l.uri, l.rule_id
"""

PICKLE_PREFIXES = """
SELECT regexp_extract(uri, '^[a-z0-9]+://[^/]+/[^/]+/', 0) AS prefix, count(DISTINCT uri) AS pickles
FROM objects
WHERE scan_id = (SELECT scan_id FROM scans ORDER BY started DESC LIMIT 1)
  AND (format = 'pickle' OR list_contains(formats, 'pickle'))
GROUP BY prefix
ORDER BY prefix
"""


def test_critical_findings_under_a_prefix_today(fleet: str) -> None:
    assert run_query(fleet, CRITICAL_TODAY).column("uri").to_pylist() == [
        "s3://acme-models/team-a/new/model.pkl", "s3://acme-models/team-a/resnet/model.pkl"]


def test_findings_new_since_the_previous_scan(fleet: str) -> None:
    rows = run_query(fleet, NEW_SINCE_PREVIOUS).to_pylist()
    assert [(r["uri"], r["rule_id"]) for r in rows] == [
        ("s3://acme-models/team-a/new/model.pkl", "PKL101"),
        ("s3://acme-models/team-a/resnet/model.pkl", "PKL102"),  # PKL201 was there yesterday (NULL offset)
        ("s3://other-bucket/x/evil.pkl", "PKL101"),
    ]


def test_prefixes_that_hold_pickles(fleet: str) -> None:
    assert run_query(fleet, PICKLE_PREFIXES).to_pylist() == [
        {"prefix": "s3://acme-models/team-a/", "pickles": 3},  # the zip counts: it holds a pickle
        {"prefix": "s3://acme-models/team-b/", "pickles": 1},
        {"prefix": "s3://acme-models/team-d/", "pickles": 1},
        {"prefix": "s3://other-bucket/x/", "pickles": 1},
    ]


# --- errors and rendering --------------------------------------------------------------------


@pytest.mark.parametrize("sql", ["SELEC 1", "SELECT * FROM no_such_table", "SELECT nope FROM objects"])
def test_bad_sql_is_a_query_error(fleet: str, sql: str) -> None:
    with pytest.raises(QueryError) as info:
        run_query(fleet, sql)
    message = str(info.value)
    assert message and "Traceback" not in message
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_statement_without_rows(fleet: str) -> None:
    """DDL answers what DuckDB answers (a count, or nothing on older versions), never an error."""
    assert run_query(fleet, "CREATE TEMP TABLE t AS SELECT 1").column_names in (["Count"], [])


def test_render_csv_parses_back(fleet: str, today: date) -> None:
    table = run_query(fleet, "SELECT uri, scan_date, n_findings, formats, max_severity FROM objects "
                             "WHERE scan_id = 'scan-1' ORDER BY uri")
    rows = list(csv.DictReader(io.StringIO(render(table, "csv"))))
    assert len(rows) == 4
    assert rows[0] == {"uri": "s3://acme-models/team-a/bert/pytorch_model.bin",
                       "scan_date": (today - timedelta(days=1)).isoformat(), "n_findings": "0",
                       "formats": '["zip", "pickle"]', "max_severity": ""}
    assert [r["max_severity"] for r in rows] == ["", "WARNING", "CRITICAL", ""]
    with_commas = pa.table({"text": ['a, "quoted"\nline', None]})
    assert list(csv.reader(io.StringIO(render(with_commas, "csv")))) == [["text"], ['a, "quoted"\nline'], [""]]


def test_render_json_loads(fleet: str, today: date) -> None:
    table = run_query(fleet, "SELECT s.scan_id, s.scan_date, s.started, s.targets, s.duration_s FROM scans s "
                             "ORDER BY started")
    data = json.loads(render(table, "json"))
    assert [d["scan_id"] for d in data] == ["scan-1", "scan-2"]
    assert data[1]["scan_date"] == today.isoformat()
    assert datetime.fromisoformat(data[1]["started"]) == datetime.combine(today, time(12), tzinfo=timezone.utc)
    assert data[0]["targets"] == [] and isinstance(data[0]["duration_s"], float)
    assert json.loads(render(run_query(fleet, "SELECT 1 AS x WHERE false"), "json")) == []


def test_render_table_aligns_columns(fleet: str) -> None:
    table = run_query(fleet, "SELECT uri, n_findings, max_severity FROM objects WHERE scan_id = 'scan-2' "
                             "ORDER BY uri LIMIT 3")
    lines = render(table, "table").splitlines()
    assert lines[0].split() == ["uri", "n_findings", "max_severity"]
    assert set(lines[1]) == {"-", " "}
    assert lines[-1] == "(3 rows)"
    widths = {len(line) for line in lines[1:-1]}
    assert len(lines) == 6 and max(widths) == len(lines[1])
    # Numbers are right-aligned under their header.
    end = lines[0].index("n_findings") + len("n_findings")
    assert all(line[end - 1].isdigit() for line in lines[2:-1])
    with pytest.raises(ValueError):
        render(table, "xml")


# --- a non-local root ------------------------------------------------------------------------


def test_query_over_memory_filesystem() -> None:
    import fsspec

    root = f"memory://shardscan-query/{uuid.uuid4().hex}"
    try:
        write(root, "m1", datetime(2026, 3, 1, tzinfo=timezone.utc),
              [obj("s3://b/evil.pkl", Status.SCANNED, "h", [EVAL, SYSTEM])])
        table = run_query(root, "SELECT scan_date, rule_id FROM object_findings ORDER BY rule_id")
        assert table.to_pylist() == [{"scan_date": date(2026, 3, 1), "rule_id": "PKL101"},
                                     {"scan_date": date(2026, 3, 1), "rule_id": "PKL102"}]
    finally:
        fsspec.filesystem("memory").rm(root, recursive=True)
