"""Every number the weight analysis decides with, in one table.

Each constant names the benign reference it was set from (``shared/WEIGHTS.md``: 29 model files
from 10 PyPI wheels, 63.9 M parameters, 1,051 benign blocks of 65,536 elements). Changing a value
here changes what the detectors report, so a change must cite a new measurement.
"""

from __future__ import annotations

# --- Work units -------------------------------------------------------------------------------

#: Elements per block, aligned to the tensor's first element: the unit of work a worker computes
#: and the unit merged in index order. 2**20 float32 = 4 MiB, small enough for any worker.
BLOCK_ELEMENTS = 2**20

#: Elements per W4 sub-block: WEIGHTS.md measured pairdev on blocks of exactly this size.
SUB_BLOCK_ELEMENTS = 65_536

#: Elements processed per vectorised step inside a block. A multiple of SUB_BLOCK_ELEMENTS so a
#: sub-block never straddles two chunks; 2**16 keeps all scratch (~2 MiB) in L2/L3 cache, which
#: measured ~1.5x faster than 2**18 despite 4x more NumPy calls.
CHUNK_ELEMENTS = 2**16

#: Elements per step of the W5 header prefilter: its per-step cost is mostly fixed Python work on
#: the few candidates, so it takes larger steps than the statistics (uint8 planes stay small).
HEADER_CHUNK_ELEMENTS = 2**18

#: Elements per batch of the low-16-bit histogram (see blocks._low16_hist).
LOW16_BATCH_ELEMENTS = 2**18

#: Offending element indices kept per block and reported per finding (WEIGHTS.md 4.4: "first 8").
FIRST_INDICES_KEPT = 8

# --- W1 non-finite values ----------------------------------------------------------------------
# No threshold: any NaN or Inf in a floating tensor is reported (0/788 benign tensors had one).

# --- W2 absurd magnitude -----------------------------------------------------------------------

#: max|w| above this is absurd for trained weights. Benign max |w| on the corpus was 391; a
#: third-party survey saw about 1000. Catches 89-92 % of random exponent-MSB flips.
W2_MAGNITUDE_LIMIT = 1e6

#: max|w| above this is reported with high confidence: no trained layer gets near it, while a
#: flipped fp32 exponent MSB multiplies a typical weight (|w| ~ 1e-2) by 2**128 ~ 3.4e38.
W2_HIGH_CONFIDENCE_LIMIT = 1e20

#: Benign reference quoted in W2 evidence.
W2_BENIGN_MAX_ABS = 391.0

# --- W3 precision-profile violation ------------------------------------------------------------

#: Fraction of elements that must carry >= k trailing zero mantissa bits for k to count as the
#: tensor's precision floor k0 (WEIGHTS.md definition of k0).
K0_FRACTION = 0.9

#: k0 at or above this marks a reduced-precision origin. Benign hosts had k0 = 7 (truncated
#: mantissa), 13 (fp16 upcast) or 16 (bf16 upcast); native fp32 weights have k0 = 0 or 1.
W3_MIN_K0 = 4

#: Tensors with fewer elements are not judged: the 90 % rule rests on too few values, and a
#: hand-set constant in a tiny fp16-origin bias would otherwise be a violation. A payload in
#: such a tensor carries at most 256 * 13 bits (416 bytes).
W3_MIN_ELEMENTS = 256

#: Some violating elements must sit at least this many bits below k0. Integer-valued or other
#: smoothly structured tensors (position ids or counts stored as float) have a geometric
#: trailing-zero profile whose tail stops 1-3 bits below its k0; random payload bits put 15/16 of
#: the touched elements 4 or more bits below (for k0 <= 4, at tz = 0). Found on a float arange.
W3_MIN_DEPTH_BITS = 4

#: Violations count as "whole trailing rows" (vocabulary resize, INFO) when they start at a row
#: boundary and at least this fraction of the elements from there to the end violate. A freshly
#: initialised fp32 row violates k0 >= 4 in >= 15/16 of its elements.
W3_ROW_ALIGNED_MIN_DENSITY = 0.5

# --- W4 EvilModel substitution -----------------------------------------------------------------

#: pairdev below this flags a sub-block. Benign minimum was 0.126 on 1,051 blocks; the floor sits
#: a third below it (0.08) as a margin for a larger corpus, accepting a lower detection rate than
#: the measured 92.6 % (random payload) / 76.4 % (ELF payload) at the benign minimum.
W4_PAIRDEV_FLOOR = 0.08

#: Both binades of an exponent pair need at least this many elements for the pair to count
#: (WEIGHTS.md definition of pairdev: counts >= 50). Below it log2 ratios are sampling noise.
W4_MIN_PAIR_COUNT = 50

#: A sub-block is judged only with at least this many qualifying pairs. A normal or uniform
#: weight sub-block spans ~10 populated binades (~5 pairs); LayerNorm-like tensors close to 1.0
#: span one or two pairs whose ratio is naturally ~1 and would otherwise look substituted.
W4_MIN_PAIRS = 3

#: Only full sub-blocks are judged (WEIGHTS.md measured full 65,536-element blocks only); the
#: ragged tail of a tensor has too few elements per binade.
W4_MIN_SUB_BLOCK_ELEMENTS = SUB_BLOCK_ELEMENTS

# --- W5 executable / archive headers in low-bit streams ---------------------------------------

#: Widths k (bits) of the low-bit streams searched, per on-disk element size in bytes: the low k
#: bits of consecutive elements are concatenated, in little- and big-endian byte order.
W5_LOW_BIT_WIDTHS: dict[int, tuple[int, ...]] = {
    2: (8, 16),  # F16 / BF16: low byte, then the whole element
    4: (8, 16, 24),  # F32: up to the whole mantissa plus the exponent's low bit
    8: (8, 16, 24),  # F64
}

#: Largest PE e_lfanew accepted after "MZ": real linkers emit 0x40-0x200; 0x1000 leaves room
#: while keeping a random "MZ" from being validated against far-away bytes.
W5_PE_MAX_LFANEW = 0x1000

#: Candidate header starts validated per block; data built to hit the two-byte prefilter
#: everywhere (e.g. "MZMZ..." low bytes) stops here and the partial says the scan was truncated.
W5_MAX_CANDIDATES_PER_BLOCK = 4096

#: Validated header hits kept per block.
W5_MAX_HITS_PER_BLOCK = 8
