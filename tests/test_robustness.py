"""Bad input gives a clear result and the right exit code, never a traceback or a hang."""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

import pytest

from shardscan.model import Status
from shardscan.pipeline.runner import Runner, ScanOptions
from tests.samples import INNER, billion_laughs

MODEL_NAMES = ["model.pkl", "model.pt", "model.pth", "weights.bin", "model.joblib", "x.safetensors",
               "m.npy", "m.h5", "m.onnx", "m.gguf", "noext"]


def run(paths, **options):
    return Runner(ScanOptions(**options)).run([str(p) for p in paths])


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_empty_file_could_not_be_scanned(tmp_path: Path, name: str):
    (tmp_path / name).write_bytes(b"")
    result = run([tmp_path / name])
    assert result.objects[0].status == Status.ERROR
    assert "empty" in result.objects[0].error
    assert result.exit_code == 2


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_random_bytes_never_pass_silently(tmp_path: Path, name: str):
    rng = random.Random(name)
    (tmp_path / name).write_bytes(bytes(rng.getrandbits(8) for _ in range(4096)))
    started = time.monotonic()
    result = run([tmp_path / name])
    assert time.monotonic() - started < 5
    obj = result.objects[0]
    # Random content is either unknown (reported) or a pickle that fails to parse (error).
    assert obj.findings or obj.status == Status.ERROR
    assert result.exit_code in (0, 1, 2)
    if obj.status == Status.ERROR:
        assert result.exit_code in (1, 2)


@pytest.mark.parametrize("cut", [1, 2, 5, 20, len(INNER) - 1])
def test_truncated_pickle(tmp_path: Path, cut: int):
    (tmp_path / "t.pkl").write_bytes(INNER[:cut])
    result = run([tmp_path / "t.pkl"])
    obj = result.objects[0]
    if cut > 20:  # the payload's REDUCE ran before the break
        assert {"PKL102", "PKL301"} <= {f.rule_id for f in obj.findings}
        assert result.exit_code == 1
    else:
        assert obj.status == Status.ERROR or any(f.rule_id == "PKL301" for f in obj.findings)
        assert result.exit_code in (1, 2)


def test_billion_laughs_is_bounded(tmp_path: Path):
    (tmp_path / "laughs.pkl").write_bytes(billion_laughs(levels=200, fanout=50))
    started = time.monotonic()
    result = run([tmp_path / "laughs.pkl"])
    assert time.monotonic() - started < 5
    assert any(f.rule_id == "PKL305" for f in result.objects[0].findings)
    assert result.exit_code == 1


def test_missing_path_is_an_error_and_others_go_on(tmp_path: Path):
    good = tmp_path / "good.pkl"
    good.write_bytes(b"\x80\x04K\x01.")
    result = run([tmp_path / "nope.pt", good])
    statuses = [o.status for o in result.objects]
    assert statuses == [Status.ERROR, Status.SCANNED]
    assert result.exit_code == 2


def test_finding_wins_over_error(tmp_path: Path):
    (tmp_path / "evil.pkl").write_bytes(INNER)
    result = run([tmp_path / "nope.pt", tmp_path / "evil.pkl"])
    assert result.exit_code == 1


def test_directory_with_unreadable_entries(tmp_path: Path):
    (tmp_path / "ok.pkl").write_bytes(b"\x80\x04K\x01.")
    (tmp_path / "dangling.pt").symlink_to(tmp_path / "gone")
    os.mkfifo(tmp_path / "fifo.pkl")
    locked = tmp_path / "locked.pkl"
    locked.write_bytes(INNER)
    locked.chmod(0)
    started = time.monotonic()
    result = run([tmp_path])
    assert time.monotonic() - started < 10
    by_name = {Path(o.object.uri).name: o for o in result.objects}
    assert by_name["ok.pkl"].status == Status.SCANNED
    assert by_name["dangling.pt"].status == Status.ERROR
    assert by_name["fifo.pkl"].status == Status.ERROR
    if os.geteuid() != 0:  # root reads it anyway
        assert by_name["locked.pkl"].status == Status.ERROR


def test_timeout_keeps_what_was_found(tmp_path: Path):
    # A long stream of opcodes after a payload: the deadline passes mid-stream.
    body = b"\x80\x04" + INNER[2:-1] + b"0" + b"N0" * 3_000_000 + b"N."
    (tmp_path / "slow.pkl").write_bytes(body)
    result = run([tmp_path / "slow.pkl"], timeout=0.05)
    obj = result.objects[0]
    assert any(f.rule_id == "PKL102" for f in obj.findings)
    assert obj.status == Status.ERROR and "timed out" in (obj.error or "")
    assert result.exit_code == 1


def test_max_size_skips(tmp_path: Path):
    (tmp_path / "big.pkl").write_bytes(b"\x80\x04" + b"N0" * 100 + b"N.")
    result = run([tmp_path / "big.pkl"], max_size=10)
    assert result.objects[0].status == Status.SKIPPED
    assert result.exit_code == 2
