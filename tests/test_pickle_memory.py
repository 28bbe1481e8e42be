"""Memory stays bounded whatever the size of the pickle: long literals are skipped, not held."""

from __future__ import annotations

import struct
import tracemalloc
from pathlib import Path

from shardscan.limits import MiB
from shardscan.pipeline.runner import Runner, ScanOptions
from tests.samples import INNER


def peak_of_scan(path: Path) -> tuple[int, list]:
    runner = Runner(ScanOptions())
    tracemalloc.start()
    try:
        run = runner.run([str(path)])
        return tracemalloc.get_traced_memory()[1], run.objects[0].findings
    finally:
        tracemalloc.stop()


def test_two_gigabyte_literal_is_skipped(tmp_path: Path):
    # BINBYTES8 of 2 GiB in a sparse file, then a payload: the payload must still be found.
    size = 2 << 30
    path = tmp_path / "huge.pkl"
    with path.open("wb") as f:
        f.write(b"\x80\x04\x8e" + struct.pack("<Q", size))
        f.seek(size, 1)
        f.write(b"0" + INNER[2:])
    peak, findings = peak_of_scan(path)
    assert {f.rule_id for f in findings} == {"PKL102"}
    assert peak < 16 * MiB, peak


def test_many_medium_literals_are_not_all_retained(tmp_path: Path):
    # 400 literals of 512 KiB (200 MiB in all) kept alive by the memo.
    blob = b"B" + struct.pack("<I", 512 * 1024) + b"\x00" * (512 * 1024)
    body = b"\x80\x04(" + (blob + b"\x94") * 400 + b"l."
    path = tmp_path / "many.pkl"
    path.write_bytes(body)
    peak, findings = peak_of_scan(path)
    assert findings == []
    assert peak < 100 * MiB, peak
