"""The MLflow family: `models:/Name/Version` and `models:/Name@alias` resolved through a real
MLflow registry (the client's file store in a temporary folder, with `mlflow-skinny`), and the
artifacts it names listed and scanned by the families that hold them.

The file store is in maintenance mode in MLflow 3 and refused unless `MLFLOW_ALLOW_FILE_STORE`
is set; it serves the same registry client calls as a tracking server, without one.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from shardscan.model import ObjectRef, Severity, Status
from shardscan.pipeline.runner import ScanOptions
from shardscan.pipeline.session import ScanConfig, scan
from shardscan.storage.errors import ListingError
from shardscan.storage.objects import list_objects

#: A pickle that would run `echo pwned` if loaded; only ever parsed here.
MALICIOUS = b"\x80\x02cposix\nsystem\nX\n\x00\x00\x00echo pwned\x85R."
BENIGN = b'{"architecture": "tiny"}'


@dataclass
class Registry:
    uri: str
    model_dir: Path
    run_dir_model: str


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """A file-store registry with model "Detector":

    - version 1: a local folder (malicious pickle + benign config), alias `champion`;
    - version 2: `runs:/<run>/model`, the run's artifacts in the store's own folder;
    - version 3: a run whose artifacts live behind the tracking server's proxy (mlflow-artifacts:);
    - version 4: a folder that has since been deleted.
    """
    pytest.importorskip("mlflow", reason="mlflow-skinny is not installed (pip install -e '.[dev]')")
    from mlflow import MlflowClient

    base = tmp_path_factory.mktemp("mlflow")
    model_dir = base / "artifacts" / "detector"
    model_dir.mkdir(parents=True)
    (model_dir / "model.pkl").write_bytes(MALICIOUS)
    (model_dir / "config.json").write_bytes(BENIGN)
    uri = (base / "mlruns").as_uri()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        mp.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
        mp.delenv("MLFLOW_REGISTRY_URI", raising=False)
        client = MlflowClient()
        client.create_registered_model("Detector")
        client.create_model_version("Detector", source=str(model_dir))
        client.set_registered_model_alias("Detector", "champion", "1")

        run = client.create_run(client.create_experiment("local-artifacts"))
        client.log_artifacts(run.info.run_id, str(model_dir), "model")
        client.create_model_version("Detector", source=f"runs:/{run.info.run_id}/model", run_id=run.info.run_id)

        proxied = client.create_experiment("proxied", artifact_location="mlflow-artifacts:/proxied")
        proxied_run = client.create_run(proxied)
        client.create_model_version("Detector", source=f"runs:/{proxied_run.info.run_id}/model",
                                    run_id=proxied_run.info.run_id)

        client.create_model_version("Detector", source=str(base / "deleted"))
        yield Registry(uri, model_dir, f"{run.info.artifact_uri}/model")


@pytest.fixture
def env(registry: Registry, monkeypatch: pytest.MonkeyPatch) -> Registry:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", registry.uri)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    return registry


def refs(target: str) -> list[ObjectRef]:
    found = list(list_objects([target]))
    assert all(isinstance(i, ObjectRef) for i in found), found
    return found  # type: ignore[return-value]


def test_version_lists_the_artifact_folder(env: Registry) -> None:
    assert [r.uri for r in refs("models:/Detector/1")] == [str(env.model_dir / "config.json"),
                                                           str(env.model_dir / "model.pkl")]


def test_alias_latest_and_runs_sources(env: Registry) -> None:
    assert refs("models:/Detector@champion") == refs("models:/Detector/1")
    run_artifacts = env.run_dir_model.removeprefix("file://")
    assert [r.uri for r in refs("models:/Detector/2")] == [f"{run_artifacts}/config.json",
                                                           f"{run_artifacts}/model.pkl"]
    [error] = list(list_objects(["models:/Detector/latest"]))  # version 4: the deleted folder
    assert isinstance(error, ListingError) and "(version 4)" in error.message


def test_scan_finds_the_pickle_by_version_and_alias(env: Registry) -> None:
    for target in ("models:/Detector/1", "models:/Detector@champion"):
        run = scan([target], ScanOptions(), ScanConfig(workers=1))
        by_name = {Path(o.object.uri).name: o for o in run.objects}
        assert set(by_name) == {"model.pkl", "config.json"}, target
        assert all(o.status == Status.SCANNED for o in run.objects)
        assert any(f.rule_id == "PKL102" and f.severity == Severity.CRITICAL for f in by_name["model.pkl"].findings)
        assert by_name["config.json"].max_severity in (None, Severity.DEBUG, Severity.INFO)
        assert run.exit_code == 1


def test_proxied_artifacts_are_src001(env: Registry) -> None:
    [error] = list(list_objects(["models:/Detector/3"]))
    assert isinstance(error, ListingError) and error.rule_id == "SRC001"
    assert error.uri == "models:/Detector/3"
    assert "mlflow-artifacts:/proxied" in error.message and "tracking server" in error.message

    run = scan(["models:/Detector/3"], ScanOptions(), ScanConfig(workers=1))
    [obj] = run.objects
    assert obj.status == Status.ERROR
    assert [(f.rule_id, f.severity) for f in obj.findings] == [("SRC001", Severity.WARNING)]
    assert run.exit_code == 1


def test_missing_artifact_folder_is_src001(env: Registry) -> None:
    [error] = list(list_objects(["models:/Detector/4"]))
    assert isinstance(error, ListingError) and error.rule_id == "SRC001"
    assert "deleted" in error.message and "not scanned" in error.message


def test_unknown_model_version_or_alias_is_a_plain_error(env: Registry) -> None:
    for target in ("models:/NoSuchModel/1", "models:/Detector/99", "models:/Detector@nobody"):
        [error] = list(list_objects([target]))
        assert isinstance(error, ListingError) and error.rule_id is None, target
        assert error.uri == target and "registry could not resolve" in error.message


def test_registry_must_be_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    [error] = list(list_objects(["models:/Detector/1"]))
    assert isinstance(error, ListingError) and "MLFLOW_TRACKING_URI is not set" in error.message
    assert not list(tmp_path.iterdir())  # no ./mlruns or ./mlflow.db created


def test_mlflow_not_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")
    monkeypatch.setitem(sys.modules, "mlflow", None)  # `import mlflow` raises ImportError
    [error] = list(list_objects(["models:/Detector@champion"]))
    assert isinstance(error, ListingError) and "pip install mlflow-skinny" in error.message
