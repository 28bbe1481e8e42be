"""One block of a tensor -> one mergeable partial record (WEIGHTS.md 4.5).

A tensor is cut into blocks of BLOCK_ELEMENTS elements aligned to its first element, so any
worker computes the identical partial for a block whatever the file layout or I/O chunking.
Two implementations give the same partial. The default pass (W1-W5) of F32/F16/BF16 blocks runs
in the compiled module ``_blockpass`` (about four times faster); the NumPy pass is the reference
it is tested against, and runs F64, ``deep`` and installs built without a C compiler. The NumPy
pass works in chunks of CHUNK_ELEMENTS with reused scratch buffers, so memory stays bounded by
the chunk size. Integer fields are exact; float fields depend only on the block's bytes (fixed
operation order, ``np.sum`` rather than threaded BLAS, scratch with fixed alignment); the
compiled pass computes only integers and exact float comparisons.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field

import numpy as np

from shardscan.weights.exponents import pairdev_rows
from shardscan.weights.lowbits import HeaderHit, find_headers, headers_at, headers_of, search_plan
from shardscan.weights.moments import Moments, chunk_moments
from shardscan.weights.thresholds import (
    BLOCK_ELEMENTS,
    CHUNK_ELEMENTS,
    FIRST_INDICES_KEPT,
    LOW16_BATCH_ELEMENTS,
    SUB_BLOCK_ELEMENTS,
    W2_MAGNITUDE_LIMIT,
    W3_MIN_K0,
    W4_MIN_PAIRS,
    W4_MIN_SUB_BLOCK_ELEMENTS,
    W5_LOW_BIT_WIDTHS,
    W5_MAX_CANDIDATES_PER_BLOCK,
)

#: On-disk dtype -> (bytes per element, unsigned view).
DTYPES: dict[str, tuple[int, type[np.unsignedinteger]]] = {
    "F64": (8, np.uint64),
    "F32": (4, np.uint32),
    "F16": (2, np.uint16),
    "BF16": (2, np.uint16),
}

EXPONENT_BINS = 256
BYTE_BINS = 256
#: Trailing-zero bins: 0..22 exact for a nonzero fp32 mantissa; 23 means 23 or more (only an F64
#: mantissa gets there); 24 is the all-zero mantissa (zeros, powers of two, infinities).
TZ_BINS = 25
TZ_CAPPED = 23
TZ_ALL_ZERO = 24
#: Largest k whose "fewer than k trailing zeros" list a partial keeps (k0 cannot exceed it).
TZ_MAX_K = 23

# Per-chunk histogram key: sub-block | biased fp32 exponent (8 bits) | trailing-zero code (5 bits).
# One bincount over it gives the per-sub-block exponent histograms, the trailing-zero histogram and
# the zero count: a histogram costs ~1.9 ns per element in NumPy whatever its bins, so one
# combined histogram is the floor of the default pass.
_TZ_BITS = 5
_TZ_CODES = 1 << _TZ_BITS
# Trailing-zero codes. The lowest set bit of (u << 9) converted to float32 has biased exponent
# 136 + tz (tz 0..22), whose low five bits are 8 + tz; an all-zero mantissa converts to 0.0, code 0.
# Taking the code straight from those bits spares a subtract and a clip per element; the folding
# to TZ_BINS happens on the 32 counts. Codes 1..7 never come from fp32; F64 uses code 1 for its
# capped bin, and 31 marks non-finite elements (kept out of the histogram and the index lists).
_TZ_CODE0 = 8
_TZ_CODE_ALL_ZERO = 0
_TZ_CODE_CAPPED = 1
_TZ_DISCARD = _TZ_CODES - 1
_KEY_PER_SUB = EXPONENT_BINS * _TZ_CODES
_LOW16_BINS = 1 << 16
_F64_EXP_OFFSET = 1023 - 127  # float64 biased exponent -> fp32 biased exponent (even: parity kept)
_F16_MIN_NORMAL_FP32_EXP = 113  # fp16 normals are >= 2**-14 = fp32 biased exponent 113

try:  # the compiled default pass; setup.py builds it wherever a C compiler is found
    from shardscan.weights import _blockpass as _compiled
except ImportError:  # pragma: no cover - exercised on installs without a compiler
    _compiled = None
#: dtype -> the compiled pass's code for it (F64 stays on the NumPy path: rare in model files).
_COMPILED_CODES = {"F32": 0, "F16": 1, "BF16": 2}
#: The numbers the compiled pass decides with, from thresholds.py: sub-block size, indices kept,
#: lowest k whose low-trailing-zero list is kept, and the W2 limit as float32 magnitude bits
#: (NumPy compares float32 values with the limit in float32 too).
_COMPILED_LIMITS = (
    SUB_BLOCK_ELEMENTS,
    FIRST_INDICES_KEPT,
    W3_MIN_K0,
    int(np.float32(W2_MAGNITUDE_LIMIT).view(np.uint32)),
)

_SUBKEY = ((np.arange(CHUNK_ELEMENTS, dtype=np.uint32) // SUB_BLOCK_ELEMENTS) * _KEY_PER_SUB).astype(np.uint32)
_ALIGN = 64


class BlockError(ValueError):
    """The caller handed over something that is not one block of a supported dtype."""


@dataclass(frozen=True, eq=False, slots=True)
class BlockPartial:
    """Everything the merge and the detectors need from one block; every field mergeable.

    Histograms are int64 NumPy arrays. Element indices are tensor-wide (block start included).
    F16/BF16 are upcast to fp32 for the exponent and trailing-zero views; low byte and bits 8-15
    are those of the on-disk pattern. F64 keeps its own bits, mapped onto the fp32 views: the
    exponent bin is the float64 binade re-biased to fp32 (E - 896, clipped to 1..254; 0 for
    zero/subnormal, 255 for Inf/NaN; the offset is even, so W4's exponent parity is preserved),
    and the trailing-zero count is that of the 52-bit mantissa capped at bin 23 ("23 or more"),
    so an fp32 origin stored as float64 shows k0 = 23 and any lower bits written into it violate.
    Rows holding NaN/Inf get NaN/Inf row sums.
    """

    index: int
    dtype: str
    n: int
    n_nan: int
    n_posinf: int
    n_neginf: int
    n_zero: int
    n_subnormal: int  # subnormal in the on-disk dtype
    min: float  # finite values; +inf when the block has none
    max: float  # finite values; -inf when the block has none
    moments: Moments  # finite values only; count only (mean, M2..M4 NaN) unless deep
    exponent_hist: np.ndarray  # (256,) biased fp32 exponent of every element (F64: mapped, see doc)
    tz_hist: np.ndarray  # (25,) trailing-zero bins of the mantissa (fp32 view), finite elements
    low_byte_hist: np.ndarray | None  # (256,) bits 0-7 of the on-disk pattern, every element; deep only
    mid_hist: np.ndarray | None  # (256,) bits 8-15 of the on-disk pattern, every element; deep only
    first_nonfinite: tuple[int, ...]
    first_huge: tuple[int, ...]  # finite |w| > W2_MAGNITUDE_LIMIT
    first_low_tz: tuple[tuple[int, ...], ...]  # [k]: first indices with fewer than k trailing zeros
    row_length: int | None
    row_first: int  # row index of row_sums[0]
    row_sums: np.ndarray | None  # float64 per row overlapping the block (partial for straddlers); deep only
    row_sumsq: np.ndarray | None
    w4_pairdev: float  # lowest pairdev over judged sub-blocks; +inf if none judged
    w4_sub_block: int  # tensor-wide sub-block index of that minimum; -1 if none
    w4_pairs: int  # qualifying pairs in that sub-block
    w4_exponent_hist: np.ndarray | None  # (256,) exponent histogram of that sub-block
    header_hits: tuple[HeaderHit, ...]
    header_scan_truncated: bool
    #: Whether the statistics only the opt-in detectors read were computed: mean and M2..M4,
    #: the low-byte / bits 8-15 histograms and the row sums. Without it they are NaN or None.
    deep: bool = False

    @property
    def start(self) -> int:
        return self.index * BLOCK_ELEMENTS


@dataclass(slots=True)
class _Scratch:
    """Chunk-sized buffers reused across calls in one thread: no page faults per block."""

    a32: np.ndarray = field(default_factory=lambda: _aligned(CHUNK_ELEMENTS, np.uint32))
    b32: np.ndarray = field(default_factory=lambda: _aligned(CHUNK_ELEMENTS, np.uint32))
    c32: np.ndarray = field(default_factory=lambda: _aligned(CHUNK_ELEMENTS, np.uint32))
    u16: np.ndarray = field(default_factory=lambda: _aligned(LOW16_BATCH_ELEMENTS, np.uint16))
    up32: np.ndarray = field(default_factory=lambda: _aligned(CHUNK_ELEMENTS, np.uint32))
    f32: np.ndarray = field(default_factory=lambda: _aligned(CHUNK_ELEMENTS, np.float32))
    x64: np.ndarray = field(default_factory=lambda: _aligned(CHUNK_ELEMENTS, np.float64))
    d64: np.ndarray = field(default_factory=lambda: _aligned(CHUNK_ELEMENTS, np.float64))
    p64: np.ndarray = field(default_factory=lambda: _aligned(CHUNK_ELEMENTS, np.float64))
    cand: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int32))  # compiled W5 candidates
    #: Compiled W5 field-check survivors (element, byte, stream, magic rank): past the candidate
    #: cap the search is cut anyway, so more than that many go to the NumPy stage instead.
    survivors: np.ndarray = field(
        default_factory=lambda: np.empty((W5_MAX_CANDIDATES_PER_BLOCK + 1, 4), dtype=np.int32)
    )


_LOCAL = threading.local()


def _aligned(n: int, dtype: type[np.generic]) -> np.ndarray:
    """Scratch at a fixed alignment, so SIMD loops see the same layout on every call."""
    itemsize = np.dtype(dtype).itemsize
    buf = np.empty(n * itemsize + _ALIGN, dtype=np.uint8)
    off = (-buf.ctypes.data) % _ALIGN
    return buf[off : off + n * itemsize].view(dtype)


def _scratch() -> _Scratch:
    s = getattr(_LOCAL, "scratch", None)
    if s is None:
        s = _LOCAL.scratch = _Scratch()
    return s


def _first_where(tzc: np.ndarray, k: int, need: int) -> np.ndarray:
    """First `need` positions with fewer than k trailing zeros; looks at a short prefix first, since
    dense violations (native fp32) are found in a few hundred elements and sparse ones are rare.

    ``tzc`` holds uint32 trailing-zero codes: ``code - _TZ_CODE0`` wraps the all-zero and capped
    codes to huge values and maps the discard code to 23, so one unsigned compare is exact for
    every k <= TZ_MAX_K.
    """
    n = tzc.shape[0]
    window = 512
    while True:
        hits = np.flatnonzero((tzc[: min(window, n)] - np.uint32(_TZ_CODE0)) < k)
        if hits.shape[0] >= need or window >= n:
            return hits[:need]
        window *= 8


def _fold_tz(codes: np.ndarray) -> np.ndarray:
    """The 32 trailing-zero code counts -> the TZ_BINS histogram (see _TZ_CODE0)."""
    tz = np.zeros(TZ_BINS, dtype=np.int64)
    tz[:TZ_CAPPED] = codes[_TZ_CODE0 : _TZ_CODE0 + TZ_CAPPED]
    tz[TZ_CAPPED] = codes[_TZ_CODE_CAPPED]
    tz[TZ_ALL_ZERO] = codes[_TZ_CODE_ALL_ZERO]
    return tz


class _Accumulator:
    """Running state of one block; chunks arrive in order."""

    def __init__(self, dtype: str, start: int, n: int, row_length: int | None, deep: bool) -> None:
        self.dtype = dtype
        self.deep = deep
        self.n_finite = 0
        self.start = start
        self.n = n
        self.n_nan = self.n_posinf = self.n_neginf = self.n_zero = self.n_subnormal = 0
        self.min = math.inf
        self.max = -math.inf
        self.moments = Moments()
        self.exponent_hist = np.zeros(EXPONENT_BINS, dtype=np.int64)
        self.sub_hists = np.zeros((0, EXPONENT_BINS), dtype=np.int64)
        self.tz_hist = np.zeros(TZ_BINS, dtype=np.int64)
        self.key_counts: list[np.ndarray] = []  # per chunk: (sub-blocks, 256, 32) from histogram()
        self.first_nonfinite: list[int] = []
        self.first_huge: list[int] = []
        self.first_low_tz: list[list[int]] = [[] for _ in range(TZ_MAX_K + 1)]
        self.tz_lists_full = False
        self.row_length = row_length
        self.row_first = start // row_length if row_length is not None else 0
        if row_length is not None and deep:
            rows = (start + n - 1) // row_length - self.row_first + 1 if n else 0
            self.row_sums: np.ndarray | None = np.zeros(rows, dtype=np.float64)
            self.row_sumsq: np.ndarray | None = np.zeros(rows, dtype=np.float64)
        else:
            self.row_sums = self.row_sumsq = None
        self.w4_pairdev = math.inf
        self.w4_sub_block = -1
        self.w4_pairs = 0
        self.w4_exponent_hist: np.ndarray | None = None

    # -- pieces shared by both element widths -------------------------------------------------

    def finish(self) -> None:
        """Fold the chunks' key counts once per block: per-sub-block exponent histograms, the
        trailing-zero histogram of finite elements and (32-bit path) zeros and subnormals.
        Folding per chunk cost ~8 reductions per chunk; integer sums give the same result."""
        if self.key_counts:
            kc = np.concatenate(self.key_counts)
            self.sub_hists = kc.sum(axis=2)
            self.tz_hist = _fold_tz(kc[:, : EXPONENT_BINS - 1, :].sum(axis=(0, 1)))
            if self.dtype != "F64":  # chunk64 counts its own (float64 binades do not map 1:1)
                self.n_zero = int(kc[:, 0, _TZ_CODE_ALL_ZERO].sum())
                self.count_subnormals()
        self.w4()

    def count_subnormals(self) -> None:
        """Zeros are exponent 0 with an all-zero mantissa; the rest of the small exponents are
        subnormals of the on-disk dtype (fp16 subnormals are fp32 normals below 2**-14)."""
        small = int(self.sub_hists[:, : _F16_MIN_NORMAL_FP32_EXP if self.dtype == "F16" else 1].sum())
        self.n_subnormal = small - self.n_zero

    def w4(self) -> None:
        """Lowest pairdev over the block's full sub-blocks with enough qualifying pairs."""
        self.exponent_hist = self.sub_hists.sum(axis=0)
        sizes = np.minimum(SUB_BLOCK_ELEMENTS, self.n - np.arange(self.sub_hists.shape[0]) * SUB_BLOCK_ELEMENTS)
        values, pairs = pairdev_rows(self.sub_hists)
        judged = (sizes >= W4_MIN_SUB_BLOCK_ELEMENTS) & (pairs >= W4_MIN_PAIRS)
        if not judged.any():
            return
        values = np.where(judged, values, math.inf)
        best = int(np.argmin(values))  # first of equal minima: deterministic
        self.w4_pairdev = float(values[best])
        self.w4_pairs = int(pairs[best])
        self.w4_sub_block = self.start // SUB_BLOCK_ELEMENTS + best
        self.w4_exponent_hist = self.sub_hists[best].copy()

    def values(self, f: np.ndarray, finite: np.ndarray | None, offset: int, s: _Scratch) -> None:
        """min/max, magnitudes, and (deep only) moments and row sums from the float view of one chunk."""
        c = f.shape[0]
        g0 = self.start + offset
        vals = f if finite is None else f[finite]
        self.n_finite += vals.shape[0]
        if vals.shape[0]:
            lo, hi = float(vals.min()), float(vals.max())
            self.min = min(self.min, lo)
            self.max = max(self.max, hi)
            if self.deep:
                self.moments = self.moments.merge(chunk_moments(vals, s.d64, s.p64))
            if max(-lo, hi) > W2_MAGNITUDE_LIMIT:
                huge = np.abs(f) > W2_MAGNITUDE_LIMIT
                if finite is not None:
                    huge &= finite
                self._keep(self.first_huge, np.flatnonzero(huge) + g0)
        if self.row_sums is not None and self.row_sumsq is not None and self.row_length is not None:
            length = self.row_length
            x = s.x64[:c]
            np.copyto(x, f, casting="safe")
            first_boundary = (-g0) % length
            starts = np.arange(first_boundary, c, length)
            if first_boundary != 0:
                starts = np.concatenate(([0], starts))
            r0 = g0 // length - self.row_first
            sums = np.add.reduceat(x, starts)
            sq = s.d64[:c]
            np.multiply(x, x, out=sq)
            sumsq = np.add.reduceat(sq, starts)
            self.row_sums[r0 : r0 + sums.shape[0]] += sums
            self.row_sumsq[r0 : r0 + sums.shape[0]] += sumsq

    def trailing(self, tzc: np.ndarray, tz_counts: np.ndarray, offset: int) -> None:
        """First indices with fewer than k trailing zeros, for each k a detector may need."""
        below = np.cumsum(tz_counts)  # below[k-1] = elements with tz code < k
        g0 = self.start + offset
        for k in range(W3_MIN_K0, TZ_MAX_K + 1):
            kept = self.first_low_tz[k]
            if len(kept) >= FIRST_INDICES_KEPT or below[k - 1] == 0:
                continue
            kept.extend((_first_where(tzc, k, FIRST_INDICES_KEPT - len(kept)) + g0).tolist())

    def nonfinite(self, mask: np.ndarray, offset: int) -> None:
        self._keep(self.first_nonfinite, np.flatnonzero(mask) + self.start + offset)

    @staticmethod
    def _keep(kept: list[int], idx: np.ndarray) -> None:
        room = FIRST_INDICES_KEPT - len(kept)
        if room > 0:
            kept.extend(idx[:room].tolist())

    # -- element widths ----------------------------------------------------------------------

    def histogram(self, key: np.ndarray, c: int, offset: int) -> np.ndarray:
        """One bincount over (sub-block, exponent, tz code): returns counts (nsub, 256, 32) after
        keeping the per-sub-block exponent histograms."""
        nsub = -(-c // SUB_BLOCK_ELEMENTS)
        kc = np.bincount(key, minlength=nsub * _KEY_PER_SUB).reshape(nsub, EXPONENT_BINS, _TZ_CODES)
        self.key_counts.append(kc)
        return kc

    def trailing_zeros(self, kc: np.ndarray, tzc: np.ndarray, offset: int) -> None:
        """First indices per k with fewer trailing zeros (finite elements: exponent rows below 255);
        tzc must already mark non-finite elements as _TZ_DISCARD. Once every list is full (native
        fp32 fills them in its first chunk) this costs nothing; the histogram is folded in finish()."""
        if self.tz_lists_full:
            return
        self.trailing(tzc, _fold_tz(kc[:, : EXPONENT_BINS - 1, :].sum(axis=(0, 1))), offset)
        kept = self.first_low_tz[W3_MIN_K0 : TZ_MAX_K + 1]
        self.tz_lists_full = all(len(k) >= FIRST_INDICES_KEPT for k in kept)

    def chunk32(self, u: np.ndarray, offset: int, s: _Scratch) -> None:
        """A chunk as fp32 bit patterns (F16/BF16 already upcast)."""
        c = u.shape[0]
        key, tzc, tmp = s.a32[:c], s.b32[:c], s.c32[:c]
        # Trailing-zero code (see _TZ_CODE0): lowest set bit of (u << 9) -> float32 -> exponent & 31.
        # Converted as int32 (bit 31 then reads as -2**31, same exponent bits, sign masked off by
        # the & 31): int32 -> float32 is one SIMD instruction, uint32 -> float32 is not.
        np.left_shift(u, 9, out=key)
        np.negative(key, out=tmp)
        np.bitwise_and(key, tmp, out=tmp)
        fl = s.f32[:c]
        np.copyto(fl, tmp.view(np.int32), casting="unsafe")
        np.right_shift(fl.view(np.uint32), 23, out=tzc)
        np.bitwise_and(tzc, _TZ_CODES - 1, out=tzc)

        np.right_shift(u, 23 - _TZ_BITS, out=key)
        np.bitwise_and(key, 0xFF << _TZ_BITS, out=key)
        np.bitwise_or(key, tzc, out=key)
        if c > SUB_BLOCK_ELEMENTS:
            np.bitwise_or(key, _SUBKEY[:c], out=key)
        kc = self.histogram(key, c, offset)
        finite = None
        if kc[:, EXPONENT_BINS - 1, :].any():  # exponent all ones: NaN/Inf, rare
            mag = u & np.uint32(0x7FFFFFFF)
            self.n_nan += int(np.count_nonzero(mag > 0x7F800000))
            self.n_posinf += int(np.count_nonzero(u == 0x7F800000))
            self.n_neginf += int(np.count_nonzero(u == 0xFF800000))
            finite = mag < 0x7F800000
            self.nonfinite(~finite, offset)
            tzc[~finite] = _TZ_DISCARD
        self.trailing_zeros(kc, tzc, offset)
        self.values(u.view(np.float32), finite, offset, s)

    def chunk64(self, u: np.ndarray, offset: int, s: _Scratch) -> None:
        """A chunk of float64 bit patterns; rare in model files, so written for clarity."""
        c = u.shape[0]
        e64 = ((u >> np.uint64(52)) & np.uint64(0x7FF)).astype(np.int64)
        ebin = np.clip(e64 - _F64_EXP_OFFSET, 1, 254)
        ebin[e64 == 0] = 0
        ebin[e64 == 0x7FF] = 255
        special = e64 == 0x7FF
        finite = None
        if special.any():
            mag = u & np.uint64(0x7FFFFFFFFFFFFFFF)
            self.n_nan += int(np.count_nonzero(mag > 0x7FF0000000000000))
            self.n_posinf += int(np.count_nonzero(u == 0x7FF0000000000000))
            self.n_neginf += int(np.count_nonzero(u == 0xFFF0000000000000))
            finite = ~special
            self.nonfinite(special, offset)
        zero = (u << np.uint64(1)) == 0
        self.n_zero += int(np.count_nonzero(zero))
        self.n_subnormal += int(np.count_nonzero((e64 == 0) & ~zero))

        mant = u & np.uint64((1 << 52) - 1)
        lowbit = mant & (np.uint64(0) - mant)
        lexp = (lowbit.astype(np.float64).view(np.uint64) >> np.uint64(52)).astype(np.int64)
        tz = np.minimum(lexp - 1023, TZ_CAPPED)
        tzc = np.where(lexp == 0, _TZ_CODE_ALL_ZERO, np.where(tz == TZ_CAPPED, _TZ_CODE_CAPPED, tz + _TZ_CODE0))
        tzc = tzc.astype(np.uint32)
        if finite is not None:
            tzc[~finite] = _TZ_DISCARD
        key = (ebin << _TZ_BITS) | tzc.astype(np.int64) | _SUBKEY[:c].astype(np.int64)
        self.trailing_zeros(self.histogram(key, c, offset), tzc, offset)
        self.values(u.view(np.float64), finite, offset, s)


def _low16_hist(bits: np.ndarray, s: _Scratch) -> np.ndarray:
    """Joint histogram of the on-disk low 16 bits, in batches of LOW16_BATCH_ELEMENTS.

    Its own pass, with larger batches than the statistics chunks: a 65,536-bin bincount costs
    a fixed ~0.1 ms to clear and fold its bins, which would dominate on 65,536-element chunks.
    """
    hist = np.zeros(_LOW16_BINS, dtype=np.int64)
    for o in range(0, bits.shape[0], LOW16_BATCH_ELEMENTS):
        part = bits[o : o + LOW16_BATCH_ELEMENTS]
        if part.dtype != np.uint16:
            buf = s.u16[: part.shape[0]]
            np.copyto(buf, part, casting="unsafe")  # truncating cast keeps the low 16 bits
            part = buf
        hist += np.bincount(part, minlength=_LOW16_BINS)
    return hist


def _numpy_pass(bits: np.ndarray, dtype: str, start: int, row_length: int | None, deep: bool) -> _Accumulator:
    """The statistics of one block with vectorised NumPy, chunk by chunk: the reference the
    compiled pass must equal, and the path for F64, `deep` and installs without a compiler."""
    n = bits.shape[0]
    acc = _Accumulator(dtype, start, n, row_length, deep)
    s = _scratch()
    for offset in range(0, n, CHUNK_ELEMENTS):
        chunk = bits[offset : offset + CHUNK_ELEMENTS]
        c = chunk.shape[0]
        if dtype == "F32":
            acc.chunk32(chunk, offset, s)
        elif dtype == "F64":
            acc.chunk64(chunk, offset, s)
        else:
            up = s.up32[:c]
            if dtype == "BF16":
                np.copyto(up, chunk, casting="safe")
                np.left_shift(up, 16, out=up)
            else:
                np.copyto(up.view(np.float32), chunk.view(np.float16), casting="safe")
            acc.chunk32(up, offset, s)

    acc.finish()
    return acc


def _compiled_pass(
    bits: np.ndarray, dtype: str, start: int, row_length: int | None, tail: np.ndarray | None
) -> tuple[_Accumulator, tuple[HeaderHit, ...], bool]:
    """The default pass by the compiled module (one or two sweeps per chunk where NumPy makes
    about ten): the same accumulator state and header hits, bit for bit."""
    n = bits.shape[0]
    acc = _Accumulator(dtype, start, n, row_length, deep=False)
    acc.sub_hists = np.empty((-(-n // SUB_BLOCK_ELEMENTS), EXPONENT_BINS), dtype=np.int64)
    s = _scratch()
    if s.cand.shape[0] < n:  # allocated on first use: NumPy-path threads never pay for it
        s.cand = np.empty(BLOCK_ELEMENTS, dtype=np.int32)
    itemsize = bits.dtype.itemsize
    widths = W5_LOW_BIT_WIDTHS[itemsize]
    plan = search_plan(itemsize, widths)
    tail_bits = b"" if tail is None else np.ascontiguousarray(tail).view(bits.dtype)
    assert _compiled is not None
    (acc.n_nan, acc.n_posinf, acc.n_neginf, acc.n_zero, tz, lo, hi, nonfinite, huge, low_tz, n_cand, n_surv) = (
        _compiled.default_pass(
            bits, _COMPILED_CODES[dtype], start, _COMPILED_LIMITS, plan.pair_table,
            tail_bits, acc.sub_hists, s.cand, plan.stream_table, s.survivors,
        )
    )
    acc.n_finite = n - acc.n_nan - acc.n_posinf - acc.n_neginf
    if lo is not None:
        acc.min, acc.max = lo, hi
    acc.tz_hist = np.array(tz, dtype=np.int64)
    acc.first_nonfinite, acc.first_huge = list(nonfinite), list(huge)
    acc.first_low_tz = [list(k) for k in low_tz]
    acc.count_subnormals()
    acc.w4()
    if n_surv >= 0:
        hits, truncated = headers_of(s.survivors[:n_surv], bits, start, widths, tail)
    else:  # more survivors than fit: the NumPy stage's caps decide where the search stops
        hits, truncated = headers_at(s.cand[:n_cand].astype(np.int64), bits, start, widths, tail)
    return acc, hits, truncated


def block_partial(
    raw: np.ndarray,
    dtype: str,
    index: int,
    *,
    row_length: int | None = None,
    tail: np.ndarray | None = None,
    deep: bool = False,
) -> BlockPartial:
    """The partial of block ``index`` of a tensor, from that block's raw elements.

    ``raw`` is 1-D with the on-disk element size (F64/F32/F16 as floats or unsigned integers,
    BF16 as uint16), little-endian, at most BLOCK_ELEMENTS long; only the tensor's last block
    may be shorter. ``row_length`` (elements per row, i.e. the product of all dimensions but the
    first) enables per-row sums and row alignment. ``tail`` optionally holds the elements that
    follow the block (a few thousand suffice), so a header starting at the block's end can be
    validated; without it such a header is missed.

    ``deep`` adds what only the opt-in detectors read: mean and central moments M2..M4, the
    low-byte and bits 8-15 histograms (from a 65,536-bin low-16 histogram) and the per-row sums.
    The default pass (W1-W5) skips them: they are about half its cost. Partials of both kinds
    cannot be merged together.
    """
    if dtype not in DTYPES:
        raise BlockError(f"unsupported dtype {dtype!r}; expected one of {sorted(DTYPES)}")
    itemsize, utype = DTYPES[dtype]
    if raw.ndim != 1 or raw.dtype.itemsize != itemsize:
        raise BlockError(f"{dtype} block must be 1-D with {itemsize}-byte elements, got {raw.dtype} {raw.shape}")
    if raw.shape[0] > BLOCK_ELEMENTS:
        raise BlockError(f"block holds {raw.shape[0]} elements, more than BLOCK_ELEMENTS={BLOCK_ELEMENTS}")
    if index < 0:
        raise BlockError(f"negative block index {index}")
    if row_length is not None and row_length <= 0:
        raise BlockError(f"row_length must be positive, got {row_length}")
    if raw.dtype.byteorder == ">":
        raise BlockError("raw elements must be little-endian (byte-swap in the format layer)")
    bits = np.ascontiguousarray(raw).view(utype)
    start = index * BLOCK_ELEMENTS
    if _compiled is not None and not deep and dtype in _COMPILED_CODES:
        acc, hits, truncated = _compiled_pass(bits, dtype, start, row_length, tail)
    else:
        acc = _numpy_pass(bits, dtype, start, row_length, deep)
        hits, truncated = find_headers(bits, start, W5_LOW_BIT_WIDTHS[itemsize], tail)
    low_byte_hist = mid_hist = None
    if deep:
        low16 = _low16_hist(bits, _scratch()).reshape(BYTE_BINS, BYTE_BINS)  # [bits 8-15, bits 0-7]
        low_byte_hist, mid_hist = low16.sum(axis=0), low16.sum(axis=1)
    return BlockPartial(
        index=index,
        dtype=dtype,
        n=bits.shape[0],
        n_nan=acc.n_nan,
        n_posinf=acc.n_posinf,
        n_neginf=acc.n_neginf,
        n_zero=acc.n_zero,
        n_subnormal=acc.n_subnormal,
        min=acc.min,
        max=acc.max,
        moments=acc.moments if deep else Moments.count_only(acc.n_finite),
        exponent_hist=acc.exponent_hist,
        tz_hist=acc.tz_hist,
        low_byte_hist=low_byte_hist,
        mid_hist=mid_hist,
        first_nonfinite=tuple(acc.first_nonfinite),
        first_huge=tuple(acc.first_huge),
        first_low_tz=tuple(tuple(k) for k in acc.first_low_tz),
        row_length=row_length,
        row_first=acc.row_first,
        row_sums=acc.row_sums,
        row_sumsq=acc.row_sumsq,
        w4_pairdev=acc.w4_pairdev,
        w4_sub_block=acc.w4_sub_block,
        w4_pairs=acc.w4_pairs,
        w4_exponent_hist=acc.w4_exponent_hist,
        header_hits=hits,
        header_scan_truncated=truncated,
        deep=deep,
    )
