"""A bounded, streaming reader of the protocol buffers wire format, over a RangeReader.

It knows no schema: it yields the fields of one message as `Field(number, wire_type, offset,
length, value)` and leaves the meaning to the caller (the ONNX scanner now; TensorFlow GraphDef
and SavedModel later). Length-delimited values are never read unless asked for: a caller
descends into a sub-message with `message(field)`, reads a short string with `text(field,
limit)`, and skips what it does not need (tensor bytes) without touching it.

Every bound is explicit: nesting depth (groups and sub-messages), fields walked in total, and
the size of any value read into memory. Malformed bytes raise `ProtoError` with the offset,
a bound raises `ProtoLimit`; neither ever allocates what a length prefix merely claims.

Reads go through one cached window, so walking a sub-message while its parent's iteration is
suspended costs no extra read: both look at the same bytes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import NamedTuple

from shardscan.scanners.base import FormatError
from shardscan.storage.reader import RangeReader

VARINT, I64, LEN, SGROUP, EGROUP, I32 = 0, 1, 2, 3, 4, 5
WIRE_NAMES = {VARINT: "varint", I64: "fixed64", LEN: "length-delimited", SGROUP: "start-group",
              EGROUP: "end-group", I32: "fixed32"}
MAX_FIELD_NUMBER = (1 << 29) - 1
#: How often (in fields) the deadline callback runs.
CHECK_EVERY = 4096


class ProtoError(FormatError):
    """Bytes that are not protobuf wire format."""


class ProtoLimit(Exception):
    """A bound was reached; `limit` names it (a `Limits` field or a caller's name)."""

    def __init__(self, limit: str, reason: str, offset: int | None = None) -> None:
        super().__init__(reason if offset is None else f"{reason} (at byte {offset})")
        self.limit = limit
        self.reason = reason
        self.offset = offset


class Field(NamedTuple):
    """One field of a message (a named tuple: walks create millions of them)."""

    number: int
    wire_type: int
    #: Where the value starts: after the tag, and after the length prefix of a LEN field.
    offset: int
    #: Bytes of the value: the payload of a LEN field or a group, 8 or 4 for fixed fields,
    #: the encoded size of a varint.
    length: int
    #: The number of a varint or fixed field (unsigned); None for LEN and groups.
    value: int | None
    #: Where the tag starts, for findings.
    tag_offset: int
    #: Nesting depth of the message that holds the field (0 = the top message).
    depth: int

    @property
    def end(self) -> int:
        return self.offset + self.length


def signed64(value: int) -> int:
    """An int64/int32 field's value from its unsigned varint."""
    return value - (1 << 64) if value >= 1 << 63 else value


class WireReader:
    """Fields of protobuf messages inside `reader`, with every bound enforced.

    `max_depth` bounds sub-message and group nesting, `max_fields` the fields walked over the
    reader's lifetime (all messages together), and `check` (the scan deadline) runs every few
    thousand fields.
    """

    def __init__(self, reader: RangeReader, *, max_depth: int = 100, max_fields: int = 50_000_000,
                 chunk: int = 1 << 20, check: Callable[[], None] | None = None,
                 depth_limit: str = "max_depth", fields_limit: str = "max_fields") -> None:
        self.reader = reader
        self.size = reader.size
        self.max_depth = max_depth
        self.max_fields = max_fields
        self.fields_read = 0
        self._chunk = max(chunk, 16)
        self._check = check
        self._depth_limit = depth_limit
        self._fields_limit = fields_limit
        self._buf = b""
        self._start = 0

    # --- the window -------------------------------------------------------------------------

    def _window(self, pos: int, need: int) -> int:
        """Make `[pos, pos + need)` (clipped at the end) available; its index in `_buf`."""
        need = min(need, self.size - pos)
        start = self._start
        if start <= pos and pos + need <= start + len(self._buf):
            return pos - start
        self._buf = self.reader.read(pos, max(need, self._chunk))
        self._start = pos
        return 0

    def _varint(self, pos: int, end: int) -> tuple[int, int]:
        """(value, position after it) for the varint at `pos`, which must end before `end`."""
        i = pos - self._start
        if pos < end and 0 <= i < len(self._buf):  # the common case: one byte, already in the window
            b = self._buf[i]
            if b < 0x80:
                return b, pos + 1
        i = self._window(pos, 10)
        buf = self._buf
        limit = min(len(buf), i + 10, i + (end - pos))
        result = shift = 0
        j = i
        while j < limit:
            b = buf[j]
            result |= (b & 0x7F) << shift
            j += 1
            if b < 0x80:
                if j - i == 10 and b > 1:
                    raise ProtoError("varint overflows 64 bits", pos)
                return result, pos + (j - i)
            shift += 7
        if j - i >= 10:
            raise ProtoError("varint longer than 10 bytes", pos)
        raise ProtoError("truncated varint", pos)

    # --- fields -----------------------------------------------------------------------------

    def fields(self, start: int = 0, end: int | None = None, depth: int = 0) -> Iterator[Field]:
        """The fields of the message stored in `[start, end)`, in file order."""
        end = self.size if end is None else end
        if end > self.size or start < 0 or start > end:
            raise ProtoError(f"message range {start}..{end} lies outside the {self.size}-byte data", start)
        if depth > self.max_depth:
            raise ProtoLimit(self._depth_limit, f"messages nested deeper than {self.max_depth} levels", start)
        pos = start
        while pos < end:
            field, pos = self._field(pos, end, depth, None)
            if field is None:
                raise ProtoError("end-group tag without a matching start-group", pos)
            yield field

    def message(self, field: Field) -> Iterator[Field]:
        """The fields of a sub-message held in a LEN field (or a group)."""
        if field.wire_type not in (LEN, SGROUP):
            raise ProtoError(f"field {field.number} is a {WIRE_NAMES[field.wire_type]}, not a message",
                             field.tag_offset)
        return self.fields(field.offset, field.end, field.depth + 1)

    def _field(self, pos: int, end: int, depth: int, group: int | None) -> tuple[Field | None, int]:
        """The field whose tag starts at `pos` and the position after it; (None, after) for the
        end-group tag that closes `group`."""
        self.fields_read += 1
        if self.fields_read > self.max_fields:
            raise ProtoLimit(self._fields_limit, f"more than {self.max_fields} protobuf fields", pos)
        if self._check is not None and not self.fields_read % CHECK_EVERY:
            self._check()
        tag, p = self._varint(pos, end)
        number, wire = tag >> 3, tag & 7
        if number < 1 or number > MAX_FIELD_NUMBER:
            raise ProtoError(f"invalid field number {number}", pos)
        if wire == VARINT:
            value, q = self._varint(p, end)
            return Field(number, wire, p, q - p, value, pos, depth), q
        if wire in (I64, I32):
            width = 8 if wire == I64 else 4
            if p + width > end:
                raise ProtoError(f"truncated {WIRE_NAMES[wire]} field {number}", pos)
            i = self._window(p, width)
            value = int.from_bytes(self._buf[i : i + width], "little")
            return Field(number, wire, p, width, value, pos, depth), p + width
        if wire == LEN:
            length, q = self._varint(p, end)
            if length > end - q:
                raise ProtoError(f"field {number} declares {length} bytes, {end - q} remain in its message", pos)
            return Field(number, wire, q, length, None, pos, depth), q + length
        if wire == SGROUP:
            if depth + 1 > self.max_depth:
                raise ProtoLimit(self._depth_limit, f"groups nested deeper than {self.max_depth} levels", pos)
            q = p
            while True:
                if q >= end:
                    raise ProtoError(f"group {number} is not closed", pos)
                inner, after = self._field(q, end, depth + 1, number)
                if inner is None:
                    return Field(number, wire, p, q - p, None, pos, depth), after
                q = after
        if wire == EGROUP:
            if group is None:
                raise ProtoError(f"end-group tag {number} without a start-group", pos)
            if group != number:
                raise ProtoError(f"end-group tag {number} does not close group {group}", pos)
            return None, p
        raise ProtoError(f"invalid wire type {wire} (field {number})", pos)

    # --- values -----------------------------------------------------------------------------

    def read(self, field: Field, limit: int, what: str = "value", limit_name: str = "max_value") -> bytes:
        """The bytes of a LEN field, refusing more than `limit`."""
        if field.wire_type != LEN:
            raise ProtoError(f"{what} (field {field.number}) is a {WIRE_NAMES[field.wire_type]}, "
                             "not length-delimited", field.tag_offset)
        if field.length > limit:
            raise ProtoLimit(limit_name, f"{what} of {field.length} bytes exceeds the {limit}-byte limit",
                             field.tag_offset)
        if field.length <= self._chunk:
            i = self._window(field.offset, field.length)
            return self._buf[i : i + field.length]
        return self.reader.read(field.offset, field.length)

    def text(self, field: Field, limit: int, what: str = "string", limit_name: str = "max_value") -> str:
        """A string field, decoded as UTF-8 (bytes that are not UTF-8 become U+FFFD, as a
        proto2 lite parser accepts them unchecked)."""
        return self.read(field, limit, what, limit_name).decode("utf-8", "replace")

    def prefix(self, field: Field, length: int) -> bytes:
        """The first `length` bytes of a LEN field, whatever its size."""
        n = min(length, field.length)
        if n <= self._chunk:
            i = self._window(field.offset, n)
            return self._buf[i : i + n]
        return self.reader.read(field.offset, n)
