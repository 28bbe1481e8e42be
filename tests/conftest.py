from __future__ import annotations

from pathlib import Path

import pytest

from shardscan.model import ObjectReport
from shardscan.pipeline.runner import Runner, ScanOptions

pytest_plugins = ["tests.servers.fixtures", "tests.servers.hf_fixture", "tests.servers.ray_cluster"]


@pytest.fixture
def scan_bytes(tmp_path: Path):
    """Write bytes under a name and scan the file end to end; returns its ObjectReport."""

    def scan(data: bytes, name: str = "model.pkl", **options) -> ObjectReport:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        run = Runner(ScanOptions(**options)).run([str(path)])
        assert len(run.objects) == 1
        return run.objects[0]

    return scan


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    """Keep the CLI's result cache out of the user's home during tests."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("xdg-cache")))
