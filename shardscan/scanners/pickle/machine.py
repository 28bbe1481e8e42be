"""A symbolic pickle machine: runs every opcode of protocols 0-5 without importing anything.

It keeps CPython's stack, metastack and memo, with imports and calls as symbolic values
(`values.py`), and records facts: which globals were imported and how they were used, what was
called, built, decoded or deserialised again. `judge.py` turns the facts into findings against
the policy. It reads through a `ReaderStream`, skips long literals instead of holding them, and
stops at the limits in `Limits`, so memory does not grow with the size of the file.

Two readings of FRAME exist: from bytes, CPython reads linearly and ignores frame boundaries;
from a file (torch.load, pickle.load), its C unpickler drops what is left of a frame when an
argument runs past it and reads the argument from after the frame. When a frame boundary is
crossed, the scanner walks the stream both ways.
"""

from __future__ import annotations

import codecs
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from shardscan.limits import Limits
from shardscan.policy import PicklePolicy
from shardscan.scanners import indicators
from shardscan.scanners.base import FormatError, ScanContext
from shardscan.scanners.pickle import decode
from shardscan.scanners.pickle.opcodes import (
    F8,
    I4,
    OPCODES,
    U1,
    U2,
    U4,
    U8,
)
from shardscan.scanners.pickle.values import (
    BROKEN,
    LITERALS,
    Blob,
    Buffer,
    CodeObject,
    Extension,
    Global,
    Made,
    Nested,
    Persistent,
)
from shardscan.storage.reader import ReaderStream

#: How often (in opcodes) the deadline is checked.
DEADLINE_EVERY = 1 << 16
#: Bytes of a skipped literal kept to recognise what it holds (a nested pickle's header).
BLOB_HEAD = 64
#: Persistent ids kept for container checks (torch storages); more are counted, not kept.
MAX_PERSISTENT_KEPT = 1_000_000
#: Secrets and executables reported per pickle, each; a hostile pickle cannot flood the report.
MAX_SECRETS = 8
#: Smallest bytes constant searched for machine code: no executable header is shorter.
MIN_EXECUTABLE = 64
#: Bytes of a constant's head read to validate an executable header (a PE's e_lfanew may point
#: a few KiB in).
EXECUTABLE_HEAD = 8192
#: The joblib class whose BUILD is followed by raw array bytes in the stream itself.
JOBLIB_WRAPPER = ("joblib.numpy_pickle", "NumpyArrayWrapper")

_STRUCTS = {U1: struct.Struct("<B"), U2: struct.Struct("<H"), I4: struct.Struct("<i"),
            U4: struct.Struct("<I"), U8: struct.Struct("<Q"), F8: struct.Struct(">d")}


class Truncated(Exception):
    """The stream ended inside an opcode or before STOP."""


class LimitExceeded(Exception):
    def __init__(self, what: str) -> None:
        super().__init__(what)
        self.what = what


@dataclass(slots=True)
class Event:
    """A fact the judge turns into a finding: rule id, offset, message, evidence."""

    rule_id: str
    offset: int
    message: str
    evidence: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class NestedPayload:
    """Bytes handed to a loader (or a pickle hidden in bytes): scanned as a pickle of its own."""

    offset: int
    loader: str
    data: bytes | None = None
    blob: Blob | None = None


@dataclass(slots=True)
class TorchTensor:
    """A `torch._utils._rebuild_tensor(_v2)` call: a view of a storage, which the weight
    analysis reads when it is contiguous. `name` is the state-dict key it was stored under."""

    storage: Any
    storage_offset: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]
    name: str = ""

    @property
    def contiguous(self) -> bool:
        expected, step = [], 1
        for dim in reversed(self.shape):
            expected.append(step)
            step *= dim
        return tuple(reversed(expected)) == self.stride or 0 in self.shape


@dataclass(slots=True)
class Facts:
    globals: list[Global] = field(default_factory=list)
    code_objects: list[CodeObject] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    nested: list[NestedPayload] = field(default_factory=list)
    persistent: list[Persistent] = field(default_factory=list)
    results: list[Any] = field(default_factory=list)
    #: Tensors rebuilt from storages, in the order they are made.
    tensors: list[TorchTensor] = field(default_factory=list)
    #: Legacy PyTorch files: where each storage's bytes are (key -> offset, length).
    storages: dict[str, tuple[int, int]] | None = None
    pickles: int = 0
    opcodes: int = 0
    frame_straddled: bool = False


class PickleMachine:
    def __init__(self, stream: ReaderStream, policy: PicklePolicy | None, limits: Limits,
                 ctx: ScanContext | None = None, *, file_mode: bool = False) -> None:
        self.s = stream
        self.policy = policy
        self.limits = limits
        self.ctx = ctx
        self.file_mode = file_mode
        self.facts = Facts()
        self.stack: list[Any] = []
        self.metastack: list[list[Any]] = []
        self.memo: dict[int, Any] = {}
        self.frame_end: int | None = None
        self._inconsistent = 0
        self.retained = 0
        #: Elements a container stands for once memo references are expanded (billion laughs).
        self.weights: dict[int, int] = {}
        self._expansion_reported = False
        self._secrets = self._executables = 0
        #: id of the Made that stands for each tensor -> (that Made, kept so the id stays its
        #: own, and the tensor).
        self._tensors: dict[int, tuple[Made, TorchTensor]] = {}
        self._dispatch: dict[int, Callable[[int], Any]] = {}
        for code, op in OPCODES.items():
            self._dispatch[code] = getattr(self, f"op_{op.name}")

    # ----- reading -------------------------------------------------------------------------

    def _enter_read(self, n: int) -> None:
        """Frame bookkeeping before an argument of `n` bytes (or a line, n = -1) is read."""
        end = self.frame_end
        if end is None:
            return
        pos = self.s.tell()
        if pos >= end:
            self.frame_end = None
        elif n < 0 or pos + n > end:
            self.facts.frame_straddled = True
            if self.file_mode:  # the C unpickler drops the rest of the frame
                self.s.skip(end - pos)
                self.frame_end = None

    def read(self, n: int) -> bytes:
        if self.frame_end is not None:
            self._enter_read(n)
        data = self.s.read(n)
        if len(data) < n:
            raise Truncated
        return data

    def readline(self) -> bytes:
        end = self.frame_end
        if end is not None and self.file_mode:
            # A line that does not end inside the frame is read from after it.
            pos = self.s.tell()
            probe = self.s.reader.read(pos, min(end - pos, self.limits.max_pickle_line))
            if b"\n" not in probe:
                self._enter_read(-1)
        line = self.s.readline(self.limits.max_pickle_line)
        if not line.endswith(b"\n"):
            if len(line) >= self.limits.max_pickle_line:
                raise LimitExceeded("line longer than the limit")
            raise Truncated
        if end is not None and self.s.tell() > end:
            self.facts.frame_straddled = True
        return line[:-1]

    def read_struct(self, kind: int) -> Any:
        if kind == U1:  # the most frequent argument: no struct, no slice
            if self.frame_end is not None:
                self._enter_read(1)
            b = self.s.read_byte()
            if b < 0:
                raise Truncated
            return b
        st = _STRUCTS[kind]
        return st.unpack(self.read(st.size))[0]

    def read_literal(self, n: int, kind: str) -> bytes | Blob:
        """A length-prefixed literal; long ones are skipped and remembered by position, so
        memory does not grow with the tensors a pickle carries."""
        if n < 0:
            raise FormatError("negative length", self.s.tell())
        limits = self.limits
        if n <= limits.small_literal:
            return self.read(n)
        if n <= limits.max_inline_literal and self.retained + n <= limits.max_retained_literals:
            self.retained += n
            return self.read(n)
        if self.frame_end is not None:
            self._enter_read(n)
        offset = self.s.tell()
        if n > self.s.remaining():
            raise Truncated
        head = self.s.read(BLOB_HEAD)
        self.s.skip(n - len(head))
        return Blob(offset, n, kind, head)

    # ----- stack ---------------------------------------------------------------------------

    def inconsistent(self, offset: int, what: str) -> None:
        self._inconsistent += 1
        if self._inconsistent <= 20:
            self.facts.events.append(Event("PKL306", offset, f"inconsistent pickle: {what}"))

    def pop(self, offset: int) -> Any:
        if self.stack:
            return self.stack.pop()
        self.inconsistent(offset, "stack underflow")
        return BROKEN

    def pop_mark(self, offset: int) -> list[Any]:
        items = self.stack
        if self.metastack:
            self.stack = self.metastack.pop()
        else:
            self.inconsistent(offset, "no MARK to pop to")
            self.stack = []
        return items

    def push(self, value: Any) -> None:
        self.stack.append(value)
        if len(self.stack) > self.limits.max_pickle_stack:
            raise LimitExceeded("stack deeper than the limit")

    def weigh(self, container: Any, items: Any) -> None:
        """Record how many elements `container` expands to; report an expansion attack once."""
        weights = self.weights
        total = weights.get(id(container), 1)
        for v in items:
            total += weights.get(id(v), 1) if isinstance(v, _CONTAINERS) else 1
        weights[id(container)] = total
        if total > self.limits.max_pickle_expansion and not self._expansion_reported:
            self._expansion_reported = True
            self.facts.events.append(Event(
                "PKL305", self.s.tell(), "memo references expand to more elements than the limit "
                "(billion laughs)", {"elements": total}))

    # ----- driving -------------------------------------------------------------------------

    def run_one(self) -> Any:
        """Run one pickle to STOP; returns the object it would produce."""
        self.stack, self.metastack, self.memo = [], [], {}
        self.weights = {}
        self.frame_end = None
        dispatch = self._dispatch
        s = self.s
        facts = self.facts
        limit = self.limits.max_pickle_opcodes
        while True:
            offset = s.tell()
            code = s.read_byte()
            if code < 0:
                raise Truncated
            handler = dispatch.get(code)
            if handler is None:
                raise FormatError(f"invalid opcode 0x{code:02x}", offset)
            facts.opcodes += 1
            if facts.opcodes > limit:
                raise LimitExceeded(f"more than {limit} opcodes")
            if self.ctx is not None and facts.opcodes % DEADLINE_EVERY == 0:
                self.ctx.check_deadline()
            if handler(offset) is STOP:
                return self.stack[-1] if self.stack else BROKEN

    # ----- opcodes: literals ---------------------------------------------------------------

    def op_PROTO(self, off: int) -> None:
        proto = self.read_struct(U1)
        if proto > 5:
            raise FormatError(f"unsupported pickle protocol {proto}", off)

    def op_FRAME(self, off: int) -> None:
        n = self.read_struct(U8)
        pos = self.s.tell()
        if self.frame_end is not None and pos - 9 < self.frame_end:
            self.facts.frame_straddled = True
        if n > self.s.remaining():
            self.facts.events.append(Event("PKL302", off, "FRAME claims more bytes than remain",
                                           {"frame_length": n, "remaining": self.s.remaining()}))
        self.frame_end = pos + n

    def op_STOP(self, off: int) -> object:
        return STOP

    def op_MARK(self, off: int) -> None:
        self.metastack.append(self.stack)
        self.stack = []
        if len(self.metastack) > self.limits.max_pickle_stack:
            raise LimitExceeded("MARK nesting deeper than the limit")

    def op_POP(self, off: int) -> None:
        if self.stack:
            self.stack.pop()
        else:
            self.pop_mark(off)

    def op_POP_MARK(self, off: int) -> None:
        self.pop_mark(off)

    def op_DUP(self, off: int) -> None:
        if not self.stack:
            self.inconsistent(off, "DUP on an empty stack")
        self.push(self.stack[-1] if self.stack else BROKEN)

    def op_NONE(self, off: int) -> None:
        self.push(None)

    def op_NEWTRUE(self, off: int) -> None:
        self.push(True)

    def op_NEWFALSE(self, off: int) -> None:
        self.push(False)

    def _text_number(self, off: int, parse: Callable[[str], Any]) -> None:
        line = self.readline()
        try:
            self.push(parse(line.decode("ascii")))
        except (ValueError, UnicodeDecodeError, OverflowError):
            self.inconsistent(off, f"bad number {line[:40]!r}")
            self.push(BROKEN)

    def op_INT(self, off: int) -> None:
        def parse(text: str) -> Any:
            if text in ("00", "01"):
                return text == "01"
            return int(text)
        self._text_number(off, parse)

    def op_LONG(self, off: int) -> None:
        self._text_number(off, lambda t: int(t[:-1] if t.endswith("L") else t))

    def op_FLOAT(self, off: int) -> None:
        self._text_number(off, float)

    def op_BININT(self, off: int) -> None:
        self.push(self.read_struct(I4))

    def op_BININT1(self, off: int) -> None:
        self.push(self.read_struct(U1))

    def op_BININT2(self, off: int) -> None:
        self.push(self.read_struct(U2))

    def op_BINFLOAT(self, off: int) -> None:
        self.push(self.read_struct(F8))

    def _long(self, n: int, off: int) -> None:
        if n > 1 << 16:  # a 64 KiB integer is already absurd; do not build larger ones
            self.s.skip(n)
            self.inconsistent(off, f"integer of {n} bytes")
            self.push(BROKEN)
            return
        self.push(int.from_bytes(self.read(n), "little", signed=True))

    def op_LONG1(self, off: int) -> None:
        self._long(self.read_struct(U1), off)

    def op_LONG4(self, off: int) -> None:
        n = self.read_struct(I4)
        if n < 0:
            raise FormatError("negative LONG4 length", off)
        self._long(n, off)

    def op_STRING(self, off: int) -> None:
        line = self.readline()
        if len(line) >= 2 and line[0] == line[-1] and line[:1] in (b"'", b'"'):
            try:
                self.push(self._text(codecs.escape_decode(line[1:-1])[0].decode("latin-1"), off))
                return
            except (ValueError, UnicodeDecodeError):
                pass
        self.inconsistent(off, "STRING argument is not a quoted literal")
        self.push(BROKEN)

    def _bytes_as_str(self, data: bytes | Blob, off: int) -> Any:
        # Protocol 0-2 strings: Python 3 decodes them (ASCII by default, latin-1 for torch).
        return data if isinstance(data, Blob) else self._text(data.decode("latin-1"), off)

    def _text(self, text: str, off: int) -> str:
        """A string constant, searched for secrets (BIN002) before it goes on the stack."""
        if self.limits.min_secret_text <= len(text) <= self.limits.max_secret_text and self._secrets < MAX_SECRETS:
            for secret in indicators.secrets_in(text, strong_only=True):
                self._secrets += 1
                self.facts.events.append(Event(indicators.SECRET_RULE, off,
                                               indicators.secret_message("string constant", secret),
                                               {"kind": secret.kind, "length": secret.length}))
        return text

    def _bytes(self, data: bytes | Blob, off: int) -> bytes | Blob:
        """A bytes constant kept in memory, checked for machine code (BIN001): pickled bytes
        are a dropper's way to ship a binary that a later stage writes out and runs, and such a
        binary sits at (or near) the start of the constant. Only the head is read: NumPy pickles
        hold megabytes of array bytes in constants, and searching them all doubled their scan."""
        if isinstance(data, bytes) and len(data) >= MIN_EXECUTABLE and self._executables < MAX_SECRETS:
            for hit in indicators.find_executables(data[:EXECUTABLE_HEAD]):
                if hit.native:
                    self._executables += 1
                    self.facts.events.append(Event("BIN001", off, f"bytes constant holds {hit.kind}: {hit.detail}",
                                                   {"kind": hit.kind, "at": hit.offset}))
                    break
        return data

    def op_BINSTRING(self, off: int) -> None:
        n = self.read_struct(I4)
        self.push(self._bytes_as_str(self.read_literal(n, "str"), off))

    def op_SHORT_BINSTRING(self, off: int) -> None:
        self.push(self._bytes_as_str(self.read_literal(self.read_struct(U1), "str"), off))

    def _unicode(self, data: bytes | Blob, off: int) -> Any:
        if isinstance(data, Blob):
            return data
        try:
            return self._text(data.decode("utf-8", "surrogatepass"), off)
        except UnicodeDecodeError:
            self.inconsistent(off, "string is not UTF-8")
            return BROKEN

    def op_UNICODE(self, off: int) -> None:
        line = self.readline()
        try:
            self.push(self._text(line.decode("raw-unicode-escape"), off))
        except UnicodeDecodeError:
            self.inconsistent(off, "UNICODE argument is not raw-unicode-escape")
            self.push(BROKEN)

    def op_BINUNICODE(self, off: int) -> None:
        self.push(self._unicode(self.read_literal(self.read_struct(U4), "str"), off))

    def op_SHORT_BINUNICODE(self, off: int) -> None:
        self.push(self._unicode(self.read_literal(self.read_struct(U1), "str"), off))

    def op_BINUNICODE8(self, off: int) -> None:
        self.push(self._unicode(self.read_literal(self.read_struct(U8), "str"), off))

    def op_BINBYTES(self, off: int) -> None:
        self.push(self._bytes(self.read_literal(self.read_struct(U4), "bytes"), off))

    def op_SHORT_BINBYTES(self, off: int) -> None:
        self.push(self._bytes(self.read_literal(self.read_struct(U1), "bytes"), off))

    def op_BINBYTES8(self, off: int) -> None:
        self.push(self._bytes(self.read_literal(self.read_struct(U8), "bytes"), off))

    def op_BYTEARRAY8(self, off: int) -> None:
        self.push(self._bytes(self.read_literal(self.read_struct(U8), "bytes"), off))

    def op_NEXT_BUFFER(self, off: int) -> None:
        self.push(Buffer(off))

    def op_READONLY_BUFFER(self, off: int) -> None:
        pass

    # ----- opcodes: containers -------------------------------------------------------------

    def op_EMPTY_LIST(self, off: int) -> None:
        self._push_container([], ())

    def op_EMPTY_DICT(self, off: int) -> None:
        self._push_container({}, ())

    def op_EMPTY_TUPLE(self, off: int) -> None:
        self.push(())

    def op_EMPTY_SET(self, off: int) -> None:
        self._push_container(_SymSet(), ())

    def _push_container(self, container: Any, items: Any) -> None:
        self.weights[id(container)] = 1  # a new object: forget whatever had this id before
        self.weigh(container, items)
        self.push(container)

    def op_LIST(self, off: int) -> None:
        items = self.pop_mark(off)
        self._push_container(items, items)

    def op_TUPLE(self, off: int) -> None:
        t = tuple(self.pop_mark(off))
        self._push_container(t, t)

    def op_TUPLE1(self, off: int) -> None:
        t = (self.pop(off),)
        self._push_container(t, t)

    def op_TUPLE2(self, off: int) -> None:
        b = self.pop(off)
        t = (self.pop(off), b)
        self._push_container(t, t)

    def op_TUPLE3(self, off: int) -> None:
        c = self.pop(off)
        b = self.pop(off)
        t = (self.pop(off), b, c)
        self._push_container(t, t)

    def op_FROZENSET(self, off: int) -> None:
        items = self.pop_mark(off)
        self._push_container(_SymSet(items), items)

    def op_DICT(self, off: int) -> None:
        items = self.pop_mark(off)
        d: dict[Any, Any] = {}
        self._setitems(d, items, off)
        self._push_container(d, items)

    def _setitems(self, target: Any, items: list[Any], off: int) -> None:
        if len(items) % 2:
            self.inconsistent(off, "odd number of items for a dict")
        if isinstance(target, Made):
            self._note_setitem(target, off)
            self._name_tensors(items)
            return
        if not isinstance(target, dict):
            self.inconsistent(off, f"SETITEM(S) on {type(target).__name__}")
            return
        self._name_tensors(items)
        for i in range(0, len(items) - 1, 2):
            try:
                target[items[i]] = items[i + 1]
            except TypeError:
                self.inconsistent(off, "unhashable dict key")
        self.weigh(target, items)

    def _name_tensors(self, items: list[Any]) -> None:
        """State dicts are OrderedDicts filled by SETITEMS: their keys name the tensors."""
        if not self._tensors:
            return
        for i in range(0, len(items) - 1, 2):
            known = self._tensors.get(id(items[i + 1]))
            if known is not None and isinstance(items[i], str) and not known[1].name:
                known[1].name = items[i]

    def _note_setitem(self, target: Made, off: int) -> None:
        # Items given to an instance are state, like BUILD: the class's own __setitem__ runs.
        func = target.func
        if isinstance(func, Global):
            func.uses.add("build")

    def op_SETITEM(self, off: int) -> None:
        value = self.pop(off)
        key = self.pop(off)
        self._setitems(self.stack[-1] if self.stack else BROKEN, [key, value], off)

    def op_SETITEMS(self, off: int) -> None:
        items = self.pop_mark(off)
        self._setitems(self.stack[-1] if self.stack else BROKEN, items, off)

    def _extend(self, target: Any, items: list[Any], off: int) -> None:
        if isinstance(target, list):
            target.extend(items)
            self.weigh(target, items)
        elif isinstance(target, _SymSet):
            target.items.extend(items)
            self.weigh(target, items)
        elif isinstance(target, Made):
            self._note_setitem(target, off)
        else:
            self.inconsistent(off, f"APPEND(S)/ADDITEMS on {type(target).__name__}")

    def op_APPEND(self, off: int) -> None:
        value = self.pop(off)
        self._extend(self.stack[-1] if self.stack else BROKEN, [value], off)

    def op_APPENDS(self, off: int) -> None:
        items = self.pop_mark(off)
        self._extend(self.stack[-1] if self.stack else BROKEN, items, off)

    def op_ADDITEMS(self, off: int) -> None:
        items = self.pop_mark(off)
        self._extend(self.stack[-1] if self.stack else BROKEN, items, off)

    # ----- opcodes: memo -------------------------------------------------------------------

    def _put(self, index: int, off: int) -> None:
        if not self.stack:
            self.inconsistent(off, "memo PUT on an empty stack")
            return
        if index not in self.memo and len(self.memo) >= self.limits.max_pickle_memo:
            raise LimitExceeded("more memo entries than the limit")
        self.memo[index] = self.stack[-1]

    def _get(self, index: Any, off: int) -> None:
        try:
            self.push(self.memo[index])
        except (KeyError, TypeError):
            self.inconsistent(off, f"memo key {index!r} was never stored")
            self.push(BROKEN)

    def op_PUT(self, off: int) -> None:
        line = self.readline()
        try:
            self._put(int(line), off)
        except ValueError:
            self.inconsistent(off, "PUT argument is not an integer")

    def op_BINPUT(self, off: int) -> None:
        self._put(self.read_struct(U1), off)

    def op_LONG_BINPUT(self, off: int) -> None:
        self._put(self.read_struct(U4), off)

    def op_MEMOIZE(self, off: int) -> None:
        self._put(len(self.memo), off)

    def op_GET(self, off: int) -> None:
        line = self.readline()
        try:
            self._get(int(line), off)
        except ValueError:
            self.inconsistent(off, "GET argument is not an integer")
            self.push(BROKEN)

    def op_BINGET(self, off: int) -> None:
        self._get(self.read_struct(U1), off)

    def op_LONG_BINGET(self, off: int) -> None:
        self._get(self.read_struct(U4), off)

    # ----- opcodes: imports and calls --------------------------------------------------------

    def make_global(self, module: str, name: str, off: int, opcode: str) -> Global:
        stray_cr = module.endswith("\r") or name.endswith("\r")
        module, name = module.rstrip("\r"), name.rstrip("\r")
        verdict = (self.policy.judge(module, name) if self.policy is not None
                   else None)
        g = Global(module, name, off, opcode, verdict, carriage_return=stray_cr)  # type: ignore[arg-type]
        self.facts.globals.append(g)
        return g

    def _line_name(self) -> str:
        # CPython strips only the newline; make_global judges a stray '\r' separately.
        return self.readline().decode("utf-8", "surrogateescape")

    def op_GLOBAL(self, off: int) -> None:
        module = self._line_name()
        name = self._line_name()
        self.push(self.make_global(module, name, off, "GLOBAL"))

    def op_STACK_GLOBAL(self, off: int) -> None:
        name = self.pop(off)
        module = self.pop(off)
        literal = isinstance(module, str) and isinstance(name, str)
        if not literal:
            module_v, name_v = decode.value_of(module), decode.value_of(name)
            self.facts.events.append(Event(
                "PKL203", off, "STACK_GLOBAL operands are computed at load time",
                {"module": _describe(module), "name": _describe(name)}))
            module = module_v if isinstance(module_v, str) else "<computed>"
            name = name_v if isinstance(name_v, str) else "<computed>"
        self.push(self.make_global(module, name, off, "STACK_GLOBAL"))

    def op_INST(self, off: int) -> None:
        module = self._line_name()
        name = self._line_name()
        cls = self.make_global(module, name, off, "INST")
        args = tuple(self.pop_mark(off))
        self.push(self.call(cls, args, off, "INST"))

    def op_OBJ(self, off: int) -> None:
        items = self.pop_mark(off)
        if not items:
            self.inconsistent(off, "OBJ without a class")
            self.push(BROKEN)
            return
        self.push(self.call(items[0], tuple(items[1:]), off, "OBJ"))

    def op_REDUCE(self, off: int) -> None:
        args = self.pop(off)
        func = self.pop(off)
        self.push(self.call(func, args, off, "REDUCE"))

    def op_NEWOBJ(self, off: int) -> None:
        args = self.pop(off)
        cls = self.pop(off)
        self.push(self.new(cls, args, off, "NEWOBJ"))

    def op_NEWOBJ_EX(self, off: int) -> None:
        kwargs = self.pop(off)
        args = self.pop(off)
        cls = self.pop(off)
        self.push(self.new(cls, (args, kwargs), off, "NEWOBJ_EX"))

    def op_BUILD(self, off: int) -> None:
        state = self.pop(off)
        target = self.stack[-1] if self.stack else BROKEN
        if isinstance(target, Global):
            self.facts.events.append(Event(
                "PKL207", off, f"BUILD sets attributes on {target.qualname}",
                {"module": target.module, "name": target.name, "opcode": "BUILD"}))
            target.uses.add("patched")
        elif isinstance(target, Made):
            target.state = state
            func = target.func
            if isinstance(func, Global):
                func.uses.add("build")
                if (func.module, func.name) == JOBLIB_WRAPPER:
                    self._joblib_array(target, off)
        elif isinstance(target, (CodeObject, Nested)):
            pass  # state on a function: its __dict__/closure; the builder is judged already

    def op_PERSID(self, off: int) -> None:
        line = self.readline()
        self._persistent(line.decode("latin-1"), off)

    def op_BINPERSID(self, off: int) -> None:
        self._persistent(self.pop(off), off)

    def _persistent(self, pid: Any, off: int) -> None:
        p = Persistent(pid, off)
        if len(self.facts.persistent) < MAX_PERSISTENT_KEPT:
            self.facts.persistent.append(p)
        self.push(p)

    def _ext(self, code: int, off: int) -> None:
        self.facts.events.append(Event("PKL206", off, f"extension registry code {code}",
                                       {"code": code}))
        self.push(Extension(code, off))

    def op_EXT1(self, off: int) -> None:
        self._ext(self.read_struct(U1), off)

    def op_EXT2(self, off: int) -> None:
        self._ext(self.read_struct(U2), off)

    def op_EXT4(self, off: int) -> None:
        self._ext(self.read_struct(I4), off)

    # ----- semantics of calls ----------------------------------------------------------------

    def role(self, role: str, g: Global) -> str | None:
        return None if self.policy is None else self.policy.role(role, g.module, g.name)

    def new(self, cls: Any, args: Any, off: int, opcode: str) -> Any:
        """cls.__new__(cls, *args): allocation without the constructor."""
        if isinstance(cls, Global):
            cls.uses.add("new" if opcode == "NEWOBJ" else "new-ex")
            self._scan_arguments(cls, args, off)
        elif isinstance(cls, CodeObject):
            pass  # an instance of a class rebuilt from bytecode: its methods stay latent
        elif isinstance(cls, (Nested, Made)):
            return self.call(cls, args, off, opcode)
        elif not isinstance(cls, Extension):
            self.inconsistent(off, f"{opcode} of a {type(cls).__name__}")
        return Made(cls, args, off, "new")

    def call(self, func: Any, args: Any, off: int, opcode: str) -> Any:
        if isinstance(func, CodeObject) and func.factory:
            return self._build_code(func.builder, args, off)
        if isinstance(func, CodeObject):
            func.called = True
            self.facts.events.append(Event("PKL104", off, "a function built from bytecode is called",
                                           {"builder": func.builder.qualname, "opcode": opcode}))
            return Made(func, args, off, "call")
        if isinstance(func, Nested):
            self.facts.events.append(Event("PKL105", off, "the result of a nested deserialisation is called",
                                           {"loader": func.loader.qualname, "opcode": opcode}))
            return Made(func, args, off, "call")
        if isinstance(func, Made):
            inner = func.func
            if isinstance(inner, Global):
                inner.uses.add("call")
            self._forward(args, off, forwarder=False)
            return Made(func, args, off, "call")
        if not isinstance(func, Global):
            if not isinstance(func, Extension):
                self.inconsistent(off, f"{opcode} calls a {type(func).__name__}")
            return Made(func, args, off, "call")

        attribute = self._literal_getattr(func, args, off)
        if attribute is not None:
            return attribute
        if self.role("reconstructors", func) is not None:
            func.uses.add("call")
            if isinstance(args, tuple) and args:
                return self.new(args[0], args[1:], off, "NEWOBJ")
            return Made(func, args, off, "new")
        decoder = self.role("decoders", func) or decode.pure_function(func.module, func.name)
        if decoder is not None:  # pure: judged by what its result feeds, not as a call
            func.uses.add("decode")
            made = Made(func, args, off, "call")
            made.lazy = decode.Deferred(decoder, args, self.limits, self.s.reader)
            return made
        func.uses.add("call")
        builder = self.role("builders", func)
        if builder == "type-by-name":
            return CodeObject(func, off, factory=True)
        if builder is not None:
            return self._build_code(func, args, off)
        if self.role("loaders", func) is not None:
            self._nested(func, args, off)
            return Nested(func, off)
        self._forward(args, off, forwarder=self.role("forwarders", func) is not None)
        self._scan_arguments(func, args, off)
        made = Made(func, args, off, "call")
        if func.module == "torch._utils" and func.name in TORCH_REBUILDS:
            self._tensor(made, func.name, args)
        return made

    def _tensor(self, made: Made, rebuild: str, args: Any) -> None:
        """Record `_rebuild_tensor(storage, offset, size, stride)`, or the parameter wrapping
        one (`_rebuild_parameter(tensor, ...)` names the same tensor)."""
        if len(self._tensors) >= MAX_PERSISTENT_KEPT or not isinstance(args, tuple) or not args:
            return
        if rebuild.startswith("_rebuild_parameter"):
            inner = self._tensors.get(id(args[0]))
            if inner is not None:
                self._tensors[id(made)] = (made, inner[1])
            return
        if len(args) < 4:
            return
        storage, offset, size, stride = args[:4]
        if (isinstance(storage, Persistent) and type(offset) is int and _ints(size) and _ints(stride)
                and len(size) == len(stride)):
            tensor = TorchTensor(storage.pid, offset, size, stride)
            self._tensors[id(made)] = (made, tensor)
            self.facts.tensors.append(tensor)

    def _build_code(self, builder: Global, args: Any, off: int) -> CodeObject:
        code = CodeObject(builder, off)
        absorbed = {id(v) for v in _shallow(args) if isinstance(v, CodeObject)}
        if absorbed:  # bytecode turned into a function is one latent payload, not two
            self.facts.code_objects = [c for c in self.facts.code_objects if id(c) not in absorbed]
        self.facts.code_objects.append(code)
        self._forward(args, off, forwarder=False)
        return code

    def _literal_getattr(self, func: Global, args: Any, off: int) -> Global | None:
        """`getattr(<global>, "<name>")` is how protocol 2 pickles bound methods and nested
        names (`zoneinfo.ZoneInfo._unpickle`): judge it as the global `<global>.<name>`.
        Dunder names and computed objects stay a getattr call, judged as import machinery."""
        if self.policy is None or (self.policy.canonical_module(func.module), func.name) != ("builtins", "getattr"):
            return None
        if not (isinstance(args, tuple) and len(args) == 2 and isinstance(args[0], Global)
                and isinstance(args[1], str) and args[1].isidentifier() and not args[1].startswith("__")):
            return None
        func.uses.add("attribute")
        return self.make_global(args[0].module, f"{args[0].name}.{args[1]}", off, "getattr")

    def _forward(self, args: Any, off: int, *, forwarder: bool) -> None:
        """Callables handed to a forwarder (map, atexit.register, Thread(target=)) are called."""
        for value in _shallow(args):
            if isinstance(value, CodeObject) and forwarder and not value.called:
                value.called = True
                self.facts.events.append(Event(
                    "PKL104", off, "a function built from bytecode is handed to a callable that runs it",
                    {"builder": value.builder.qualname}))
            elif isinstance(value, Global):
                value.uses.add("call" if forwarder else "passed")
            elif isinstance(value, Nested) and forwarder:
                self.facts.events.append(Event(
                    "PKL105", off, "the result of a nested deserialisation is handed to a callable",
                    {"loader": value.loader.qualname}))

    def _scan_arguments(self, func: Global, args: Any, off: int) -> None:
        """Bytes that hold a pickle, handed to anything not known to be safe, are scanned."""
        if func.verdict is not None and func.verdict.kind == "allow":
            return
        for value in _shallow(args):
            data = decode.value_of(value)
            if isinstance(data, (bytes, Blob)) and _looks_pickled(data):
                self._queue_nested(func, data, off)

    def _nested(self, loader: Global, args: Any, off: int) -> None:
        for value in _shallow(args)[:1]:
            data = decode.value_of(value)
            if isinstance(data, str):
                data = data.encode("latin-1", "replace")
            if isinstance(data, (bytes, Blob)):
                self._queue_nested(loader, data, off)

    def _queue_nested(self, loader: Global, data: bytes | Blob, off: int) -> None:
        if isinstance(data, Blob):
            self.facts.nested.append(NestedPayload(off, loader.qualname, blob=data))
        else:
            self.facts.nested.append(NestedPayload(off, loader.qualname, data=bytes(data)))

    def _joblib_array(self, wrapper: Made, off: int) -> None:
        """joblib writes array bytes straight after the wrapper's BUILD; step over them.

        Object arrays are written as a nested pickle in the same stream, which is walked.
        """
        state = wrapper.state if isinstance(wrapper.state, dict) else {}
        shape = state.get("shape")
        itemsize, has_object = decode.numpy_itemsize(state.get("dtype"))
        if has_object:
            inner = PickleMachine(self.s, self.policy, self.limits, self.ctx, file_mode=self.file_mode)
            inner.facts = self.facts
            inner.run_one()
            return
        if not isinstance(shape, tuple) or not all(isinstance(d, int) and d >= 0 for d in shape):
            self.inconsistent(off, "joblib array wrapper without a shape")
            return
        if itemsize is None:
            self.inconsistent(off, "joblib array wrapper with an unknown dtype")
            return
        count = 1
        for d in shape:
            count *= d
        if state.get("numpy_array_alignment_bytes") is not None and state.get("allow_mmap", True):
            pad = self.read_struct(U1)
            self.s.skip(pad)
        nbytes = count * itemsize
        if self.s.skip(nbytes) < nbytes:
            raise Truncated


STOP = object()
#: torch._utils functions that make a tensor from a storage (parameters wrap a tensor).
TORCH_REBUILDS = frozenset({"_rebuild_tensor", "_rebuild_tensor_v2", "_rebuild_parameter",
                            "_rebuild_parameter_with_state"})


def _ints(value: Any) -> bool:
    return isinstance(value, tuple) and all(type(v) is int and v >= 0 for v in value)


class _SymSet:
    """A set or frozenset whose items may be unhashable symbolic values."""

    __slots__ = ("items",)

    def __init__(self, items: list[Any] | None = None) -> None:
        self.items = items or []


_CONTAINERS = (list, tuple, dict, _SymSet)


def _shallow(args: Any) -> list[Any]:
    """Positional values and keyword values of a call's arguments, one level deep."""
    if isinstance(args, tuple):
        out: list[Any] = []
        for a in args:
            if isinstance(a, dict):
                out.extend(a.values())
            elif isinstance(a, (tuple, list)):
                out.append(a)
                out.extend(a)
            else:
                out.append(a)
        return out
    if isinstance(args, list):
        return list(args)
    return [args]


def _looks_pickled(data: bytes | Blob) -> bool:
    head = data.head if isinstance(data, Blob) else data[:2]
    return len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5


def _describe(value: Any) -> str:
    if isinstance(value, Made) and isinstance(value.func, Global):
        return f"result of {value.func.qualname}(...)"
    if isinstance(value, Global):
        return value.qualname
    if isinstance(value, LITERALS):
        return repr(value)[:80]
    return type(value).__name__


__all__ = ["Facts", "LimitExceeded", "PickleMachine", "Truncated"]
