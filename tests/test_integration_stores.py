"""Whole scans of real stores on loopback: SeaweedFS (s3://, r2://), fake-gcs-server (gs://), a
stand-in hub (hf://), with the local and Ray engines, into a Parquet results store.

Each scan is compared with a scan of the same bytes from a local directory: a store changes
where bytes come from, never what is found in them.
"""

from __future__ import annotations

import hashlib
import io
import json
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from shardscan.model import Severity, Status
from shardscan.pipeline import driver
from shardscan.pipeline.runner import ScanOptions
from shardscan.pipeline.session import ScanConfig, scan
from shardscan.storage.query import run_query
from tests.samples import INNER
from tests.servers.seaweed import READER_BUCKET, READER_KEY, READER_SECRET
from tests.test_pipeline import _independent_hash

FIXTURES = Path(__file__).parent / "fixtures" / "benign"
BENIGN = ("torch_mlp_fp32.pt", "sklearn_random_forest.joblib", "numpy_float32.npy", "torch_legacy_state_dict.pt")


def _models() -> dict[str, bytes]:
    """Benign real checkpoints, a malicious pickle, the same pickle under another name, and a
    zip holding it, keyed as they are stored."""
    models = {f"benign/{name}": (FIXTURES / name).read_bytes() for name in BENIGN}
    models["evil/model.pkl"] = INNER
    models["evil/copy/model.bin"] = INNER
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(zipfile.ZipInfo("archive/data.pkl", date_time=(2026, 1, 1, 0, 0, 0)), INNER)
    models["evil/bundle.pt"] = buf.getvalue()
    return models


@pytest.fixture(scope="module")
def expected(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[tuple]]:
    """Findings per key from a local scan of the same bytes."""
    root = tmp_path_factory.mktemp("local-models")
    for key, data in _models().items():
        (root / key).parent.mkdir(parents=True, exist_ok=True)
        (root / key).write_bytes(data)
    run = scan([str(root)], ScanOptions(), ScanConfig(workers=1))
    return {str(Path(o.object.uri).relative_to(root)): _keys(o) for o in run.objects}


def _keys(obj) -> list[tuple]:
    return [(f.rule_id, f.severity, f.location, f.offset, f.message) for f in obj.findings]


def _check_run(run, prefix: str, expected: dict[str, list[tuple]], results: str) -> None:
    """Findings and content hashes as a local scan gives them, and the Parquet rows saying so."""
    models = _models()
    by_key = {o.object.uri.removeprefix(prefix): o for o in run.objects}
    assert set(by_key) == set(models)
    for key, obj in by_key.items():
        assert obj.status in (Status.SCANNED, Status.REUSED), (key, obj.error)
        assert _keys(obj) == expected[key], key
        assert obj.content_hash == _independent_hash(models[key]), key
    assert by_key["evil/model.pkl"].max_severity == Severity.CRITICAL
    assert {by_key["evil/model.pkl"].status, by_key["evil/copy/model.bin"].status} == {Status.SCANNED, Status.REUSED}

    rows = run_query(results, f"select uri, status, content_hash, size from objects where scan_id = '{run.scan_id}'")
    stored = {r["uri"]: r for r in rows.to_pylist()}
    assert {uri.removeprefix(prefix) for uri in stored} == set(models)
    for uri, row in stored.items():
        obj = by_key[uri.removeprefix(prefix)]
        assert (row["status"], row["content_hash"], row["size"]) == (obj.status, obj.content_hash, obj.object.size)
    critical = run_query(results, f"""
        select distinct uri from object_findings
        where scan_id = '{run.scan_id}' and severity = 'CRITICAL' and uri like '{prefix}%' order by uri""")
    assert critical.column("uri").to_pylist() == sorted(
        prefix + key for key, keys in expected.items() if any(k[1] == Severity.CRITICAL for k in keys))
    (scan_row,) = run_query(results, f"select status, objects, findings from scans where scan_id = '{run.scan_id}'"
                            ).to_pylist()
    assert scan_row["status"] == "complete" and scan_row["objects"] == len(models)


def _rescan_reads_nothing(target: str, results: str, first) -> None:
    again = scan([target], ScanOptions(), ScanConfig(workers=2, results=results))
    assert {o.status for o in again.objects} == {Status.REUSED}
    assert sum(o.bytes_read for o in again.objects) == 0
    assert {o.object.uri: _keys(o) for o in again.objects} == {o.object.uri: _keys(o) for o in first.objects}


# --- S3 and R2 --------------------------------------------------------------------------------

def test_s3_bucket_scan_rescan_and_change(s3_server, expected, tmp_path: Path):
    bucket = s3_server.make_bucket(_models())
    results = str(tmp_path / "results")
    prefix = f"s3://{bucket}/"
    first = scan([prefix], ScanOptions(), ScanConfig(workers=2, results=results))
    _check_run(first, prefix, expected, results)
    _rescan_reads_nothing(prefix, results, first)

    # Changed to content seen before: read to hash it, then reused. Changed to new content: scanned.
    s3_server.client().put_object(Bucket=bucket, Key="benign/numpy_float32.npy", Body=INNER)
    s3_server.client().put_object(Bucket=bucket, Key="evil/model.pkl", Body=b"\x80\x04K\x07.")
    third = scan([prefix], ScanOptions(), ScanConfig(workers=2, results=results))
    changed = {o.object.uri.removeprefix(prefix): o for o in third.objects}
    known = changed.pop("benign/numpy_float32.npy")
    assert known.status == Status.REUSED and known.bytes_read == len(INNER)
    assert known.max_severity == Severity.CRITICAL
    new = changed.pop("evil/model.pkl")
    assert new.status == Status.SCANNED and new.findings == [] and new.bytes_read >= 5
    assert {o.status for o in changed.values()} == {Status.REUSED}
    assert sum(o.bytes_read for o in changed.values()) == 0


def test_r2_bucket_scan(s3_server, expected, tmp_path: Path, monkeypatch):
    bucket = s3_server.make_bucket(_models())
    monkeypatch.setenv("R2_ENDPOINT_URL", s3_server.endpoint)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # r2 must not use the S3 endpoint
    from shardscan.storage import s3

    s3.clear_cache()
    try:
        run = scan([f"r2://{bucket}/"], ScanOptions(), ScanConfig(workers=2, results=str(tmp_path / "r")))
        _check_run(run, f"r2://{bucket}/", expected, str(tmp_path / "r"))
    finally:
        s3.clear_cache()


def test_ray_engine_reads_the_bucket_itself(s3_server, expected, ray_cluster, tmp_path: Path):
    bucket = s3_server.make_bucket(_models())
    results = str(tmp_path / "results")
    run = scan([f"s3://{bucket}/"], ScanOptions(), ScanConfig(engine="ray", workers=2, results=results))
    _check_run(run, f"s3://{bucket}/", expected, results)


def test_object_deleted_between_listing_and_reading(s3_server, tmp_path: Path, monkeypatch):
    bucket = s3_server.make_bucket(_models())
    real_listing = driver.list_objects

    def listing_then_delete(targets):
        for item in real_listing(targets):
            yield item
            if item.uri.endswith("evil/model.pkl"):
                s3_server.delete_object(bucket, "evil/model.pkl")

    monkeypatch.setattr(driver, "list_objects", listing_then_delete)
    results = str(tmp_path / "results")
    run = scan([f"s3://{bucket}/"], ScanOptions(), ScanConfig(workers=2, results=results))
    by_key = {o.object.uri.removeprefix(f"s3://{bucket}/"): o for o in run.objects}
    gone = by_key.pop("evil/model.pkl")
    assert gone.status == Status.ERROR and "not found" in gone.error
    assert all(o.status in (Status.SCANNED, Status.REUSED) for o in by_key.values())
    assert by_key["evil/copy/model.bin"].max_severity == Severity.CRITICAL
    assert run.exit_code == 1
    (row,) = run_query(results, "select status, error from objects where uri like '%evil/model.pkl'").to_pylist()
    assert row["status"] == "error" and "not found" in row["error"]


def test_store_that_refuses_access_is_an_error_and_the_scan_goes_on(s3_server, tmp_path: Path, monkeypatch):
    other = s3_server.make_bucket({"m.pkl": INNER})
    s3_server.make_bucket({"m.pkl": INNER}, name=READER_BUCKET)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", READER_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", READER_SECRET)
    from shardscan.storage import s3

    s3.clear_cache()
    try:
        run = scan([f"s3://{other}/", f"s3://{READER_BUCKET}/m.pkl"], ScanOptions(), ScanConfig(workers=1))
    finally:
        s3.clear_cache()
    denied, allowed = run.objects
    assert denied.status == Status.ERROR and "access denied" in denied.error
    assert allowed.status == Status.SCANNED and allowed.max_severity == Severity.CRITICAL
    assert run.exit_code == 1


# --- GCS ----------------------------------------------------------------------------------------

def test_gcs_bucket_scan_and_rescan(gcs_server, expected, tmp_path: Path):
    bucket = gcs_server.make_bucket(_models())
    results = str(tmp_path / "results")
    prefix = f"gs://{bucket}/"
    first = scan([prefix], ScanOptions(), ScanConfig(workers=2, results=results))
    _check_run(first, prefix, expected, results)
    _rescan_reads_nothing(prefix, results, first)


# --- the hub ------------------------------------------------------------------------------------

def test_hub_repo_scan_pins_the_revision_and_rescans_without_downloads(hf_hub, expected, tmp_path: Path):
    models = _models()
    hf_hub.page_size = 3  # several tree pages
    sha = hf_hub.add_repo("acme/mixed", models, lfs={k for k in models if not k.endswith(".npy")})
    results = str(tmp_path / "results")
    first = scan(["hf://acme/mixed"], ScanOptions(), ScanConfig(workers=2, results=results))
    prefix = f"hf://acme/mixed@{sha}/"
    _check_run(first, prefix, expected, results)
    assert hf_hub.counts["tree"] >= 3
    rows = run_query(results, "select uri, store_sha256, version from objects").to_pylist()
    for row in rows:  # the hub's LFS sha256 and the pinned commit, as the store gave them
        key = row["uri"].removeprefix(prefix)
        lfs = not key.endswith(".npy")
        assert row["store_sha256"] == (hashlib.sha256(models[key]).hexdigest() if lfs else None), key
        assert row["version"] == sha

    hf_hub.reset_counts()
    _rescan_reads_nothing("https://huggingface.co/acme/mixed/tree/main", results, first)
    assert hf_hub.counts["resolve-get"] == hf_hub.counts["cdn-get"] == 0
    assert hf_hub.bytes_served == 0


# --- an interrupted run ---------------------------------------------------------------------------

def test_interrupted_run_keeps_what_it_found_and_the_store_readable(tmp_path: Path):
    models = tmp_path / "models"
    models.mkdir()
    for i in range(3000):  # enough that the run is still going when interrupted
        (models / f"m{i:04d}.pkl").write_bytes(INNER + i.to_bytes(4, "little"))
    results, report = tmp_path / "results", tmp_path / "report.json"
    proc = subprocess.Popen([sys.executable, "-m", "shardscan", "scan", str(models), "--results", str(results),
                             "--workers", "1", "--format", "json", "-o", str(report), "--log-format", "json",
                             "--flush-interval", "0.2"], stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    assert "scan started" in proc.stderr.readline()
    _wait_for_a_part(results)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    data = json.loads(report.read_text())
    done = len(data["files"])
    assert 0 < done < 3000
    assert sum(f["rule_id"] == "PKL102" for f in data["findings"]) == done
    (row,) = run_query(str(results), "select status, objects from scans").to_pylist()
    assert row == {"status": "interrupted", "objects": done}
    stored = run_query(str(results), "select count(*) as n from object_findings where rule_id = 'PKL102'")
    assert stored.column("n").to_pylist() == [done]


def test_killed_driver_leaves_a_readable_store(tmp_path: Path):
    models = tmp_path / "models"
    models.mkdir()
    for i in range(3000):
        (models / f"m{i:04d}.pkl").write_bytes(INNER + i.to_bytes(4, "little"))
    results = tmp_path / "results"
    proc = subprocess.Popen([sys.executable, "-m", "shardscan", "scan", str(models), "--results", str(results),
                             "--workers", "1", "-q", "--log-format", "json", "--flush-interval", "0.2"],
                            stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    assert "scan started" in proc.stderr.readline()
    _wait_for_a_part(results)
    proc.kill()  # mid-run, with a part open
    proc.wait(timeout=30)
    objects = run_query(str(results), "select count(*) as n, count(distinct uri) as u from objects").to_pylist()[0]
    findings = run_query(str(results), "select count(*) as n from object_findings where rule_id = 'PKL102'"
                         ).to_pylist()[0]
    assert objects["n"] == objects["u"] > 0  # parts published before the kill, none twice
    assert findings["n"] == objects["n"]  # every visible object row has its findings visible
    assert run_query(str(results), "select count(*) as n from scans").to_pylist() == [{"n": 0}]


def _wait_for_a_part(results: Path) -> None:
    """Until the first objects part is published: the run is under way, far from its end."""
    deadline = time.monotonic() + 60
    while not list(results.glob("objects/*/*.parquet")) and time.monotonic() < deadline:
        time.sleep(0.02)


def test_results_store_in_a_bucket(s3_server, expected, tmp_path: Path):
    bucket = s3_server.make_bucket(_models())
    audit = s3_server.make_bucket({})
    results = f"s3://{audit}/shardscan"
    first = scan([f"s3://{bucket}/"], ScanOptions(), ScanConfig(workers=2, results=results))
    _check_run(first, f"s3://{bucket}/", expected, results)
    _rescan_reads_nothing(f"s3://{bucket}/", results, first)
    keys = [item["Key"] for item in s3_server.client().list_objects_v2(Bucket=audit)["Contents"]]
    assert keys and all(key.endswith(".parquet") for key in keys)  # no temporary object left behind
