"""Weight statistics: block partials against a single float64 pass, and bit-identical merges.

The exactness tests recompute every field of a tensor in one pass over the whole array (the
reference the streaming path must match); the determinism tests split the blocks among 1, 2 and
7 "workers" (threads, each with its own scratch) and merge in shuffled arrival order.
"""

from __future__ import annotations

import math
import pickle
import random
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from shardscan.weights.blocks import BLOCK_ELEMENTS, BlockError, block_partial
from shardscan.weights.merge import MergeError, TensorStats, k0_of, merge
from shardscan.weights.thresholds import SUB_BLOCK_ELEMENTS

RTOL = 1e-12
ROW = 1000  # rows straddle block boundaries: 2**20 is not a multiple of 1000


def blocks_of(bits: np.ndarray) -> list[tuple[int, np.ndarray]]:
    return [(i, bits[s : s + BLOCK_ELEMENTS]) for i, s in enumerate(range(0, bits.shape[0], BLOCK_ELEMENTS))]


def partials(
    bits: np.ndarray, dtype: str, *, row_length: int | None = None, workers: int = 1, deep: bool = True
) -> list:
    """Blocks dealt round-robin to `workers` threads, each computing its share in its own order.
    Deep by default: most tests here check the statistics only the deep pass computes."""
    blocks = blocks_of(bits)
    shares = [blocks[w::workers] for w in range(workers)]

    def run(share: list[tuple[int, np.ndarray]]) -> list:
        return [block_partial(raw, dtype, i, row_length=row_length, deep=deep) for i, raw in reversed(share)]

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return [p for got in pool.map(run, shares) for p in got]


def stats_of(bits: np.ndarray, dtype: str, *, row_length: int | None = None, deep: bool = True) -> TensorStats:
    return merge(partials(bits, dtype, row_length=row_length, deep=deep), n_elements=bits.shape[0])


def tz_reference(u32: np.ndarray) -> np.ndarray:
    """Trailing-zero bins of fp32 mantissas by brute force: 0..22, 24 = all-zero mantissa."""
    mant = u32 & np.uint32(0x7FFFFF)
    out = np.zeros(25, dtype=np.int64)
    zero = mant == 0
    out[24] = int(zero.sum())
    remaining = ~zero
    for k in range(23):
        has = remaining & ((mant >> np.uint32(k)) & np.uint32(1)).astype(bool)
        out[k] = int(has.sum())
        remaining &= ~has
    return out


@pytest.fixture(scope="module")
def weights() -> np.ndarray:
    rng = np.random.default_rng(1)
    n = 2 * BLOCK_ELEMENTS + 123_457  # ragged last block
    w = (rng.standard_normal(n) * 0.05 + 0.01).astype(np.float32)
    w[5_000:6_000] = 0.0  # a zero row-ish run, and a few subnormals
    w[7] = np.float32(1e-40)
    return w


def test_merge_matches_single_float64_pass(weights: np.ndarray) -> None:
    s = stats_of(weights, "F32", row_length=ROW)
    x = weights.astype(np.float64)
    d = x - x.mean()
    assert s.n == s.n_finite == x.shape[0]
    assert s.mean == pytest.approx(x.mean(), rel=RTOL)
    assert s.moments.m2 == pytest.approx((d**2).sum(), rel=RTOL)
    assert s.moments.m4 == pytest.approx((d**4).sum(), rel=RTOL)
    m3_scale = x.shape[0] * x.std() ** 3
    assert abs(s.moments.m3 - (d**3).sum()) <= RTOL * m3_scale
    assert s.std == pytest.approx(x.std(), rel=RTOL)
    assert s.rms == pytest.approx(np.sqrt((x**2).mean()), rel=RTOL)
    assert s.min == x.min() and s.max == x.max() and s.max_abs == np.abs(x).max()
    u = weights.view(np.uint32)
    assert np.array_equal(s.exponent_hist, np.bincount((u >> 23) & 0xFF, minlength=256))
    assert np.array_equal(s.low_byte_hist, np.bincount(u & 0xFF, minlength=256))
    assert np.array_equal(s.mid_hist, np.bincount((u >> 8) & 0xFF, minlength=256))
    assert np.array_equal(s.tz_hist, tz_reference(u))
    assert s.n_zero == 1000 and s.n_subnormal == 1
    rows = -(-x.shape[0] // ROW)
    padded = np.zeros(rows * ROW)
    padded[: x.shape[0]] = x
    assert s.row_sums is not None and s.row_sumsq is not None
    np.testing.assert_allclose(s.row_sums, padded.reshape(rows, ROW).sum(axis=1), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(s.row_sumsq, (padded**2).reshape(rows, ROW).sum(axis=1), rtol=1e-12)


@pytest.mark.parametrize("deep", [False, True])
@pytest.mark.parametrize("workers", [1, 2, 7])
def test_bit_identical_across_workers_and_arrival_order(weights: np.ndarray, workers: int, deep: bool) -> None:
    reference = pickle.dumps(merge(partials(weights, "F32", row_length=ROW, deep=deep)))
    got = partials(weights, "F32", row_length=ROW, workers=workers, deep=deep)
    random.Random(workers).shuffle(got)
    assert pickle.dumps(merge(got)) == reference


def _same(x: object, y: object) -> bool:
    """Equality with NaN equal to NaN (the default pass leaves the deep-only floats NaN)."""
    if isinstance(x, float) and isinstance(y, float) and math.isnan(x) and math.isnan(y):
        return True
    return x == y


@pytest.mark.parametrize("deep", [False, True])
def test_bit_identical_field_by_field(weights: np.ndarray, deep: bool) -> None:
    a = merge(partials(weights, "F32", row_length=ROW, deep=deep))
    shuffled = partials(weights, "F32", row_length=ROW, workers=7, deep=deep)
    random.Random(3).shuffle(shuffled)
    b = merge(shuffled)
    for name in TensorStats.__slots__:
        x, y = getattr(a, name), getattr(b, name)
        if isinstance(x, np.ndarray):
            assert x.dtype == y.dtype and np.array_equal(x, y), name
        elif name == "moments":
            assert all(_same(getattr(x, f), getattr(y, f)) for f in x.__slots__), name
        else:
            assert _same(x, y), name


@pytest.mark.parametrize("dtype", ["F32", "BF16", "F16", "F64"])
def test_default_pass_matches_deep_on_every_default_field(weights: np.ndarray, dtype: str) -> None:
    """The default pass skips only what no default detector reads; everything else is identical."""
    w = weights.copy()
    w[[11, 2_000_000]] = [np.nan, -np.inf]
    w[12] = 3e7  # W2 indices
    w[BLOCK_ELEMENTS + 5 : BLOCK_ELEMENTS + 50] = 0.0
    if dtype == "F32":
        bits: np.ndarray = w
    elif dtype == "BF16":
        bits = (w.view(np.uint32) >> 16).astype(np.uint16)
    elif dtype == "F16":
        with np.errstate(over="ignore"):  # 3e7 becomes +inf in fp16: one more W1 element
            bits = w.astype(np.float16)
        bits[13] = np.float16(1e-7)  # fp16 subnormal
    else:
        bits = w[: 300_000].astype(np.float64)
    deep = stats_of(bits, dtype, row_length=ROW)
    fast = stats_of(bits, dtype, row_length=ROW, deep=False)
    assert deep.deep and not fast.deep
    skipped = {"moments", "mean", "std", "skewness", "excess_kurtosis", "rms", "low_byte_hist", "mid_hist",
               "h0", "h1", "row_sums", "row_sumsq", "deep"}  # fmt: skip
    for name in set(TensorStats.__slots__) - skipped:
        x, y = getattr(deep, name), getattr(fast, name)
        if isinstance(x, np.ndarray):
            assert np.array_equal(x, y), name
        else:
            assert _same(x, y), name
    assert fast.moments.count == deep.moments.count == fast.n_finite
    assert math.isnan(fast.mean) and math.isnan(fast.std) and math.isnan(fast.h0)
    assert fast.low_byte_hist is None and fast.mid_hist is None and fast.row_sums is None
    assert fast.row_length == ROW
    if dtype == "F32":
        assert np.array_equal(fast.tz_hist, tz_reference(w[np.isfinite(w)].view(np.uint32)))


def test_merge_refuses_mixed_deep_and_default(weights: np.ndarray) -> None:
    parts = sorted(partials(weights, "F32"), key=lambda p: p.index)
    fast = block_partial(weights[BLOCK_ELEMENTS : 2 * BLOCK_ELEMENTS], "F32", 1)
    with pytest.raises(MergeError, match="deep"):
        merge([parts[0], fast, parts[2]])


def test_merge_refuses_gaps_duplicates_and_short_inner_blocks(weights: np.ndarray) -> None:
    parts = sorted(partials(weights, "F32"), key=lambda p: p.index)
    with pytest.raises(MergeError, match="missing"):
        merge([parts[0], parts[2]])
    with pytest.raises(MergeError, match="duplicate"):
        merge([parts[0], parts[0], parts[1]])
    with pytest.raises(MergeError, match="missing"):
        merge(parts[1:])
    with pytest.raises(MergeError, match="elements"):
        merge(parts, n_elements=5)
    short = block_partial(weights[:10], "F32", 0, deep=True)
    with pytest.raises(MergeError, match="only the last block"):
        merge([short, parts[1]])
    with pytest.raises(MergeError, match="no partials"):
        merge([])


def test_block_input_is_checked() -> None:
    with pytest.raises(BlockError):
        block_partial(np.zeros(4, np.float32), "I8", 0)
    with pytest.raises(BlockError):
        block_partial(np.zeros(4, np.float64), "F32", 0)
    with pytest.raises(BlockError):
        block_partial(np.zeros(BLOCK_ELEMENTS + 1, np.float32), "F32", 0)
    with pytest.raises(BlockError):
        block_partial(np.zeros(4, ">f4"), "F32", 0)


def test_precision_origin_sets_k0() -> None:
    rng = np.random.default_rng(2)
    w = (rng.standard_normal(300_000) * 0.02).astype(np.float32)
    assert stats_of(w, "F32").k0 == 0
    assert stats_of(w.astype(np.float16).astype(np.float32), "F32").k0 == 13
    bf = w.view(np.uint32) & np.uint32(0xFFFF0000)
    assert stats_of(bf.view(np.float32), "F32").k0 == 16
    # Zeros do not count towards k0: a 95 %-sparse native tensor stays k0 = 0.
    sparse = w.copy()
    sparse[:285_000] = 0
    assert stats_of(sparse, "F32").k0 == 0
    assert k0_of(np.zeros(25, dtype=np.int64), 0) == 0


def test_half_precision_dtypes_upcast_per_block() -> None:
    rng = np.random.default_rng(3)
    w = (rng.standard_normal(BLOCK_ELEMENTS + 999) * 0.02).astype(np.float32)
    h = w.astype(np.float16)
    h[3] = np.float16(1e-7)  # fp16 subnormal
    s16 = stats_of(h, "F16")
    up = h.astype(np.float32)
    assert s16.n_subnormal == int(((h.view(np.uint16) & 0x7C00) == 0).sum() - (h == 0).sum())
    assert np.array_equal(s16.exponent_hist, np.bincount((up.view(np.uint32) >> 23) & 0xFF, minlength=256))
    assert np.array_equal(s16.low_byte_hist, np.bincount(h.view(np.uint16) & 0xFF, minlength=256))
    assert s16.mean == pytest.approx(up.astype(np.float64).mean(), rel=RTOL)
    assert s16.k0 >= 13
    bf = (w.view(np.uint32) >> 16).astype(np.uint16)
    sb = stats_of(bf, "BF16")
    upb = (bf.astype(np.uint32) << 16).view(np.float32).astype(np.float64)
    assert sb.std == pytest.approx(upb.std(), rel=RTOL)
    assert sb.k0 >= 16 and sb.min == upb.min()


def test_float64_blocks() -> None:
    rng = np.random.default_rng(4)
    x = rng.standard_normal(200_000) * 3
    s = stats_of(x, "F64")
    d = x - x.mean()
    assert s.moments.m2 == pytest.approx((d**2).sum(), rel=RTOL)
    assert s.k0 == 0
    assert int(s.exponent_hist.sum()) == x.shape[0]
    # float32 values stored as float64 have >= 29 trailing zeros: capped bin 23, k0 = 23.
    assert stats_of(x.astype(np.float32).astype(np.float64), "F64").k0 == 23


def test_nonfinite_excluded_from_moments_and_counted() -> None:
    w = np.linspace(-1, 1, 5000, dtype=np.float32)
    w[[10, 20]] = np.nan
    w[30] = np.inf
    w[40] = -np.inf
    s = stats_of(w, "F32")
    fin = w[np.isfinite(w)].astype(np.float64)
    assert (s.n_nan, s.n_posinf, s.n_neginf) == (2, 1, 1)
    assert s.first_nonfinite == (10, 20, 30, 40)
    assert s.n_finite == fin.shape[0] and s.mean == pytest.approx(fin.mean(), abs=1e-15)
    assert s.min == -1.0 and s.max == 1.0
    assert int(s.tz_hist.sum()) == fin.shape[0]


def test_pairdev_kept_per_sub_block() -> None:
    rng = np.random.default_rng(5)
    w = (rng.standard_normal(3 * SUB_BLOCK_ELEMENTS + 10) * 0.02).astype(np.float32)
    s = stats_of(w, "F32")
    assert 0 <= s.w4_sub_block < 3  # the ragged tail sub-block is not judged
    assert s.w4_pairdev > 0.3 and s.w4_pairs >= 3
