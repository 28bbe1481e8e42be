"""Symbolic values on the pickle machine's stack.

Literals (ints, short strings and bytes, None...) are kept as Python values; everything a
loader would have to import or run is one of the classes below, so the analysis can follow
where a callable goes without ever importing it. They compare by identity: two imports of
the same global are two facts with two offsets.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from shardscan.policy import Verdict


@dataclass(eq=False, slots=True)
class Blob:
    """A literal too long to keep in memory: where it is, not what it is."""

    offset: int
    length: int
    kind: str  # "bytes" or "str"
    head: bytes = b""


@dataclass(eq=False, slots=True)
class Global:
    module: str
    name: str
    offset: int
    opcode: str
    verdict: Verdict
    #: How the stream uses it; the strongest use decides the severity of an unknown global.
    uses: set[str] = field(default_factory=set)
    #: The text line carried a stray '\r': CPython imports "os\r" and fails, so the global
    #: only resolves once line endings are normalised (picklescan #26 class).
    carriage_return: bool = False

    @property
    def qualname(self) -> str:
        return f"{self.module}.{self.name}"


@dataclass(eq=False, slots=True)
class Made:
    """The result of calling or instantiating something: REDUCE, INST, OBJ, NEWOBJ(_EX)."""

    func: Any
    args: Any
    offset: int
    how: str  # "call" runs code; "new" only allocates (NEWOBJ, copyreg reconstructors)
    state: Any = None
    #: Set when the callee is a decoder or pure function that could be evaluated.
    value: Any = None
    #: A deferred evaluation, run only when an analysis needs the value (see decode.value_of).
    lazy: Any = None


@dataclass(eq=False, slots=True)
class CodeObject:
    """Bytecode, or a function made from it (marshal.loads, types.FunctionType, dill...)."""

    builder: Global
    offset: int
    called: bool = False
    #: A type that makes code when called (cloudpickle's `_builtin_type("CodeType")`):
    #: calling it builds code, it does not run any.
    factory: bool = False


@dataclass(eq=False, slots=True)
class Nested:
    """The result of a nested deserialisation (pickle.loads of embedded bytes)."""

    loader: Global
    offset: int


@dataclass(eq=False, slots=True)
class Extension:
    """A global named through the copyreg extension registry (EXT1/2/4)."""

    code: int
    offset: int


@dataclass(eq=False, slots=True)
class Persistent:
    """A persistent id (torch storages); resolved by the loader, not by pickle."""

    pid: Any
    offset: int


@dataclass(eq=False, slots=True)
class Buffer:
    """An out-of-band buffer (NEXT_BUFFER), supplied by the loader."""

    offset: int


class Broken:
    """Stands in for a value a malformed stream failed to provide."""


BROKEN = Broken()

LITERALS = (int, float, str, bytes, bytearray, bool, type(None), complex)
