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

#: Elements per step of the W5 header prefilter's byte-plane compares, and the unit of the order
#: in which candidates are validated (which fixes where the per-block caps cut the search). The
#: candidate stage runs once per block; 2**16 to 2**18 measured the same (bandwidth-bound compares).
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

#: pairdev below this flags a sub-block. Benign minimum was 0.126 on 1,051 real blocks (WEIGHTS.md,
#: 92.6 % of random-payload substitutions caught at that value); the floor sits a fifth below it as
#: a margin for a larger corpus. On 40 synthetic substitutions of N(0, 0.02) weights it caught 95 %
#: (0.08 caught 87.5 %); synthetic benign initialisations stay above 0.78.
W4_PAIRDEV_FLOOR = 0.10

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

# --- deep (opt-in) ----------------------------------------------------------------------------
# Used only by shardscan/weights/deep.py (`--weights deep`). WEIGHTS.md 4.2: informational
# evidence, never "backdoor detected"; severity INFO whatever the value.

#: Scale factor turning a median absolute deviation into a standard-deviation estimate for
#: normally distributed values (1 / Phi^-1(3/4)).
MAD_TO_SIGMA = 1.4826

#: O1 needs at least this many classes (WEIGHTS.md 4.2: "Require >= 3 classes"); with fewer there
#: is no median to stand out from.
O1_MIN_CLASSES = 3

#: O1 ignores heads with more outputs: a vocabulary-sized projection (lm_head, 30k-250k tokens)
#: is not a classification head, and its rows are token embeddings, not classes. ImageNet-1k
#: (1,000 classes) fits with a wide margin.
O1_MAX_CLASSES = 10_000

#: O1 flags a class whose robust z (median / MAD * MAD_TO_SIGMA) of a per-class statistic exceeds
#: this, for heads of many classes. Set high on purpose: the best final-layer statistic reached
#: only AUC 0.71 on 240 toy digit classifiers, catching 12.5 % of backdoored models at 0 false
#: positives (WEIGHTS.md), so the rule must stay quiet on benign heads rather than catch much.
#: Not measured on real heads; it is above the 99.99th percentile (7.6) of the largest robust z
#: among 33 or more Gaussian values (simulated, 4e5 draws).
O1_ROBUST_Z_LIMIT = 8.0

#: Robust z limits for small heads: key = fewest classes the value applies to (up to the next key).
#: The MAD of a handful of values is often tiny by chance, so the largest robust z among n benign
#: (Gaussian) values is huge for small n. Each value is at or above the 99.99th percentile of that
#: maximum for every n it covers (simulated, 1e6 draws for n < 12, 4e5 above): e.g. 12,185 for
#: n = 3, 191 for n = 5, 20.1 for n = 10. Three classes therefore effectively never fire. The
#: plain z (ddof = 1) is reported but never decides: its maximum is bounded by (n-1)/sqrt(n),
#: 2.85 for 10 classes (WEIGHTS.md: "do not use |z| > 3 with ddof = 0 on <= 10 classes").
O1_SMALL_HEAD_Z_LIMITS: dict[int, float] = {
    3: 12_200.0,
    4: 200.0,
    6: 55.0,
    8: 30.0,
    10: 21.0,
    12: 16.0,
    14: 13.5,
    16: 12.0,
    18: 10.5,
    20: 10.0,
    24: 9.0,
    28: 8.0,
}

#: The spread used for O1's robust z is at least this fraction of the median per-class RMS. The
#: RMS of a row of L i.i.d. weights varies by about 1/sqrt(2L) (5 % at L = 200) from sampling
#: alone; the floor keeps near-identical rows (rounding noise, copied rows) from turning a tiny
#: difference into an enormous z. A judgement, not a measurement.
O1_MIN_SCALE_FRACTION = 0.05

#: O2 groups need at least this many same-role, same-shape tensors (WEIGHTS.md 4.2).
O2_MIN_GROUP = 4

#: O2 flags a tensor whose robust z of log(std) within its group exceeds this. WEIGHTS.md 4.2:
#: 0 % benign false positives at z > 12 on its corpus; flags re-initialised or replaced layers
#: 44 % of the time.
O2_ROBUST_Z_LIMIT = 12.0

#: The spread of log(std) used for O2's robust z is at least this (natural-log units, about 5 %
#: relative). A group whose stds agree more closely than that (copies, untouched init) would
#: otherwise turn a modest difference into z > 12; with the floor a flag needs a std at least
#: exp(12 * 0.05) = 1.8 times off the group median. A judgement, not a measurement.
O2_MIN_LOG_SCALE = 0.05

#: O2 looks only at tensors with at least this many elements and two or more dimensions: the
#: std of a small tensor is noisy, and 1-D tensors (biases, norm scales that stay near their
#: init of 1.0 in some layers and not in others) have std ratios between layers that are far
#: larger than those of weight matrices. A judgement, not a measurement.
O2_MIN_ELEMENTS = 256

#: O2 evidence is confidence "medium" (else "low") when the robust z is at least this and the
#: group has at least O2_MEDIUM_MIN_GROUP members: a median and MAD of 8+ layers are stable, and
#: twice the measured threshold leaves room. A judgement, not a measurement.
O2_MEDIUM_Z = 24.0
O2_MEDIUM_MIN_GROUP = 8
