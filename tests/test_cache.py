"""The local result cache: unchanged files are not read again; any change misses."""

from __future__ import annotations

import os
from pathlib import Path

from shardscan.pipeline.runner import Runner, ScanOptions
from tests.samples import INNER


def scan(path: Path, cache: Path, **options):
    return Runner(ScanOptions(cache_dir=cache, **options)).run([str(path)]).objects[0]


def test_cached_result_is_reused_and_invalidated(tmp_path: Path, monkeypatch):
    cache = tmp_path / "cache"
    model = tmp_path / "m.pkl"
    model.write_bytes(INNER)
    first = scan(model, cache)
    assert {f.rule_id for f in first.findings} == {"PKL102"}

    # A cache hit does not open the file: make opening fail and scan again.
    def no_open(*args, **kwargs):
        raise AssertionError("file was read despite the cache")

    monkeypatch.setattr("shardscan.storage.local.LocalReader", no_open)
    again = scan(model, cache)
    assert [f.key() for f in again.findings] == [f.key() for f in first.findings]
    assert again.findings[0].severity == first.findings[0].severity

    # Other options are another key: strict reads the file again.
    reread = scan(model, cache, strict=True)
    assert reread.status == "error" and "despite the cache" in reread.error
    monkeypatch.undo()

    # A changed file misses the cache.
    model.write_bytes(b"\x80\x04K\x01.")
    os.utime(model, ns=(1, 1))
    assert scan(model, cache).findings == []


def test_no_cache_dir_means_no_files(tmp_path: Path):
    model = tmp_path / "m.pkl"
    model.write_bytes(INNER)
    Runner(ScanOptions()).run([str(model)])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pkl"]
