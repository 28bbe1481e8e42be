"""SQL over a results store with DuckDB: the views analysts query, and rendering of answers.

`connect(root)` gives a DuckDB connection with views `scans`, `objects`, `findings` (one per
table, `scan_date` a DATE from the hive path) and `object_findings` (each object row with the
findings of the scan that produced them). A table with no files yet is still a view with the
right columns, so a query written for a full store also runs on an empty one.

Object stores are read through their fsspec file system registered with DuckDB
(`register_filesystem`), not DuckDB's httpfs extension, which downloads itself on first use.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

import duckdb
import pyarrow as pa

from shardscan.storage.results import PARTITION, PARTITIONING_SCHEMA, TABLES, ResultsStore

__all__ = ["FORMATS", "QueryError", "connect", "new_connection", "render", "run_query"]

FORMATS = ("table", "csv", "json")

#: Where the empty stand-ins for tables without files live, out of the analyst's way.
_EMPTY_SCHEMA = "_shardscan_empty"

#: Each object row with the findings of the scan that produced its findings: a reused row
#: shows the findings of the earlier scan it reused, under its own scan id and date.
_OBJECT_FINDINGS_SQL = f"""
CREATE VIEW object_findings AS
SELECT o.scan_id, o.{PARTITION}, o.uri, o.status, o.format, o.content_hash, o.policy_version,
       o.findings_scan_id, f.rule_id, f.severity, f.severity_level, f.scanner, f.message,
       f.location, f.byte_offset, f.offset_in, f.evidence, f.why
FROM objects o
JOIN findings f
  ON o.content_hash = f.content_hash
 AND o.policy_version = f.policy_version
 AND o.findings_scan_id = f.scan_id
"""


class QueryError(Exception):
    """A query DuckDB rejected or could not run; the message is DuckDB's own."""


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def new_connection(store: ResultsStore) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection that can read the store's files."""
    con = duckdb.connect(":memory:")
    if not store.local:
        con.register_filesystem(store.fs)
    return con


def connect(root: str) -> duckdb.DuckDBPyConnection:
    """A connection with the `scans`, `objects`, `findings` and `object_findings` views."""
    store = ResultsStore(root)
    con = new_connection(store)
    con.execute(f"CREATE SCHEMA {_EMPTY_SCHEMA}")
    for name, schema in TABLES.items():
        full = pa.unify_schemas([schema, PARTITIONING_SCHEMA])
        empty = f"{_EMPTY_SCHEMA}.{name}"
        con.register("_arrow_empty", full.empty_table())
        con.execute(f"CREATE TABLE {empty} AS SELECT * FROM _arrow_empty")
        con.unregister("_arrow_empty")
        if not store.files(name):
            con.execute(f"CREATE VIEW {name} AS SELECT * FROM {empty}")
            continue
        pattern = store.url(f"{store.table_path(name)}/*/*.parquet")
        source = (f"read_parquet({_literal(pattern)}, hive_partitioning = true, union_by_name = true, "
                  f"hive_types = {{'{PARTITION}': 'DATE'}})")
        present = {row[0] for row in con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()}
        if set(full.names) <= present:
            con.execute(f"CREATE VIEW {name} AS SELECT * FROM {source}")
        else:  # files from an older schema: the columns they lack read as NULL
            con.execute(f"CREATE VIEW {name} AS SELECT * FROM {source} UNION ALL BY NAME SELECT * FROM {empty}")
    con.execute(_OBJECT_FINDINGS_SQL)
    return con


def run_query(root: str, sql: str) -> pa.Table:
    """Run `sql` against the store's views; a rejected query raises QueryError."""
    try:
        con = connect(root)
    except duckdb.Error as exc:
        raise QueryError(str(exc)) from None
    try:
        relation = con.sql(sql)
        if relation is None:  # a statement with no result set
            return pa.table({})
        return relation.to_arrow_table()
    except duckdb.Error as exc:
        raise QueryError(str(exc)) from None
    finally:
        con.close()


def _plain(value: Any) -> Any:
    """A value JSON and CSV can carry: ISO text for dates and times."""
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _cell(value: Any) -> str:
    """One value as CSV or table text: nested values as JSON, NULL as empty."""
    value = _plain(value)
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def render(table: pa.Table, fmt: str) -> str:
    """`table` as aligned text columns, CSV with a header row, or a JSON array of objects."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    rows = table.to_pylist()
    if fmt == "json":
        return json.dumps([{k: _plain(v) for k, v in row.items()} for row in rows], ensure_ascii=False, indent=1)
    names = table.column_names
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(names)
        writer.writerows([_cell(row[n]) for n in names] for row in rows)
        return out.getvalue()
    return _text_table(table, names, rows)


def _text_table(table: pa.Table, names: list[str], rows: list[dict[str, Any]]) -> str:
    """Columns padded to their widest cell; numbers right-aligned so magnitudes line up."""
    numeric = [pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t)
               for t in table.schema.types]
    cells = [[_cell(row[n]).replace("\n", "\\n") for n in names] for row in rows]
    widths = [max([len(n)] + [len(r[i]) for r in cells]) for i, n in enumerate(names)]

    def line(values: list[str]) -> str:
        parts = [v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric, strict=True)]
        return "  ".join(parts).rstrip()

    out = [line(names), "  ".join("-" * w for w in widths)]
    out.extend(line(r) for r in cells)
    out.append(f"({len(rows)} row{'' if len(rows) == 1 else 's'})")
    return "\n".join(out) + "\n"
