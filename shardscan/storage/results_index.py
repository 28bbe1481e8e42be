"""The dedupe index over a results store: which content was already scanned under a policy,
and which content hash an object's store identity last held.

Loaded once per run from the `objects` table (only the columns it needs); an earlier scan's
findings are read back only for objects that have some, one row group at a time.
"""

from __future__ import annotations

import json
import sys
import threading
from collections import OrderedDict
from datetime import date
from typing import TYPE_CHECKING, NamedTuple

import pyarrow as pa
import pyarrow.parquet as pq

from shardscan.model import Finding, Severity
from shardscan.storage.results import PARTITION, fingerprint_key

if TYPE_CHECKING:
    from shardscan.storage.results import ResultsStore


class Prior(NamedTuple):
    """An earlier scan of the same content under the same policy: whose findings to reuse."""

    scan_id: str
    n_findings: int
    max_severity: Severity | None
    #: The formats that scan detected (its own first, then members'), so a reused object
    #: reports them too and "which objects hold pickles" finds reused ones.
    format: str = ""
    formats: tuple[str, ...] = ()
    #: Not kept in the index (it would cost memory per object): the row of the scan that
    #: analysed the content holds the weight coverage.
    weights: None = None


#: (a) fingerprint -> content hash from any policy (it is a fact about bytes, not findings). The
#: most recent object row wins (latest scan date, then latest start, then the greatest scan id):
#: it is the latest observation of what bytes sit behind that identity.
_FINGERPRINTS_SQL = """
SELECT o.fingerprint, o.content_hash
FROM objects o LEFT JOIN scans s ON s.scan_id = o.scan_id
WHERE o.status IN ('scanned', 'reused') AND o.fingerprint IS NOT NULL AND o.content_hash IS NOT NULL
QUALIFY row_number() OVER (PARTITION BY o.fingerprint
                           ORDER BY o.scan_date DESC, s.started DESC NULLS LAST, o.scan_id DESC) = 1
"""

#: (b) content hashes scanned under this policy; the *earliest* scan wins (earliest scan date,
#: then start, then the smallest scan id). Earliest is stable: once chosen it never changes as
#: later scans reuse it, so every reused row points at the same findings.
_SCANNED_SQL = """
SELECT o.content_hash, o.scan_id, o.scan_date, o.n_findings, o.max_severity, o.format, o.formats
FROM objects o LEFT JOIN scans s ON s.scan_id = o.scan_id
WHERE o.status = 'scanned' AND o.policy_version = ? AND o.content_hash IS NOT NULL
QUALIFY row_number() OVER (PARTITION BY o.content_hash
                           ORDER BY o.scan_date, s.started NULLS LAST, o.scan_id) = 1
"""

#: The findings columns a Finding is rebuilt from.
_FINDING_COLUMNS = ["content_hash", "policy_version", "rule_id", "severity", "severity_level", "scanner", "message",
                    "location", "byte_offset", "offset_in", "evidence"]
#: Decoded findings row groups kept by the index: a rescan meets objects in about the order the
#: earlier scan wrote them, so consecutive look-ups mostly hit the same row group.
_ROW_GROUP_CACHE = 4

#: Rows fetched from DuckDB per batch while the index loads: bounds the transient memory.
_INDEX_BATCH_ROWS = 65_536


#: A decoded findings row group, and content hash -> runs of rows (start, stop) in it.
_Group = tuple[pa.Table, dict[str, list[tuple[int, int]]]]


class KnownIndex:
    """What earlier scans know, held in memory for per-object look-ups during a scan.

    Memory is proportional to the distinct fingerprints and content hashes: fingerprints are
    keyed by their 16-byte xxh3-128 digest, content hashes and scan ids are interned so each
    distinct one is stored once. Measured on CPython 3.11 (tracemalloc): about 300 MB per
    million objects when every object has distinct content (a fingerprint and a scanned hash
    each), about 95 MB per million fingerprints sharing a few hashes; loading a million
    distinct objects took 13 s on a 2-core machine. Rows stream from DuckDB in batches, so the
    peak is the final dicts plus one batch.

    `findings()` adds, per earlier scan it is asked about, about 100 B per content hash with
    findings in that scan, plus up to `_ROW_GROUP_CACHE` decoded row groups (a few MB each);
    `remember(findings=...)` keeps this run's findings until the index is dropped.
    """

    def __init__(self, store: ResultsStore | None, policy_version: str) -> None:
        self.store = store
        self.policy_version = policy_version
        self._by_fingerprint: dict[bytes, str] = {}
        self._scanned: dict[str, tuple[str, int, Severity | None]] = {}
        self._scan_dates: dict[str, date] = {}
        #: Findings remembered from this run: not yet readable from the store.
        self._pending: dict[tuple[str, str], list[Finding]] = {}
        self._lock = threading.Lock()
        #: Per scan whose findings were asked for: its files, and where each hash's rows are.
        self._files: dict[str, list[str]] = {}
        self._locations: dict[str, dict[str, tuple[int, int]]] = {}
        self._groups: OrderedDict[tuple[str, int, int], _Group] = OrderedDict()

    @classmethod
    def load(cls, store: ResultsStore, policy_version: str) -> KnownIndex:
        """Read the two look-ups from the store (only the columns they need)."""
        index = cls(store, policy_version)
        from shardscan.storage.query import connect  # query imports this module's schemas

        con = connect(store.root)
        try:
            intern = sys.intern
            reader = con.sql(_FINGERPRINTS_SQL).to_arrow_reader(_INDEX_BATCH_ROWS)
            for batch in reader:
                for fp, content_hash in zip(batch.column(0).to_pylist(), batch.column(1).to_pylist(), strict=True):
                    index._by_fingerprint[fingerprint_key(fp)] = intern(content_hash)
            reader = con.sql(_SCANNED_SQL, params=[policy_version]).to_arrow_reader(_INDEX_BATCH_ROWS)
            formats_seen: dict[tuple[str, ...], tuple[str, ...]] = {}  # one tuple per distinct list
            for batch in reader:
                for content_hash, scan_id, day, n, sev, fmt, fmts in zip(
                        *(col.to_pylist() for col in batch.columns), strict=True):
                    scan_id = intern(scan_id)
                    formats = formats_seen.setdefault(tuple(fmts or ()), tuple(intern(f) for f in fmts or ()))
                    index._scanned[intern(content_hash)] = (scan_id, n or 0, Severity[sev] if sev else None,
                                                            intern(fmt or ""), formats)
                    index._scan_dates.setdefault(scan_id, day)
        finally:
            con.close()
        return index

    def __len__(self) -> int:
        return len(self._scanned)

    @property
    def fingerprints(self) -> int:
        return len(self._by_fingerprint)

    def content_hash_for(self, fingerprint: str | None) -> str | None:
        """The content hash last seen for an object with this fingerprint, if any."""
        if not fingerprint:
            return None
        return self._by_fingerprint.get(fingerprint_key(fingerprint))

    def scanned(self, content_hash: str | None) -> Prior | None:
        """The scan (under this policy version) whose findings this content can reuse."""
        if not content_hash:
            return None
        hit = self._scanned.get(content_hash)
        return Prior(*hit) if hit is not None else None

    def remember(self, content_hash: str, scan_id: str, n: int, max_sev: Severity | str | None,
                 findings: list[Finding] | None = None, fingerprint: str | None = None) -> None:
        """Content scanned earlier in this run, so a later copy in the same run is reused.

        Pass `findings` when there are any: this run's findings are buffered in the writer and
        not readable from the store until published, so `findings()` answers from memory.
        `fingerprint` also records fingerprint -> content hash for this run.
        """
        if isinstance(max_sev, str):
            max_sev = Severity.parse(max_sev)
        with self._lock:
            content_hash = sys.intern(content_hash)
            self._scanned.setdefault(content_hash, (sys.intern(scan_id), n, max_sev, "", ()))
            if findings:
                self._pending.setdefault((content_hash, scan_id), list(findings))
            if fingerprint:
                self._by_fingerprint[fingerprint_key(fingerprint)] = content_hash

    def findings(self, content_hash: str, scan_id: str) -> list[Finding]:
        """The findings scan `scan_id` stored for this content under this policy version, in
        the order they were written.

        A query per object would read the content_hash column of the scan's every findings
        file each time (12 ms per call over a million local rows; the same megabytes again
        and again from an object store). Instead the first call for a scan reads that column
        once to learn which row group holds each hash, and each call then decodes one row
        group, kept in a small LRU.
        """
        pending = self._pending.get((content_hash, scan_id))
        if pending is not None:
            return list(pending)
        if self.store is None:
            return []
        with self._lock:
            located = self._located(scan_id).get(content_hash)
            if located is None:
                return []
            table, runs = self._row_group(scan_id, *located)
        rows = [row for start, stop in runs.get(content_hash, ())
                for row in table.slice(start, stop - start).to_pylist()]
        return [
            Finding(rule_id=r["rule_id"], severity=_severity(r["severity_level"], r["severity"]),
                    scanner_id=r["scanner"], message=r["message"], location=r["location"] or "",
                    offset=r["byte_offset"], evidence=json.loads(r["evidence"]) if r["evidence"] else {},
                    offset_in=r["offset_in"] or "")
            for r in rows if r["policy_version"] == self.policy_version
        ]

    def _located(self, scan_id: str) -> dict[str, tuple[int, int]]:
        """content hash -> (file, row group) for one scan's findings, read once per scan."""
        located = self._locations.get(scan_id)
        if located is not None:
            return located
        store = self.store
        assert store is not None
        import pyarrow.compute as pc

        day = self._scan_dates.get(scan_id)
        pattern = f"{PARTITION}={day.isoformat()}" if day else "*"
        files = store.files("findings", f"{pattern}/{scan_id}-*.parquet")
        located = {}
        for file_no, path in enumerate(files):
            with store.fs.open(path, "rb") as fh:
                parquet = pq.ParquetFile(fh)
                for group in range(parquet.num_row_groups):
                    hashes = parquet.read_row_group(group, columns=["content_hash"]).column(0)
                    for content_hash in pc.unique(hashes).to_pylist():
                        if content_hash is not None:
                            located.setdefault(sys.intern(content_hash), (file_no, group))
        self._files[scan_id] = files
        self._locations[scan_id] = located
        return located

    def _row_group(self, scan_id: str, file_no: int, group: int) -> _Group:
        """One decoded row group and, per content hash, the runs of rows that hold it (a
        hash's rows are contiguous: one `add_findings` call each)."""
        key = (scan_id, file_no, group)
        cached = self._groups.get(key)
        if cached is not None:
            self._groups.move_to_end(key)
            return cached
        with self.store.fs.open(self._files[scan_id][file_no], "rb") as fh:  # type: ignore[union-attr]
            table = pq.ParquetFile(fh).read_row_group(group, columns=_FINDING_COLUMNS)
        cached = self._groups[key] = (table, _runs(table.column("content_hash").combine_chunks()))
        while len(self._groups) > _ROW_GROUP_CACHE:
            self._groups.popitem(last=False)
        return cached

    def close(self) -> None:
        """Drop the cached row groups and locations (the look-up maps stay)."""
        with self._lock:
            self._groups.clear()
            self._locations.clear()
            self._files.clear()


def _runs(hashes: pa.Array) -> dict[str, list[tuple[int, int]]]:
    """content hash -> the (start, stop) runs of equal consecutive values, found with Arrow
    kernels so Python touches one item per run, not per row."""
    import pyarrow.compute as pc

    n = len(hashes)
    if not n:
        return {}
    changed = pc.fill_null(pc.not_equal(hashes.slice(1), hashes.slice(0, n - 1)), True)
    starts = [0, *(i + 1 for i in pc.indices_nonzero(changed).to_pylist())]
    runs: dict[str, list[tuple[int, int]]] = {}
    for content_hash, start, stop in zip(hashes.take(starts).to_pylist(), starts, [*starts[1:], n], strict=True):
        if content_hash is not None:
            runs.setdefault(content_hash, []).append((start, stop))
    return runs


def _severity(level: int | None, name: str | None) -> Severity:
    """The stored level first (names may be renamed one day, values never)."""
    if level is not None:
        try:
            return Severity(level)
        except ValueError:
            pass
    return Severity.parse(name or "INFO")
