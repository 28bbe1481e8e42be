"""A protobuf wire-format encoder for tests: enough to build ONNX and TensorFlow messages by
hand, so the tests need neither library."""

from __future__ import annotations

from shardscan.scanners.protobuf import LEN, VARINT


def varint(n: int) -> bytes:
    n &= (1 << 64) - 1  # negative int64 values are ten-byte varints, as protobuf writes them
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def key(number: int, wire: int) -> bytes:
    return varint(number << 3 | wire)


def vi(number: int, value: int) -> bytes:
    """A varint field."""
    return key(number, VARINT) + varint(value)


def ld(number: int, payload: bytes | str) -> bytes:
    """A length-delimited field (bytes, a string, or an encoded message)."""
    data = payload.encode() if isinstance(payload, str) else payload
    return key(number, LEN) + varint(len(data)) + data
