"""The pipeline: engines, content hashes, dedupe, fault handling.

Whatever runs the units (this process, a process pool, Ray with any number of workers), the
same bytes must give the same findings and content hashes; a worker that dies costs at most
the object it was scanning.
"""

from __future__ import annotations

import io
import os
import shutil
import zipfile
from pathlib import Path

import pytest
import xxhash

from shardscan.model import Severity, Status
from shardscan.pipeline.engines import InlineEngine
from shardscan.pipeline.hashing import HASH_BLOCK, HASH_DOMAIN, content_hash
from shardscan.pipeline.runner import ScanOptions
from shardscan.pipeline.session import ScanConfig, scan
from shardscan.pipeline.tasks import Task, run_task
from tests.samples import ATTACKS, INNER

FIXTURES = Path(__file__).parent / "fixtures" / "benign"
#: A chunk budget small enough that the big sample is hashed by several tasks.
SMALL_CHUNK = HASH_BLOCK


def _independent_hash(data: bytes) -> str:
    """The content hash as docs/json-schema.md defines it, computed without the pipeline."""
    digests = b"".join(xxhash.xxh3_128_digest(data[i:i + HASH_BLOCK]) for i in range(0, len(data), HASH_BLOCK))
    return "xxh3-128:" + xxhash.xxh3_128(HASH_DOMAIN + len(data).to_bytes(8, "little") + digests).hexdigest()


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Benign real checkpoints, attacks, a zip holding an attack, a duplicate, an empty file
    and a file larger than several chunks (with a payload past the first chunk)."""
    root = tmp_path_factory.mktemp("mixed")
    shutil.copytree(FIXTURES, root / "benign")
    attacks = root / "attacks"
    attacks.mkdir()
    for name, data, _ in ATTACKS[:20]:
        (attacks / f"{name}.pkl").write_bytes(data)
    (attacks / "copy-of-first.pkl").write_bytes(ATTACKS[0][1])
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("archive/data.pkl", INNER)
    (root / "bundle.zip").write_bytes(buf.getvalue())
    (root / "empty.bin").write_bytes(b"")
    big = bytearray(os.urandom(3 * HASH_BLOCK + 12345))
    (root / "big.bin").write_bytes(big)
    return root


def _summary(run) -> list[tuple]:
    return [(o.object.uri, o.status, o.content_hash, o.format,
             [(f.rule_id, f.severity, f.location, f.offset, f.message) for f in o.findings])
            for o in run.objects]


def _scan(root: Path, **config) -> list[tuple]:
    run = scan([str(root)], ScanOptions(), ScanConfig(**config))
    assert not run.interrupted
    return _summary(run)


def test_local_and_ray_engines_agree_for_any_worker_count(mixed: Path, ray_cluster):
    baseline = _scan(mixed, workers=1)
    assert len(baseline) > 60
    assert any(findings for *_, findings in baseline)
    for config in ({"workers": 2}, {"workers": 2, "chunk_size": SMALL_CHUNK}, {"engine": "ray", "workers": 1},
                   {"engine": "ray", "workers": 2, "chunk_size": SMALL_CHUNK}):
        assert _scan(mixed, **config) == baseline, config


def test_content_hash_is_defined_by_the_bytes_alone(mixed: Path):
    for chunk in (SMALL_CHUNK, 64 << 20):
        run = scan([str(mixed)], ScanOptions(), ScanConfig(workers=2, chunk_size=chunk))
        for obj in run.objects:
            if obj.status != Status.ERROR:
                assert obj.content_hash == _independent_hash(Path(obj.object.uri).read_bytes()), obj.object.uri
    assert content_hash(0, []) == _independent_hash(b"")


def test_sha256_is_added_on_request(mixed: Path):
    import hashlib

    run = scan([str(mixed / "big.bin")], ScanOptions(), ScanConfig(sha256=True))
    (obj,) = run.objects
    assert obj.content_sha256 == hashlib.sha256((mixed / "big.bin").read_bytes()).hexdigest()
    assert obj.content_hash == _independent_hash((mixed / "big.bin").read_bytes())


def test_identical_content_is_scanned_once_per_run_with_a_results_store(mixed: Path, tmp_path: Path):
    for results in (str(tmp_path / "results"), None):
        run = scan([str(mixed / "attacks")], ScanOptions(), ScanConfig(workers=1, results=results))
        by_name = {Path(o.object.uri).name: o for o in run.objects}
        first, copy = by_name[f"{ATTACKS[0][0]}.pkl"], by_name["copy-of-first.pkl"]
        # Without a store, objects are scanned while they are hashed: both are scanned.
        assert {first.status, copy.status} == ({Status.SCANNED, Status.REUSED} if results else {Status.SCANNED})
        assert first.content_hash == copy.content_hash
        assert [f.key() for f in first.findings] == [f.key() for f in copy.findings]
        assert first.max_severity == Severity.CRITICAL


def test_results_store_rescan_reads_nothing_and_a_change_is_rescanned(tmp_path: Path, mixed: Path):
    models = tmp_path / "models"
    shutil.copytree(mixed / "attacks", models)
    shutil.copy(mixed / "big.bin", models / "big.bin")
    results = str(tmp_path / "results")
    first = scan([str(models)], ScanOptions(), ScanConfig(workers=2, results=results))
    assert {o.status for o in first.objects} == {Status.SCANNED, Status.REUSED}
    second = scan([str(models)], ScanOptions(), ScanConfig(workers=2, results=results))
    assert {o.status for o in second.objects} == {Status.REUSED}
    assert sum(o.bytes_read for o in second.objects) == 0
    assert _findings_by_uri(second) == _findings_by_uri(first)

    changed = models / f"{ATTACKS[1][0]}.pkl"
    changed.write_bytes(b"\x80\x04K\x01.")
    third = scan([str(models)], ScanOptions(), ScanConfig(workers=2, results=results))
    by_uri = {o.object.uri: o for o in third.objects}
    rescanned = by_uri.pop(str(changed))
    assert rescanned.status == Status.SCANNED and rescanned.findings == []
    assert rescanned.bytes_read >= 2 * changed.stat().st_size  # hashed, then scanned
    assert {o.status for o in by_uri.values()} == {Status.REUSED}
    assert sum(o.bytes_read for o in by_uri.values()) == 0

    forced = scan([str(models)], ScanOptions(), ScanConfig(workers=2, results=results, reuse=False))
    assert Status.SCANNED in {o.status for o in forced.objects}
    assert sum(o.bytes_read for o in forced.objects) > 0


def _findings_by_uri(run) -> dict[str, list[tuple]]:
    return {o.object.uri: sorted(f.key() for f in o.findings) for o in run.objects}


# --- faults ----------------------------------------------------------------------------------

CRASH_NAME = "crash-me.pkl"


def crash_on_marked_object(task: Task):
    """A task function whose worker dies on one object (module level: process pools pickle it
    by reference)."""
    if any(w.ref.uri.endswith(CRASH_NAME) for w in task.works):
        os._exit(17)
    return run_task(task)


@pytest.fixture
def with_crasher(tmp_path: Path, mixed: Path) -> Path:
    root = tmp_path / "models"
    shutil.copytree(mixed / "attacks", root)
    (root / CRASH_NAME).write_bytes(INNER)
    return root


def _check_only_the_crasher_failed(run, root: Path) -> None:
    reference = _findings_by_uri(scan([str(root)], ScanOptions(), ScanConfig(workers=1)))
    by_uri = {o.object.uri: o for o in run.objects}
    crashed = by_uri.pop(str(root / CRASH_NAME))
    assert crashed.status == Status.ERROR and crashed.error
    assert all(o.status in (Status.SCANNED, Status.REUSED) for o in by_uri.values())
    reference.pop(str(root / CRASH_NAME))
    assert {uri: sorted(f.key() for f in o.findings) for uri, o in by_uri.items()} == reference


def test_process_pool_worker_death_costs_only_its_object(with_crasher: Path):
    run = scan([str(with_crasher)], ScanOptions(), ScanConfig(workers=2, task_fn=crash_on_marked_object))
    _check_only_the_crasher_failed(run, with_crasher)


def test_ray_worker_killed_mid_task_is_retried_then_reported(with_crasher: Path, ray_cluster):
    run = scan([str(with_crasher)], ScanOptions(), ScanConfig(engine="ray", workers=2, task_fn=crash_on_marked_object))
    _check_only_the_crasher_failed(run, with_crasher)
    assert "ray task failed" in {o.object.name: o for o in run.objects}[CRASH_NAME].error


def test_ray_task_whose_worker_dies_once_succeeds_on_retry(tmp_path: Path, with_crasher: Path,
                                                          ray_cluster):
    marker = tmp_path / "died-once"

    def die_once(task: Task):
        if not marker.exists() and any(w.ref.uri.endswith(CRASH_NAME) for w in task.works):
            marker.write_text("x")
            os._exit(17)
        return run_task(task)

    run = scan([str(with_crasher)], ScanOptions(), ScanConfig(engine="ray", workers=2, task_fn=die_once))
    assert marker.exists()
    crashed = {o.object.name: o for o in run.objects}[CRASH_NAME]
    assert crashed.status == Status.SCANNED and {f.rule_id for f in crashed.findings} == {"PKL102"}


def test_inline_engine_runs_tasks_in_this_process(mixed: Path):
    engine = InlineEngine()
    from shardscan.pipeline.tasks import HashWork
    from shardscan.storage.local import list_local

    (ref,) = list_local([str(mixed / "bundle.zip")])
    engine.submit(Task(ScanOptions(), (HashWork(ref, 0, ref.size),)))
    (outcome,) = list(engine.completed())
    assert outcome.results is not None and len(outcome.results[0].digests) == 1


# --- logs ----------------------------------------------------------------------------------------

def test_json_logs_carry_the_scan_id_from_driver_and_workers(mixed: Path):
    import json
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "shardscan", "scan", str(mixed / "attacks"), "--workers", "2",
                           "--no-cache", "-q", "--log-format", "json"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr
    lines = [json.loads(line) for line in proc.stderr.splitlines()]
    assert {line["scan_id"] for line in lines} == {lines[0]["scan_id"]}
    assert [line["event"] for line in lines if line["process"] == "driver"] == ["scan started", "scan finished"]
    workers = [line for line in lines if line["process"].startswith("worker-")]
    assert workers and {line["event"] for line in workers} == {"task done"}
    assert sum(line["items"] for line in workers) >= len(list((mixed / "attacks").iterdir()))


def test_ray_workers_log_with_the_scan_id(mixed: Path, ray_cluster):
    import json

    from ray._private.worker import _global_node

    run = scan([str(mixed / "attacks")], ScanOptions(), ScanConfig(engine="ray", workers=2, log_format="json"))
    logs = Path(_global_node.get_logs_dir_path())
    lines = [json.loads(line) for path in logs.glob("worker-*.err") for line in path.read_text().splitlines()
             if line.startswith("{") and run.scan_id in line]
    assert lines and {line["event"] for line in lines} == {"task done"}
    assert all(line["process"].startswith("worker-") for line in lines)


def test_a_run_can_keep_only_reports_that_need_attention(mixed: Path):
    full = scan([str(mixed)], ScanOptions(), ScanConfig(workers=2))
    lean = scan([str(mixed)], ScanOptions(), ScanConfig(workers=2),
                retain=lambda r: bool(r.findings) or r.status == Status.ERROR)
    assert lean.total_objects == full.total_objects == len(full.objects)
    assert [o.object.uri for o in lean.objects] == [o.object.uri for o in full.objects
                                                    if o.findings or o.status == Status.ERROR]
    assert sum(lean.omitted.values()) == len(full.objects) - len(lean.objects) > 0
    assert lean.exit_code == full.exit_code == 1


def test_text_report_counts_omitted_clean_objects(tmp_path: Path, capsys):
    from shardscan.cli import main

    for i in range(3):
        (tmp_path / f"clean{i}.pkl").write_bytes(b"\x80\x04K\x01.")
    (tmp_path / "evil.pkl").write_bytes(INNER)
    assert main(["scan", str(tmp_path), "--no-cache", "--workers", "2"]) == 1
    out = capsys.readouterr().out
    assert "4 objects (4 scanned, 0 errors)" in out and "clean0.pkl" not in out and "evil.pkl" in out
