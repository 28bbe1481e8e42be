"""Tar and 7z archives (THREATS C7 nullifAI 7z, C11 traversal and links, C12 bombs and counts,
4.4 legacy PyTorch tar). Samples are only written, never loaded or extracted."""

from __future__ import annotations

import gzip
import io
import os
import pickle
import struct
import tarfile
import threading
from pathlib import Path

import py7zr
import pytest

from shardscan.limits import Limits, MiB
from shardscan.model import Severity, Status
from shardscan.scanners.archive_paths import link_escape, path_escape
from tests.findings import rules

PAYLOAD = b"\x80\x02cposix\nsystem\nq\x00X\n\x00\x00\x00echo pwnedq\x01\x85q\x02Rq\x03."


def bu(s: str) -> bytes:
    b = s.encode()
    return b"X" + struct.pack("<I", len(b)) + b  # BINUNICODE


#: THREATS P11 / C7: the payload REDUCE runs, then an invalid opcode makes the loader raise.
BROKEN = b"\x80\x02" + b"cbuiltins\nexec\n" + bu("print(1)") + b"\x85R\xff\xfe"



def located(report, rule_id: str) -> dict[str, object]:
    """Location -> finding for every finding of `rule_id`."""
    found = {f.location: f for f in report.findings if f.rule_id == rule_id}
    assert found, (rule_id, [(f.rule_id, f.location, f.message) for f in report.findings])
    return found


def tar_bytes(*members: tarfile.TarInfo | tuple[str, bytes], fmt: int = tarfile.GNU_FORMAT,
              compress: str = "") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=f"w:{compress}", format=fmt) as tf:
        for member in members:
            if isinstance(member, tarfile.TarInfo):
                tf.addfile(member)
            else:
                name, data = member
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def link(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info


# --- names and links --------------------------------------------------------------------

@pytest.mark.parametrize(("name", "escapes"), [
    ("a/b.pkl", False), ("./a/./b", False), ("a/../b", False), ("a/b/../../c", False),
    ("../evil", True), ("a/../../evil", True), ("/etc/passwd", True), ("C:/x", True),
    ("..\\..\\evil", True), ("a\\..\\..\\evil", True), ("..", True), ("...", False),
])
def test_path_escape(name, escapes):
    assert (path_escape(name) is not None) == escapes


@pytest.mark.parametrize(("name", "target", "hard", "escapes"), [
    ("a/link", "../b", False, False),        # a/../b = b: inside
    ("a/link", "../../b", False, True),
    ("link", "/etc/passwd", False, True),
    ("link", "sub/file", False, False),
    ("a/b/hard", "../x", True, True),          # hard link targets are archive-relative
    ("a/b/hard", "a/x", True, False),
])
def test_link_escape(name, target, hard, escapes):
    assert (link_escape(name, target, hard=hard) is not None) == escapes


# --- tar --------------------------------------------------------------------------------

def test_tar_member_payload_is_found_at_its_member(scan_bytes):
    report = scan_bytes(tar_bytes(("model/evil.pkl", PAYLOAD), ("README.md", b"hello\n")), "bundle.tar")
    assert report.format == "tar"
    hit = located(report, "PKL102")["model/evil.pkl"]
    assert hit.severity == Severity.CRITICAL
    # Tar stores members as they are, so the offset counts in the archive: header + 2.
    assert (hit.offset, hit.offset_in) == (512 + 2, "")


def test_tar_traversal_absolute_and_escaping_links(scan_bytes):
    data = tar_bytes(
        ("../../evil", PAYLOAD), ("/abs/evil.pkl", b"x"),
        link("passwd", "/etc/passwd"), link("up/link", "../../outside"),
        link("inside", "data/file"), link("hard", "../outside", tarfile.LNKTYPE),
    )
    report = scan_bytes(data, "slip.tar")
    assert set(located(report, "CNT104")) == {"../../evil", "/abs/evil.pkl"}
    assert set(located(report, "CNT105")) == {"passwd", "up/link", "hard"}
    assert all(f.severity == Severity.CRITICAL for f in report.findings if f.rule_id in ("CNT104", "CNT105"))
    # The content of a member with an escaping name is still scanned.
    assert "../../evil" in located(report, "PKL102")


def test_tar_duplicate_members(scan_bytes):
    report = scan_bytes(tar_bytes(("w.pkl", pickle.dumps(1)), ("./w.pkl", PAYLOAD)), "dup.tar")
    assert set(located(report, "CNT106")) == {"./w.pkl"}
    assert "./w.pkl" in located(report, "PKL102")


def test_legacy_torch_tar_layout_is_clean(scan_bytes):
    # torch < 0.4's tar format, as torch._legacy_save wrote it (PAX headers): pickles only,
    # "storages" and "tensors" with raw bytes after theirs.
    sys_info = pickle.dumps({"protocol_version": 1001, "little_endian": True,
                             "type_sizes": {"short": 2, "int": 4, "long": 4}}, protocol=2)
    storages = (pickle.dumps(1, protocol=2) + pickle.dumps(("0", "cpu", 4), protocol=2)
                + struct.pack("<q", 4) + bytes(16))
    tensors = pickle.dumps(1, protocol=2) + pickle.dumps("0", protocol=2) + struct.pack("<qqq", 1, 2, 3)
    data = tar_bytes(("sys_info", sys_info), ("pickle", pickle.dumps({"weight": 1}, protocol=2)),
                     ("storages", storages), ("tensors", tensors), fmt=tarfile.PAX_FORMAT)
    report = scan_bytes(data, "legacy.pt")
    assert report.format == "tar"
    assert report.status == Status.SCANNED
    assert not [f for f in report.findings if f.severity >= Severity.WARNING], report.findings


def test_tar_gz_member_payload_is_found(scan_bytes):
    report = scan_bytes(tar_bytes(("inner/evil.pkl", PAYLOAD), compress="gz"), "model.tar.gz")
    assert report.format == "gzip"
    assert "model.tar/inner/evil.pkl" in located(report, "PKL102")


def test_long_names_from_gnu_and_pax_headers(scan_bytes):
    long_name = "deep/" + "d" * 150 + "/evil.pkl"
    for fmt in (tarfile.GNU_FORMAT, tarfile.PAX_FORMAT):
        report = scan_bytes(tar_bytes((long_name, PAYLOAD), fmt=fmt), "long.tar")
        assert long_name in located(report, "PKL102")


def test_corrupt_header_is_reported_and_later_members_still_scanned(scan_bytes):
    data = bytearray(tar_bytes(("first.txt", b"benign"), ("lost.pkl", PAYLOAD)))
    data[512 * 2 + 10] ^= 0xFF                 # the second header: its checksum now fails
    # GNU tar skips to the next header ("later.pkl"); tarfile would stop silently.
    report = scan_bytes(bytes(data[: 512 * 4]) + tar_bytes(("later.pkl", PAYLOAD)), "bad.tar")
    (bad,) = located(report, "CNT112").values()
    assert bad.offset == 1024
    assert set(located(report, "PKL102")) == {"later.pkl"}


def test_truncated_member_still_scans_its_prefix(scan_bytes):
    data = tar_bytes(("evil.pkl", PAYLOAD + b"\x00" * 4000))
    report = scan_bytes(data[: 512 + 1024], "cut.tar")
    assert "evil.pkl" in located(report, "CNT112")
    assert "evil.pkl" in located(report, "PKL102")


def test_tar_member_count_limit(scan_bytes):
    data = tar_bytes(*[(f"m{i}.txt", b"x") for i in range(6)])
    report = scan_bytes(data, "many.tar", limits=Limits(max_archive_members=3))
    assert "CNT109" in rules(report)


def test_tar_nesting_beyond_the_depth_limit(scan_bytes):
    inner = tar_bytes(("evil.pkl", PAYLOAD))
    report = scan_bytes(tar_bytes(("inner.tar", inner)), "outer.tar", limits=Limits(max_archive_depth=1))
    # The inner tar is walked (names, links) but its members are not scanned.
    assert "inner.tar/evil.pkl" in located(report, "CNT108")
    assert "PKL102" not in rules(report)


# --- 7z ---------------------------------------------------------------------------------

def seven_zip(path: Path, *members: tuple[str, bytes], password: str | None = None,
              header_encryption: bool = False) -> bytes:
    with py7zr.SevenZipFile(path, "w", password=password, header_encryption=header_encryption) as archive:
        for name, data in members:
            archive._writestr(data, name)       # writestr() itself refuses '../' names
    return path.read_bytes()


def test_nullifai_7z_broken_pickle(scan_bytes, tmp_path):
    data = seven_zip(tmp_path / "s.7z", ("archive/data.pkl", BROKEN), ("archive/version", b"3\n"))
    report = scan_bytes(data, "model.7z")
    assert report.format == "7z"
    assert located(report, "PKL101")["archive/data.pkl"].severity == Severity.CRITICAL
    assert "archive/data.pkl" in located(report, "PKL301")


def test_7z_traversal_links_and_duplicates(scan_bytes, tmp_path):
    os.symlink("/etc/passwd", tmp_path / "passwd-link")
    path = tmp_path / "slip.7z"
    with py7zr.SevenZipFile(path, "w") as archive:
        archive.write(tmp_path / "passwd-link", "passwd")   # before writestr: py7zr needs it first
        archive._writestr(PAYLOAD, "../../evil.pkl")
        archive._writestr(b"x", "/abs/file")
        archive._writestr(b"a", "dup.txt")
        archive._writestr(b"b", "dup.txt")
    report = scan_bytes(path.read_bytes(), "slip.7z")
    assert set(located(report, "CNT104")) == {"../../evil.pkl", "/abs/file"}
    assert set(located(report, "CNT105")) == {"passwd"}
    assert set(located(report, "CNT106")) == {"dup.txt"}
    assert "../../evil.pkl" in located(report, "PKL102")


@pytest.mark.parametrize("header_encryption", [False, True])
def test_encrypted_7z_is_reported(scan_bytes, tmp_path, header_encryption):
    data = seven_zip(tmp_path / "e.7z", ("evil.pkl", PAYLOAD), password="secret",
                     header_encryption=header_encryption)
    report = scan_bytes(data, "enc.7z")
    (enc,) = located(report, "CNT112").values()
    assert enc.evidence["encrypted"] is True


def test_7z_bomb_stops_at_the_ratio_limit(scan_bytes, tmp_path):
    data = seven_zip(tmp_path / "b.7z", ("zeros.bin", bytes(24 * MiB)), ("after.pkl", PAYLOAD))
    report = scan_bytes(data, "bomb.7z", limits=Limits(max_compression_ratio=10, ratio_grace_bytes=1 * MiB))
    assert located(report, "CNT107")["zeros.bin"].evidence["limit"] == "ratio"
    assert "FMT005" in rules(report)           # what follows the bomb is not inspected


def test_7z_crc_mismatch_still_scans_the_member(scan_bytes, tmp_path):
    data = bytearray(seven_zip(tmp_path / "c.7z", ("archive/data.pkl", PAYLOAD + b"\x00" * 64)))
    # Flip a byte of the packed stream (it starts after the 32-byte signature header).
    data[40] ^= 0xFF
    report = scan_bytes(bytes(data), "crc.7z")
    assert "CNT112" in rules(report)
    assert report.status == Status.SCANNED


def test_7z_garbage_is_reported(scan_bytes):
    report = scan_bytes(b"7z\xbc\xaf\x27\x1c" + b"\x00\x04" + b"\xff" * 64, "junk.7z")
    assert "CNT112" in rules(report)
    assert report.status == Status.ERROR


def test_7z_member_count_limit(scan_bytes, tmp_path):
    data = seven_zip(tmp_path / "m.7z", *[(f"m{i}.txt", b"x") for i in range(5)])
    report = scan_bytes(data, "many.7z", limits=Limits(max_archive_members=2))
    assert "CNT109" in rules(report)


def test_7z_holding_a_compressed_tar(scan_bytes, tmp_path):
    inner = gzip.compress(tar_bytes(("evil.pkl", PAYLOAD)))
    data = seven_zip(tmp_path / "n.7z", ("bundle.tar.gz", inner))
    report = scan_bytes(data, "nested.7z")
    assert "bundle.tar.gz/bundle.tar/evil.pkl" in located(report, "PKL102")
    shallow = scan_bytes(data, "nested.7z", limits=Limits(max_archive_depth=2))
    assert "CNT108" in rules(shallow)
    assert "PKL102" not in rules(shallow)


def test_7z_total_size_limit_stops_extraction(scan_bytes, tmp_path):
    data = seven_zip(tmp_path / "t.7z", ("a.pkl", PAYLOAD), ("zeros.bin", bytes(12 * MiB)), ("b.pkl", PAYLOAD))
    report = scan_bytes(data, "total.7z", limits=Limits(max_total_uncompressed=4 * MiB))
    assert set(located(report, "PKL102")) == {"a.pkl"}
    assert "zeros.bin" in located(report, "CNT107")
    assert "zeros.bin" in located(report, "FMT005")


def test_7z_timeout_ends_the_extraction_thread(scan_bytes, tmp_path):
    data = seven_zip(tmp_path / "d.7z", ("a.pkl", PAYLOAD), ("zeros.bin", bytes(24 * MiB)), ("b.pkl", PAYLOAD))
    before = threading.active_count()
    report = scan_bytes(data, "slow.7z", timeout=0.02)
    assert report.status == Status.SCANNED or report.error == "timed out"
    assert threading.active_count() == before
