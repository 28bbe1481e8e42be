"""Partials of one tensor -> TensorStats, folded in block-index order.

Integer fields add exactly in any order; float fields (moments, row sums) are folded left to
right by block index, never by arrival, so 1, 2 or 7 workers, or any shuffle of their results,
give bit-identical statistics. Everything derived (std, k0, entropies) is computed only here.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from shardscan.weights.blocks import (
    BYTE_BINS,
    EXPONENT_BINS,
    TZ_ALL_ZERO,
    TZ_BINS,
    TZ_MAX_K,
    BlockPartial,
)
from shardscan.weights.lowbits import HeaderHit
from shardscan.weights.moments import Moments
from shardscan.weights.thresholds import BLOCK_ELEMENTS, FIRST_INDICES_KEPT, K0_FRACTION


class MergeError(ValueError):
    """The partials do not form one tensor: gaps, duplicates, short inner blocks or mixed dtypes."""


@dataclass(frozen=True, eq=False, slots=True)
class TensorStats:
    """Merged statistics of one tensor. Histograms are int64 arrays; indices are element indices.

    Moments, std, skewness, kurtosis and RMS cover finite elements (population formulas; 0.0
    when undefined). ``tz_hist`` covers finite elements; ``exponent_hist``, ``low_byte_hist`` and
    ``mid_hist`` every element (low byte and bits 8-15 of the on-disk bit pattern).

    Unless ``deep``, the statistics no default detector reads were not computed (see
    ``blocks.block_partial``): mean, std, skewness, kurtosis, RMS, h0 and h1 are NaN, the
    moments hold only the finite count, and the low/mid histograms and row sums are None.
    """

    dtype: str
    n: int
    blocks: int
    n_nan: int
    n_posinf: int
    n_neginf: int
    n_zero: int
    n_subnormal: int
    n_finite: int
    min: float
    max: float
    max_abs: float
    moments: Moments
    mean: float
    std: float
    skewness: float
    excess_kurtosis: float
    rms: float
    exponent_hist: np.ndarray  # (256,)
    tz_hist: np.ndarray  # (25,): bins 0..22 exact, 23 = "23 or more" (F64), 24 = all-zero mantissa
    low_byte_hist: np.ndarray | None  # (256,); None unless deep
    mid_hist: np.ndarray | None  # (256,); None unless deep
    k0: int  # over finite nonzero elements, see k0_of
    h0: float  # entropy (bits) of the low byte; NaN unless deep
    h1: float  # entropy (bits) of bits 8-15; NaN unless deep
    first_nonfinite: tuple[int, ...]
    first_huge: tuple[int, ...]
    first_low_tz: tuple[tuple[int, ...], ...]
    row_length: int | None
    row_sums: np.ndarray | None  # float64 per row, row 0 first; None unless deep
    row_sumsq: np.ndarray | None
    w4_pairdev: float
    w4_block: int
    w4_sub_block: int
    w4_pairs: int
    w4_exponent_hist: np.ndarray | None
    header_hits: tuple[HeaderHit, ...]
    header_scan_truncated: bool
    deep: bool = False


def entropy_bits(hist: np.ndarray) -> float:
    """Shannon entropy in bits of an integer histogram (0.0 for an empty one)."""
    total = int(hist.sum())
    if total == 0:
        return 0.0
    p = hist[hist > 0].astype(np.float64) / total
    return float(-(p * np.log2(p)).sum())


def k0_of(tz_hist: np.ndarray, n_zero: int) -> int:
    """Largest k with >= K0_FRACTION of the finite nonzero elements carrying >= k trailing zeros.

    Exact zeros are left out: a sparse or zero-padded tensor says nothing about the precision it
    was trained in, and counting its zeros as "all-zero mantissa" would make every nonzero value
    of a 90 %-sparse tensor look like a violation.
    """
    counts = tz_hist.astype(np.int64).copy()
    counts[TZ_ALL_ZERO] -= n_zero
    total = int(counts.sum())
    if total <= 0:
        return 0
    at_least = np.cumsum(counts[::-1])[::-1]  # at_least[k] = elements with tz bin >= k
    for k in range(TZ_MAX_K, 0, -1):
        if at_least[k] >= K0_FRACTION * total:
            return k
    return 0


def _first(lists: Iterable[tuple[int, ...]]) -> tuple[int, ...]:
    out: list[int] = []
    for idx in lists:
        out.extend(idx[: FIRST_INDICES_KEPT - len(out)])
        if len(out) >= FIRST_INDICES_KEPT:
            break
    return tuple(out)


def _check(parts: list[BlockPartial], n_elements: int | None) -> None:
    if not parts:
        raise MergeError("no partials to merge")
    for want, p in enumerate(parts):
        if p.index != want:
            kind = "duplicate" if p.index < want else "missing"
            raise MergeError(f"{kind} block: expected block {want}, got block {p.index}")
    dtypes = {p.dtype for p in parts}
    rows = {p.row_length for p in parts}
    if len(dtypes) != 1 or len(rows) != 1:
        raise MergeError(f"partials mix dtypes {sorted(dtypes)} or row lengths {sorted(map(str, rows))}")
    if len({p.deep for p in parts}) != 1:
        raise MergeError("partials mix deep and default passes: the deep statistics would cover part of the tensor")
    for p in parts[:-1]:
        if p.n != BLOCK_ELEMENTS:
            raise MergeError(f"block {p.index} holds {p.n} elements; only the last block may be short")
    if n_elements is not None and sum(p.n for p in parts) != n_elements:
        raise MergeError(f"partials hold {sum(p.n for p in parts)} elements, tensor has {n_elements}")


def merge(partials: Iterable[BlockPartial], *, n_elements: int | None = None) -> TensorStats:
    """Fold the partials of one tensor in block-index order; refuse gaps and duplicates."""
    parts = sorted(partials, key=lambda p: p.index)
    _check(parts, n_elements)
    deep = parts[0].deep
    n = sum(p.n for p in parts)
    moments = Moments()
    exponent_hist = np.zeros(EXPONENT_BINS, dtype=np.int64)
    tz_hist = np.zeros(TZ_BINS, dtype=np.int64)
    low_hist = np.zeros(BYTE_BINS, dtype=np.int64) if deep else None
    mid = np.zeros(BYTE_BINS, dtype=np.int64) if deep else None
    w4 = (math.inf, -1, -1, 0, None)
    lo, hi = math.inf, -math.inf
    for p in parts:
        moments = moments.merge(p.moments)
        exponent_hist += p.exponent_hist
        tz_hist += p.tz_hist
        if low_hist is not None and mid is not None and p.low_byte_hist is not None and p.mid_hist is not None:
            low_hist += p.low_byte_hist
            mid += p.mid_hist
        lo, hi = min(lo, p.min), max(hi, p.max)
        if p.w4_pairdev < w4[0]:
            w4 = (p.w4_pairdev, p.index, p.w4_sub_block, p.w4_pairs, p.w4_exponent_hist)

    row_length = parts[0].row_length
    row_sums = row_sumsq = None
    if row_length is not None and deep:
        rows = -(-n // row_length)
        row_sums = np.zeros(rows, dtype=np.float64)
        row_sumsq = np.zeros(rows, dtype=np.float64)
        for p in parts:
            if p.row_sums is None or p.row_sumsq is None:
                continue
            k = p.row_sums.shape[0]
            row_sums[p.row_first : p.row_first + k] += p.row_sums
            row_sumsq[p.row_first : p.row_first + k] += p.row_sumsq

    count = moments.count
    if deep:
        std = math.sqrt(moments.m2 / count) if count else 0.0
        # Products, not **: float ** raises OverflowError on float64 extremes where * gives inf.
        skew = math.sqrt(count) * moments.m3 / (moments.m2 * math.sqrt(moments.m2)) if moments.m2 > 0 else 0.0
        kurt = count * moments.m4 / (moments.m2 * moments.m2) - 3.0 if moments.m2 > 0 else 0.0
        rms = math.sqrt(moments.m2 / count + moments.mean * moments.mean) if count else 0.0
    else:
        std = skew = kurt = rms = math.nan
    n_zero = sum(p.n_zero for p in parts)
    hits = tuple(h for p in parts for h in p.header_hits)
    return TensorStats(
        dtype=parts[0].dtype,
        n=n,
        blocks=len(parts),
        n_nan=sum(p.n_nan for p in parts),
        n_posinf=sum(p.n_posinf for p in parts),
        n_neginf=sum(p.n_neginf for p in parts),
        n_zero=n_zero,
        n_subnormal=sum(p.n_subnormal for p in parts),
        n_finite=count,
        min=lo,
        max=hi,
        max_abs=max(-lo, hi) if count else 0.0,
        moments=moments,
        mean=moments.mean,
        std=std,
        skewness=skew,
        excess_kurtosis=kurt,
        rms=rms,
        exponent_hist=exponent_hist,
        tz_hist=tz_hist,
        low_byte_hist=low_hist,
        mid_hist=mid,
        k0=k0_of(tz_hist, n_zero),
        h0=entropy_bits(low_hist) if low_hist is not None else math.nan,
        h1=entropy_bits(mid) if mid is not None else math.nan,
        first_nonfinite=_first(p.first_nonfinite for p in parts),
        first_huge=_first(p.first_huge for p in parts),
        first_low_tz=tuple(_first(p.first_low_tz[k] for p in parts) for k in range(TZ_MAX_K + 1)),
        row_length=row_length,
        row_sums=row_sums,
        row_sumsq=row_sumsq,
        w4_pairdev=w4[0],
        w4_block=w4[1],
        w4_sub_block=w4[2],
        w4_pairs=w4[3],
        w4_exponent_hist=w4[4],
        header_hits=hits,
        header_scan_truncated=any(p.header_scan_truncated for p in parts),
        deep=deep,
    )
