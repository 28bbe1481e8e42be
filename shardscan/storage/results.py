"""The Parquet results store: what every scan saw, kept for fleets, dedupe and analysts.

A store is a local directory or an fsspec URI prefix (``s3://bucket/prefix``, ``gs://...``)
holding three append-only tables, each a folder of zstd Parquet files partitioned by the date
the scan started (hive style, so DuckDB and ``pyarrow.dataset`` read ``scan_date`` as a column)::

    ROOT/scans/scan_date=YYYY-MM-DD/<scan_id>.parquet
    ROOT/objects/scan_date=YYYY-MM-DD/<scan_id>-<part:05d>.parquet
    ROOT/findings/scan_date=YYYY-MM-DD/<scan_id>-<part:05d>.parquet

``scan_date`` lives only in the path, never inside the files: a column that is both in the file
and in the path makes readers disagree on its type, while a path-only column is cast to DATE by
DuckDB and by ``pyarrow.dataset`` given `PARTITIONING`. Every part of one scan goes under the
date the scan *started*, even when the scan runs past midnight, so one scan is one partition.

Two promises shape the writer:

* **Nothing half-written is ever visible.** A part is written under a temporary name that no
  reader's glob matches (``ROOT/_tmp/...tmp`` locally, memory for object stores) and appears
  under its final ``.parquet`` name in one step: ``os.replace`` locally, a single PUT of the
  complete bytes on an object store (a PUT, multipart included, is atomic there).
* **An object row is never visible before its findings.** Findings are published before (or
  with) every objects part, so a reader that sees an object row with findings sees them too.
  The index relies on this when it reuses an earlier scan's findings.

Rows are buffered and written in row groups of `ROW_GROUP_ROWS`; a part is published once it
holds `OBJECT_PART_ROWS` / `FINDING_PART_ROWS` rows or is `PART_SECONDS` old, so a killed driver
loses at most the last window and a scan makes a handful of files, not one per object.

The storage layer knows nothing about what findings mean: it stores what the pipeline hands it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from datetime import date, datetime, timezone
from types import TracebackType
from typing import TYPE_CHECKING, Any

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
import xxhash

from shardscan import __version__
from shardscan.model import Finding, ObjectReport, Status
from shardscan.rules import BY_ID

if TYPE_CHECKING:
    from shardscan.storage.results_index import KnownIndex

__all__ = [
    "COMPRESSION",
    "COMPRESSION_LEVEL",
    "FINDINGS_SCHEMA",
    "FINDING_PART_ROWS",
    "OBJECTS_SCHEMA",
    "OBJECT_PART_ROWS",
    "PARTITION",
    "PARTITIONING_SCHEMA",
    "PART_SECONDS",
    "ROW_GROUP_ROWS",
    "SCANS_SCHEMA",
    "SCAN_STATUSES",
    "SCHEMA_VERSION",
    "TABLES",
    "ResultsStore",
    "ResultsWriter",
]

#: Bumped whenever a column is added, removed or changes meaning; stored in every file's metadata.
SCHEMA_VERSION = 1
SCHEMA_VERSION_KEY = b"shardscan.schema_version"
_META = {SCHEMA_VERSION_KEY: str(SCHEMA_VERSION).encode()}

#: The hive partition column; in the path only, read back as a DATE.
PARTITION = "scan_date"
PARTITIONING_SCHEMA = pa.schema([(PARTITION, pa.date32())])

_TS = pa.timestamp("us", tz="UTC")

SCANS_SCHEMA = pa.schema(
    [
        ("scan_id", pa.string()),
        ("started", _TS),
        ("finished", _TS),
        ("status", pa.string()),
        ("tool_version", pa.string()),
        ("policy_version", pa.string()),
        ("targets", pa.list_(pa.string())),
        ("arguments", pa.string()),  # JSON
        ("engine", pa.string()),
        ("workers", pa.int32()),
        ("objects", pa.int64()),
        ("scanned", pa.int64()),
        ("reused", pa.int64()),
        ("errors", pa.int64()),
        ("skipped", pa.int64()),
        ("findings", pa.int64()),
        ("bytes_total", pa.int64()),
        ("bytes_read", pa.int64()),
        ("duration_s", pa.float64()),
    ],
    metadata=_META,
)

OBJECTS_SCHEMA = pa.schema(
    [
        ("scan_id", pa.string()),
        ("uri", pa.string()),
        ("size", pa.int64()),
        ("etag", pa.string()),
        ("version", pa.string()),
        ("store_sha256", pa.string()),
        ("fingerprint", pa.string()),
        ("content_hash", pa.string()),
        ("content_sha256", pa.string()),
        ("format", pa.string()),
        ("formats", pa.list_(pa.string())),
        ("status", pa.string()),
        ("policy_version", pa.string()),
        ("findings_scan_id", pa.string()),
        ("n_findings", pa.int32()),
        ("max_severity", pa.string()),
        ("bytes_read", pa.int64()),
        ("duration_s", pa.float64()),
        ("error", pa.string()),
        # Weight analysis coverage of a scanned object (null when it did not run, and for an
        # object reused from an earlier scan: that scan's row holds it).
        ("weights_tensors", pa.int64()),
        ("weights_bytes", pa.int64()),
        ("weights_skipped", pa.string()),  # JSON: reason -> {"tensors", "bytes"}
    ],
    metadata=_META,
)

#: `byte_offset`, not `offset`: OFFSET is reserved in SQL, and `WHERE offset > 0` would be a
#: syntax error in every analyst's query.
FINDINGS_SCHEMA = pa.schema(
    [
        ("content_hash", pa.string()),
        ("policy_version", pa.string()),
        ("scan_id", pa.string()),
        ("rule_id", pa.string()),
        ("severity", pa.string()),
        ("severity_level", pa.int16()),
        ("scanner", pa.string()),
        ("message", pa.string()),
        ("location", pa.string()),
        ("byte_offset", pa.int64()),
        ("offset_in", pa.string()),
        ("evidence", pa.string()),  # JSON, sorted keys
        ("why", pa.string()),
    ],
    metadata=_META,
)

TABLES: dict[str, pa.Schema] = {"scans": SCANS_SCHEMA, "objects": OBJECTS_SCHEMA, "findings": FINDINGS_SCHEMA}

#: A part is published at this many rows (objects rows are wide, findings rows narrow).
OBJECT_PART_ROWS = 100_000
FINDING_PART_ROWS = 500_000
#: ...or when it is this old: what a killed driver can lose at most.
PART_SECONDS = 60.0
#: Rows per Parquet row group, and so the most rows buffered in Python per table.
ROW_GROUP_ROWS = 50_000
COMPRESSION = "zstd"
COMPRESSION_LEVEL = 3
#: Where local parts are written before they are renamed into place: outside every table, and
#: named `*.tmp`, so no reader's glob sees them.
TMP_DIR = "_tmp"
TMP_SUFFIX = ".tmp"
#: Temporary parts older than this were left by a killed writer and are removed.
STALE_TMP_SECONDS = 24 * 3600

SCAN_STATUSES = ("complete", "interrupted", "failed")
#: Scan ids become file names and glob patterns: no separators, no glob characters.
SCAN_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")


def _utc(moment: datetime) -> datetime:
    """Aware UTC; a naive datetime is taken to be UTC already."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def evidence_json(evidence: Mapping[str, Any]) -> str:
    """Evidence as stable JSON (sorted keys), so equal findings store equal text."""
    return json.dumps(dict(evidence), sort_keys=True, default=str, ensure_ascii=False)


def fingerprint_key(fingerprint: str) -> bytes:
    """The 16 bytes the index keys a fingerprint by: a fingerprint holds the URI and is often
    150+ characters, its xxh3-128 digest is 16 bytes whatever the URI."""
    return xxhash.xxh3_128_digest(fingerprint.encode("utf-8", "surrogatepass"))


class ResultsStore:
    """A results store at `root` (a directory or an fsspec URI prefix)."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.fs, path = fsspec.core.url_to_fs(root)
        protocols = (self.fs.protocol,) if isinstance(self.fs.protocol, str) else tuple(self.fs.protocol)
        self.local = "file" in protocols
        self.path = os.path.abspath(path) if self.local else path.rstrip("/")

    # --- paths -------------------------------------------------------------------------------

    def table_path(self, table: str) -> str:
        """The table's folder, in the file system's own path form."""
        return f"{self.path}/{table}"

    def partition_path(self, table: str, day: date) -> str:
        return f"{self.table_path(table)}/{PARTITION}={day.isoformat()}"

    def url(self, path: str) -> str:
        """A path as DuckDB and other readers want it: with the protocol for object stores."""
        return path if self.local else self.fs.unstrip_protocol(path)

    def files(self, table: str, pattern: str = "*/*.parquet") -> list[str]:
        """Published files of a table (never temporary parts), sorted."""
        try:
            return sorted(self.fs.glob(f"{self.table_path(table)}/{pattern}"))
        except FileNotFoundError:
            return []

    # --- write and read ----------------------------------------------------------------------

    def writer(self, scan_id: str, started: datetime, **options: Any) -> ResultsWriter:
        """A writer for one scan; `options` override the part and row-group sizes (tests)."""
        if self.local:
            self._remove_stale_tmp()
        return ResultsWriter(self, scan_id, started, **options)

    def index(self, policy_version: str) -> KnownIndex:
        """What earlier scans already know, for skipping work under `policy_version`."""
        from shardscan.storage.results_index import KnownIndex

        return KnownIndex.load(self, policy_version)

    def dataset(self, table: str) -> Any:
        """A `pyarrow.dataset.Dataset` over a table with `scan_date` typed as a date."""
        import pyarrow.dataset as ds

        return ds.dataset(self.table_path(table), filesystem=self.fs, format="parquet",
                          schema=pa.unify_schemas([TABLES[table], PARTITIONING_SCHEMA]),
                          partitioning=ds.partitioning(PARTITIONING_SCHEMA, flavor="hive"),
                          exclude_invalid_files=False)

    def _remove_stale_tmp(self) -> None:
        """Temporary parts a killed writer left behind; they were never visible to readers."""
        folder = os.path.join(self.path, TMP_DIR)
        cutoff = time.time() - STALE_TMP_SECONDS
        try:
            entries = list(os.scandir(folder))
        except OSError:
            return
        for entry in entries:
            try:
                if entry.name.endswith(TMP_SUFFIX) and entry.stat().st_mtime < cutoff:
                    os.unlink(entry.path)
            except OSError:
                pass  # another writer's cleanup got there first


class _Part:
    """One Parquet file being written, invisible until `publish()` puts it at `final`."""

    def __init__(self, store: ResultsStore, schema: pa.Schema, final: str) -> None:
        self.store = store
        self.final = final
        if store.local:
            folder = os.path.join(store.path, TMP_DIR)
            os.makedirs(folder, exist_ok=True)
            name = f"{os.path.basename(final)}.{os.getpid()}.{uuid.uuid4().hex[:8]}{TMP_SUFFIX}"
            self.tmp: str | None = os.path.join(folder, name)
            sink: Any = self.tmp
        else:
            # An object store has no rename: keep the compressed part in memory (tens of MiB at
            # most) and PUT it whole, once, under its final key.
            self.tmp = None
            self._buffer = pa.BufferOutputStream()
            sink = self._buffer
        self._writer = pq.ParquetWriter(sink, schema, compression=COMPRESSION,
                                        compression_level=COMPRESSION_LEVEL)

    def write(self, table: pa.Table) -> None:
        self._writer.write_table(table, row_group_size=max(table.num_rows, 1))

    def publish(self) -> None:
        self._writer.close()
        if self.tmp is not None:
            fd = os.open(self.tmp, os.O_RDONLY)
            try:
                os.fsync(fd)  # the bytes are on disk before the name points at them
            finally:
                os.close(fd)
            os.makedirs(os.path.dirname(self.final), exist_ok=True)
            os.replace(self.tmp, self.final)
        else:
            self.store.fs.pipe_file(self.final, self._buffer.getvalue().to_pybytes())

    def discard(self) -> None:
        try:
            self._writer.close()
        finally:
            if self.tmp is not None:
                with contextlib.suppress(OSError):
                    os.unlink(self.tmp)


class _Table:
    """Buffered rows of one table for one scan, written a row group at a time into parts."""

    def __init__(self, store: ResultsStore, name: str, scan_id: str, day: date,
                 part_rows: int, part_seconds: float, row_group_rows: int) -> None:
        self.store = store
        self.name = name
        self.schema = TABLES[name]
        self.folder = store.partition_path(name, day)
        self.scan_id = scan_id
        self.part_rows = part_rows
        self.part_seconds = part_seconds
        self.row_group_rows = row_group_rows
        #: Rows as tuples in schema order, turned into columns a row group at a time.
        self._rows: list[tuple[Any, ...]] = []
        self._part: _Part | None = None
        self._part_no = 0
        self._part_started = 0.0
        #: Rows in the open part, buffered or written.
        self.rows_in_part = 0
        self.published_parts = 0

    def append(self, rows: Iterable[tuple[Any, ...]]) -> None:
        """Rows as tuples in the table's schema order. The rows of one call stay in one row
        group (the group may run over by that many), so the index finds a content hash's
        findings in a single row group."""
        if self.rows_in_part == 0:
            self._part_started = time.monotonic()
        before = len(self._rows)
        self._rows.extend(rows)
        self.rows_in_part += len(self._rows) - before
        if len(self._rows) >= self.row_group_rows:
            self._write_group()

    def due(self, now: float) -> bool:
        """Whether the open part is full or old enough to publish."""
        if not self.rows_in_part:
            return False
        return self.rows_in_part >= self.part_rows or now - self._part_started >= self.part_seconds

    def _write_group(self) -> None:
        if not self._rows:
            return
        columns = zip(*self._rows, strict=True)
        arrays = [pa.array(values, type=field.type) for values, field in zip(columns, self.schema, strict=True)]
        table = pa.Table.from_arrays(arrays, schema=self.schema)
        self._rows = []
        if self._part is None:
            final = f"{self.folder}/{self.scan_id}-{self._part_no:05d}.parquet"
            self._part = _Part(self.store, self.schema, final)
        self._part.write(table)

    def publish(self) -> None:
        """Write what is buffered and make the open part visible."""
        self._write_group()
        if self._part is not None:
            self._part.publish()
            self._part = None
            self._part_no += 1
            self.published_parts += 1
        self.rows_in_part = 0

    def discard(self) -> None:
        if self._part is not None:
            self._part.discard()
            self._part = None


#: Object status -> the scans column that counts it.
_STATUS_COUNTERS = {Status.SCANNED: "scanned", Status.REUSED: "reused", Status.ERROR: "errors",
                    Status.SKIPPED: "skipped"}


class ResultsWriter:
    """Rows of one scan, buffered and published in parts; see the module docstring.

    Call `add_findings` for an object before `add_object` (or use `add_report`, which does
    both in that order): an objects part is published only after the findings buffered before
    it, which is what keeps an object row from being visible before its findings. Thread-safe.
    """

    def __init__(self, store: ResultsStore, scan_id: str, started: datetime, *,
                 object_part_rows: int = OBJECT_PART_ROWS, finding_part_rows: int = FINDING_PART_ROWS,
                 part_seconds: float = PART_SECONDS, row_group_rows: int = ROW_GROUP_ROWS) -> None:
        if not SCAN_ID_PATTERN.fullmatch(scan_id):
            raise ValueError(f"scan id {scan_id!r} must match {SCAN_ID_PATTERN.pattern}")
        self.store = store
        self.scan_id = scan_id
        self.started = _utc(started)
        self.scan_date = self.started.date()
        self._objects = _Table(store, "objects", scan_id, self.scan_date, object_part_rows, part_seconds,
                               row_group_rows)
        self._findings = _Table(store, "findings", scan_id, self.scan_date, finding_part_rows, part_seconds,
                                row_group_rows)
        self._scans_file = f"{store.partition_path('scans', self.scan_date)}/{scan_id}.parquet"
        partition = f"{PARTITION}={self.scan_date.isoformat()}"
        if store.fs.exists(self._scans_file) or any(
                store.files(table, f"{partition}/{scan_id}-*.parquet") for table in ("objects", "findings")):
            raise FileExistsError(f"scan {scan_id} is already in the results store {store.root}")
        self._lock = threading.RLock()
        self._closed = False
        #: (content_hash, policy_version, scan_id) whose findings are written: a hash met twice in
        #: one run would otherwise write its findings twice and double every join.
        self._written: set[tuple[str, str, str]] = set()
        self._policies: set[str] = set()
        self._counts = dict.fromkeys(("objects", "scanned", "reused", "errors", "skipped", "findings",
                                      "bytes_total", "bytes_read"), 0)

    # --- rows --------------------------------------------------------------------------------

    def add_findings(self, content_hash: str, policy_version: str, scan_id: str,
                     findings: list[Finding]) -> None:
        """The findings of one content hash, all in one call (they stay in one part). A hash
        whose findings this writer already wrote is skipped."""
        if not content_hash:
            raise ValueError("findings are stored per content hash; this object has none")
        with self._lock:
            self._check_open()
            self._publish_due()
            key = (content_hash, policy_version, scan_id)
            if not findings or key in self._written:
                return
            self._written.add(key)
            self._findings.append(_finding_row(content_hash, policy_version, scan_id, f) for f in findings)

    def add_object(self, report: ObjectReport, policy_version: str) -> None:
        """One object row. A scanned object's `findings_scan_id` defaults to this scan."""
        with self._lock:
            self._check_open()
            self._publish_due()
            self._objects.append([_object_row(self.scan_id, report, policy_version)])
            self._policies.add(policy_version)
            counts = self._counts
            counts["objects"] += 1
            counts["findings"] += len(report.findings)
            counts["bytes_total"] += max(report.object.size, 0)
            counts["bytes_read"] += report.bytes_read
            status_counter = _STATUS_COUNTERS.get(report.status)
            if status_counter:
                counts[status_counter] += 1

    def add_report(self, report: ObjectReport, policy_version: str) -> None:
        """`add_findings` (when this run scanned the object) then `add_object`, in the order
        that keeps the object row behind its findings."""
        # An object in error keeps what was found before the error: nothing found is lost.
        if report.status in (Status.SCANNED, Status.ERROR) and report.content_hash and report.findings:
            self.add_findings(report.content_hash, policy_version, report.findings_scan_id or self.scan_id,
                              report.findings)
        self.add_object(report, policy_version)

    # --- publishing --------------------------------------------------------------------------

    def _publish_due(self) -> None:
        now = time.monotonic()
        if self._objects.due(now):
            self._publish_all()
        elif self._findings.due(now):
            self._findings.publish()

    def _publish_all(self) -> None:
        self._findings.publish()  # findings first: no object row ahead of its findings
        self._objects.publish()

    def flush(self) -> None:
        """Publish every open part now (findings, then objects)."""
        with self._lock:
            self._check_open()
            self._publish_all()

    def close(self, scan_row: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Publish everything, then the scans row (status 'complete' unless given): the scans
        row comes last, so a scan listed as complete has all its rows visible."""
        return self._finish(scan_row, "complete")

    def abort(self, scan_row: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """An interrupted scan: publish what was gathered and a scans row with status
        'interrupted' (or the status given, e.g. 'failed')."""
        return self._finish(scan_row, "interrupted")

    def _finish(self, given: Mapping[str, Any] | None, status: str) -> dict[str, Any]:
        with self._lock:
            self._check_open()
            row = self._scan_row(dict(given or {}), status)  # a bad row leaves the writer open
            self._closed = True
            try:
                self._publish_all()
            except BaseException:
                self._objects.discard()
                self._findings.discard()
                raise
            part = _Part(self.store, SCANS_SCHEMA, self._scans_file)
            try:
                part.write(pa.Table.from_pylist([row], schema=SCANS_SCHEMA))
                part.publish()
            except BaseException:
                part.discard()
                raise
            return row

    def _scan_row(self, given: dict[str, Any], status: str) -> dict[str, Any]:
        unknown = set(given) - set(SCANS_SCHEMA.names)
        if unknown:
            raise ValueError(f"unknown scans columns: {', '.join(sorted(unknown))}")
        if given.get("scan_id", self.scan_id) != self.scan_id:
            raise ValueError("scan_row names another scan")
        finished = _utc(given.get("finished") or datetime.now(timezone.utc))
        row: dict[str, Any] = {
            "scan_id": self.scan_id,
            "status": status,
            "tool_version": __version__,
            "policy_version": next(iter(self._policies)) if len(self._policies) == 1 else None,
            "targets": [],
            "arguments": None,
            "engine": None,
            "workers": None,
            **self._counts,
            "duration_s": (finished - self.started).total_seconds(),
        }
        row.update(given)
        row["started"], row["finished"] = self.started, finished
        if row["arguments"] is not None and not isinstance(row["arguments"], str):
            row["arguments"] = json.dumps(row["arguments"], sort_keys=True, default=str)
        row["targets"] = list(row["targets"] or [])
        if row["status"] not in SCAN_STATUSES:
            raise ValueError(f"scan status {row['status']!r} is not one of {SCAN_STATUSES}")
        return row

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"results writer for scan {self.scan_id} is closed")

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> ResultsWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        """Close on success; on Ctrl-C publish as 'interrupted', on an error as 'failed'."""
        if self._closed:
            return
        if exc_type is None:
            self.close()
        else:
            self.abort({"status": "interrupted" if issubclass(exc_type, KeyboardInterrupt) else "failed"})


def _object_row(scan_id: str, report: ObjectReport, policy_version: str) -> tuple[Any, ...]:
    """An objects row, in OBJECTS_SCHEMA order (a tuple: rows are buffered by the thousand)."""
    ref = report.object
    severity = report.max_severity
    findings_scan_id = report.findings_scan_id
    if findings_scan_id is None and report.status == Status.SCANNED and report.content_hash:
        findings_scan_id = scan_id
    return (
        scan_id, ref.uri, ref.size, ref.etag, ref.version, ref.sha256, ref.fingerprint(),
        report.content_hash, report.content_sha256, report.format, list(report.formats), report.status,
        policy_version, findings_scan_id, len(report.findings),
        severity.name if severity is not None else None,
        report.bytes_read, report.duration_s, report.error,
        *_weights(report.weights),
    )


def _weights(coverage: dict[str, Any] | None) -> tuple[int | None, int | None, str | None]:
    if coverage is None:
        return None, None, None
    return coverage["tensors"], coverage["bytes"], json.dumps(coverage["skipped"], sort_keys=True)


def _finding_row(content_hash: str, policy_version: str, scan_id: str, finding: Finding) -> tuple[Any, ...]:
    """A findings row, in FINDINGS_SCHEMA order."""
    rule = BY_ID.get(finding.rule_id)
    return (
        content_hash, policy_version, scan_id, finding.rule_id, finding.severity.name, int(finding.severity),
        finding.scanner_id, finding.message, finding.location, finding.offset, finding.offset_in,
        evidence_json(finding.evidence), rule.why if rule else "",
    )


# --- the dedupe index --------------------------------------------------------------------------
