"""Zip archives and PyTorch zip checkpoints: THREATS.md 4.3 (C1-C5, C9, C11-C13) and 4.4.

Every sample is written byte by byte or with zipfile's writer and patched; nothing is loaded.
Payloads are harmless (`echo pwned`).
"""

from __future__ import annotations

import io
import struct
import time
import warnings
import zipfile
import zlib
from pathlib import Path

import pytest

from shardscan.limits import Limits
from shardscan.model import Severity
from shardscan.pipeline.runner import Runner, ScanOptions
from shardscan.scanners.archive_paths import link_escape, path_escape
from shardscan.scanners.ziparchive import STORAGE_ELEMENT_SIZES
from tests.findings import rules

#: os.system('echo pwned'), protocol 2 (THREATS.md G1).
MALICIOUS = b"\x80\x02cposix\nsystem\nq\x00X\n\x00\x00\x00echo pwnedq\x01\x85q\x02Rq\x03."
#: The same as a protocol 0 pickle: no magic to find it by (C2).
MALICIOUS_P0 = b"(S'echo pwned'\nios\nsystem\n."
FIXTURES = Path(__file__).parent / "fixtures" / "benign"


def bu(s: str) -> bytes:
    b = s.encode()
    return b"X" + struct.pack("<I", len(b)) + b  # BINUNICODE


def state_dict_pkl(storages: list[tuple[str, str, int]]) -> bytes:
    """A protocol-2 data.pkl as torch.save writes it: an OrderedDict of tensors rebuilt by
    `_rebuild_tensor_v2` from persistent-id storages `('storage', cls, key, 'cpu', numel)`."""
    out = b"\x80\x02ccollections\nOrderedDict\nq\x00)Rq\x01("
    for i, (key, cls, numel) in enumerate(storages):
        out += bu(f"layer{i}.weight")
        out += b"ctorch._utils\n_rebuild_tensor_v2\nq\x02("
        out += b"(" + bu("storage") + f"ctorch\n{cls}\n".encode() + bu(key) + bu("cpu")
        out += b"J" + struct.pack("<i", numel) + b"tQ"                      # BINPERSID
        out += b"K\x00" + b"J" + struct.pack("<i", numel) + b"\x85"          # offset, size
        out += b"K\x01\x85" + b"\x89" + b"h\x00)R" + b"tR"                   # stride, grad, hooks
    return out + b"u."


def torch_zip(data_pkl: bytes, storages: dict[str, bytes] | None = None, *, prefix: str = "archive",
              extra: dict[str, bytes] | None = None, compression: int = zipfile.ZIP_STORED) -> bytes:
    """The layout of torch.save: data.pkl, byteorder, data/<key>, version, .data/serialization_id."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as z:
        z.writestr(f"{prefix}/data.pkl", data_pkl)
        z.writestr(f"{prefix}/byteorder", "little")
        for key, raw in (storages or {}).items():
            z.writestr(f"{prefix}/data/{key}", raw, compress_type=zipfile.ZIP_STORED)
        z.writestr(f"{prefix}/version", "3\n")
        z.writestr(f"{prefix}/.data/serialization_id", "1548612236419236402600072981066409447\n")
        for name, raw in (extra or {}).items():
            z.writestr(name, raw)
    return buf.getvalue()


def benign_torch_zip(**kw) -> bytes:
    floats = struct.pack("<4f", 0.5, -1.0, 2.0, 3.25)
    return torch_zip(state_dict_pkl([("0", "FloatStorage", 4), ("1", "LongStorage", 2)]),
                     {"0": floats, "1": struct.pack("<2q", 7, 8)}, **kw)


def build_zip(members: dict[str, bytes], compression: int = zipfile.ZIP_STORED) -> bytes:
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # duplicate names are the point of some tests
        with zipfile.ZipFile(buf, "w", compression) as z:
            for name, raw in members.items():
                z.writestr(name, raw)
    return buf.getvalue()


def local_offset(data: bytes, name: str) -> int:
    return zipfile.ZipFile(io.BytesIO(data)).getinfo(name).header_offset  # the directory only


def central_offset(data: bytes, name: str) -> int:
    at = data.rfind(name.encode()) - 46  # the directory follows every local header
    assert data[at : at + 4] == b"PK\x01\x02"
    return at


def patch(data: bytes, at: int, new: bytes) -> bytes:
    return data[:at] + new + data[at + len(new) :]


def rename_local_header(data: bytes, name: str, new: str) -> bytes:
    assert len(new) == len(name)
    return patch(data, local_offset(data, name) + 30, new.encode())


def patch_flags(data: bytes, name: str, bits: int) -> bytes:
    lo, co = local_offset(data, name), central_offset(data, name)
    (lf,) = struct.unpack_from("<H", data, lo + 6)
    (cf,) = struct.unpack_from("<H", data, co + 8)
    data = patch(data, lo + 6, struct.pack("<H", lf | bits))
    return patch(data, co + 8, struct.pack("<H", cf | bits))


def corrupt_crc(data: bytes, name: str) -> bytes:
    lo, co = local_offset(data, name), central_offset(data, name)
    (crc,) = struct.unpack_from("<I", data, co + 16)
    data = patch(data, lo + 14, struct.pack("<I", crc ^ 0xDEADBEEF))
    return patch(data, co + 16, struct.pack("<I", crc ^ 0xDEADBEEF))


def to_zip64(data: bytes) -> bytes:
    """Rewrite the end of an archive as zip64: a zip64 end record and locator, and an end
    record whose fields say 'see zip64'."""
    eocd = data.rfind(b"PK\x05\x06")
    _, _, _, _, n, cd_size, cd_off, _ = struct.unpack_from("<4s4H2IH", data, eocd)
    z64 = struct.pack("<4sQ2H2I4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, n, n, cd_size, cd_off)
    loc = struct.pack("<4sIQI", b"PK\x06\x07", 0, eocd, 1)
    end = struct.pack("<4s4H2IH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    return data[:eocd] + z64 + loc + end



def hits(report, rule_id: str):
    return [f for f in report.findings if f.rule_id == rule_id]


def assert_payload(report, location: str) -> None:
    found = [f for f in hits(report, "PKL102") if f.location == location]
    assert found, [(f.rule_id, f.location, f.message) for f in report.findings]
    assert all(f.severity == Severity.CRITICAL and f.offset is not None for f in found)


# --- parser units ---------------------------------------------------------------------------


def test_storage_element_sizes_cover_torch_storage_classes():
    assert STORAGE_ELEMENT_SIZES["FloatStorage"] == 4
    assert STORAGE_ELEMENT_SIZES["ComplexDoubleStorage"] == 16
    assert all(name.endswith("Storage") and size > 0 for name, size in STORAGE_ELEMENT_SIZES.items())


@pytest.mark.parametrize(("name", "bad"), [
    ("archive/data.pkl", False), ("a/..b/c", False), ("../../evil.sh", True), ("a/../../x", True),
    ("/etc/x", True), ("\\windows\\x", True), ("C:\\x.dll", True), ("a\\..\\..\\x", True),
])
def test_escapes(name, bad):
    assert (path_escape(name) is not None) == bad


def test_link_escapes():
    assert link_escape("a/link", "/etc/passwd", hard=False)
    assert link_escape("a/link", "../../etc/passwd", hard=False)
    assert not link_escape("a/b/link", "../c", hard=False)
    assert not link_escape("a/link", "sibling", hard=False)


# --- C1-C5: the torch zip and the zip tricks miniz tolerates ---------------------------------


def test_c1_malicious_data_pkl(scan_bytes):
    data = torch_zip(MALICIOUS, {"0": b"\0" * 16})
    report = scan_bytes(data, "model.pt")
    assert report.format == "zip"
    assert_payload(report, "archive/data.pkl")
    [hit] = hits(report, "PKL102")
    # Stored member: the offset is in the archive, inside data.pkl's bytes.
    start = data.find(MALICIOUS)
    assert start <= hit.offset < start + len(MALICIOUS)


def test_c1_deflated_data_pkl(scan_bytes):
    report = scan_bytes(torch_zip(MALICIOUS, compression=zipfile.ZIP_DEFLATED), "model.pt")
    assert_payload(report, "archive/data.pkl")
    assert "CNT103" not in rules(report)


@pytest.mark.parametrize("method", [zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA])
def test_other_compression_methods(method, scan_bytes):
    report = scan_bytes(build_zip({"x/payload.pkl": MALICIOUS, "x/readme.txt": b"hi"}, method), "a.zip")
    assert_payload(report, "x/payload.pkl")
    assert not rules(report) & {"CNT103", "CNT112"}


def test_c2_protocol0_pickle_under_json_name(scan_bytes):
    data = benign_torch_zip(extra={"archive/config.json": MALICIOUS_P0})
    report = scan_bytes(data, "model.pt")
    assert_payload(report, "archive/config.json")
    assert [f.location for f in hits(report, "CNT110")] == ["archive/config.json"]


@pytest.mark.parametrize("payload", [MALICIOUS, MALICIOUS_P0], ids=["proto2", "proto0"])
def test_c2_pickle_hidden_among_storages_is_found(payload, scan_bytes):
    data = torch_zip(state_dict_pkl([("0", "FloatStorage", 4)]),
                     {"0": b"\0" * 16, "1": payload})
    report = scan_bytes(data, "model.pt")
    assert_payload(report, "archive/data/1")
    assert "CNT110" not in rules(report)  # data/ is exempt; the payload itself is critical


def test_storage_bytes_that_read_as_a_tiny_pickle_are_not_reported(scan_bytes):
    # 0x2e is STOP: one float32 in 256 starts with it; "N." is a complete pickle of None.
    storages = {"0": b".\xd0\x84\xbf" * 4, "1": b"N.\x00\xbf" * 4}
    pkl = state_dict_pkl([("0", "FloatStorage", 4), ("1", "FloatStorage", 4)])
    assert scan_bytes(torch_zip(pkl, storages), "model.pt").findings == []


def test_c3_local_name_differs(scan_bytes):
    data = rename_local_header(torch_zip(MALICIOUS), "archive/data.pkl", "archive/xxxx.pkl")
    report = scan_bytes(data, "model.pt")
    assert_payload(report, "archive/data.pkl")
    [mismatch] = hits(report, "CNT101")
    assert mismatch.evidence["local_name"] == "archive/xxxx.pkl"


def test_c3_only_the_local_name_says_data_pkl(scan_bytes):
    # The central directory hides the payload under a text name; the local header calls it
    # data.pkl. It is scanned once, under both names.
    data = build_zip({"archive/data.pkl": MALICIOUS, "archive/version": b"3\n"})
    data = data.replace(b"archive/data.pkl", b"archive/data.txt")  # every header...
    data = rename_local_header(data, "archive/data.txt", "archive/data.pkl")  # ...but the local one
    report = scan_bytes(data, "model.pt")
    assert "CNT101" in rules(report)
    assert len(hits(report, "PKL102")) == 1
    assert_payload(report, "archive/data.txt")
    assert "CNT110" not in rules(report)  # read as the checkpoint's data.pkl, by its local name


@pytest.mark.parametrize("bit", [0x1, 0x20, 0x40])
def test_c4_flag_bits(bit, scan_bytes):
    data = patch_flags(torch_zip(MALICIOUS), "archive/data.pkl", bit)
    report = scan_bytes(data, "model.pt")
    assert_payload(report, "archive/data.pkl")
    [flagged] = hits(report, "CNT102")
    assert flagged.location == "archive/data.pkl" and flagged.evidence["flags"] & bit


def test_c4_encryption_flag_on_deflated_member(scan_bytes):
    data = patch_flags(torch_zip(MALICIOUS, compression=zipfile.ZIP_DEFLATED), "archive/data.pkl", 0x1)
    report = scan_bytes(data, "model.pt")
    assert_payload(report, "archive/data.pkl")
    assert "CNT102" in rules(report)


def test_c5_crc_mismatch(scan_bytes):
    data = corrupt_crc(torch_zip(MALICIOUS), "archive/data.pkl")
    report = scan_bytes(data, "model.pt")
    assert_payload(report, "archive/data.pkl")
    assert [f.location for f in hits(report, "CNT103")] == ["archive/data.pkl"]


def test_c5_crc_mismatch_deflated(scan_bytes):
    data = corrupt_crc(build_zip({"p.pkl": MALICIOUS}, zipfile.ZIP_DEFLATED), "p.pkl")
    report = scan_bytes(data, "a.zip")
    assert_payload(report, "p.pkl")
    assert "CNT103" in rules(report)


def test_duplicate_names_scan_both_copies(scan_bytes):
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with zipfile.ZipFile(buf, "w") as z:
            z.writestr("archive/data.pkl", b"\x80\x02}q\x00.")
            z.writestr("archive/data.pkl", MALICIOUS)
    report = scan_bytes(buf.getvalue(), "model.pt")
    assert "CNT106" in rules(report)
    assert_payload(report, "archive/data.pkl")


# --- C9: npz ---------------------------------------------------------------------------------


def npy_object(payload: bytes) -> bytes:
    header = b"{'descr': '|O', 'fortran_order': False, 'shape': (1,), }"
    header += b" " * (63 - (10 + len(header)) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + payload


@pytest.mark.parametrize("compression", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
def test_c9_npz_with_object_array(compression, scan_bytes):
    data = build_zip({"w.npy": npy_object(b"\x80\x02]q\x00."), "x.npy": npy_object(MALICIOUS)},
                     compression)
    report = scan_bytes(data, "arrays.npz")
    assert_payload(report, "x.npy")
    assert {f.location for f in hits(report, "NPY101")} == {"w.npy", "x.npy"}


# --- C11: zip slip and links ------------------------------------------------------------------


@pytest.mark.parametrize("name", ["../../evil.sh", "/etc/x", "C:/Windows/x.dll", "ok/../../../x"])
def test_c11_zip_slip(name, scan_bytes):
    report = scan_bytes(build_zip({"fine.txt": b"hello", name: b"#!/bin/sh\necho pwned\n"}), "a.zip")
    [slip] = hits(report, "CNT104")
    assert slip.location == name and slip.severity == Severity.CRITICAL


def symlink_zip(target: str, name: str = "assets/link") -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        info = zipfile.ZipInfo(name)
        info.create_system = 3
        info.external_attr = (0o120777 << 16)
        z.writestr(info, target)
        z.writestr("assets/real.txt", "hi")
    return buf.getvalue()


def test_c11_symlink_outside(scan_bytes):
    for target in ("/etc/passwd", "../../../../etc/shadow"):
        report = scan_bytes(symlink_zip(target), "model.keras")
        [link] = hits(report, "CNT105")
        assert link.location == "assets/link" and link.evidence["target"] == target


def test_c11_symlink_inside_is_fine(scan_bytes):
    assert "CNT105" not in rules(scan_bytes(symlink_zip("real.txt"), "model.keras"))


# --- C12: bombs and sizes ----------------------------------------------------------------------


def deflated_zeros_zip(total: int, name: str = "zeros.bin") -> bytes:
    """A zip of `total` zero bytes deflated, built from one flushed block repeated, so writing
    it costs next to nothing."""
    piece = 1 << 20
    assert total % piece == 0
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = comp.compress(b"\0" * piece) + comp.flush(zlib.Z_FULL_FLUSH)
    body = block * (total // piece) + comp.flush(zlib.Z_FINISH)
    crc = 0
    zeros = b"\0" * piece
    for _ in range(total // piece):
        crc = zlib.crc32(zeros, crc)
    raw = name.encode()
    sizes = struct.pack("<3I", crc, len(body), total)
    local = b"PK\x03\x04" + struct.pack("<5H", 20, 0, 8, 0, 0) + sizes + struct.pack("<2H", len(raw), 0) + raw
    central = (b"PK\x01\x02" + struct.pack("<6H", 20, 20, 0, 8, 0, 0) + sizes
               + struct.pack("<5HII", len(raw), 0, 0, 0, 0, 0, 0) + raw)
    end = struct.pack("<4s4H2IH", b"PK\x05\x06", 0, 0, 1, 1, len(central), len(local) + len(body), 0)
    return local + body + central + end


def test_c12_deflate_bomb_200mb(scan_bytes):
    data = deflated_zeros_zip(200 << 20)
    assert len(data) < 250_000
    began = time.monotonic()
    report = scan_bytes(data, "bomb.zip", limits=Limits(ratio_grace_bytes=8 << 20, max_compression_ratio=100))
    assert time.monotonic() - began < 5
    [bomb] = hits(report, "CNT107")
    assert bomb.location == "zeros.bin" and bomb.evidence["limit"] == "ratio"
    # Default limits: deflate's ratio on zeros (about 1030:1) passes the 1000:1 limit too.
    assert "CNT107" in rules(scan_bytes(data, "bomb.zip"))


def test_c12_member_size_limit(scan_bytes):
    report = scan_bytes(deflated_zeros_zip(16 << 20), "big.zip", limits=Limits(max_member_size=4 << 20))
    [big] = hits(report, "CNT107")
    assert big.evidence["limit"] == "size"


def test_c12_total_size_limit(scan_bytes):
    a = build_zip({f"m{i}.bin": b"\1" * (1 << 20) for i in range(4)}, zipfile.ZIP_DEFLATED)
    report = scan_bytes(a, "many.zip", limits=Limits(max_total_uncompressed=(2 << 20) + 5))
    assert "CNT107" in rules(report)


def test_c12_ten_thousand_members(scan_bytes):
    members = {f"shard/{i:05d}.bin": b"\x00\x01\x02" for i in range(10_000)}
    members["shard/payload.pkl"] = MALICIOUS
    data = build_zip(members)
    began = time.monotonic()
    report = scan_bytes(data, "many.zip")
    assert time.monotonic() - began < 10
    assert_payload(report, "shard/payload.pkl")
    assert "CNT109" not in rules(report)
    limited = scan_bytes(data, "many.zip", limits=Limits(max_archive_members=1000))
    assert "CNT109" in rules(limited)
    assert "PKL102" not in rules(limited)  # the payload sits past the limit; the finding says so


def test_member_that_cannot_be_scanned_is_incomplete_coverage(scan_bytes):
    report = scan_bytes(build_zip({"x.npy": b"\x93NUMPX" + b"\0" * 40}), "arrays.npz")
    [gap] = hits(report, "FMT005")
    assert gap.location == "x.npy"


def test_executable_planted_in_a_checkpoint(scan_bytes):
    report = scan_bytes(benign_torch_zip(extra={"archive/data/libx.so": b"\x7fELF" + b"\0" * 60}), "model.pt")
    assert [f.location for f in hits(report, "FMT003")] == ["archive/data/libx.so"]


def test_directory_size_limit(scan_bytes):
    members = {f"m{i:03d}.bin": b"\x00\x01" for i in range(100)}
    members["zz/payload.pkl"] = MALICIOUS
    report = scan_bytes(build_zip(members), "a.zip", limits=Limits(max_zip_directory=1024))
    assert "CNT109" in rules(report) and "PKL102" not in rules(report)


def test_truncated_zip_is_reported(scan_bytes):
    data = torch_zip(MALICIOUS)
    report = scan_bytes(data[: data.rfind(b"PK\x01\x02")], "model.pt")
    assert "CNT112" in rules(report) and report.status == "error"


def test_zip64_end_record(scan_bytes):
    report = scan_bytes(to_zip64(torch_zip(MALICIOUS)), "model.pt")
    assert_payload(report, "archive/data.pkl")
    assert "CNT112" not in rules(report)


def test_corrupt_member_does_not_stop_the_others(scan_bytes):
    data = build_zip({"a.pkl": b"\x80\x02}q\x00." * 50, "b.pkl": MALICIOUS}, zipfile.ZIP_DEFLATED)
    info = zipfile.ZipFile(io.BytesIO(data)).getinfo("a.pkl")
    start = info.header_offset + 30 + len("a.pkl")
    data = patch(data, start, b"\xff\xff\xff\xff")  # not a deflate stream any more
    report = scan_bytes(data, "a.zip")
    assert [f.location for f in hits(report, "CNT112")] == ["a.pkl"]
    assert_payload(report, "b.pkl")


def test_unknown_method_is_corrupt(scan_bytes):
    data = build_zip({"a.pkl": MALICIOUS})
    lo, co = local_offset(data, "a.pkl"), central_offset(data, "a.pkl")
    data = patch(patch(data, lo + 8, struct.pack("<H", 99)), co + 10, struct.pack("<H", 99))
    report = scan_bytes(data, "a.zip")
    assert [f.rule_id for f in report.findings] == ["CNT112"]


# --- C13: polyglots and nesting -----------------------------------------------------------------


def test_c13_pickle_and_zip_polyglot(scan_bytes):
    report = scan_bytes(MALICIOUS + benign_torch_zip(), "model.pt")
    assert {"PKL102", "CNT111"} <= rules(report)
    assert_payload(report, "")
    assert "CNT112" not in rules(report)  # the shifted zip parses cleanly


def test_c13_prepended_data_shifts_offsets(scan_bytes):
    benign_pickle = b"\x80\x02}q\x00."
    report = scan_bytes(benign_pickle + torch_zip(MALICIOUS), "model.pt")
    assert "CNT111" in rules(report)
    assert_payload(report, "archive/data.pkl")
    [hit] = hits(report, "PKL102")
    data = benign_pickle + torch_zip(MALICIOUS)
    assert data.find(MALICIOUS) <= hit.offset < data.find(MALICIOUS) + len(MALICIOUS)


def test_nesting_ten_deep(scan_bytes):
    data = build_zip({"payload.pkl": MALICIOUS})
    for _ in range(10):
        data = build_zip({"inner.zip": data})
    report = scan_bytes(data, "nested.zip")
    [deep] = hits(report, "CNT108")
    assert deep.location == "/".join(["inner.zip"] * 6)
    assert "PKL102" not in rules(report)


def test_nesting_within_limit_is_scanned(scan_bytes):
    data = build_zip({"payload.pkl": MALICIOUS})
    for _ in range(3):
        data = build_zip({"inner.zip": data}, zipfile.ZIP_DEFLATED)
    report = scan_bytes(data, "nested.zip")
    assert_payload(report, "inner.zip/inner.zip/inner.zip/payload.pkl")


# --- 4.4: TorchScript and storages --------------------------------------------------------------


def test_torchscript_archive(scan_bytes):
    data = benign_torch_zip(extra={
        "archive/code/__torch__/m.py": b"class M(Module):\n  def forward(self, x):\n    return x\n",
        "archive/code/__torch__/m.py.debug_pkl": b"\x80\x02)q\x00.",
        "archive/constants.pkl": b"\x80\x02)q\x00.",
    })
    report = scan_bytes(data, "model.pt")
    [ts] = hits(report, "TRC101")
    assert ts.severity == Severity.INFO
    assert not [f for f in report.findings if f.severity >= Severity.WARNING]


def test_trc102_storage_larger_than_member(scan_bytes):
    pkl = state_dict_pkl([("0", "FloatStorage", 1_000_000), ("1", "DoubleStorage", 2)])
    report = scan_bytes(torch_zip(pkl, {"0": b"\0" * 16, "1": b"\0" * 16}), "model.pt")
    [big] = hits(report, "TRC102")
    assert big.location == "archive/data.pkl" and big.evidence["key"] == "0"
    assert big.evidence["declared_bytes"] == 4_000_000 and big.evidence["member_bytes"] == 16


def test_trc102_storage_without_member(scan_bytes):
    pkl = state_dict_pkl([("0", "FloatStorage", 4), ("7", "FloatStorage", 4)])
    report = scan_bytes(torch_zip(pkl, {"0": b"\0" * 16}), "model.pt")
    assert [f.evidence["key"] for f in hits(report, "TRC102")] == ["7"]


def test_benign_torch_zip_is_clean(scan_bytes):
    report = scan_bytes(benign_torch_zip(), "model.pt")
    assert report.status == "scanned"
    assert not [f for f in report.findings if f.severity >= Severity.WARNING], report.findings
    assert not rules(report) & {"FMT001", "FMT002"}  # storages and version strings are torch's own


def test_large_torch_zip_reads_storages_only_at_their_heads(tmp_path):
    """The format checks never read tensor bytes: the content hash reads the object once, the
    scanners add less than 2 MiB on top of that for a 64 MiB storage. The weight analysis
    reads each tensor once more, and nothing else."""
    storage = b"\x01\x02\x03\x04" * (16 << 20)
    path = tmp_path / "big.pt"
    path.write_bytes(torch_zip(state_dict_pkl([("0", "FloatStorage", len(storage) // 4)]), {"0": storage}))
    size = path.stat().st_size
    (report,) = Runner(ScanOptions(weights=False)).run([str(path)]).objects
    assert not [f for f in report.findings if f.severity >= Severity.WARNING]
    assert size <= report.bytes_read < size + (2 << 20), report.bytes_read
    (report,) = Runner(ScanOptions()).run([str(path)]).objects
    assert report.weights == {"tensors": 1, "bytes": len(storage), "skipped": {}}
    assert size + len(storage) <= report.bytes_read < size + len(storage) + (2 << 20), report.bytes_read


# --- real checkpoints, when another session has generated them ---------------------------------

BENIGN = sorted(p for p in FIXTURES.glob("*") if p.suffix in {".pt", ".pth", ".bin", ".zip", ".ckpt"}) \
    if FIXTURES.is_dir() else []


@pytest.mark.skipif(not BENIGN, reason="tests/fixtures/benign/ has no torch checkpoints yet")
@pytest.mark.parametrize("path", BENIGN, ids=[p.name for p in BENIGN])
def test_real_benign_checkpoint_is_clean(path):
    report = Runner(ScanOptions()).run([str(path)]).objects[0]
    assert report.status == "scanned", report.error
    bad = [(f.rule_id, f.location, f.message) for f in report.findings if f.severity >= Severity.WARNING]
    policy_gap = [b for b in bad if b[0] == "PKL201" and "torch.jit._pickle." in b[2]]
    if bad and bad == policy_gap:
        # TorchScript's .debug_pkl members call torch.jit._pickle.build_intlist & co; the zip
        # scanner reaches them correctly and the pickle policy has yet to allowlist them.
        pytest.xfail("policy: torch.jit._pickle builders not allowlisted yet")
    assert not bad


def test_timeout_keeps_members_already_found(tmp_path, monkeypatch):
    import zipfile

    from shardscan.pipeline.runner import Runner, ScanOptions
    from shardscan.scanners.base import ScanContext, ScanTimeout

    path = tmp_path / "many.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("evil.pkl", b"\x80\x02cposix\nsystem\nX\n\x00\x00\x00echo pwned\x85R.")
        for i in range(300):
            zf.writestr(f"m{i}.pkl", b"\x80\x04K\x01." * 200)
    # The clock runs out after a fixed number of deadline checks, whatever the machine's load.
    checks = 0

    def deadline_after_some_members(self):
        nonlocal checks
        checks += 1
        if checks > 100:
            raise ScanTimeout("scan timed out")

    monkeypatch.setattr(ScanContext, "check_deadline", deadline_after_some_members)
    run = Runner(ScanOptions()).run([str(path)])
    obj = run.objects[0]
    assert any(f.rule_id == "PKL102" and f.location == "evil.pkl" for f in obj.findings)
    assert obj.status == "error" and "timed out" in obj.error
    assert run.exit_code == 1


def test_offsets_say_what_they_count_in(tmp_path):
    import zipfile

    from shardscan.pipeline.runner import Runner, ScanOptions

    payload = b"\x80\x02cposix\nsystem\nX\n\x00\x00\x00echo pwned\x85R."
    for method, stored in ((zipfile.ZIP_STORED, True), (zipfile.ZIP_DEFLATED, False)):
        path = tmp_path / f"m{method}.zip"
        with zipfile.ZipFile(path, "w", method) as zf:
            zf.writestr("a.pkl", payload)
        (f,) = [f for f in Runner(ScanOptions()).run([str(path)]).objects[0].findings if f.rule_id == "PKL102"]
        if stored:  # an offset in the archive file, pointing at the GLOBAL opcode
            assert f.offset_in == "" and path.read_bytes()[f.offset:f.offset + 7] == b"cposix\n"
        else:
            assert f.offset_in == "a.pkl" and f.offset == 2
