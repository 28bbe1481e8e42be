"""The compiled default pass (weights/_blockpass.c) gives the NumPy pass's partials, bit for bit.

Every field a detector or the merge reads is compared, on benign weights, on every F16/BF16 bit
pattern, on random F32 bit patterns (NaN payloads, infinities, subnormals), and on blocks built
to take each rare path: non-finite and huge values, low-bit payloads, headers crossing the block's
end, and a flood of header candidates that hits the per-block cap.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from shardscan.weights import blocks
from shardscan.weights.blocks import block_partial
from shardscan.weights.thresholds import BLOCK_ELEMENTS, SUB_BLOCK_ELEMENTS

ELF = b"\x7fELF\x02\x01\x01" + bytes(57)
NUMPY_DTYPES = {"F32": np.float32, "F16": np.float16, "BF16": np.uint16}


def test_the_compiled_pass_is_built() -> None:
    """The README's install builds it (setup.py); without it every scan runs at NumPy speed."""
    assert blocks._compiled is not None, "shardscan.weights._blockpass was not built: is a C compiler installed?"


def _numpy_partial(monkeypatch: pytest.MonkeyPatch, raw: np.ndarray, dtype: str, index: int, **kw: object):
    with monkeypatch.context() as m:
        m.setattr(blocks, "_compiled", None)
        return block_partial(raw, dtype, index, **kw)


def _same(a, b) -> None:
    for name in a.__dataclass_fields__:
        x, y = getattr(a, name), getattr(b, name)
        if isinstance(x, np.ndarray) or isinstance(y, np.ndarray):
            assert x is not None and y is not None, name
            np.testing.assert_array_equal(x, y, err_msg=name)
        elif name == "moments":
            assert x.count == y.count
        elif isinstance(x, float) and math.isnan(x):
            assert isinstance(y, float) and math.isnan(y), name
        else:
            assert x == y, f"{name}: compiled {x!r} != numpy {y!r}"


def _check(monkeypatch: pytest.MonkeyPatch, raw: np.ndarray, dtype: str, index: int = 0, **kw: object):
    compiled = block_partial(raw, dtype, index, **kw)
    _same(compiled, _numpy_partial(monkeypatch, raw, dtype, index, **kw))
    return compiled


def _weights(n: int, dtype: str, seed: int = 0) -> np.ndarray:
    w = (np.random.default_rng(seed).standard_normal(n, dtype=np.float32) * 0.02).astype(np.float32)
    if dtype == "BF16":
        return (w.view(np.uint32) >> 16).astype(np.uint16)
    return w.astype(NUMPY_DTYPES[dtype])


@pytest.mark.parametrize("dtype", ["F32", "F16", "BF16"])
@pytest.mark.parametrize("n", [1, 7, 4095, 4097, SUB_BLOCK_ELEMENTS + 3, 3 * SUB_BLOCK_ELEMENTS])
def test_benign_weights_of_any_length(monkeypatch: pytest.MonkeyPatch, dtype: str, n: int) -> None:
    p = _check(monkeypatch, _weights(n, dtype), dtype, 5, row_length=3)
    assert p.n == n and p.n_nan == 0 and (p.min < 0 < p.max or n < 8)


@pytest.mark.skipif(blocks._compiled is None, reason="needs the compiled pass")
def test_a_full_block(monkeypatch: pytest.MonkeyPatch) -> None:
    for dtype in ("F32", "BF16"):
        p = _check(monkeypatch, _weights(BLOCK_ELEMENTS, dtype, seed=3), dtype, 2)
        assert p.w4_sub_block >= 0 and p.exponent_hist.sum() == BLOCK_ELEMENTS


@pytest.mark.parametrize("dtype", ["F16", "BF16"])
def test_every_16_bit_pattern(monkeypatch: pytest.MonkeyPatch, dtype: str) -> None:
    """NaNs, infinities, subnormals, both zeros: all 65,536 patterns, shuffled, in one block."""
    bits = np.random.default_rng(1).permutation(np.arange(65_536, dtype=np.uint32)).astype(np.uint16)
    raw = bits.view(np.float16) if dtype == "F16" else bits
    p = _check(monkeypatch, raw, dtype)
    assert p.n_nan > 0 and p.n_posinf == p.n_neginf == 1 and p.n_zero == 2 and p.n_subnormal > 0
    assert len(p.first_nonfinite) == 8


def test_random_f32_bit_patterns(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(2)
    bits = rng.integers(0, 2**32, size=300_000, dtype=np.uint32)
    bits[::1000] = 0x7F800000  # +Inf
    bits[7::1000] = 0  # +0
    p = _check(monkeypatch, bits.view(np.float32), "F32", 1)
    assert p.n_nan > 0 and p.n_posinf >= 300 and p.first_huge


@pytest.mark.parametrize("dtype", ["F32", "F16", "BF16"])
def test_special_blocks(monkeypatch: pytest.MonkeyPatch, dtype: str) -> None:
    utype = np.uint32 if dtype == "F32" else np.uint16
    nan = {"F32": 0x7FC00000, "F16": 0x7E00, "BF16": 0x7FC0}[dtype]
    zeros = np.zeros(10_000, dtype=utype)
    p = _check(monkeypatch, zeros.view(NUMPY_DTYPES[dtype]) if dtype != "BF16" else zeros, dtype)
    assert p.n_zero == 10_000 and p.min == 0.0 == p.max
    nans = np.full(5_000, nan, dtype=utype)
    p = _check(monkeypatch, nans.view(NUMPY_DTYPES[dtype]) if dtype != "BF16" else nans, dtype)
    assert p.n_nan == 5_000 and p.min == math.inf and p.max == -math.inf and p.moments.count == 0
    _check(monkeypatch, np.zeros(0, dtype=NUMPY_DTYPES[dtype]), dtype)


def test_planted_values_at_the_end_of_a_long_block(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rare elements late in the block: the index lists must still name the first ones."""
    w = _weights(200_000, "F32", seed=4)
    w[150_000] = np.nan
    w[170_000] = -np.inf
    w[190_000] = 3e9
    p = _check(monkeypatch, w, "F32", 3)
    start = 3 * BLOCK_ELEMENTS
    assert p.first_nonfinite == (start + 150_000, start + 170_000)
    assert p.first_huge == (start + 190_000,)


def test_fp16_origin_with_a_payload(monkeypatch: pytest.MonkeyPatch) -> None:
    """fp16 values upcast to fp32 (13 trailing zero bits) with random low bits late in the block."""
    w = _weights(120_000, "F16").astype(np.float32)
    bits = w.view(np.uint32)
    bits[100_000:100_400] |= np.random.default_rng(5).integers(1, 1 << 13, size=400, dtype=np.uint32)
    p = _check(monkeypatch, w, "F32")
    assert p.first_low_tz[13][0] >= 100_000
    bf = _weights(120_000, "BF16")
    _check(monkeypatch, bf, "BF16")


@pytest.mark.parametrize("dtype", ["F32", "F16", "BF16"])
def test_headers_in_the_low_bits(monkeypatch: pytest.MonkeyPatch, dtype: str) -> None:
    """An ELF header in the low bytes, one crossing the block's end into the tail, and each magic
    in the wider streams."""
    raw = _weights(50_000, dtype, seed=6)
    bits = raw.view(np.uint32 if dtype == "F32" else np.uint16)
    bits[1000 : 1000 + len(ELF)] = (bits[1000 : 1000 + len(ELF)] & ~np.array(0xFF, dtype=bits.dtype)) | np.frombuffer(
        ELF, dtype=np.uint8
    )
    zip_header = b"PK\x03\x04\x14\x00\x00\x00\x08\x00" + bytes(16) + b"\x05\x00\x00\x00abcde"
    stream = np.frombuffer(zip_header + bytes(-len(zip_header) % 2), dtype="<u2")
    bits[20_000 : 20_000 + stream.size] = stream
    tail = bits[-3:].copy()
    bits[-3:] = (bits[-3:] & ~np.array(0xFF, dtype=bits.dtype)) | np.frombuffer(b"#!/", dtype=np.uint8)
    tail_bytes = np.frombuffer(b"bin/sh\n" + bytes(57), dtype=np.uint8)
    tail = np.resize(tail, tail_bytes.size)
    tail = (tail & ~np.array(0xFF, dtype=tail.dtype)) | tail_bytes
    p = _check(monkeypatch, raw, dtype, 1, tail=tail.view(raw.dtype))
    kinds = {(h.kind, h.element - BLOCK_ELEMENTS) for h in p.header_hits}
    assert ("ELF", 1000) in kinds and ("ZIP", 20_000) in kinds and ("SHEBANG", 50_000 - 3) in kinds


def test_a_flood_of_header_candidates(monkeypatch: pytest.MonkeyPatch) -> None:
    """Low bytes "#!/#!/...": a shebang candidate every third element; both passes stop at the
    same place."""
    bits = _weights(60_000, "F32", seed=7).view(np.uint32)
    bits &= ~np.uint32(0xFF)
    bits |= np.resize(np.frombuffer(b"#!/", dtype=np.uint8), bits.size).astype(np.uint32)
    p = _check(monkeypatch, bits.view(np.float32), "F32")
    assert p.header_scan_truncated
