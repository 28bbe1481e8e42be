"""W5: executable and archive headers hidden in the low-bit streams of a tensor block.

A stream of width k concatenates the low k bits (k/8 bytes) of consecutive elements, each
element's bytes in little-endian ("le": least significant first) or big-endian ("be") order; for
k = 8 the two orders are the same stream and hits are reported once, as "le". Work is staged so
random low bits cost little: a vectorised two-byte prefilter over byte planes, a vectorised check
of the few bytes that fix each magic, and exact validation in Python of the rare survivors.
"""

from __future__ import annotations

import functools
import re
import threading
from dataclasses import dataclass

import numpy as np

from shardscan.weights.thresholds import (
    HEADER_CHUNK_ELEMENTS,
    W5_MAX_CANDIDATES_PER_BLOCK,
    W5_MAX_HITS_PER_BLOCK,
    W5_PE_MAX_LFANEW,
)

# Magic bit, first byte, second byte. The bit lets one uint8 mask carry all four magics.
_ELF, _PE, _ZIP, _SHEBANG = 1, 2, 4, 8
_KIND = {_ELF: "ELF", _PE: "PE", _ZIP: "ZIP", _SHEBANG: "SHEBANG"}
_PREFIX = {_ELF: b"\x7fE", _PE: b"MZ", _ZIP: b"PK", _SHEBANG: b"#!"}

_FIRST = np.zeros(256, dtype=np.uint8)
_SECOND = np.zeros(256, dtype=np.uint8)
for _bit, _two in _PREFIX.items():
    _FIRST[_two[0]] |= _bit
    _SECOND[_two[1]] |= _bit

# Stream bytes gathered for the vectorised check: enough for ELF's ident, ZIP's fixed header
# fields, the shebang's directory and the high half of PE's e_lfanew.
_CHECK_OFFSETS = np.array([0, 1, 2, 3, 4, 5, 6, 0x3E, 0x3F], dtype=np.int64)
#: Bytes of stream needed to validate one candidate exactly (PE reads e_lfanew then "PE\0\0").
_WINDOW = {_ELF: 64, _ZIP: 30 + 1024, _SHEBANG: 64, _PE: W5_PE_MAX_LFANEW + 4}
_ZIP_METHODS = frozenset({0, 1, 6, 8, 9, 12, 14, 93, 95, 98, 99})
_ZIP_MAX_NAME = 1024
_ZIP_MAX_VERSION = 100
_SHEBANG_RE = re.compile(rb"#!/(?:usr/(?:local/)?)?s?bin/[A-Za-z0-9_.+-]{1,32}(?:[ \t\r\n]|$)")
_OUT_OF_RANGE = -1


@dataclass(frozen=True, slots=True)
class HeaderHit:
    """A validated header: the element holding its first byte, and the stream it was read from."""

    element: int  # tensor-wide index of the element whose low bits start the header
    kind: str  # "ELF", "PE", "ZIP" or "SHEBANG"
    bits: int  # k: low bits taken per element
    order: str  # "le" or "be": byte order of each element's k bits in the stream
    byte_in_element: int  # position of the header's first byte within that element's k/8 bytes


def stream_layouts(itemsize: int, widths: tuple[int, ...]) -> list[tuple[int, str, tuple[int, ...]]]:
    """(k, order, byte columns of an element in stream order) for every stream searched."""
    layouts: list[tuple[int, str, tuple[int, ...]]] = []
    for k in widths:
        w = k // 8
        if w > itemsize:
            continue
        layouts.append((k, "le", tuple(range(w))))
        if w > 1:
            layouts.append((k, "be", tuple(reversed(range(w)))))
    return layouts


class _Planes:
    """Byte planes of a block plus the elements after it, addressed by element and column."""

    def __init__(self, planes: np.ndarray, tail: np.ndarray | None) -> None:
        self.planes = planes
        self.tail = tail if tail is not None else planes[:0]
        self.n = planes.shape[0]
        self.total = self.n + self.tail.shape[0]

    def gather(self, elem: np.ndarray, col: np.ndarray) -> np.ndarray:
        out = np.full(elem.shape, _OUT_OF_RANGE, dtype=np.int16)
        inside = elem < self.n
        out[inside] = self.planes[elem[inside], col[inside]]
        after = ~inside & (elem < self.total)
        if after.any():
            out[after] = self.tail[elem[after] - self.n, col[after]]
        return out

    def window(self, elem: int, cols: tuple[int, ...], start: int, length: int) -> bytes:
        w = len(cols)
        stop = min(self.total, elem + (start + length + w - 1) // w + 1)
        rows_block = self.planes[elem : min(stop, self.n)]
        rows = rows_block
        if stop > self.n:
            rows = np.concatenate((rows_block, self.tail[max(0, elem - self.n) : stop - self.n]))
        return rows[:, list(cols)].tobytes()[start : start + length]


def _gather_streams(
    src: _Planes,
    elems: np.ndarray,
    js: np.ndarray,
    sids: np.ndarray,
    col_table: np.ndarray,
    width_of: np.ndarray,
    offsets: np.ndarray,
) -> np.ndarray:
    """Stream bytes at `offsets` after each candidate start (row r: element elems[r], byte js[r]
    of stream sids[r]); -1 where the stream ends before the tail does."""
    w = width_of[sids][:, None]
    pos = elems[:, None] * w + js[:, None] + offsets[None, :]
    return src.gather(pos // w, col_table[sids[:, None], pos % w])


def _valid(kind: int, window: bytes) -> bool:
    if kind == _ELF:
        return (
            window[:4] == b"\x7fELF"
            and len(window) >= 7
            and window[4] in (1, 2)
            and window[5] in (1, 2)
            and (window[6] == 1)
        )
    if kind == _ZIP:
        if len(window) < 30 or window[:4] != b"PK\x03\x04":
            return False
        version = int.from_bytes(window[4:6], "little")
        method = int.from_bytes(window[8:10], "little")
        name_len = int.from_bytes(window[26:28], "little")
        return version <= _ZIP_MAX_VERSION and method in _ZIP_METHODS and 0 < name_len <= _ZIP_MAX_NAME
    if kind == _SHEBANG:
        return _SHEBANG_RE.match(window) is not None
    if kind == _PE:
        if len(window) < 0x40 or window[:2] != b"MZ":
            return False
        lfanew = int.from_bytes(window[0x3C:0x40], "little")
        return 0x40 <= lfanew <= W5_PE_MAX_LFANEW and window[lfanew : lfanew + 4] == b"PE\x00\x00"
    return False


def _prefilter_ok(kind: int, b: np.ndarray) -> np.ndarray:
    """Vectorised test of the fixed bytes of each magic; b holds the bytes at _CHECK_OFFSETS."""
    if kind == _ELF:
        return (
            (b[:, 2] == ord("L"))
            & (b[:, 3] == ord("F"))
            & ((b[:, 4] == 1) | (b[:, 4] == 2))
            & ((b[:, 5] == 1) | (b[:, 5] == 2))
            & (b[:, 6] == 1)
        )
    if kind == _ZIP:
        return (b[:, 2] == 3) & (b[:, 3] == 4) & (b[:, 5] == 0)
    if kind == _SHEBANG:
        return b[:, 2] == ord("/")
    # PE: e_lfanew <= 0x1000 means its two high bytes are zero.
    return (b[:, 7] == 0) & (b[:, 8] == 0)


def _byte_class(plane: np.ndarray, values: bytes, out: np.ndarray, tmp: np.ndarray) -> np.ndarray:
    """out[i] = plane[i] in values, by compares on a contiguous uint8 plane (SIMD-fast, unlike a
    256-entry fancy-index lookup, which costs ~2 ns per element)."""
    np.equal(plane, values[0], out=out)
    for v in values[1:]:
        np.equal(plane, v, out=tmp)
        np.logical_or(out, tmp, out=out)
    return out


_FIRST_BYTES = bytes(two[0] for two in _PREFIX.values())
#: Order in which the magics of one step were validated (fixes where the caps cut the search).
_KIND_ORDER = (_ELF, _PE, _ZIP, _SHEBANG)
_SECOND_BYTES = bytes(two[1] for two in _PREFIX.values())


def _pair_key(cols: tuple[int, ...], j: int) -> tuple[int, int, bool]:
    """(column of byte j, column of the byte after it, whether that byte is in the next element)."""
    w = len(cols)
    return (cols[j], cols[j + 1], False) if j < w - 1 else (cols[w - 1], cols[0], True)


@dataclass(slots=True)
class _Buffers:
    """Scratch reused across blocks in one thread: fresh multi-MiB arrays per block cost page
    faults and zeroing (~1 ms per 4 MiB block measured), about a sixth of the whole search."""

    n: int
    planes: np.ndarray  # (3, n + 1) uint8: byte planes of the block plus one tail element
    any_pair: np.ndarray  # (n,) bool
    shifted: np.ndarray  # step-sized, 8-byte elements (viewed as the block's unsigned type)
    first: np.ndarray  # (3, step + 1) bool
    second: np.ndarray
    tmp: np.ndarray


_LOCAL = threading.local()
_MAX_PLANES = 3  # byte columns 0..2: k <= 24


def _buffers(n: int, planes: int) -> _Buffers:
    if planes > _MAX_PLANES:
        raise ValueError(f"{planes} byte planes requested; streams are at most {8 * _MAX_PLANES} bits wide")
    buf: _Buffers | None = getattr(_LOCAL, "buffers", None)
    if buf is None or buf.n < n:
        step = min(n, HEADER_CHUNK_ELEMENTS) + 1
        if buf is not None:
            step = max(step, buf.tmp.shape[0])
        buf = _LOCAL.buffers = _Buffers(
            n=n,
            planes=np.empty((_MAX_PLANES, n + 1), dtype=np.uint8),
            any_pair=np.empty(n, dtype=np.bool_),
            shifted=np.empty(step, dtype=np.uint64).view(np.uint8),
            first=np.empty((_MAX_PLANES, step), dtype=np.bool_),
            second=np.empty((_MAX_PLANES, step), dtype=np.bool_),
            tmp=np.empty(step, dtype=np.bool_),
        )
    return buf


@dataclass(frozen=True, slots=True)
class SearchPlan:
    """The streams searched for one element size, and the byte pairs that can start a magic."""

    layouts: list[tuple[int, str, tuple[int, ...]]]
    cols_used: list[int]
    keys: list[tuple[int, int, bool]]  # (column of byte j, column of byte j+1, in the next element)
    width_of: np.ndarray
    col_table: np.ndarray
    #: 512 bytes, nonzero at (first-byte columns | second-byte columns << 3 | the next element's
    #: second-byte columns << 6) when one of `keys` pairs them: the compiled prefilter's test.
    pair_table: bytes
    #: The layouts as the compiled field check reads them: per stream, its width and three columns.
    stream_table: bytes


@functools.lru_cache(maxsize=8)
def search_plan(itemsize: int, widths: tuple[int, ...]) -> SearchPlan:
    """Built once per element size: every block of that size searches the same streams."""
    layouts = stream_layouts(itemsize, widths)
    keys = sorted({_pair_key(cols, j) for _, _, cols in layouts for j in range(len(cols))})
    width_of = np.array([len(cols) for _, _, cols in layouts], dtype=np.int64)
    col_table = np.zeros((len(layouts), int(width_of.max())), dtype=np.int64)
    for sid, (_, _, cols) in enumerate(layouts):
        col_table[sid, : len(cols)] = cols
    table = bytearray(512)
    for index in range(512):
        first, second, second_next = index & 7, (index >> 3) & 7, index >> 6
        table[index] = any(
            first >> a & 1 and (second_next if cross else second) >> b & 1 for a, b, cross in keys
        )
    cols_used = sorted({c for _, _, cols in layouts for c in cols})
    streams = b"".join(bytes((len(cols), *cols, *(0,) * (3 - len(cols)))) for _, _, cols in layouts)
    return SearchPlan(layouts, cols_used, keys, width_of, col_table, bytes(table), streams)


def find_headers(
    bits: np.ndarray,
    first_element: int,
    widths: tuple[int, ...],
    tail: np.ndarray | None = None,
) -> tuple[tuple[HeaderHit, ...], bool]:
    """Headers starting in this block's low-bit streams, and whether the search was cut short.

    ``bits`` is the block as unsigned integers of the element width (host order = little-endian
    values); ``tail`` the elements that follow the block (may be None), used only to finish
    validating a header that starts near the block's end.

    Two stages. The vectorised one runs in steps of HEADER_CHUNK_ELEMENTS and only writes the byte
    planes and one "some pair of magic bytes starts here" mask for the whole block. The candidate
    stage (headers_at) then runs once per block rather than once per step: it is ~100 small NumPy
    calls whose fixed cost (~0.5 ms) used to be paid four times per block.
    """
    itemsize = bits.dtype.itemsize
    plan = search_plan(itemsize, widths)
    n = bits.shape[0]
    if n == 0:
        return (), False
    has_next = tail is not None and tail.shape[0] > 0
    # Block-wide byte planes plus one slot for the first tail element; without a tail that slot
    # stays 0, which is in neither byte class, so no pair crosses the block's end.
    buf = _buffers(n, len(plan.cols_used))
    plane = {c: buf.planes[i, : n + 1] for i, c in enumerate(plan.cols_used)}
    for p in plane.values():
        p[n] = 0
    any_pair = buf.any_pair[:n]
    size = min(n, HEADER_CHUNK_ELEMENTS) + 1
    shifted = buf.shifted.view(bits.dtype)[:size]
    first = {c: buf.first[i, :size] for i, c in enumerate(plan.cols_used)}
    second = {c: buf.second[i, :size] for i, c in enumerate(plan.cols_used)}
    tmp = buf.tmp[:size]
    for start in range(0, n, HEADER_CHUNK_ELEMENTS):
        stop = min(n, start + HEADER_CHUNK_ELEMENTS)
        m = stop - start
        if stop < n:
            ext = bits[start : stop + 1]
        elif has_next and tail is not None:
            ext = np.concatenate((bits[start:stop], np.ascontiguousarray(tail[:1]).view(bits.dtype)))
        else:
            ext = bits[start:stop]
        e = ext.shape[0]
        for c in plan.cols_used:
            out = plane[c][start : start + e]
            if c == 0:
                np.copyto(out, ext, casting="unsafe")  # truncating cast keeps the low byte
            else:
                np.right_shift(ext, 8 * c, out=shifted[:e])
                np.copyto(out, shifted[:e], casting="unsafe")
            _byte_class(out, _FIRST_BYTES, first[c][:e], tmp[:e])
            _byte_class(out, _SECOND_BYTES, second[c][:e], tmp[:e])
        acc = any_pair[start:stop]
        for i, (a, b, cross) in enumerate(plan.keys):
            sec = second[b][1:e] if cross else second[b][:m]
            k = sec.shape[0]  # m, or m - 1 for a cross pair at the block's end without a tail
            if i == 0:
                acc[k:] = False
                np.logical_and(first[a][:k], sec, out=acc[:k])
            else:
                np.logical_and(first[a][:k], sec, out=tmp[:k])
                np.logical_or(acc[:k], tmp[:k], out=acc[:k])
    return headers_at(np.flatnonzero(any_pair), bits, first_element, widths, tail)


def headers_at(
    cand: np.ndarray,
    bits: np.ndarray,
    first_element: int,
    widths: tuple[int, ...],
    tail: np.ndarray | None = None,
) -> tuple[tuple[HeaderHit, ...], bool]:
    """The headers among prefilter candidates (ascending block-relative elements where some byte
    pair of a magic starts): exact magic per (candidate, stream, byte), the vectorised field
    check, then validation in Python of the few survivors, in (step, magic, stream, byte,
    element) order, so the candidate and hit caps cut the search at the same place whichever
    prefilter (NumPy or compiled) found the candidates."""
    if cand.size == 0:
        return (), False
    plan = search_plan(bits.dtype.itemsize, widths)
    src = _source(bits, tail)
    planes2d = src.planes
    layouts = plan.layouts
    kinds_by_key = {}
    for a, b, cross in plan.keys:
        nxt = cand + 1 if cross else cand
        here = planes2d[cand, a]
        after = np.maximum(src.gather(nxt, np.full(nxt.shape, b)), 0)  # past the tail: no byte class
        kinds_by_key[(a, b, cross)] = _FIRST[here] & _SECOND[after]
    rows: list[tuple[np.ndarray, int, int, np.ndarray]] = []
    for sid, (_, _, cols) in enumerate(layouts):
        for j in range(len(cols)):
            kk = kinds_by_key[_pair_key(cols, j)]
            nz = np.flatnonzero(kk)
            if nz.size:
                rows.append((cand[nz], j, sid, kk[nz]))
    if not rows:
        return (), False
    elems = np.concatenate([r[0] for r in rows])
    js = np.concatenate([np.full(r[0].shape[0], r[1], dtype=np.int64) for r in rows])
    sids = np.concatenate([np.full(r[0].shape[0], r[2], dtype=np.int64) for r in rows])
    kinds = np.concatenate([r[3] for r in rows])
    got = _gather_streams(src, elems, js, sids, plan.col_table, plan.width_of, _CHECK_OFFSETS)
    picks = [np.flatnonzero(((kinds & kind) != 0) & _prefilter_ok(kind, got)) for kind in _KIND_ORDER]
    rank = np.concatenate([np.full(pk.shape[0], r, dtype=np.int64) for r, pk in enumerate(picks)])
    pick = np.concatenate(picks)
    return _validate(elems[pick], js[pick], sids[pick], rank, src, plan.layouts, first_element)


def headers_of(
    survivors: np.ndarray,
    bits: np.ndarray,
    first_element: int,
    widths: tuple[int, ...],
    tail: np.ndarray | None = None,
) -> tuple[tuple[HeaderHit, ...], bool]:
    """The headers among the compiled pass's survivors of the field check: rows of (element,
    byte, stream, magic rank), as headers_at's vectorised stage would have picked them."""
    if survivors.shape[0] == 0:
        return (), False
    plan = search_plan(bits.dtype.itemsize, widths)
    s = survivors.astype(np.int64)
    return _validate(s[:, 0], s[:, 1], s[:, 2], s[:, 3], _source(bits, tail), plan.layouts, first_element)


def _source(bits: np.ndarray, tail: np.ndarray | None) -> _Planes:
    itemsize = bits.dtype.itemsize
    tail2d = None if tail is None else np.ascontiguousarray(tail).view(np.uint8).reshape(-1, itemsize)
    return _Planes(bits.view(np.uint8).reshape(-1, itemsize), tail2d)


def _validate(
    elems: np.ndarray,
    js: np.ndarray,
    sids: np.ndarray,
    rank: np.ndarray,
    src: _Planes,
    layouts: list[tuple[int, str, tuple[int, ...]]],
    first_element: int,
) -> tuple[tuple[HeaderHit, ...], bool]:
    """Exact validation in Python of the field check's survivors, in (step, magic, stream, byte,
    element) order: the order the per-step search used, so the caps cut it at the same place."""
    step = elems // HEADER_CHUNK_ELEMENTS
    order = np.lexsort((elems, js, sids, rank, step))
    elems, js, sids, rank, step = elems[order], js[order], sids[order], rank[order], step[order]
    hits: list[HeaderHit] = []
    candidates = 0
    group_end = 0
    for g in range(elems.shape[0]):
        if g == group_end:  # a new (step, magic) group: the old search added its size at once
            group_end = g + 1
            while group_end < elems.shape[0] and (step[group_end], rank[group_end]) == (step[g], rank[g]):
                group_end += 1
            candidates += group_end - g
            if candidates > W5_MAX_CANDIDATES_PER_BLOCK:
                return tuple(sorted(hits, key=_hit_key)), True
        kind = _KIND_ORDER[int(rank[g])]
        el, j, (k_bits, order_name, cols) = int(elems[g]), int(js[g]), layouts[int(sids[g])]
        if _valid(kind, src.window(el, cols, j, _WINDOW[kind])):
            hits.append(HeaderHit(first_element + el, _KIND[kind], k_bits, order_name, j))
            if len(hits) >= W5_MAX_HITS_PER_BLOCK:
                return tuple(sorted(hits, key=_hit_key)), True
    return tuple(sorted(hits, key=_hit_key)), False


def _hit_key(hit: HeaderHit) -> tuple[int, int, str, int, str]:
    return (hit.element, hit.bits, hit.order, hit.byte_in_element, hit.kind)
