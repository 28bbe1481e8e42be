"""Format detection: content first, extension second.

The planner reads a small head and tail of each object and asks this module what the bytes
are. Names only break ties for content that carries no magic (protocol 0/1 pickles, ONNX
protobuf); a pickle renamed `.safetensors` is still a pickle.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass

HEAD_BYTES = 64 * 1024
TAIL_BYTES = 64 * 1024 + 22  # the zip end record and the largest comment it may carry
TEXT_SAMPLE = 4096  # bytes that must decode as UTF-8 for content to count as text

PICKLE = "pickle"
ZIP = "zip"
TAR = "tar"
SEVENZ = "7z"
GZIP = "gzip"
BZIP2 = "bz2"
XZ = "xz"
LZMA = "lzma"
ZLIB = "zlib"
ZSTD = "zstd"
LZ4 = "lz4"
NPY = "npy"
HDF5 = "hdf5"
SAFETENSORS = "safetensors"
GGUF = "gguf"
ONNX = "onnx"
GGML = "ggml"
TFLITE = "tflite"
TF_GRAPH = "tensorflow"           # SavedModel saved_model.pb, frozen GraphDef .pb, MetaGraph .meta
MSGPACK = "msgpack"               # Flax/JAX checkpoints
OCDBT = "ocdbt"                   # TensorStore OCDBT manifests and data files (Orbax checkpoints)
PMML = "pmml"
OPAQUE_ENGINE = "engine"          # TensorRT engines/plans: opaque compiled kernels, by extension
ELF = "elf"
PE = "pe"
MACHO = "macho"
TEXT = "text"
EMPTY = "empty"
UNKNOWN = "unknown"

#: Single compressed streams (one member inside).
COMPRESSED_STREAMS = (GZIP, BZIP2, XZ, LZMA, ZLIB, ZSTD, LZ4)
#: Formats recognised but not analysed by this version.
#: (the fallback scanner takes those that no scanner claims)
NOT_ANALYSED = (HDF5, SAFETENSORS, GGUF, GGML, ONNX, TEXT, TFLITE, TF_GRAPH, MSGPACK, PMML, OPAQUE_ENGINE)
EXECUTABLES = (ELF, PE, MACHO)

#: (offset, magic, format), checked in order. One row per signature.
MAGIC: tuple[tuple[int, bytes, str], ...] = (
    (0, b"PK\x03\x04", ZIP),
    (0, b"PK\x05\x06", ZIP),          # empty archive: end record only
    (0, b"PK\x07\x08", ZIP),          # spanned-archive marker before the first header
    (0, b"7z\xbc\xaf\x27\x1c", SEVENZ),
    (0, b"\x1f\x8b", GZIP),
    (0, b"BZh", BZIP2),
    (0, b"\xfd7zXZ\x00", XZ),
    (0, b"\x28\xb5\x2f\xfd", ZSTD),
    (0, b"\x04\x22\x4d\x18", LZ4),
    (0, b"ZF0x", ZLIB),               # joblib < 0.10: "ZF" + hex length, then a zlib stream
    (0, b"\x93NUMPY", NPY),
    (0, b"\x89HDF\r\n\x1a\n", HDF5),
    (0, b"GGUF", GGUF),
    # Legacy llama.cpp files: the magic is a little-endian uint32, so the bytes read reversed.
    (0, b"lmgg", GGML),               # 'ggml', unversioned
    (0, b"fmgg", GGML),               # 'ggmf'
    (0, b"tjgg", GGML),               # 'ggjt'
    (0, b"algg", GGML),               # 'ggla', LoRA adapters
    (0, b"asgg", GGML),               # 'ggsa'
    (0, b"\x7fELF", ELF),
    (0, b"\xfe\xed\xfa\xce", MACHO),
    (0, b"\xfe\xed\xfa\xcf", MACHO),
    (0, b"\xce\xfa\xed\xfe", MACHO),
    (0, b"\xcf\xfa\xed\xfe", MACHO),
    (257, b"ustar", TAR),
    (4, b"TFL3", TFLITE),             # the flatbuffer file identifier
    (0, b"\x0c\xdb\x3a\x2a", OCDBT),    # OCDBT manifest (uint32be 0x0cdb3a2a)
    (0, b"\x0c\xdb\x20\xde", OCDBT),    # OCDBT B+tree node, first in most data files
    (0, b"\x0c\xdb\x12\x34", OCDBT),    # OCDBT version tree node
)

#: Extensions that decide only when the content has no magic of its own.
EXTENSIONS: dict[str, str] = {
    ".pkl": PICKLE, ".pickle": PICKLE, ".p": PICKLE, ".dill": PICKLE, ".joblib": PICKLE,
    ".pt": PICKLE, ".pth": PICKLE,
    ".sav": PICKLE, ".onnx": ONNX, ".safetensors": SAFETENSORS, ".gguf": GGUF,
    ".ggml": GGML, ".ggmf": GGML, ".ggjt": GGML, ".ggla": GGML, ".ggsa": GGML,
    ".tflite": TFLITE, ".pb": TF_GRAPH, ".meta": TF_GRAPH, ".msgpack": MSGPACK, ".flax": MSGPACK,
    ".npy": NPY, ".h5": HDF5, ".hdf5": HDF5, ".keras": ZIP, ".npz": ZIP, ".zip": ZIP,
    ".tar": TAR, ".7z": SEVENZ,
    ".engine": OPAQUE_ENGINE, ".plan": OPAQUE_ENGINE, ".trt": OPAQUE_ENGINE,
}

#: Code and configuration read as text even when they are not UTF-8: the text scanner judges
#: them, where unknown content would only be reported.
SOURCE_EXTENSIONS = frozenset({".py", ".json", ".yaml", ".yml", ".jinja", ".cfg", ".toml"})

#: Extensions of formats that cannot hold a pickle: a pickle behind one is spoofing.
CODE_FREE_EXTENSIONS = frozenset({
    ".safetensors", ".gguf", ".ggml", ".onnx", ".json", ".msgpack", ".h5", ".hdf5", ".npy",
    ".txt", ".md", ".yaml", ".yml", ".tflite", ".png", ".jpg", ".csv", ".jinja",
})


@dataclass(frozen=True, slots=True)
class Detection:
    #: Every format the bytes can be read as, the primary one first (a polyglot has two).
    formats: tuple[str, ...]
    #: "content" or "extension": what decided the primary format.
    by: str
    #: Pickle protocol from PROTO, or 0/1 for a text pickle found by trial.
    protocol: int | None = None

    @property
    def format(self) -> str:
        return self.formats[0]


def extension(name: str) -> str:
    base = name.rsplit("/", 1)[-1].lower()
    dot = base.rfind(".")
    return base[dot:] if dot > 0 else ""


#: OCDBT data files: `d/` and a 128-bit random id in lowercase hex.
_OCDBT_DATA = re.compile(r"(?:^|/)d/[0-9a-f]{32}$")


def _is_pe(head: bytes) -> bool:
    if head[:2] != b"MZ" or len(head) < 0x40:
        return False
    (pe_offset,) = struct.unpack_from("<I", head, 0x3C)
    return pe_offset + 4 <= len(head) and head[pe_offset : pe_offset + 4] == b"PE\x00\x00"


def _is_zlib(head: bytes) -> bool:
    return len(head) >= 2 and head[0] == 0x78 and head[1] in (0x01, 0x5E, 0x9C, 0xDA)


def _is_lzma_alone(head: bytes, size: int) -> bool:
    # .lzma (joblib 'lzma'): properties byte 0x5d, dictionary size, then the uncompressed
    # size, which is either unknown (all ones) or plausible for the file.
    if len(head) < 13 or head[0] != 0x5D:
        return False
    (dict_size,) = struct.unpack_from("<I", head, 1)
    (usize,) = struct.unpack_from("<Q", head, 5)
    return dict_size & (dict_size - 1) == 0 and (usize == 2**64 - 1 or usize < 2**48)


def _is_safetensors(head: bytes, size: int) -> bool:
    if len(head) < 10:
        return False
    (n,) = struct.unpack_from("<Q", head, 0)
    return 2 <= n <= size - 8 and head[8:9] == b"{"


def _is_pmml(head: bytes, ext: str) -> bool:
    return ext == ".pmml" or b"<PMML" in head[:TEXT_SAMPLE]


def _has_zip_end(tail: bytes) -> bool:
    return b"PK\x05\x06" in tail


def _is_text(head: bytes) -> bool:
    if not head or b"\x00" in head:
        return False
    sample = head[:TEXT_SAMPLE]
    try:
        sample.decode("utf-8")
    except UnicodeDecodeError as exc:  # a multi-byte character cut by the sample is still text
        return len(head) > TEXT_SAMPLE and exc.start >= TEXT_SAMPLE - 3
    return True


def detect(head: bytes, name: str, size: int, tail: bytes = b"") -> Detection:
    """What `head` (the first bytes) and `tail` (the last bytes) of an object are."""
    from shardscan.scanners.pickle.probe import probe_pickle

    if size == 0:
        return Detection((EMPTY,), "content")
    primary: str | None = None
    protocol: int | None = None
    for offset, magic, fmt in MAGIC:
        if head[offset : offset + len(magic)] == magic:
            primary = fmt
            break
    if primary is None:
        # SafeTensors first: a header length of 0x280..0x580 starts with what reads as PROTO 2-5.
        if _is_safetensors(head, size):
            primary = SAFETENSORS
        elif len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
            primary, protocol = PICKLE, head[1]
        elif _is_pe(head):
            primary = PE
        elif _is_zlib(head):
            primary = ZLIB
        elif _is_lzma_alone(head, size):
            primary = LZMA
    if primary is None:
        probed = probe_pickle(head, complete=size <= len(head))
        if probed is not None:
            primary, protocol = PICKLE, probed
    by = "content"
    if primary is None:
        by = "extension"
        ext = extension(name)
        if _has_zip_end(tail):
            primary = ZIP
        elif EXTENSIONS.get(ext) in (ONNX, TF_GRAPH, MSGPACK):  # binary formats without magic
            primary = EXTENSIONS[ext]
        elif _is_text(head):
            primary, by = (PMML, "content") if _is_pmml(head, ext) else (TEXT, "content")
        elif ext in SOURCE_EXTENSIONS and b"\x00" not in head:
            primary = TEXT  # code or config in a legacy encoding (latin-1 with a coding cookie)
        else:
            primary = EXTENSIONS.get(ext, UNKNOWN)
            if primary == UNKNOWN:
                by = "content"
    if primary in (UNKNOWN, ZSTD) and _OCDBT_DATA.search(name):
        # An OCDBT data file (`d/<128-bit hex id>`) starting with a raw value (a zarr chunk, often a
        # zstd frame): nodes and more values follow, which a single-stream reader would miss.
        primary, by = OCDBT, "extension"
    primary, by = _sniff_without_magic(primary, by, head, size, tail)
    formats = [primary]
    if primary == PICKLE and _has_zip_end(tail):
        formats.append(ZIP)
    return Detection(tuple(formats), by, protocol)


#: ONNX ModelProto top-level fields: number -> wire type (0 varint, 2 length-delimited).
_ONNX_FIELDS = {1: 0, 2: 2, 3: 2, 4: 2, 5: 0, 6: 2, 7: 2, 8: 2, 14: 2, 20: 2, 25: 2, 26: 2}


def _is_onnx(head: bytes, size: int) -> bool:
    """An ONNX ModelProto: `ir_version` (field 1, a small varint) first, as every protobuf
    writer orders it, then only ModelProto fields with their wire types, and a graph or an
    opset import among them; length prefixes must fit the object."""
    if len(head) < 4 or head[0] != 0x08 or not 1 <= head[1] <= 0x40:
        return False
    pos, seen_graph = 2, False
    while pos < len(head):
        tag = value = shift = 0
        for key in (True, False):  # the tag, then a varint value or a length
            start, value, shift = pos, 0, 0
            while pos < len(head) and pos - start < 10:
                b = head[pos]
                pos += 1
                value |= (b & 0x7F) << shift
                shift += 7
                if b < 0x80:
                    break
            else:
                return seen_graph and pos >= len(head)  # cut by the end of the head, or too long
            if key:
                tag = value
                if _ONNX_FIELDS.get(tag >> 3) != tag & 7:
                    return False
        seen_graph = seen_graph or (tag >> 3) in (7, 8)
        if tag & 7 == 2:
            if value > size - pos:
                return False
            pos += value
    return seen_graph


def _sniff_without_magic(primary: str, by: str, head: bytes, size: int, tail: bytes) -> tuple[str, str]:
    """ONNX, TensorFlow protobufs and Flax msgpack found by content where nothing stronger
    decided: no magic, no zip end record (a zip after a protobuf-looking head stays a zip), only
    an extension guess or plain text. ONNX is asked first: its sniff is the strictest, and a
    TensorFlow sniff must never take an ONNX file."""
    if primary == ONNX or (by == "content" and primary not in (TEXT, UNKNOWN)) or _has_zip_end(tail):
        return primary, by
    for fmt, sniff in ((ONNX, _is_onnx), (TF_GRAPH, _is_tf_graph), (MSGPACK, _is_msgpack)):
        if sniff(head, size):
            return fmt, "content"
    return primary, by


# --- TensorFlow protobufs ---------------------------------------------------------------------

#: Protobuf wire types: varint, 64-bit, length-delimited, 32-bit (groups are never written).
_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5
_FIXED_WIDTH = {_I64: 8, _I32: 4}
#: Longest node, op and op-definition name taken as an identifier (TensorFlow's own names are
#: scoped paths, rarely past a few hundred characters).
MAX_TF_NAME = 1024
#: Highest SavedModel schema version sniffed (TensorFlow writes 1).
MAX_SAVED_MODEL_SCHEMA = 16
#: Top-level fields of a MetaGraphDef (1 meta_info_def, 2 graph_def, 3 saver_def,
#: 4 collection_def, 5 signature_def, 6 asset_file_def, 7 object_graph_def): all messages.
_META_GRAPH_FIELDS = range(1, 8)
#: Top-level fields of a GraphDef (1 node, 2 library, 3 deprecated version, 4 versions) or of a
#: MetaGraphDef, with the wire types they may have: a file holds one or the other.
_TF_TOP_FIELDS = {n: (_LEN,) for n in _META_GRAPH_FIELDS} | {3: (_VARINT, _LEN)}
#: MetaInfoDef fields and their wire types.
_META_INFO_FIELDS = {1: _LEN, 2: _LEN, 3: _LEN, 4: _LEN, 5: _LEN, 6: _LEN, 7: _VARINT, 8: _LEN}
#: Node and op names: letters, digits and TensorFlow's scope and suffix punctuation.
_TF_NAME_CHARS = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_./-:>")


class _NotThis(Exception):
    """The bytes break the structure a sniffer expects."""


def _read_varint(buf: bytes, pos: int, end: int) -> tuple[int, int] | None:
    """(value, next position), or None when `end` cuts the varint; over 10 bytes is invalid."""
    value = shift = 0
    for i in range(pos, min(end, pos + 10)):
        b = buf[i]
        value |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            return value, i + 1
    if end - pos >= 10:
        raise _NotThis
    return None


def _proto_fields(buf: bytes, pos: int, end: int, limit: int) -> list[tuple[int, int, int, int]]:
    """(number, wire type, varint value or length, payload position) of the fields in
    buf[pos:end]. `limit` is where the message really ends: a length must fit it, and a field
    cut by `end` short of `limit` (the end of the head) ends the list instead of failing."""
    out: list[tuple[int, int, int, int]] = []
    while pos < end:
        tag = _read_varint(buf, pos, end)
        if tag is None:
            break
        (key, pos) = tag
        number, wire = key >> 3, key & 7
        if number == 0 or wire not in (_VARINT, _I64, _LEN, _I32):
            raise _NotThis
        if wire in _FIXED_WIDTH:
            out.append((number, wire, _FIXED_WIDTH[wire], pos))
            pos += _FIXED_WIDTH[wire]
            continue
        read = _read_varint(buf, pos, end)
        if read is None:
            break
        value, pos = read
        if wire == _LEN and value > limit - pos:
            raise _NotThis
        out.append((number, wire, value, pos))
        pos += value if wire == _LEN else 0
    if pos > limit or (pos < end and end >= limit):
        raise _NotThis
    return out


def _message(head: bytes, length: int, at: int) -> list[tuple[int, int, int, int]]:
    """Fields of the embedded message at head[at:at + length], as far as the head holds it."""
    return _proto_fields(head, at, min(len(head), at + length), at + length)


def _is_name(head: bytes, field: tuple[int, int, int, int], number: int) -> bool:
    """Whether `field` is string field `number` holding a short identifier."""
    n, wire, length, at = field
    return (n == number and wire == _LEN and 0 < length <= MAX_TF_NAME and at + length <= len(head)
            and _TF_NAME_CHARS.issuperset(head[at : at + length]))


def _is_node_def(head: bytes, length: int, at: int) -> bool:
    """A NodeDef: its name (1) then its op (2), both identifiers, as every writer orders them."""
    fields = _message(head, length, at)
    return len(fields) >= 2 and _is_name(head, fields[0], 1) and _is_name(head, fields[1], 2)


def _is_meta_info_def(head: bytes, length: int, at: int) -> bool:
    """A MetaInfoDef: only its own fields (1 meta_graph_version, 2 stripped_op_list, 3 any_info,
    4 tags, 5 tensorflow_version, 6 tensorflow_git_version, 7 stripped_default_attrs, 8 function
    aliases), a printable version string, and an op list whose first OpDef is named by an
    identifier: a NodeDef (name 1, op 2 both strings) fails the op list."""
    fields = _message(head, length, at)
    if not fields or any(_META_INFO_FIELDS.get(n) != w for n, w, _, _ in fields):
        return False
    for number, _, inner, inner_at in fields:
        if number == 1:
            version = head[inner_at : inner_at + inner]
            if inner_at + inner > len(head) or not (version.isascii() and version.decode().isprintable()):
                return False
        elif number == 2:
            ops = _message(head, inner, inner_at)
            if not ops or ops[0][:2] != (1, _LEN):
                return False
            op_def = _message(head, ops[0][2], ops[0][3])
            return bool(op_def) and _is_name(head, op_def[0], 1)
    return fields[0][0] == 1


def _is_meta_graph_def(head: bytes, fields: list[tuple[int, int, int, int]]) -> bool:
    """Top-level fields of a MetaGraphDef: a meta_info_def first, or a graph_def first whose
    first node parses."""
    if not fields or any(n not in _META_GRAPH_FIELDS or w != _LEN for n, w, _, _ in fields):
        return False
    number, _, length, at = fields[0]
    if number == 1:
        return _is_meta_info_def(head, length, at)
    if number != 2:
        return False
    nodes = _message(head, length, at)
    return bool(nodes) and nodes[0][:2] == (1, _LEN) and _is_node_def(head, nodes[0][2], nodes[0][3])


def _is_tf_graph(head: bytes, size: int) -> bool:
    """A TensorFlow SavedModel, MetaGraphDef or frozen GraphDef (all read by one scanner).

    SavedModel: a small schema version (field 1, varint) then meta graphs (field 2) whose first
    one parses as a MetaGraphDef. GraphDef: top-level fields of the GraphDef/MetaGraphDef set
    only, the first a NodeDef with an identifier name and op. MetaGraphDef: a meta_info_def or a
    graph_def first. Lengths must fit the object; only what the head holds is walked."""
    try:
        fields = _proto_fields(head, 0, min(len(head), size), size)
    except _NotThis:
        return False
    if not fields:
        return False
    number, wire, value, at = fields[0]
    if number == 1 and wire == _VARINT:
        metas = fields[1:]
        if not 1 <= value <= MAX_SAVED_MODEL_SCHEMA or not metas or any(f[:2] != (2, _LEN) for f in metas):
            return False
        try:
            return _is_meta_graph_def(head, _message(head, metas[0][2], metas[0][3]))
        except _NotThis:
            return False
    if any(w not in _TF_TOP_FIELDS.get(n, ()) for n, w, _, _ in fields) or wire != _LEN:
        return False
    try:
        return (number == 1 and _is_node_def(head, value, at)) or _is_meta_graph_def(head, fields)
    except _NotThis:
        return False


# --- msgpack (Flax) -----------------------------------------------------------------------------

#: Top-level keys checked to be short printable strings, and the longest such key.
MSGPACK_KEYS_CHECKED = 8
MAX_MSGPACK_KEY = 256
#: Nesting the sniffer follows (Flax trees are a few levels deep).
MAX_MSGPACK_DEPTH = 32
#: Fixed-size msgpack values: lead byte -> bytes after it (nil, bools, numbers, fixext
#: including their type byte).
_MP_FIXED = {0xC0: 0, 0xC2: 0, 0xC3: 0, 0xCA: 4, 0xCB: 8, 0xCC: 1, 0xCD: 2, 0xCE: 4, 0xCF: 8,
             0xD0: 1, 0xD1: 2, 0xD2: 4, 0xD3: 8, 0xD4: 2, 0xD5: 3, 0xD6: 5, 0xD7: 9, 0xD8: 17}
#: Lead byte -> width of the big-endian length after it, for str, bin and ext (ext adds a type byte).
_MP_SIZED = {0xD9: 1, 0xDA: 2, 0xDB: 4, 0xC4: 1, 0xC5: 2, 0xC6: 4, 0xC7: 1, 0xC8: 2, 0xC9: 4}
_MP_EXT = frozenset({0xC7, 0xC8, 0xC9, 0xD4, 0xD5, 0xD6, 0xD7, 0xD8})
_MP_STR = frozenset({0xD9, 0xDA, 0xDB})


class _Cut(Exception):
    """The value runs past the head: what was read so far is all the sniffer can judge."""


class _MsgpackSkipper:
    """Skips msgpack values in a head without building them, noting whether a nested map or an
    ext-typed value was met. A length must fit the object; reaching the head's end is a cut."""

    def __init__(self, head: bytes, size: int) -> None:
        self.head, self.size, self.end = head, size, min(len(head), size)
        self.structured = False

    def _take(self, pos: int, n: int) -> int:
        if n > self.size - pos:
            raise _NotThis
        if pos + n > self.end:
            raise _Cut
        return pos + n

    def _uint(self, pos: int, width: int) -> tuple[int, int]:
        end = self._take(pos, width)
        return int.from_bytes(self.head[pos:end], "big"), end

    def header(self, pos: int) -> tuple[str, int, int]:
        """(kind, count or byte length, position after the header) of the value at `pos`;
        kind is "map", "array", "str", "bytes" (bin, ext, fixed-size scalars) or "int"."""
        lead = self.head[self._take(pos, 1) - 1]
        pos += 1
        if lead < 0x80 or lead >= 0xE0:
            return "int", 0, pos
        if lead < 0x90 or lead in (0xDE, 0xDF):
            if lead >= 0xDE:
                count, pos = self._uint(pos, 2 if lead == 0xDE else 4)
            else:
                count = lead & 0x0F
            return "map", count, pos
        if lead < 0xA0 or lead in (0xDC, 0xDD):
            count, pos = (lead & 0x0F, pos) if lead < 0xA0 else self._uint(pos, 2 if lead == 0xDC else 4)
            return "array", count, pos
        if lead < 0xC0:
            return "str", lead & 0x1F, pos
        if lead in _MP_EXT:
            self.structured = True
        if lead in _MP_FIXED:
            return "bytes", _MP_FIXED[lead], pos
        if lead in _MP_SIZED:
            length, pos = self._uint(pos, _MP_SIZED[lead])
            return ("str" if lead in _MP_STR else "bytes"), length + (lead in _MP_EXT), pos
        raise _NotThis  # 0xC1: never used

    def skip(self, pos: int, depth: int = 0) -> int:
        """The position after the value at `pos`."""
        if depth > MAX_MSGPACK_DEPTH:
            raise _Cut
        kind, count, pos = self.header(pos)
        if kind in ("str", "bytes"):
            return self._take(pos, count)
        if kind == "map":  # Flax state dicts are keyed by strings at every level
            self.structured = self.structured or depth > 0
            for _ in range(count):
                key_kind, length, pos = self.header(pos)
                if key_kind != "str":
                    raise _NotThis
                pos = self.skip(self._take(pos, length), depth + 1)
            return pos
        for _ in range(count if kind == "array" else 0):
            pos = self.skip(pos, depth + 1)
        return pos

    def key(self, pos: int) -> int:
        """The position after a top-level key, which must be a short printable string."""
        kind, length, start = self.header(pos)
        if kind != "str" or not 0 < length <= MAX_MSGPACK_KEY:
            raise _NotThis
        end = self._take(start, length)
        try:
            text = self.head[start:end].decode("utf-8")
        except UnicodeDecodeError:
            raise _NotThis from None
        if not text.isprintable():
            raise _NotThis
        return end


def _is_msgpack(head: bytes, size: int) -> bool:
    """A Flax/JAX msgpack checkpoint: one top-level map whose first keys are short printable
    strings and whose entries parse as well-formed msgpack as far as the head goes, holding a
    nested map or an ext-typed value (Flax arrays), or parsing to exactly the object's end."""
    if not head or not (0x81 <= head[0] <= 0x8F or head[0] in (0xDE, 0xDF)):
        return False
    skipper = _MsgpackSkipper(head, size)
    try:
        _, count, pos = skipper.header(0)
        if count == 0:
            return False
        for i in range(count):
            pos = skipper.key(pos) if i < MSGPACK_KEYS_CHECKED else skipper.skip(pos, 1)
            pos = skipper.skip(pos, 1)
    except _NotThis:
        return False
    except _Cut:
        return skipper.structured
    return pos == size
