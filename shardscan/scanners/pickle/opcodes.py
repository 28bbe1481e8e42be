"""The pickle opcode table, protocols 0-5, one row per opcode.

Argument kinds follow `pickletools`; the machine reads them from a stream and never from
a buffer holding the whole pickle.
"""

from __future__ import annotations

from typing import NamedTuple

# Argument kinds
NONE = 0        # no argument
U1 = 1          # unsigned byte
U2 = 2          # unsigned 2-byte little-endian
I4 = 3          # signed 4-byte little-endian
U4 = 4          # unsigned 4-byte
U8 = 5          # unsigned 8-byte
F8 = 6          # big-endian double
LINE = 7        # text up to a newline (INT, LONG, FLOAT, PUT, GET, PERSID, STRING, UNICODE)
LINE2 = 8       # two newline-terminated lines (GLOBAL, INST)
LONG1 = 9       # 1-byte length, then little-endian two's-complement integer
LONG4 = 10      # 4-byte length, then integer
BYTES1 = 11     # 1-byte length, then bytes
BYTES4 = 12     # 4-byte length, then bytes
BYTES8 = 13     # 8-byte length, then bytes


class Op(NamedTuple):
    name: str
    arg: int
    proto: int


OPCODES: dict[int, Op] = {
    ord(code): Op(name, arg, proto)
    for code, name, arg, proto in (
        ("(", "MARK", NONE, 0),
        (".", "STOP", NONE, 0),
        ("0", "POP", NONE, 0),
        ("1", "POP_MARK", NONE, 1),
        ("2", "DUP", NONE, 0),
        ("F", "FLOAT", LINE, 0),
        ("I", "INT", LINE, 0),
        ("J", "BININT", I4, 1),
        ("K", "BININT1", U1, 1),
        ("L", "LONG", LINE, 0),
        ("M", "BININT2", U2, 1),
        ("N", "NONE", NONE, 0),
        ("P", "PERSID", LINE, 0),
        ("Q", "BINPERSID", NONE, 1),
        ("R", "REDUCE", NONE, 0),
        ("S", "STRING", LINE, 0),
        ("T", "BINSTRING", BYTES4, 1),
        ("U", "SHORT_BINSTRING", BYTES1, 1),
        ("V", "UNICODE", LINE, 0),
        ("X", "BINUNICODE", BYTES4, 1),
        ("a", "APPEND", NONE, 0),
        ("b", "BUILD", NONE, 0),
        ("c", "GLOBAL", LINE2, 0),
        ("d", "DICT", NONE, 0),
        ("}", "EMPTY_DICT", NONE, 1),
        ("e", "APPENDS", NONE, 1),
        ("g", "GET", LINE, 0),
        ("h", "BINGET", U1, 1),
        ("i", "INST", LINE2, 0),
        ("j", "LONG_BINGET", U4, 1),
        ("l", "LIST", NONE, 0),
        ("]", "EMPTY_LIST", NONE, 1),
        ("o", "OBJ", NONE, 1),
        ("p", "PUT", LINE, 0),
        ("q", "BINPUT", U1, 1),
        ("r", "LONG_BINPUT", U4, 1),
        ("s", "SETITEM", NONE, 0),
        ("t", "TUPLE", NONE, 0),
        (")", "EMPTY_TUPLE", NONE, 1),
        ("u", "SETITEMS", NONE, 1),
        ("G", "BINFLOAT", F8, 1),
        ("\x80", "PROTO", U1, 2),
        ("\x81", "NEWOBJ", NONE, 2),
        ("\x82", "EXT1", U1, 2),
        ("\x83", "EXT2", U2, 2),
        ("\x84", "EXT4", I4, 2),
        ("\x85", "TUPLE1", NONE, 2),
        ("\x86", "TUPLE2", NONE, 2),
        ("\x87", "TUPLE3", NONE, 2),
        ("\x88", "NEWTRUE", NONE, 2),
        ("\x89", "NEWFALSE", NONE, 2),
        ("\x8a", "LONG1", LONG1, 2),
        ("\x8b", "LONG4", LONG4, 2),
        ("B", "BINBYTES", BYTES4, 3),
        ("C", "SHORT_BINBYTES", BYTES1, 3),
        ("\x8c", "SHORT_BINUNICODE", BYTES1, 4),
        ("\x8d", "BINUNICODE8", BYTES8, 4),
        ("\x8e", "BINBYTES8", BYTES8, 4),
        ("\x8f", "EMPTY_SET", NONE, 4),
        ("\x90", "ADDITEMS", NONE, 4),
        ("\x91", "FROZENSET", NONE, 4),
        ("\x92", "NEWOBJ_EX", NONE, 4),
        ("\x93", "STACK_GLOBAL", NONE, 4),
        ("\x94", "MEMOIZE", NONE, 4),
        ("\x95", "FRAME", U8, 4),
        ("\x96", "BYTEARRAY8", BYTES8, 5),
        ("\x97", "NEXT_BUFFER", NONE, 5),
        ("\x98", "READONLY_BUFFER", NONE, 5),
    )
}

#: The legacy PyTorch header: the first of five stacked pickles in `_legacy_save` files.
TORCH_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
TORCH_LEGACY_PICKLES = 5
