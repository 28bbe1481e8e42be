"""Orbax / JAX checkpoint directories: Orbax's JSON metadata, zarr array metadata and
TensorStore OCDBT files.

An Orbax checkpoint (`*.orbax`, `*.ckpt`, a CheckpointManager step directory) holds:

* `_CHECKPOINT_METADATA` (JSON): `item_handlers`, the handler class of each item as a dotted type
  string (`orbax.checkpoint._src.handlers.pytree_checkpoint_handler.PyTreeCheckpointHandler`).
  Restoring without explicit args resolves that string and imports its module: a handler outside
  Orbax is code chosen by the checkpoint (ORB003).
* `_METADATA` (JSON): the pytree, one entry per leaf with `value_metadata.value_type`
  (`jax.Array`, `np.ndarray`, `scalar`, `string`); a dotted class there asks the restorer for an
  arbitrary type (ORB004). `_sharding` and `array_metadatas/process_N` are JSON too.
* Array data, either as zarr arrays (`.zarray` / `zarr.json` plus chunk files, often zstd frames)
  or inside an OCDBT database: `manifest.ocdbt`, `ocdbt.process_N/manifest.ocdbt` and
  log-structured `d/<32 hex>` data files of encoded nodes and raw values. Zarr metadata naming the
  numcodecs `pickle` codec makes the reader unpickle every chunk (ORB011).

OCDBT layout (tensorstore/kvstore/ocdbt/index.rst, checked against tensorstore 0.1.86 output):
every encoded manifest, version tree node and B+tree node starts with a magic (uint32be
0x0cdb3a2a, 0x0cdb1234, 0x0cdb20de), its whole length (uint64le, header and crc32c footer
included), a version varint (0) and a compression varint (0 raw, 1 zstd), then the body and a
crc32c. Data files concatenate nodes and raw values. This module walks the node chain from the
start of a file, decodes zstd bodies within `max_ocdbt_node_bytes`, searches bodies and raw bytes
for executables (BIN001) and pickles (handed to the pickle scanner, ORB009), zstd frames among
the raw values within `max_ocdbt_decoded_bytes`, and reads zarr metadata that a B+tree leaf holds
inline. What it cannot decode within bounds is said (ORB010), never passed as clean. The crc32c is
not verified (corruption is not a security finding; the loader checks it).

Nothing is loaded, unpickled or imported.
"""

from __future__ import annotations

import io
import json
import re
import struct
from collections.abc import Iterator
from typing import Any

from shardscan.model import Finding, Unit, UnitResult
from shardscan.scanners import detect as fmt
from shardscan.scanners import indicators
from shardscan.scanners.base import (
    CappedFindings,
    ScanContext,
    Scanner,
    ScanTimeout,
    embedded_member,
    finding,
    rebase,
    unit_view,
)
from shardscan.storage.reader import BytesReader, RangeReader, SliceReader

MAX_REPORTED = 8
#: Base names the text scanner hands to `analyse_text`.
METADATA_NAMES = frozenset({"_CHECKPOINT_METADATA", "_METADATA", "_sharding", ".zarray", ".zattrs", ".zgroup",
                            "zarr.json"})
#: Top-level packages whose handler and type strings an Orbax restore may import.
TRUSTED_PACKAGES = frozenset({"orbax", "flax", "jax", "jaxlib", "numpy", "np", "tensorstore", "optax", "etils",
                              "builtins", "ml_dtypes"})
#: `value_type` strings Orbax writes (type_handlers and metadata/value.py).
VALUE_TYPES = frozenset({"jax.Array", "np.ndarray", "scalar", "string", "None", "jax.random.key",
                         "jax.random.PRNGKey", "int", "float", "bool", "str", "bytes", "array", "placeholder",
                         "PLACEHOLDER"})
#: Keys whose string value names a handler class that a loader resolves and imports.
HANDLER_KEY = re.compile(r"(?i)(?:^|_)handler(?:s|_type|_typestr|_class)?$")
#: Keys whose string value names a type the restorer builds.
TYPE_KEYS = frozenset({"value_type", "restore_type", "__type__", "type_name", "typestr", "class_name"})
DOTTED = re.compile(r"[A-Za-z_][\w]*(?:\.[A-Za-z_][\w]*)+")
#: Code, markup or shell in metadata strings (Orbax never writes any).
CODE = re.compile(r"__import__|\beval\s*\(|\bexec\s*\(|\bos\.(?:system|popen)\b|\bsubprocess\.|<script\b"
                  r"|\$\([^)]{1,200}\)|`[^`]{1,200}`|;\s*(?:rm|curl|wget|sh|bash)\b|\|\s*(?:ba)?sh\b", re.I)

#: numcodecs codec ids (numcodecs 0.13-0.16 registry) and zarr v3 codec names.
ZARR_CODECS = frozenset({
    "blosc", "zstd", "lz4", "lzf", "zlib", "gzip", "bz2", "lzma", "delta", "fixedscaleoffset", "quantize",
    "packbits", "categorize", "astype", "shuffle", "bitround", "fletcher32", "jenkins_lookup3", "crc32",
    "adler32", "crc32c", "json2", "msgpack2", "vlen-utf8", "vlen-bytes", "vlen-array", "base64", "pcodec",
    "zfpy", "bytes", "transpose", "sharding_indexed", "endian",
})
#: Codecs whose decode runs pickle.loads on chunk bytes.
PICKLE_CODECS = frozenset({"pickle", "numcodecs.pickle"})
#: Codecs that decode object arrays without code (strings, JSON, msgpack).
SAFE_OBJECT_CODECS = frozenset({"json2", "msgpack2", "vlen-utf8", "vlen-bytes", "vlen-array"})

#: OCDBT encoded-node magics (uint32be), one row per kind.
OCDBT_MAGICS: dict[int, str] = {
    0x0CDB3A2A: "manifest",
    0x0CDB1234: "version tree node",
    0x0CDB20DE: "B+tree node",
}
OCDBT_HEADER = 4 + 8 + 1 + 1  # magic, length, version and compression varints (one byte each when valid)
OCDBT_FOOTER = 4  # crc32c
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
#: Bytes searched per read, and the overlap kept between reads so a header is never cut.
SEARCH_WINDOW = 4 * 1024 * 1024
SEARCH_OVERLAP = 4096


def _short(value: str, n: int = 120) -> str:
    value = indicators.mask(value)
    return value if len(value) <= n else value[: n - 3] + "..."


# -- JSON metadata (called by the text scanner) -------------------------------------------------------

def weak_secrets(value: str, key: str = "") -> list[indicators.Secret]:
    """Secrets the text scanner's whole-file pass (conclusive shapes only) leaves out: assigned
    and credential-named values, which in JSON metadata are data, not code reading a variable."""
    return [s for s in indicators.secrets_in(value, key) if s.kind not in indicators.STRONG_KINDS]


class _TooBig(Exception):
    pass


class _Json:
    """Findings for one Orbax/zarr JSON document, walked within the config limits."""

    def __init__(self, text: str, ctx: ScanContext, scanner_id: str, location: str, base: str) -> None:
        self.text, self.ctx, self.scanner_id, self.location, self.base = text, ctx, scanner_id, location, base
        self.report = CappedFindings(scanner_id, MAX_REPORTED)
        self.nodes = 0

    def offset(self, needle: str) -> int | None:
        i = self.text.find(json.dumps(needle)) if needle else -1
        return None if i < 0 else len(self.text[:i].encode("utf-8", "surrogatepass"))

    def add(self, rule_id: str, message: str, needle: str = "", **evidence: object) -> None:
        self.report.add(rule_id, message, offset=self.offset(needle), **evidence)

    def walk(self, value: Any, path: str, depth: int, key: str = "") -> None:
        self.nodes += 1
        if self.nodes > self.ctx.limits.max_config_nodes or depth > self.ctx.limits.max_config_depth:
            raise _TooBig(path)
        if isinstance(value, dict):
            for k, v in value.items():
                self.strings(str(k), f"{path}/{k}"[:200], is_key=True)
                self.walk(v, f"{path}/{k}"[:200], depth + 1, str(k))
        elif isinstance(value, list):
            for i, v in enumerate(value):
                self.walk(v, f"{path}[{i}]"[:200], depth + 1, key)
        elif isinstance(value, str):
            self.judge_string(key, value, path)
            self.strings(value, path)
            if self.base == "_sharding" and value[:1] == "{" and depth <= 2:
                try:
                    inner = json.loads(value)
                except (ValueError, RecursionError):
                    return
                self.walk(inner, path + "!json", depth + 1)

    def judge_string(self, key: str, value: str, path: str) -> None:
        dotted = value.strip()
        if not DOTTED.fullmatch(dotted):
            return
        top = dotted.split(".", 1)[0]
        if (HANDLER_KEY.search(key) or path.startswith("/item_handlers")) and top not in TRUSTED_PACKAGES:
            self.add("ORB003", f"{path}: handler {dotted} is outside orbax/flax/jax/numpy/tensorstore: a restore "
                               "that resolves the handler by name imports and runs its module", value,
                     handler=dotted, path=path)
        elif key in TYPE_KEYS and dotted not in VALUE_TYPES and top not in TRUSTED_PACKAGES:
            self.add("ORB004", f"{path}: {key} {dotted} names a Python class outside Orbax's value types: a "
                               "restorer that builds it imports its module", value, type=dotted, path=path)

    def strings(self, value: str, path: str, *, is_key: bool = False) -> None:
        if len(value) < 8:
            return
        what = "key" if is_key else "value"
        for s in weak_secrets(value, "" if is_key else path.rsplit("/", 1)[-1])[:2]:
            self.report.add(indicators.SECRET_RULE, indicators.secret_message(f"{path}: {what}", s), offset=None,
                            kind=s.kind, length=s.length)
        for url in indicators.find_urls(value)[:2]:
            self.report.add("ORB006", f"{path}: {what} names {url.text[:160]}", offset=None, url=url.text[:160])
        if CODE.search(value):
            self.report.add("ORB005", f"{path}: {what} holds code, markup or shell: {_short(value)!r}", offset=None)


def analyse_text(name: str, text: str, ctx: ScanContext, scanner_id: str, *, location: str = "") -> list[Finding]:
    """Findings for an Orbax metadata or zarr metadata file (`METADATA_NAMES`)."""
    base = name.rsplit("/", 1)[-1]
    walk = _Json(text, ctx, scanner_id, location, base)
    try:
        doc = json.loads(text)
    except RecursionError:
        return [finding("ORB002", scanner_id, f"{base} nests deeper than the parser allows: not analysed",
                        location=location, offset=0)]
    except ValueError as exc:
        pos = getattr(exc, "pos", None)
        return [finding("ORB001", scanner_id, f"{base} is not valid JSON ({_short(str(exc), 160)}): Orbax "
                        "refuses it; nothing in it was checked", location=location,
                        offset=len(text[:pos].encode("utf-8", "replace")) if pos else 0)]
    if not isinstance(doc, dict):
        return [finding("ORB001", scanner_id, f"{base} holds a JSON {type(doc).__name__}, not the object Orbax "
                        "and zarr write", location=location, offset=0)]
    try:
        walk.walk(doc, "", 0)
    except _TooBig as exc:
        walk.report.add("ORB002", f"{base} exceeds the nesting or value limit at {exc}: the rest was not analysed",
                        offset=None)
    if base == "_CHECKPOINT_METADATA":
        _checkpoint_metadata(doc, walk)
    elif base in (".zarray", "zarr.json"):
        zarr_findings(doc, walk.report, base)
    walk.report.summarise()
    return [f if not location else f.within(location) for f in walk.report.findings]


def _checkpoint_metadata(doc: dict, walk: _Json) -> None:
    handlers = doc.get("item_handlers")
    if handlers is None or isinstance(handlers, str):
        return
    if not isinstance(handlers, dict):
        walk.add("ORB001", f"item_handlers is a {type(handlers).__name__}, not a handler name or a map of them",
                 "item_handlers")
        return
    for item, handler in handlers.items():
        if handler is not None and not isinstance(handler, str):
            walk.add("ORB001", f"item_handlers/{item} is a {type(handler).__name__}, not a handler type string",
                     str(item))


def _codec_ids(doc: dict, v3: bool) -> Iterator[tuple[str, str]]:
    """(where, codec id) for every codec a zarr v2 or v3 array names."""
    if v3:
        for i, c in enumerate(doc.get("codecs") or []):
            name = c.get("name") if isinstance(c, dict) else c
            yield f"codecs[{i}]", str(name)
            conf = c.get("configuration") if isinstance(c, dict) else None
            if isinstance(conf, dict) and isinstance(conf.get("codecs"), list):  # sharding_indexed
                yield from ((f"codecs[{i}]/{w}", n) for w, n in _codec_ids(conf, True))
        return
    comp = doc.get("compressor")
    if isinstance(comp, dict):
        yield "compressor", str(comp.get("id"))
    elif comp is not None:
        yield "compressor", str(comp)
    for i, f in enumerate(doc.get("filters") or []):
        yield f"filters[{i}]", str(f.get("id") if isinstance(f, dict) else f)


def _is_object_dtype(dtype: Any) -> bool:
    if isinstance(dtype, str):
        return dtype.lstrip("|<>=") in ("O", "object")
    if isinstance(dtype, list):  # structured: [[name, dtype, shape?], ...]
        return any(isinstance(f, list) and len(f) > 1 and _is_object_dtype(f[1]) for f in dtype)
    return False


def zarr_findings(doc: dict, report: CappedFindings, where: str, offset: int | None = None) -> None:
    """ORB011/ORB012 for one zarr array's metadata (`.zarray` or `zarr.json`)."""
    v3 = doc.get("zarr_format") == 3 or "codecs" in doc
    codecs = list(_codec_ids(doc, v3))
    dtype = doc.get("data_type") if v3 else doc.get("dtype")
    for path, codec in codecs:
        if codec in PICKLE_CODECS:
            report.add("ORB011", f"{where}: {path} is the numcodecs pickle codec: reading the array unpickles every "
                                 "chunk, so the chunk files run code on restore", offset=offset, codec=codec)
        elif codec.removeprefix("numcodecs.") not in ZARR_CODECS and codec != "None":
            report.add("ORB012", f"{where}: {path} names codec {_short(codec, 80)!r}, not one numcodecs or zarr "
                                 "ships: decoding needs a codec registered by other code", offset=offset, codec=codec)
    declared = {c.removeprefix("numcodecs.") for _, c in codecs}
    if _is_object_dtype(dtype) and not declared & (PICKLE_CODECS | SAFE_OBJECT_CODECS):
        report.add("ORB012", f"{where}: dtype {dtype!r} holds Python objects with no string/JSON/msgpack codec: "
                             "the object codec the reader falls back to is not declared here", offset=offset)


# -- OCDBT files -------------------------------------------------------------------------------------

class Malformed(Exception):
    def __init__(self, reason: str, offset: int) -> None:
        super().__init__(reason)
        self.reason, self.offset = reason, offset


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    for i in range(pos, min(len(data), pos + 10)):
        b = data[i]
        value |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            return value, i + 1
    raise Malformed("varint is truncated or longer than 10 bytes", pos)


PROTOCOLS = frozenset(bytes([p]) for p in range(2, 6))
#: Bytes of a candidate run through the symbolic machine: a real pickle runs 16 opcodes in far less.
PICKLE_TRIAL = 4096
#: What writers put right after PROTO: FRAME, a global, a string, a container or MARK.
PICKLE_FIRST_OPS = frozenset(bytes([b]) for b in b"\x95c\x93\x8cX}])(N")


def pickle_at(data: bytes, i: int) -> bool:
    """Whether a protocol 2-5 pickle starts at `data[i]`: PROTO, then a bounded trial run of the
    symbolic machine (no policy) that reaches STOP, or runs cleanly to the end of the bytes."""
    from shardscan.limits import DEFAULT_LIMITS
    from shardscan.scanners.base import FormatError
    from shardscan.scanners.pickle.machine import LimitExceeded, PickleMachine, Truncated
    from shardscan.scanners.pickle.values import BROKEN
    from shardscan.storage.reader import ReaderStream

    if data[i : i + 1] != b"\x80" or not 2 <= (data[i + 1 : i + 2] or b"\x00")[0] <= 5:
        return False
    if data[i + 2 : i + 3] not in PICKLE_FIRST_OPS:
        return False
    trial = data[i : i + PICKLE_TRIAL]
    machine = PickleMachine(ReaderStream(BytesReader(trial)), None, DEFAULT_LIMITS)
    try:
        if machine.run_one() is BROKEN:
            return False
    except Truncated:
        return machine.facts.opcodes >= 16 and len(trial) == PICKLE_TRIAL
    except (FormatError, LimitExceeded, RecursionError):
        return False
    return machine.facts.opcodes >= 3


class _Ocdbt:
    def __init__(self, scanner: OcdbtScanner, reader: RangeReader, ctx: ScanContext, name: str) -> None:
        self.scanner, self.reader, self.ctx, self.limits, self.name = scanner, reader, ctx, ctx.limits, name
        self.report = CappedFindings(scanner.id, MAX_REPORTED)
        self.result = UnitResult()
        self.members = 0
        self.decoded = 0
        self.skipped_frames = 0
        self.probes = 0

    # -- the node chain ----------------------------------------------------------------------------

    def run(self) -> None:
        size = self.reader.size
        if size == 0:
            self.report.add("ORB008", "OCDBT file is empty", offset=0)
            return
        pos, nodes = 0, 0
        while pos < size:
            head = self.reader.read(pos, min(OCDBT_HEADER, size - pos))
            kind = OCDBT_MAGICS.get(int.from_bytes(head[:4], "big")) if len(head) >= 4 else None
            if kind is None:
                break
            nodes += 1
            if nodes > self.limits.max_ocdbt_nodes:
                self.report.add("ORB002", f"more than {self.limits.max_ocdbt_nodes} encoded nodes in one file: the "
                                          "rest was not walked", offset=pos)
                return
            self.ctx.check_deadline()
            try:
                pos = self.node(pos, kind, size)
            except Malformed as exc:
                self.report.add("ORB008", f"OCDBT {kind} at {pos} is malformed: {exc.reason}; the loader refuses "
                                          "it", offset=exc.offset)
                return
        if pos == 0:
            self.report.add("ORB010", f"OCDBT data file {self.name.rsplit('/', 1)[-1]} starts with a raw value, not an "
                                      "encoded node: its bytes were searched, not parsed", offset=0)
        if pos < size:
            self.raw(pos, size)

    def node(self, pos: int, kind: str, size: int) -> int:
        head = self.reader.read(pos, min(32, size - pos))
        if len(head) < 12:
            raise Malformed(f"header cut by the end of the file ({size - pos} bytes left)", pos)
        (length,) = struct.unpack_from("<Q", head, 4)
        version, p = _varint(head, 12)
        compression, p = _varint(head, p)
        if version != 0:
            raise Malformed(f"version {version} (only 0 is defined)", pos + 12)
        if compression not in (0, 1):
            raise Malformed(f"compression format {compression} (0 raw, 1 zstd)", pos + 12)
        if length < p + OCDBT_FOOTER or length > size - pos:
            raise Malformed(f"declared length {length} does not fit the {size - pos} bytes left (header and "
                            "checksum need at least " f"{p + OCDBT_FOOTER})", pos + 4)
        if kind == "manifest" and self.name.endswith("manifest.ocdbt") and pos + length != size:
            self.report.add("ORB008", f"manifest covers {length} of the file's {size} bytes: {size - pos - length} "
                                      "bytes follow it", offset=pos + length)
        body_len = length - p - OCDBT_FOOTER
        if body_len > self.limits.max_ocdbt_node_bytes:
            self.report.add("ORB010", f"OCDBT {kind} body of {body_len} bytes exceeds the "
                                      f"{self.limits.max_ocdbt_node_bytes}-byte limit: searched raw only",
                            offset=pos)
            self.raw(pos + p, pos + p + body_len)
            return pos + length
        body = self.reader.read(pos + p, body_len)
        if compression == 1:
            body = self.unzstd(body, pos + p, f"{kind} body")
            if body is None:
                return pos + length
        self.search(body, pos, f"{kind}@{pos}", decoded=compression == 1)
        if kind == "B+tree node":
            self.inline_zarr(body, pos)
        return pos + length

    def unzstd(self, data: bytes, offset: int, what: str) -> bytes | None:
        """`data` decoded as zstd within the per-file budget; None (and a finding) otherwise."""
        import zstandard

        limit = min(self.limits.max_ocdbt_node_bytes, self.limits.max_ocdbt_decoded_bytes - self.decoded)
        if limit <= 0:
            self.skipped_frames += 1
            return None
        try:
            with zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data)) as r:
                out = r.read(limit + 1)
        except zstandard.ZstdError as exc:
            self.report.add("ORB008", f"{what} at {offset} is not a valid zstd stream: {_short(str(exc), 100)}",
                            offset=offset)
            return None
        self.decoded += min(len(out), limit)
        if len(out) > limit:
            self.report.add("ORB010", f"{what} at {offset} decodes to more than {limit} bytes: only the first "
                                      f"{limit} were searched", offset=offset)
            out = out[:limit]
        return out

    # -- content -------------------------------------------------------------------------------------

    def raw(self, start: int, end: int) -> None:
        """Raw values (zarr chunks): searched as stored, and their zstd frames decoded within bounds."""
        stop = min(end, start + self.limits.max_ocdbt_search_bytes)
        if stop < end:
            self.report.add("ORB010", f"{end - stop} bytes of raw values beyond the "
                                      f"{self.limits.max_ocdbt_search_bytes}-byte search limit were not searched",
                            offset=stop)
        pos = start
        while pos < stop:
            self.ctx.check_deadline()
            n = min(SEARCH_WINDOW, stop - pos)
            data = self.reader.read(pos, min(n + SEARCH_OVERLAP, stop - pos))
            self.search(data, pos, None, decoded=False, limit=n)
            i = data.find(ZSTD_MAGIC)
            while 0 <= i < n and self.probe():
                out = self.unzstd_frame(_ReaderIO(self.reader, pos + i, stop), pos + i)
                if out:
                    self.search(out, pos + i, f"zstd@{pos + i}", decoded=True)
                i = data.find(ZSTD_MAGIC, i + 4)
            pos += n
        if self.skipped_frames:
            self.report.add("ORB010", f"{self.skipped_frames} zstd-compressed values or nodes beyond the "
                                      f"{self.limits.max_ocdbt_decoded_bytes}-byte decoding budget were not "
                                      "decoded: their content was not searched", offset=None,
                            count=self.skipped_frames)

    def probe(self) -> bool:
        """Count one candidate (pickle or zstd frame); False once the per-file budget is spent."""
        self.probes += 1
        if self.probes == self.limits.max_ocdbt_probes + 1:
            self.report.add("ORB010", f"more than {self.limits.max_ocdbt_probes} candidate pickles or zstd frames: "
                                      "the rest of the file was not searched for them", offset=None)
        return self.probes <= self.limits.max_ocdbt_probes

    def unzstd_frame(self, frame: _ReaderIO, offset: int) -> bytes | None:
        import zstandard

        limit = min(self.limits.max_ocdbt_node_bytes, self.limits.max_ocdbt_decoded_bytes - self.decoded)
        if limit <= 0:
            self.skipped_frames += 1
            return None
        try:
            with zstandard.ZstdDecompressor().stream_reader(frame, read_size=64 * 1024) as r:
                out = r.read(limit)  # one frame, input read as needed, output bounded
        except zstandard.ZstdError:
            return None  # raw float bytes may hold the magic by chance: not a frame
        out = out[:limit]
        self.decoded += len(out)
        return out

    def search(self, data: bytes, origin: int, within: str | None, *, decoded: bool, limit: int | None = None) -> None:
        """Executables (BIN001, or ORB009 for scripts and archives) and pickles in `data`."""
        n = len(data) if limit is None else limit
        where = f" in the decoded {within}" if within else ""
        for e in indicators.find_executables(data):
            if e.offset >= n:
                continue
            at = origin if decoded else origin + e.offset
            if e.native:
                self.report.add("BIN001", f"{e.kind} executable{where} at {at}: {e.detail}", offset=at,
                                kind=e.kind)
            else:
                self.report.add("ORB009", f"{e.detail}{where} at {at}: OCDBT values are array chunks, never "
                                          "scripts or archives", offset=at, content=e.kind)
        i = data.find(b"\x80")
        hits = 0
        while 0 <= i < n and hits < MAX_REPORTED:
            if data[i + 1 : i + 2] in PROTOCOLS and data[i + 2 : i + 3] in PICKLE_FIRST_OPS and self.probe() \
                    and pickle_at(data, i):
                hits += 1
                self.member(data, i, origin if decoded else origin + i, where, decoded)
            i = data.find(b"\x80", i + 1)

    def member(self, data: bytes, i: int, at: int, where: str, decoded: bool) -> None:
        self.members += 1
        name = f"ocdbt@{at}" + (f"+{i}" if decoded else "")
        sub = BytesReader(bytes(data[i:])) if decoded else SliceReader(self.reader, at, self.reader.size - at)
        part, why = embedded_member(self.ctx, name, sub, self.members, self.limits.max_orbax_members)
        if part is not None:
            self.result.findings += [f.within(name, None if decoded else at) for f in part.findings]
            self.result.formats += [f for f in part.formats if f not in self.result.formats]
        note = f" ({why})" if why else "; scanned"
        self.report.add("ORB009", f"a pickle{where} at {at}{note}: OCDBT values are array chunks and node "
                                  "records, never pickles", offset=at, content=fmt.PICKLE)

    def inline_zarr(self, body: bytes, origin: int) -> None:
        """zarr metadata a B+tree leaf stores inline (`<array>/.zarray`, `<array>/zarr.json`)."""
        text = body.decode("latin-1")
        decoder = json.JSONDecoder()
        seen = 0
        for m in re.finditer(r'\{"(?:chunks|zarr_format|shape|codecs|dtype|data_type)"', text):
            seen += 1
            if seen > 1000:
                break
            try:
                doc, _ = decoder.raw_decode(text, m.start())
            except (ValueError, RecursionError):
                continue
            if isinstance(doc, dict) and ("compressor" in doc or "codecs" in doc or "filters" in doc):
                zarr_findings(doc, self.report, f"zarr metadata in B+tree node at {origin}", offset=origin)


class _ReaderIO(io.RawIOBase):
    """Bytes [start, end) of a reader as a file, so a zstd decoder reads only what it needs."""

    def __init__(self, reader: RangeReader, start: int, end: int) -> None:
        self.reader, self.pos, self.end = reader, start, end

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        n = self.end - self.pos if n is None or n < 0 else min(n, self.end - self.pos)
        data = self.reader.read(self.pos, n) if n > 0 else b""
        self.pos += len(data)
        return data


class OcdbtScanner(Scanner):
    id = "orbax"
    description = "Orbax/TensorStore OCDBT manifests and data files: headers, node bodies, embedded payloads"

    def scan(self, unit: Unit, reader: RangeReader, ctx: ScanContext) -> UnitResult:
        view = unit_view(unit, reader)
        walker = _Ocdbt(self, view, ctx, unit.object.uri)
        try:
            walker.run()
        except ScanTimeout:
            walker.result.error = "timed out"
        walker.report.summarise()
        walker.result.findings = rebase(walker.report.findings + walker.result.findings, unit.start)
        return walker.result
