"""Static reading of a marshalled CPython code object, without `marshal.loads`.

Keras serialises a Lambda layer's function as `base64(marshal.dumps(func.__code__))`. Loading
the model calls `marshal.loads` and builds a function from it, so the bytes are code that runs.
This module parses the marshal format by hand, for the code object layouts of CPython 3.7 to
3.13, and lists what the code uses: the names (`co_names`: globals, attributes, imports), the
constants (strings, numbers) and nested code objects. Nothing is ever unmarshalled or executed;
nothing here imports `marshal`.

Which CPython wrote the bytes is not recorded in them. The code object's field layout differs
between 3.7, 3.8-3.10 and 3.11+, so each layout is tried and the one that parses the whole
input consistently wins. Where the layout and the first instructions identify the opcode table
(3.8-3.10, 3.11-3.12, 3.13), the bytecode is scanned for LOAD_GLOBAL / LOAD_NAME / IMPORT_NAME
/ IMPORT_FROM so global names can be told from attribute names; otherwise every name counts as
possibly global.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass, field

#: Code object layouts: (label, int fields before co_code, objects before firstlineno,
#: objects after it). Field names follow CPython's marshal.c for each version.
LAYOUTS: tuple[tuple[str, int, tuple[str, ...], tuple[str, ...]], ...] = (
    ("3.11+", 5, ("code", "consts", "names", "localsplusnames", "localspluskinds", "filename", "name",
                  "qualname"), ("linetable", "exceptiontable")),
    ("3.8-3.10", 6, ("code", "consts", "names", "varnames", "freevars", "cellvars", "filename", "name"),
     ("lnotab",)),
    ("3.7", 5, ("code", "consts", "names", "varnames", "freevars", "cellvars", "filename", "name"),
     ("lnotab",)),
)

#: Opcodes that name a global or a module, by opcode table: {opcode: (kind, shift of the
#: name index in the argument)}.
_GLOBAL_OPS_38 = {116: ("global", 0), 101: ("global", 0), 108: ("import", 0), 109: ("import_from", 0)}
_GLOBAL_OPS_311 = {116: ("global", 1), 101: ("global", 0), 175: ("global", 0), 108: ("import", 0),
                   109: ("import_from", 0)}
_GLOBAL_OPS_313 = {91: ("global", 1), 92: ("global", 0), 90: ("global", 0), 75: ("import", 0),
                   74: ("import_from", 0)}
#: (EXTENDED_ARG, table) per opcode family.
OPCODE_TABLES = {"3.7-3.10": (144, _GLOBAL_OPS_38), "3.11-3.12": (144, _GLOBAL_OPS_311),
                 "3.13": (71, _GLOBAL_OPS_313)}

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")


class MarshalError(ValueError):
    """The bytes are not a marshalled code object this parser understands."""


@dataclass(slots=True)
class CodeInfo:
    """What a code object (and the code objects nested in it) uses."""

    layout: str = ""
    #: Opcode family used to tell globals from attributes, or "" when unknown.
    opcodes: str = ""
    #: Every co_names entry, in first-seen order.
    names: list[str] = field(default_factory=list)
    #: Names loaded as globals (LOAD_GLOBAL/LOAD_NAME) and modules imported (IMPORT_NAME);
    #: None when the opcode table is unknown and any name may be global.
    globals: list[str] | None = None
    imports: list[str] = field(default_factory=list)
    #: (module, name) for `from module import name`, when the bytecode could be read.
    from_imports: list[tuple[str, str]] = field(default_factory=list)
    strings: list[str] = field(default_factory=list)
    numbers: list[str] = field(default_factory=list)
    #: co_name / co_qualname of each code object, outermost first.
    functions: list[str] = field(default_factory=list)
    filename: str = ""
    code_objects: int = 0

    def identifiers(self) -> list[str]:
        """String constants that read as (dotted) identifiers: candidate module names for
        `__import__("os")`, `getattr(m, "system")`."""
        return [s for s in self.strings if len(s) <= 200 and _IDENT.fullmatch(s)]


@dataclass(slots=True)
class _Code:
    fields: dict[str, object]


class _Parser:
    def __init__(self, data: bytes, layout: tuple[str, int, tuple[str, ...], tuple[str, ...]],
                 max_depth: int, max_items: int) -> None:
        self.data = memoryview(data)
        self.pos = 0
        self.layout = layout
        self.refs: list[object] = []
        self.max_depth = max_depth
        self.items_left = max_items

    def _take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise MarshalError(f"truncated: needs {n} bytes at {self.pos}")
        out = bytes(self.data[self.pos : self.pos + n])
        self.pos += n
        return out

    def _i32(self) -> int:
        return struct.unpack("<i", self._take(4))[0]

    def _size(self) -> int:
        n = self._i32()
        if n < 0 or n > len(self.data) - self.pos + 1:  # every element takes at least a byte
            raise MarshalError(f"size {n} at {self.pos - 4} exceeds the data")
        return n

    def obj(self, depth: int = 0) -> object:
        if depth > self.max_depth:
            raise MarshalError(f"nesting deeper than {self.max_depth}")
        self.items_left -= 1
        if self.items_left < 0:
            raise MarshalError("too many objects")
        start = self.pos
        code = self._take(1)[0]
        flag, kind = code & 0x80, chr(code & 0x7F)
        idx = -1
        if flag:
            idx = len(self.refs)
            self.refs.append(None)
        value = self._value(kind, depth, start)
        if flag:
            self.refs[idx] = value
        return value

    def _value(self, kind: str, depth: int, start: int) -> object:
        if kind == "0":
            return _NULL
        if kind in "NFTS.":
            return {"N": None, "F": False, "T": True, "S": "StopIteration", ".": Ellipsis}[kind]
        if kind == "i":
            return self._i32()
        if kind == "I":
            return struct.unpack("<q", self._take(8))[0]
        if kind == "l":
            n = self._i32()
            if abs(n) > (len(self.data) - self.pos) // 2:
                raise MarshalError(f"long of {n} digits exceeds the data")
            digits = struct.unpack(f"<{abs(n)}H", self._take(2 * abs(n)))
            if any(d > 0x7FFF for d in digits):
                raise MarshalError("long digit out of range")
            if abs(n) > 64:  # a huge literal: keep its size, not its value
                return _BigInt(abs(n) * 15)
            v = sum(d << (15 * i) for i, d in enumerate(digits))
            return -v if n < 0 else v
        if kind == "f":
            return _Float(self._take(self._take(1)[0]).decode("latin-1"))
        if kind == "g":
            return struct.unpack("<d", self._take(8))[0]
        if kind == "x":
            re_ = self._take(self._take(1)[0]).decode("latin-1")
            im = self._take(self._take(1)[0]).decode("latin-1")
            return _Float(f"({re_}+{im}j)")
        if kind == "y":
            r, i = struct.unpack("<dd", self._take(16))
            return complex(r, i)
        if kind == "s":
            return self._take(self._size())
        if kind in "tuaA":
            raw = self._take(self._size())
            return raw.decode("utf-8", "surrogatepass") if kind in "tu" else _ascii(raw)
        if kind in "zZ":
            return _ascii(self._take(self._take(1)[0]))
        if kind in "()[<>":
            n = self._take(1)[0] if kind == ")" else self._size()  # ")" is the small tuple
            items = [self.obj(depth + 1) for _ in range(n)]
            if any(item is _NULL for item in items):
                raise MarshalError(f"NULL inside a container at {start}")
            return tuple(items) if kind in "()" else items
        if kind == "{":
            out: list[object] = []
            while True:
                key = self.obj(depth + 1)
                if key is _NULL:
                    return out
                out += [key, self.obj(depth + 1)]
        if kind == ":":  # slice (3.14)
            return tuple(self.obj(depth + 1) for _ in range(3))
        if kind == "r":
            n = self._i32()
            if not 0 <= n < len(self.refs) or self.refs[n] is None:
                raise MarshalError(f"bad reference {n} at {start}")
            return self.refs[n]
        if kind == "c":
            return self._code(depth, start)
        raise MarshalError(f"unknown marshal type {kind!r} at {start}")

    def _code(self, depth: int, start: int) -> _Code:
        _, n_ints, before, after = self.layout
        fields: dict[str, object] = {"ints": [self._i32() for _ in range(n_ints)]}
        for name in before:
            fields[name] = self.obj(depth + 1)
        fields["firstlineno"] = self._i32()
        for name in after:
            fields[name] = self.obj(depth + 1)
        # The checks that make a wrong layout fail fast instead of misreading fields.
        if not isinstance(fields["code"], bytes) or len(fields["code"]) % 2:
            raise MarshalError(f"co_code of the code object at {start} is not bytecode")
        if not isinstance(fields["consts"], tuple):
            raise MarshalError(f"co_consts of the code object at {start} is not a tuple")
        for key in ("names", "localsplusnames", "varnames", "freevars", "cellvars"):
            if key in fields and not (isinstance(fields[key], tuple) and all(isinstance(n, str) for n in fields[key])):
                raise MarshalError(f"co_{key} of the code object at {start} is not a tuple of names")
        for key in ("filename", "name", "qualname"):
            if key in fields and not isinstance(fields[key], str):
                raise MarshalError(f"co_{key} of the code object at {start} is not a string")
        if "localspluskinds" in fields and not isinstance(fields["localspluskinds"], bytes):
            raise MarshalError(f"co_localspluskinds of the code object at {start} is not bytes")
        return _Code(fields)


class _Null:
    def __repr__(self) -> str:
        return "NULL"


_NULL = _Null()


@dataclass(frozen=True, slots=True)
class _Float:
    text: str


@dataclass(frozen=True, slots=True)
class _BigInt:
    bits: int


def _ascii(raw: bytes) -> str:
    try:
        return raw.decode("ascii")
    except UnicodeDecodeError as exc:
        raise MarshalError("non-ASCII bytes in an ASCII string") from exc


def _opcode_family(layout: str, code: bytes) -> str:
    if layout in ("3.7", "3.8-3.10"):
        return "3.7-3.10"
    # 3.11+: every code object starts with RESUME, after MAKE_CELL / COPY_FREE_VARS (and
    # RETURN_GENERATOR, POP_TOP for generators). RESUME is 151 in 3.11-3.12 and 149 in 3.13,
    # where 149 was COPY_FREE_VARS before.
    for family, prologue, resume in (("3.11-3.12", {135, 149, 75, 1}, 151), ("3.13", {94, 62, 35, 32}, 149)):
        for i in range(0, min(len(code), 64), 2):
            if code[i] == resume and (i == 0 or code[i - 2] in prologue):
                return family
            if code[i] not in prologue:
                break
    return ""


def _scan_bytecode(code: bytes, names: tuple[str, ...], family: str, info: CodeInfo) -> None:
    extended, table = OPCODE_TABLES[family]
    assert info.globals is not None
    arg_high = 0
    last_import = ""
    for i in range(0, len(code) - 1, 2):
        op, arg = code[i], code[i + 1] | arg_high
        if op == extended:
            arg_high = arg << 8
            continue
        arg_high = 0
        hit = table.get(op)
        if hit is None:
            continue
        kind, shift = hit
        index = arg >> shift
        if index >= len(names):
            continue
        name = names[index]
        if kind == "global":
            _add(info.globals, name)
        elif kind == "import":
            last_import = name
            _add(info.imports, name)
            _add(info.globals, name.split(".")[0])
        elif kind == "import_from" and last_import:
            pair = (last_import, name)
            if pair not in info.from_imports:
                info.from_imports.append(pair)


def _add(seq: list, item: object) -> None:
    if item not in seq:
        seq.append(item)


def _collect(root: _Code, layout: str, max_strings: int) -> CodeInfo:
    info = CodeInfo(layout=layout)
    families: set[str] = set()
    pending: list[object] = [root]
    seen: set[int] = set()
    known_globals: list[str] = []
    while pending:
        item = pending.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, _Code):
            f = item.fields
            info.code_objects += 1
            if not info.filename:
                info.filename = str(f["filename"])
            _add(info.functions, str(f.get("qualname") or f["name"]))
            names = f["names"]
            assert isinstance(names, tuple)
            for n in names:
                _add(info.names, n)
            family = _opcode_family(layout, f["code"])  # type: ignore[arg-type]
            families.add(family)
            if family:
                info.globals = known_globals
                _scan_bytecode(f["code"], names, family, info)  # type: ignore[arg-type]
                info.globals = None
            pending.extend(reversed(f["consts"]))  # type: ignore[arg-type]
        elif isinstance(item, (tuple, list)):
            pending.extend(reversed(item))
        elif isinstance(item, str):
            if len(info.strings) < max_strings:
                _add(info.strings, item)
        elif isinstance(item, bytes):
            if len(info.strings) < max_strings:
                _add(info.strings, item.decode("latin-1"))
        elif isinstance(item, bool) or item is None:
            continue
        elif isinstance(item, (int, float, complex)):
            if len(info.numbers) < max_strings:
                _add(info.numbers, repr(item))
        elif isinstance(item, _Float):
            _add(info.numbers, item.text)
        elif isinstance(item, _BigInt):
            _add(info.numbers, f"<{item.bits}-bit integer>")
    if len(families) == 1 and "" not in families:
        info.opcodes = families.pop()
        info.globals = known_globals
    return info


def decode_code(data: bytes, *, max_depth: int = 100, max_items: int = 1_000_000,
                max_strings: int = 10_000) -> CodeInfo:
    """Names and constants of the marshalled code object in `data`; MarshalError if the bytes
    are not one under any known layout."""
    if not data:
        raise MarshalError("no bytes")
    if data[0] & 0x7F != ord("c"):
        raise MarshalError(f"does not start with a code object (type byte {data[0]:#04x})")
    errors: list[str] = []
    partial: tuple[_Code, str] | None = None
    for layout in LAYOUTS:
        parser = _Parser(data, layout, max_depth, max_items)
        try:
            root = parser.obj()
        except (MarshalError, UnicodeDecodeError, struct.error, RecursionError) as exc:
            errors.append(f"{layout[0]}: {exc}")
            continue
        assert isinstance(root, _Code)
        if parser.pos == len(data):
            return _collect(root, layout[0], max_strings)
        errors.append(f"{layout[0]}: {len(data) - parser.pos} bytes left over")
        if partial is None:
            partial = (root, layout[0])
    if partial is not None:
        return _collect(partial[0], partial[1], max_strings)
    raise MarshalError("; ".join(errors))


def strings_in(data: bytes, *, limit: int = 512) -> list[str]:
    """Identifier-like ASCII runs in bytes that could not be parsed: the fallback that still
    shows names a payload uses."""
    out: list[str] = []
    for m in re.finditer(rb"[A-Za-z_][A-Za-z0-9_.]{1,127}", data):
        text = m.group().decode("ascii").strip(".")
        if text and text not in out:
            out.append(text)
            if len(out) >= limit:
                break
    return out


def referenced_globals(info: CodeInfo, *, limit: int = 4096) -> list[tuple[str, str]]:
    """(module, name) pairs the code may reach: builtins it loads as globals, names imported
    from modules, and attribute names of every module-like name it mentions.

    Without opcodes every name may be a global or an attribute, so more pairs are produced:
    a caller judging them against a denylist errs towards flagging.
    """
    pairs: list[tuple[str, str]] = []

    def add(module: str, name: str) -> None:
        if len(pairs) < limit and (module, name) not in pairs:
            pairs.append((module, name))

    globals_ = info.globals if info.globals is not None else info.names
    for name in globals_:
        add("builtins", name)
    for module, name in info.from_imports:
        add(module, name)
    modules = [*info.imports, *globals_, *info.identifiers()]
    for module in modules:
        add(module, "*")
        for name in info.names:
            if name != module:
                add(module, name)
        for text in info.identifiers():
            if text != module and "." not in text:
                add(module, text)
    for text in info.identifiers():
        if "." in text:
            module, _, name = text.rpartition(".")
            add(module, name)
    return pairs
