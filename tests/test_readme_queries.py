"""The analyst questions of the README, asked with `shardscan query` of a store filled by real
scans of a bucket (SeaweedFS) and hub repositories (the stand-in hub)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from shardscan.cli import main
from tests.samples import INNER
from tests.test_integration_stores import _models

README = Path(__file__).parents[1] / "README.md"
BUCKET = "models-prod"


def readme_queries() -> list[str]:
    return re.findall(r"```sql\n(.*?)```", README.read_text("utf-8"), flags=re.DOTALL)


@pytest.fixture
def store(s3_server, hf_hub, tmp_path: Path, capsys) -> Path:
    models = _models()
    client = s3_server.client()
    s3_server.make_bucket({}, name=BUCKET)  # the server lives for the session: start from an empty bucket
    for item in client.list_objects_v2(Bucket=BUCKET).get("Contents", []):
        client.delete_object(Bucket=BUCKET, Key=item["Key"])
    s3_server.make_bucket({k: v for k, v in models.items() if k != "evil/bundle.pt"}, name=BUCKET)
    results = tmp_path / "audit"
    assert main(["scan", f"s3://{BUCKET}/", "--results", str(results), "-q"]) == 1
    client.put_object(Bucket=BUCKET, Key="evil/bundle.pt", Body=models["evil/bundle.pt"])
    assert main(["scan", f"s3://{BUCKET}/", "--results", str(results), "-q"]) == 1
    hf_hub.add_repo("acme/torch-model", {"pytorch_model.bin": models["benign/torch_mlp_fp32.pt"],
                                         "config.json": b'{"hidden": 4}'}, lfs={"pytorch_model.bin"})
    hf_hub.add_repo("acme/arrays", {"weights.npy": models["benign/numpy_float32.npy"]})
    hf_hub.add_repo("acme/legacy", {"model.pkl": INNER, "old/model.pkl": INNER})
    targets = ["hf://acme/torch-model", "hf://acme/arrays", "hf://acme/legacy"]
    assert main(["scan", *targets, "--results", str(results), "-q"]) == 1
    capsys.readouterr()
    return results


def query(store: Path, sql: str, capsys) -> list[dict]:
    assert main(["query", "--results", str(store), "-f", "json", sql]) == 0
    return json.loads(capsys.readouterr().out)


def test_readme_has_the_three_questions():
    assert len(readme_queries()) == 3


def test_critical_objects_in_a_bucket_today(store: Path, capsys):
    rows = query(store, readme_queries()[0], capsys)
    assert {(r["uri"], r["rule_id"]) for r in rows} == {
        (f"s3://{BUCKET}/evil/model.pkl", "PKL102"), (f"s3://{BUCKET}/evil/copy/model.bin", "PKL102"),
        (f"s3://{BUCKET}/evil/bundle.pt", "PKL102")}


def test_findings_new_since_the_previous_scan(store: Path, capsys):
    rows = query(store, readme_queries()[1], capsys)
    assert rows and {r["uri"] for r in rows} == {f"s3://{BUCKET}/evil/bundle.pt"}
    assert "PKL102" in {r["rule_id"] for r in rows}


def test_repositories_that_ship_pickles(store: Path, capsys):
    rows = query(store, readme_queries()[2], capsys)
    assert rows == [{"repo": "acme/legacy", "files_with_pickles": 2},
                    {"repo": "acme/torch-model", "files_with_pickles": 1}]


def test_query_command_renders_a_table_and_reports_bad_sql(tmp_path: Path):
    empty = tmp_path / "empty"
    ok = subprocess.run([sys.executable, "-m", "shardscan", "query", "--results", str(empty),
                         "select count(*) as n from objects"], capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0 and ok.stdout.split()[:3] == ["n", "-", "0"]
    bad = subprocess.run([sys.executable, "-m", "shardscan", "query", "--results", str(empty), "selec nonsense"],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and bad.stderr.startswith("shardscan: error:")
