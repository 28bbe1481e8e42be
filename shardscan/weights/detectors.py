"""Default integrity detectors (W1-W5) over merged tensor statistics.

They return evidence records, not findings: the pipeline knows the tensor's name, shape and file
offsets and turns evidence into findings. Every number compared here comes from thresholds.py,
and each record carries the threshold and the benign reference it was set from, so an analyst can
judge the call. Weight statistics alone never go above WARNING; only a validated executable
header (W5) is CRITICAL.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from shardscan.model import Severity
from shardscan.weights.exponents import pair_table
from shardscan.weights.merge import TensorStats
from shardscan.weights.thresholds import (
    K0_FRACTION,
    SUB_BLOCK_ELEMENTS,
    W2_BENIGN_MAX_ABS,
    W2_HIGH_CONFIDENCE_LIMIT,
    W2_MAGNITUDE_LIMIT,
    W3_MIN_DEPTH_BITS,
    W3_MIN_ELEMENTS,
    W3_MIN_K0,
    W3_ROW_ALIGNED_MIN_DENSITY,
    W4_MIN_PAIR_COUNT,
    W4_MIN_PAIRS,
    W4_PAIRDEV_FLOOR,
)

#: Name fragments of tensors that legitimately hold -inf / NaN (attention masks, constant buffers).
MASK_NAME_HINTS = ("mask",)
#: Header kinds that are executable code: the only weight evidence allowed to be CRITICAL.
EXECUTABLE_HEADERS = frozenset({"ELF", "PE", "SHEBANG"})


@dataclass(frozen=True)
class Evidence:
    """One detector's verdict on one tensor, with what an analyst needs to check it."""

    rule_id: str  # "W1".."W5"
    severity: Severity
    confidence: str  # "low" | "medium" | "high"
    statistic: str
    value: float
    threshold: float | None
    benign_reference: str
    element_indices: tuple[int, ...]  # first offending elements (tensor-wide), at most 8
    message: str
    direction: str = ""  # "too large", "too structured", ...
    benign_explanations: tuple[str, ...] = ()
    details: dict[str, object] = field(default_factory=dict)


def detect(stats: TensorStats, *, name: str = "") -> list[Evidence]:
    """All default detectors, in rule order; an empty list means nothing to report."""
    out: list[Evidence] = []
    for rule in (_w1_nonfinite, _w2_magnitude, _w3_precision, _w4_substitution, _w5_headers):
        out.extend(rule(stats, name))
    return out


def _w1_nonfinite(s: TensorStats, name: str) -> list[Evidence]:
    bad = s.n_nan + s.n_posinf + s.n_neginf
    if bad == 0:
        return []
    masky = any(h in name.lower() for h in MASK_NAME_HINTS)
    return [
        Evidence(
            rule_id="W1",
            severity=Severity.INFO if masky else Severity.WARNING,
            confidence="medium" if masky else "high",
            statistic="non-finite elements",
            value=float(bad),
            threshold=0.0,
            benign_reference="0 of 788 benign tensors held NaN or Inf (WEIGHTS.md)",
            element_indices=s.first_nonfinite,
            message=f"{s.n_nan} NaN, {s.n_posinf} +Inf, {s.n_neginf} -Inf among {s.n} elements",
            direction="invalid values",
            benign_explanations=("attention mask or constant buffer",) if masky else (),
            details={"n_nan": s.n_nan, "n_posinf": s.n_posinf, "n_neginf": s.n_neginf},
        )
    ]


def _w2_magnitude(s: TensorStats, name: str) -> list[Evidence]:
    if s.max_abs <= W2_MAGNITUDE_LIMIT:
        return []
    return [
        Evidence(
            rule_id="W2",
            severity=Severity.WARNING,
            confidence="high" if s.max_abs > W2_HIGH_CONFIDENCE_LIMIT else "medium",
            statistic="max |w|",
            value=s.max_abs,
            threshold=W2_MAGNITUDE_LIMIT,
            benign_reference=f"benign max |w| {W2_BENIGN_MAX_ABS:g} (WEIGHTS.md corpus); survey ~1e3",
            element_indices=s.first_huge,
            message=f"largest finite magnitude {s.max_abs:.6g} exceeds {W2_MAGNITUDE_LIMIT:g}"
            " (an exponent bit flip or a planted value)",
            direction="too large",
            details={"min": s.min, "max": s.max},
        )
    ]


def violating_count(s: TensorStats) -> int:
    """Finite elements with fewer trailing zero mantissa bits than the tensor's k0."""
    return int(s.tz_hist[: s.k0].sum())


def _row_aligned(s: TensorStats, violations: int) -> tuple[bool, int | None, float]:
    """Whether violations fill whole trailing rows: (aligned, first row, density there)."""
    first = s.first_low_tz[s.k0]
    if s.row_length is None or not first:
        return False, None, 0.0
    row = first[0] // s.row_length
    region = s.n - row * s.row_length
    density = violations / region if region else 0.0
    return (row > 0 and density >= W3_ROW_ALIGNED_MIN_DENSITY), row, density


def _w3_precision(s: TensorStats, name: str) -> list[Evidence]:
    if s.n < W3_MIN_ELEMENTS or s.k0 < W3_MIN_K0:
        return []
    violations = violating_count(s)
    deep = int(s.tz_hist[: max(1, s.k0 - W3_MIN_DEPTH_BITS)].sum())
    if violations == 0 or deep == 0:
        return []
    aligned, row, density = _row_aligned(s, violations)
    severity = Severity.INFO if aligned else Severity.WARNING
    explanations = ("vocabulary resize: rows appended in full precision",) if aligned else ()
    return [
        Evidence(
            rule_id="W3",
            severity=severity,
            confidence="medium" if severity is Severity.WARNING else "low",
            statistic="elements with fewer than k0 trailing zero mantissa bits",
            value=float(violations),
            threshold=0.0,
            benign_reference=(
                f"k0 >= {W3_MIN_K0} marks reduced-precision origin ({K0_FRACTION:.0%} rule); "
                "0/18 benign reduced-precision tensors had violations, 18/18 payloads at 0.1 % caught"
            ),
            element_indices=s.first_low_tz[s.k0],
            message=(
                f"{violations} of {s.n} elements carry low mantissa bits that a k0={s.k0} origin cannot produce"
                + (f"; they fill the trailing rows from row {row}" if aligned else "")
            ),
            direction="too much precision",
            benign_explanations=explanations,
            details={
                "k0": s.k0,
                "deep_violations": deep,
                "min_depth_bits": W3_MIN_DEPTH_BITS,
                "row_aligned": aligned,
                "first_row": row,
                "row_density": density,
                "tz_hist": tuple(int(v) for v in s.tz_hist),
            },
        )
    ]


def _w4_substitution(s: TensorStats, name: str) -> list[Evidence]:
    if s.w4_pairdev >= W4_PAIRDEV_FLOOR or s.w4_exponent_hist is None:
        return []
    start = s.w4_sub_block * SUB_BLOCK_ELEMENTS
    return [
        Evidence(
            rule_id="W4",
            severity=Severity.WARNING,
            confidence="medium",
            statistic="pairdev (mean |log2 N_odd/N_even| over exponent pairs)",
            value=s.w4_pairdev,
            threshold=W4_PAIRDEV_FLOOR,
            benign_reference="benign minimum 0.126 over 1,051 blocks of 65,536 elements (WEIGHTS.md)",
            element_indices=(start,),
            message=(
                f"sub-block {s.w4_sub_block} (elements {start}..{start + SUB_BLOCK_ELEMENTS - 1}) has an "
                f"exponent-parity pattern flattened to pairdev {s.w4_pairdev:.3f}: low bytes look substituted"
            ),
            direction="too uniform",
            details={
                "block": s.w4_block,
                "sub_block": s.w4_sub_block,
                "element_range": (start, start + SUB_BLOCK_ELEMENTS),
                "pairs": s.w4_pairs,
                "min_pairs": W4_MIN_PAIRS,
                "min_pair_count": W4_MIN_PAIR_COUNT,
                "exponent_pairs": pair_table(s.w4_exponent_hist),
            },
        )
    ]


def _w5_headers(s: TensorStats, name: str) -> list[Evidence]:
    out: list[Evidence] = []
    kinds = sorted({h.kind for h in s.header_hits})
    for kind in kinds:
        hits = [h for h in s.header_hits if h.kind == kind]
        executable = kind in EXECUTABLE_HEADERS
        out.append(
            Evidence(
                rule_id="W5",
                severity=Severity.CRITICAL if executable else Severity.WARNING,
                confidence="high",
                statistic="validated header in low-bit stream",
                value=float(len(hits)),
                threshold=None,
                benign_reference="exact-match header with validated fields; not expected in trained weights",
                element_indices=tuple(h.element for h in hits[:8]),
                message=f"{kind} header hidden in the low {hits[0].bits} bits of consecutive elements"
                f" ({hits[0].order} byte order) starting at element {hits[0].element}",
                direction="too structured",
                details={"hits": tuple((h.element, h.kind, h.bits, h.order, h.byte_in_element) for h in hits)},
            )
        )
    if s.header_scan_truncated:
        out.append(
            Evidence(
                rule_id="W5",
                severity=Severity.INFO,
                confidence="low",
                statistic="header scan truncated",
                value=1.0,
                threshold=None,
                benign_reference="per-block candidate or hit cap reached",
                element_indices=(),
                message="low-bit header search stopped early in at least one block; later headers may be missed",
                direction="incomplete",
            )
        )
    return out
