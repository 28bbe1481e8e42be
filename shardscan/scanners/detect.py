"""Format detection: content first, extension second.

The planner reads a small head and tail of each object and asks this module what the bytes
are. Names only break ties for content that carries no magic (protocol 0/1 pickles, ONNX
protobuf); a pickle renamed `.safetensors` is still a pickle.
"""

from __future__ import annotations

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
    primary, by = _onnx_sniff(primary, by, head, size, tail)
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


def _onnx_sniff(primary: str, by: str, head: bytes, size: int, tail: bytes) -> tuple[str, str]:
    """ONNX found by content where nothing stronger decided: no magic, no zip end record (a
    zip after a protobuf-looking head stays a zip), only an extension guess or plain text."""
    if primary == ONNX or (by == "content" and primary not in (TEXT, UNKNOWN)) or _has_zip_end(tail):
        return primary, by
    return (ONNX, "content") if _is_onnx(head, size) else (primary, by)
