"""Single-stream compression (THREATS C10 compressed joblib, C12 bombs): the payload inside
any supported compression is found, cut or corrupt streams still give up what came before the
damage, and bombs stop at the limits. Samples are only written, never loaded."""

from __future__ import annotations

import bz2
import functools
import gzip
import lzma
import random
import struct
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import lz4.frame
import pytest
import zstandard

from shardscan.limits import Limits, MiB
from shardscan.model import ObjectRef, Severity, Status, Unit
from shardscan.pipeline.runner import Runner, ScanOptions
from shardscan.scanners.compressed import CompressedScanner, member_name
from shardscan.storage.reader import BytesReader
from tests.findings import only, rules

#: `os.system("echo pwned")` by GLOBAL posix.system, protocol 2 (THREATS G1), without STOP.
PAYLOAD_BODY = b"\x80\x02cposix\nsystem\nq\x00X\n\x00\x00\x00echo pwnedq\x01\x85q\x02Rq\x03"
PAYLOAD = PAYLOAD_BODY + b"."


def _zstd(data: bytes) -> bytes:
    return zstandard.ZstdCompressor().compress(data)


#: (format id, suffix, compressor): one row per format the scanner reads.
COMPRESSIONS: list[tuple[str, str, Callable[[bytes], bytes]]] = [
    ("zlib", ".z", zlib.compress),                         # joblib compress='zlib'
    ("gzip", ".gz", gzip.compress),
    ("bz2", ".bz2", lambda d: bz2.compress(d, 1)),         # 100 kB blocks: several in the big sample
    ("lzma", ".lzma", lambda d: lzma.compress(d, format=lzma.FORMAT_ALONE)),
    ("xz", ".xz", lzma.compress),
    ("zstd", ".zst", _zstd),
    ("lz4", ".lz4", lz4.frame.compress),
]
IDS = [row[0] for row in COMPRESSIONS]


def _big_payload() -> bytes:
    """The payload first, then 600 kB of incompressible BINBYTES, so a stream cut at 60% has
    already given the payload to whoever reads it."""
    pad = random.Random(0).randbytes(600_000)
    return PAYLOAD_BODY + b"0" + b"B" + struct.pack("<I", len(pad)) + pad + b"0."




@pytest.mark.parametrize(("format_id", "suffix", "compress"), COMPRESSIONS, ids=IDS)
def test_payload_inside_each_compression_is_found(scan_bytes, format_id, suffix, compress):
    report = scan_bytes(compress(PAYLOAD), f"model.pkl{suffix}")
    assert report.status == Status.SCANNED
    assert report.format == format_id
    (hit,) = only(report, "PKL102")
    assert hit.severity == Severity.CRITICAL
    assert hit.location == "model.pkl"
    assert hit.offset == 2                      # the GLOBAL, counted in the decompressed bytes
    assert not rules(report) & {"CNT107", "CNT112", "FMT005"}


@pytest.mark.parametrize(("format_id", "suffix", "compress"), COMPRESSIONS, ids=IDS)
def test_stream_cut_after_the_payload_still_finds_it(scan_bytes, format_id, suffix, compress):
    data = compress(_big_payload())
    report = scan_bytes(data[: len(data) * 6 // 10], f"model.pkl{suffix}")
    assert only(report, "PKL102")[0].location == "model.pkl"
    (cut,) = only(report, "CNT112")
    assert cut.location == ""                   # about the compressed file itself
    assert 0 < cut.offset <= len(data) * 6 // 10
    assert cut.evidence["expanded"] > len(PAYLOAD)


@functools.cache
def _compressible_payload() -> bytes:
    """The payload, then 1.2 MB of word salad: it compresses, so damage lands in coded data
    that the decompressors check, several blocks after the payload in every format."""
    rng = random.Random(1)
    words = [bytes(rng.choice(b"abcdefghij") for _ in range(rng.randint(2, 8))) for _ in range(500)]
    pad = b" ".join(rng.choice(words) for _ in range(200_000))
    return PAYLOAD_BODY + b"0" + b"B" + struct.pack("<I", len(pad)) + pad + b"0."


def _checked(format_id: str, compress: Callable[[bytes], bytes]) -> Callable[[bytes], bytes]:
    """The same formats, with the optional content checksums on so damage is detected."""
    if format_id == "zstd":
        return zstandard.ZstdCompressor(write_checksum=True).compress
    if format_id == "lz4":
        return lambda d: lz4.frame.compress(d, content_checksum=True)
    if format_id in ("xz", "lzma"):       # fast presets: same format, a fraction of the time
        container = lzma.FORMAT_XZ if format_id == "xz" else lzma.FORMAT_ALONE
        return lambda d: lzma.compress(d, format=container, preset=0)
    return compress


@pytest.mark.parametrize(("format_id", "suffix", "compress"), COMPRESSIONS, ids=IDS)
def test_corrupt_stream_after_the_payload_still_finds_it(scan_bytes, format_id, suffix, compress):
    data = bytearray(_checked(format_id, compress)(_compressible_payload()))
    damage = len(data) * 7 // 10
    for i in range(damage, damage + 16):
        data[i] ^= 0x5A
    report = scan_bytes(bytes(data), f"model.pkl{suffix}")
    assert "PKL102" in rules(report)
    (corrupt,) = only(report, "CNT112")
    assert "corrupt" in corrupt.message
    assert corrupt.offset is not None


def test_joblib_zlib_and_unknown_names(scan_bytes):
    assert only(scan_bytes(zlib.compress(PAYLOAD), "clf.joblib.z"), "PKL102")[0].location == "clf.joblib"
    assert only(scan_bytes(gzip.compress(PAYLOAD), "weights.bin"), "PKL102")[0].location == \
        "weights.bin!decompressed"


@pytest.mark.parametrize(("name", "member"), [
    ("model.pt.gz", "model.pt"), ("a/b/clf.joblib.xz", "clf.joblib"), ("x.TGZ", "x.tar"),
    ("x.tar.zst", "x.tar"), ("gz", "gz!decompressed"), ("blob", "blob!decompressed"),
    ("clf.joblib.lzma", "clf.joblib"), ("clf.joblib.lz4", "clf.joblib"),
])
def test_member_name(name, member):
    assert member_name(name) == member


def test_concatenated_gzip_members_are_one_stream(scan_bytes):
    # The PROTO opcode in the first member, the payload in the second: gzip readers join them.
    report = scan_bytes(gzip.compress(PAYLOAD[:2]) + gzip.compress(PAYLOAD[2:]), "model.pkl.gz")
    assert "PKL102" in rules(report)
    assert not rules(report) & {"CNT112", "FMT005"}


@pytest.mark.parametrize(("suffix", "compress"), [
    (".bz2", bz2.compress), (".xz", lzma.compress), (".lz4", lz4.frame.compress), (".zst", _zstd)])
def test_concatenated_streams_are_read_in_order(scan_bytes, suffix, compress):
    report = scan_bytes(compress(PAYLOAD[:2]) + compress(PAYLOAD[2:]), f"model.pkl{suffix}")
    assert "PKL102" in rules(report)
    assert not rules(report) & {"CNT112", "FMT005"}


@pytest.mark.parametrize(("suffix", "compress"), [(".lz4", lz4.frame.compress), (".zst", _zstd)])
def test_skippable_frames_between_frames_are_skipped(scan_bytes, suffix, compress):
    skippable = struct.pack("<II", 0x184D2A5E, 6) + b"ignore"
    report = scan_bytes(compress(PAYLOAD[:2]) + skippable + compress(PAYLOAD[2:]), f"model.pkl{suffix}")
    assert "PKL102" in rules(report)
    assert not rules(report) & {"CNT112", "FMT005"}


def test_xz_stream_padding_is_not_reported(scan_bytes):
    report = scan_bytes(lzma.compress(PAYLOAD) + b"\x00" * 8, "model.pkl.xz")
    assert "PKL102" in rules(report)
    assert not rules(report) & {"CNT112", "FMT005"}


def test_bytes_after_the_stream_are_reported_not_ignored(scan_bytes):
    data = gzip.compress(PAYLOAD)
    report = scan_bytes(data + b"JUNK AFTER THE STREAM", "model.pkl.gz")
    assert "PKL102" in rules(report)
    (trailing,) = only(report, "FMT005")
    assert trailing.offset == len(data)
    assert "CNT112" not in rules(report)


def test_gzip_zero_padding_is_not_reported(scan_bytes):
    report = scan_bytes(gzip.compress(PAYLOAD) + b"\x00" * 512, "model.pkl.gz")
    assert not rules(report) & {"CNT112", "FMT005"}


@pytest.fixture(scope="module")
def zeros_100mb_gzip() -> bytes:
    compressor = zlib.compressobj(1, zlib.DEFLATED, 31)
    block = bytes(MiB)
    return b"".join(compressor.compress(block) for _ in range(100)) + compressor.flush()


BOMB_LIMITS = Limits(max_compression_ratio=10, ratio_grace_bytes=1 * MiB)


def test_gzip_bomb_stops_at_the_ratio_limit(scan_bytes, zeros_100mb_gzip):
    began = time.monotonic()
    report = scan_bytes(zeros_100mb_gzip, "zeros.bin.gz", limits=BOMB_LIMITS)
    assert time.monotonic() - began < 2.0
    (bomb,) = only(report, "CNT107")
    assert bomb.evidence["limit"] == "ratio"
    assert bomb.evidence["expanded"] < 16 * MiB
    assert report.status == Status.SCANNED


@pytest.mark.parametrize(("suffix", "compress"), [
    (".zst", _zstd), (".lz4", lz4.frame.compress), (".xz", lambda d: lzma.compress(d, preset=0)),
    (".bz2", lambda d: bz2.compress(d, 9))])
def test_bombs_in_other_formats_stop_at_the_ratio_limit(scan_bytes, suffix, compress):
    report = scan_bytes(compress(bytes(32 * MiB)), f"bomb{suffix}", limits=BOMB_LIMITS)
    (bomb,) = only(report, "CNT107")
    assert bomb.evidence["expanded"] < 16 * MiB


def test_size_limit_still_scans_the_expanded_prefix(scan_bytes):
    report = scan_bytes(gzip.compress(_big_payload()), "model.pkl.gz",
                        limits=Limits(max_member_size=100_000, spool_in_memory=50_000))
    assert only(report, "CNT107")[0].evidence["limit"] == "size"
    assert "PKL102" in rules(report)


def test_gzip_nested_ten_deep_stops_at_the_depth_limit(scan_bytes):
    data = PAYLOAD
    for _ in range(10):
        data = gzip.compress(data)
    report = scan_bytes(data, "deep.pkl" + ".gz" * 10)
    assert report.status == Status.SCANNED
    (deep,) = only(report, "CNT108")
    # Six layers were opened; the seventh was left closed and is named by its path.
    assert deep.location.count("/") == 5
    assert "PKL102" not in rules(report)


def test_nested_compression_inside_the_depth_limit_is_followed(scan_bytes):
    report = scan_bytes(_zstd(bz2.compress(gzip.compress(PAYLOAD))), "x.pkl.gz.bz2.zst")
    assert only(report, "PKL102")[0].location == "x.pkl.gz.bz2/x.pkl.gz/x.pkl"


def test_empty_and_garbage_streams_are_reported(scan_bytes):
    garbage = scan_bytes(b"\x1f\x8b\x08\x00" + b"\xff" * 64, "model.pkl.gz")
    assert "CNT112" in rules(garbage)
    assert garbage.status == Status.ERROR       # nothing could be expanded
    empty = scan_bytes(gzip.compress(b""), "model.pkl.gz")
    assert not any(f.severity >= Severity.WARNING for f in empty.findings)


def test_old_joblib_zfile_header_is_skipped():
    # joblib < 0.10 wrote b"ZF" + the length in hex, left-justified in 19 characters, then zlib.
    # Detection does not route "ZF" to this scanner yet, so the scanner is called directly.
    data = b"ZF" + hex(len(PAYLOAD)).encode().ljust(19) + zlib.compress(PAYLOAD)
    runner = Runner(ScanOptions())
    unit = Unit(ObjectRef("old.pkl", len(data)), "compressed", 0, len(data), {"format": "zlib"})
    result = CompressedScanner().scan(unit, BytesReader(data), runner.context(None))
    assert [f.rule_id for f in result.findings if f.severity >= Severity.WARNING] == ["PKL102"]
    assert result.findings[0].location == "old.pkl!decompressed"


BENIGN = Path(__file__).parent / "fixtures" / "benign"
COMPRESSED_JOBLIB = sorted(
    p for p in BENIGN.glob("*.joblib.*") if p.suffix in {".z", ".gz", ".bz2", ".lzma", ".xz", ".lz4"}
) if BENIGN.is_dir() else []


@pytest.mark.skipif(not COMPRESSED_JOBLIB, reason="no compressed joblib fixtures in tests/fixtures/benign")
@pytest.mark.parametrize("path", COMPRESSED_JOBLIB, ids=lambda p: p.name)
def test_benign_compressed_joblib_is_clean(path: Path):
    run = Runner(ScanOptions()).run([str(path)])
    (report,) = run.objects
    assert report.status == Status.SCANNED
    # The wrapper adds nothing of its own and hides nothing: the same findings as the
    # uncompressed file, located at the member.
    assert not [f for f in report.findings if f.scanner_id == "compressed"]
    plain = path.with_suffix("")
    if plain.exists():
        (expected,) = Runner(ScanOptions()).run([str(plain)]).objects
        assert sorted((f.rule_id, f.offset, f.message) for f in report.findings) == \
            sorted((f.rule_id, f.offset, f.message) for f in expected.findings)
        if any(f.severity >= Severity.WARNING for f in expected.findings):
            pytest.xfail("the uncompressed joblib itself has findings at WARNING or above "
                         "(pickle policy, not the compression layer)")
    assert not [f for f in report.findings if f.severity >= Severity.WARNING], report.findings


@pytest.mark.parametrize(("format_id", "suffix", "compress"), COMPRESSIONS, ids=IDS)
def test_small_steps_and_exact_step_boundaries(scan_bytes, format_id, suffix, compress):
    # 1 KiB steps: hundreds of bounded calls per stream, and an output that ends exactly on a
    # step boundary, where a decompressor has nothing left to give but has not said so yet.
    pad = bytes(64 * 1024 - len(PAYLOAD_BODY) - 7)
    data = PAYLOAD_BODY + b"0B" + struct.pack("<I", len(pad)) + pad + b"."
    assert len(data) % 1024 == 0
    report = scan_bytes(compress(data), f"model.pkl{suffix}", limits=Limits(stream_chunk=1024))
    assert "PKL102" in rules(report)
    assert not rules(report) & {"CNT107", "CNT112", "FMT005"}
