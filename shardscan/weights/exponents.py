"""pairdev: how far the exponent histogram is from the parity pattern of trained weights.

Trained weights are roughly flat in density near zero, so each binade holds about twice the one
below it and the odd biased exponent of a pair (2j, 2j+1) outnumbers the even one by ~2x.
EvilModel-style substitution of an fp32's low three bytes rewrites the exponent's lowest bit
with payload bits, pushing N_odd / N_even towards 1 and pairdev towards 0.
"""

from __future__ import annotations

import math

import numpy as np

from shardscan.weights.thresholds import W4_MIN_PAIR_COUNT

#: Pairs (2j, 2j+1) over biased fp32 exponents 2..253: the pair (0, 1) mixes zeros and
#: subnormals with the smallest normals, the pair (254, 255) mixes Inf/NaN in; neither is a binade pair.
_EVEN = slice(2, 254, 2)
_ODD = slice(3, 255, 2)


def pairdev_rows(exponent_hists: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """pairdev and qualifying-pair count of each row of a (rows, 256) exponent-histogram array.

    pairdev is the mean |log2(N_odd / N_even)| over pairs where both binades hold at least
    W4_MIN_PAIR_COUNT elements; with no qualifying pair it is +inf, which no floor undercuts.
    """
    even = exponent_hists[:, _EVEN].astype(np.float64)
    odd = exponent_hists[:, _ODD].astype(np.float64)
    ok = (even >= W4_MIN_PAIR_COUNT) & (odd >= W4_MIN_PAIR_COUNT)
    pairs = ok.sum(axis=1)
    ratio = np.where(ok, odd, 1.0) / np.where(ok, even, 1.0)
    total = np.abs(np.log2(ratio)).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        values = np.where(pairs > 0, total / np.maximum(pairs, 1), math.inf)
    return values, pairs


def pairdev(exponent_hist: np.ndarray) -> tuple[float, int]:
    """pairdev and qualifying-pair count of one exponent histogram."""
    values, pairs = pairdev_rows(exponent_hist[None, :])
    return float(values[0]), int(pairs[0])


def pair_table(exponent_hist: np.ndarray) -> tuple[tuple[int, int, int, int], ...]:
    """(even exponent, N_even, odd exponent, N_odd) for every pair with any element: W4 evidence."""
    rows = []
    for even in range(2, 254, 2):
        ne, no = int(exponent_hist[even]), int(exponent_hist[even + 1])
        if ne or no:
            rows.append((even, ne, even + 1, no))
    return tuple(rows)
