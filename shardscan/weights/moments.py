"""Central moments up to order 4 with the exact pairwise merge of Chan et al. / Pebay (2008).

Kept apart from the block code because the same merge runs three times: chunks inside a block,
blocks inside a tensor, and in tests against a single pass. Merging is deterministic only if the
caller fixes the order, which is why ``merge.py`` folds blocks by index, never by arrival.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class Moments:
    """Count, mean and central sums M2..M4 (sums of (x - mean)**p), all in float64."""

    count: int = 0
    mean: float = 0.0
    m2: float = 0.0
    m3: float = 0.0
    m4: float = 0.0

    @classmethod
    def count_only(cls, count: int) -> Moments:
        """The default (not deep) pass counts finite values but computes no moments: no default
        detector reads them, and mean plus M2 alone cost ~2 ms per 4 MiB block (a float64 sum and a
        centred square pass per chunk). NaN, not 0.0, so nobody mistakes them for measured values;
        NaN propagates through merge, while the count stays exact."""
        nan = float("nan")
        return cls(count, nan, nan, nan, nan)

    def merge(self, other: Moments) -> Moments:
        """Pebay (2008) eq. 3.1 / Chan et al.: exact in real arithmetic, associative up to rounding.

        Powers are written as products: float ``**`` raises OverflowError where ``*`` gives inf,
        and float64 tensors holding values near 1e300 (W2 evidence) must not abort the analysis.
        """
        if other.count == 0:
            return self
        if self.count == 0:
            return other
        na, nb = float(self.count), float(other.count)
        n = na + nb
        delta = other.mean - self.mean
        delta_n = delta / n
        mean = self.mean + nb * delta_n
        m2 = self.m2 + other.m2 + delta * delta_n * na * nb
        m3 = (
            self.m3
            + other.m3
            + delta * delta_n * delta_n * na * nb * (na - nb)
            + 3.0 * delta_n * (na * other.m2 - nb * self.m2)
        )
        m4 = (
            self.m4
            + other.m4
            + delta * (delta_n * delta_n * delta_n) * na * nb * (na * na - na * nb + nb * nb)
            + 6.0 * delta_n * delta_n * (na * na * other.m2 + nb * nb * self.m2)
            + 4.0 * delta_n * (na * other.m3 - nb * self.m3)
        )
        return Moments(self.count + other.count, mean, m2, m3, m4)


def chunk_moments(x: np.ndarray, scratch_d: np.ndarray, scratch_p: np.ndarray) -> Moments:
    """Moments of one chunk (float32 or float64 values), centred on the chunk's own mean.

    Two passes over cache-resident data: the mean, then centred power sums, all in float64.
    The residual of the first mean (~1e-16 relative) changes M2 by n * residual**2 and is not
    worth a pass. ``np.sum`` (pairwise, fixed order, no SIMD-width dependence) is used rather
    than BLAS ``dot`` or ``einsum``, whose results depend on core count or vector width.
    """
    n = x.shape[0]
    if n == 0:
        return Moments()
    c = float(x.sum(dtype=np.float64)) / n
    d = scratch_d[:n]
    p = scratch_p[:n]
    np.subtract(x, c, out=d, dtype=np.float64)
    np.multiply(d, d, out=p)
    m2 = float(p.sum())
    np.multiply(p, d, out=d)
    m3 = float(d.sum())
    np.multiply(p, p, out=p)
    m4 = float(p.sum())
    return Moments(n, c, m2, m3, m4)
