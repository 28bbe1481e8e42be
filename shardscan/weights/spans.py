"""Where a format keeps its tensors: what a scanner tells the weight analysis.

A format scanner knows its layout (a SafeTensors header, a GGUF tensor table, the storages of a
PyTorch data.pkl); it says where each tensor's bytes are as a `TensorSpan` in
`UnitResult.partials[SPANS]`, and never reads them for statistics itself. The weight analysis
(`weights.analysis`) reads the spans block by block from the same reader.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

#: Key of `UnitResult.partials` holding a scanner's list of TensorSpan.
SPANS = "tensor_spans"
#: Floating types the statistics read; anything else is recorded as skipped with its reason.
ANALYSED_DTYPES = frozenset({"F64", "F32", "F16", "BF16"})
ITEM_SIZES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2}


@dataclass(frozen=True, slots=True)
class TensorSpan:
    """One tensor's bytes in the reader its scanner was given: `nbytes` from `offset`,
    little-endian, row-major.

    `dtype` uses SafeTensors' names for floating types (F64, F32, F16, BF16); other types keep
    a descriptive name ("I64", "Q4_K", "F8_E4M3") and `skip` says why they are not analysed
    ("integer", "quantised", "fp8", "compressed", "big-endian"...). `out_axis` is the axis of
    output units (classes of a classification head) where the format fixes it (PyTorch
    `(out, in)`, Keras `(in, out)`), else None: the opt-in head statistics never guess it.
    `source` is the absolute path of another local file holding the bytes (ONNX external
    data); empty means the scanner's own reader.
    """

    name: str
    dtype: str
    shape: tuple[int, ...]
    offset: int
    nbytes: int
    out_axis: int | None = None
    skip: str = ""
    source: str = ""

    @property
    def elements(self) -> int:
        return math.prod(self.shape)

    @property
    def row_length(self) -> int | None:
        """Elements per row: all dimensions but the first (an output unit of a PyTorch weight,
        a token of an embedding), for tensors of two or more dimensions."""
        n = 1
        for d in self.shape[1:]:
            n *= d
        return n if len(self.shape) >= 2 and n > 0 else None

    @property
    def analysed(self) -> bool:
        return not self.skip and self.dtype in ANALYSED_DTYPES and self.nbytes > 0


def skipped(name: str, dtype: str, shape: tuple[int, ...], offset: int, nbytes: int, reason: str) -> TensorSpan:
    """A tensor the statistics do not read, kept so the coverage says why."""
    return TensorSpan(name, dtype, shape, offset, nbytes, skip=reason)


def float_span(name: str, dtype: str, shape: tuple[int, ...], offset: int, nbytes: int,
               out_axis: int | None = None, *, other: str = "integer") -> TensorSpan:
    """A span whose dtype decides whether it is analysed: floating types are, others are
    recorded as skipped for `other` (or "fp8" for 8-bit floats)."""
    if dtype in ANALYSED_DTYPES:
        return TensorSpan(name, dtype, shape, offset, nbytes, out_axis)
    return skipped(name, dtype, shape, offset, nbytes, "fp8" if dtype.startswith("F8") else other)


#: Name of the one span that stands for the tensors beyond the limit; its shape is their count.
MORE_TENSORS = "<more tensors>"
MORE_REASON = "span limit"


class SpanList:
    """The spans of one file in the order a scanner finds them, at most `limit`
    (`Limits.max_tensor_spans`) of them: a file may declare millions of tensors, and the rest
    are folded into one skipped span so the coverage still says how many (and how many bytes)
    were left out."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.spans: list[TensorSpan] = []
        self.more = 0
        self.more_bytes = 0

    @property
    def full(self) -> bool:
        """True once no further span is kept: callers may stop computing them."""
        return len(self.spans) >= self.limit

    def add(self, span: TensorSpan) -> None:
        if self.full:
            self.left_out(span.nbytes)
        else:
            self.spans.append(span)

    def left_out(self, nbytes: int = 0) -> None:
        """Count a tensor not kept (its span need not be built)."""
        self.more += 1
        self.more_bytes += nbytes

    def finish(self) -> list[TensorSpan]:
        """The kept spans, plus one skipped span for the rest."""
        if not self.more:
            return list(self.spans)
        return [*self.spans, skipped(MORE_TENSORS, "MIXED", (self.more,), 0, self.more_bytes, MORE_REASON)]
