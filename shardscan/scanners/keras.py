"""Keras models: the legacy HDF5 format (`.h5`) and the model config shared with `.keras`.

A Keras model file is weights plus a JSON config from which the loader rebuilds the model.
The config is where code hides (THREATS.md 4.5):

- Lambda layers store their function as base64 marshalled bytecode (K1, K2), run on load.
  The bytecode is decoded statically by `pycode` and each name it can reach is judged by the
  pickle policy.
- Any `{"module": m, "class_name": "function", "config": f}` is imported and called by
  Keras < 3.9 (K3, CVE-2025-1550), and some functions inside the keras namespace are gadgets
  themselves (K4: enable_unsafe_deserialization, load_model, get_file).
- tf.keras TFOpLambda layers call TensorFlow ops by name.

`analyse_keras_config` walks a parsed config (bounded in depth and size) and is also used by
the text scanner for `config.json` in `.keras` archives. `KerasH5Scanner` opens HDF5 files
read-only with h5py through a file-like view of the reader and reads only the root attributes
Keras writes (`model_config`, `training_config`, `keras_version`, `backend`), never a dataset;
it walks the datasets' layout (offsets, chunk index) to tell the weight analysis where their
bytes are.
Nothing is imported from the file, nothing is unmarshalled, and Keras is never needed.
"""

from __future__ import annotations

import binascii
import io
import json
import re
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from shardscan.limits import DEFAULT_LIMITS, Limits
from shardscan.model import Finding, Unit, UnitResult
from shardscan.policy import Verdict, load_policy
from shardscan.scanners import indicators
from shardscan.scanners.base import ScanContext, Scanner, ScanTimeout, finding, unit_view
from shardscan.scanners.pycode import CodeInfo, MarshalError, decode_code, referenced_globals, strings_in
from shardscan.storage.reader import RangeReader
from shardscan.weights.spans import SPANS, SpanList, TensorSpan, skipped

SCANNER_ID = "keras"

#: Root attributes of a legacy Keras HDF5 file that hold JSON configs.
CONFIG_ATTRIBUTES = ("model_config", "training_config")
#: Short text attributes kept as evidence.
INFO_ATTRIBUTES = ("keras_version", "backend")
#: Root members or attributes that mark an HDF5 file as Keras weights (save_weights, the
#: model.weights.h5 inside .keras, model_weights of a legacy full save).
KERAS_WEIGHT_MARKERS = ("model_weights", "layers", "vars")

#: Top-level packages whose objects a Keras config legitimately names.
TRUSTED_ROOTS = frozenset({"keras", "tensorflow", "tf_keras"})

#: Callables inside the trusted namespaces that are gadgets: last name -> (rule, what it does).
KERAS_GADGETS: dict[str, tuple[str, str]] = {
    "enable_unsafe_deserialization": ("KER005", "turns safe mode off for the rest of the load (CVE-2025-9906)"),
    "load_model": ("KER005", "loads a second model with arguments from this config, e.g. safe_mode=False "
                             "(CVE-2025-8747)"),
    "load_model_from_hdf5": ("KER005", "loads a second model from an HDF5 file, without safe mode"),
    "func_load": ("KER005", "rebuilds a function from marshalled bytecode"),
    "get_file": ("KER006", "downloads a URL and writes or extracts it to disk (CVE-2025-8747)"),
}
#: TensorFlow ops (by last name, any namespace) that touch files, run Python or load native code.
TF_DANGEROUS_OPS = frozenset({
    "write_file", "read_file", "matching_files", "GFile", "FastGFile", "py_function", "numpy_function",
    "py_func", "eager_py_func", "load_library", "load_op_library", "load_file_system_library",
    "load_pluggable_device_library", "WriteFile", "ReadFile", "MatchingFiles", "PyFunc", "EagerPyFunc",
    "PyFuncStateless", "write_graph", "enable_dump_debug_info",
})
#: Layer classes that carry marshalled functions (Keras 2 and 3 spellings).
LAMBDA_CLASSES = frozenset({"Lambda"})
TFOP_CLASSES = frozenset({"TFOpLambda", "SlicingOpLambda"})
#: Keras 2 Lambda keys whose value is a function, with their `<key>_type` companion.
LAMBDA_FUNCTION_KEYS = ("function", "output_shape", "mask")

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]{1,15}://\S")
_PATH = re.compile(r"^(?:/[^/\s]|~[/\\]|\\\\|[A-Za-z]:[\\/])|(?:^|[/\\])\.\.(?:[/\\]|$)")
#: Findings of one rule reported one by one before the rest are summarised.
MAX_FINDINGS_PER_RULE = 50
MAX_LISTED = 20


def _root(module: str) -> str:
    return module.split(".", 1)[0]


def _trusted(module: str) -> bool:
    root = _root(module)
    return root in TRUSTED_ROOTS or root.startswith("keras_")


def _gadget(dotted: str) -> tuple[str, str] | None:
    """(rule, reason) when a dotted callable path inside keras/tensorflow is a known gadget."""
    parts = [p for p in dotted.split(".") if p]
    if not parts:
        return None
    last = parts[-1]
    if last in KERAS_GADGETS:
        return KERAS_GADGETS[last]
    if last in TF_DANGEROUS_OPS or "gfile" in parts[:-1]:
        return ("KER008", "touches files, runs Python or loads native code")
    return None


def _short(text: str, n: int = 120) -> str:
    """Config text quoted in a finding: secrets masked, bounded."""
    text = indicators.mask(text[: n * 4])
    return text if len(text) <= n else text[: n - 3] + "..."


def _listed(items: list[str], n: int = MAX_LISTED) -> str:
    head = ", ".join(items[:n])
    return head + (f" (+{len(items) - n} more)" if len(items) > n else "")


class _Limit(Exception):
    """A bound was reached; the message says which."""


class _Walker:
    def __init__(self, scanner_id: str, location: str, limits: Limits,
                 check: Callable[[], None] | None, note: str = "") -> None:
        self.scanner_id = scanner_id
        self.location = location
        self.limits = limits
        self.check = check
        self.note = note
        self.policy = load_policy()
        self.findings: list[Finding] = []
        self.per_rule: dict[str, int] = {}
        self.suppressed: dict[str, int] = {}
        self.nodes = 0
        self.skip: set[str] = set()
        self.tfops: list[str] = []
        self.custom: list[str] = []
        self.limit_hit = False

    # -- reporting ------------------------------------------------------------------------------

    def add(self, rule_id: str, message: str, path: str, **evidence: object) -> None:
        count = self.per_rule.get(rule_id, 0)
        self.per_rule[rule_id] = count + 1
        if count >= MAX_FINDINGS_PER_RULE:
            self.suppressed[rule_id] = self.suppressed.get(rule_id, 0) + 1
            return
        self.findings.append(finding(rule_id, self.scanner_id, message, location=self.location,
                                     path=path, **evidence))

    def limit(self, message: str, path: str) -> None:
        if not self.limit_hit:
            self.limit_hit = True
            self.add("KER012", message, path)

    def finish(self) -> list[Finding]:
        if self.tfops:
            self.add("KER007", f"{len(self.tfops)} TFOpLambda layer(s) call TensorFlow ops: "
                               f"{_listed(sorted(set(self.tfops)))}", "$", ops=sorted(set(self.tfops))[:100])
        if self.custom:
            names = sorted(set(self.custom))
            self.add("KER009", f"custom objects from outside Keras: {_listed(names)}", "$", objects=names[:100])
        for rule_id, n in self.suppressed.items():
            self.findings.append(finding(rule_id, self.scanner_id,
                                         f"{n} more finding(s) of this rule in the same config not listed",
                                         location=self.location, suppressed=n))
        return self.findings

    # -- the walk -------------------------------------------------------------------------------

    def walk(self, root: object) -> None:
        max_depth, max_nodes = self.limits.max_keras_config_depth, self.limits.max_keras_config_nodes
        stack: list[tuple[object, str, int, str]] = [(root, "$", 0, "")]
        while stack:
            node, path, depth, key = stack.pop()
            self.nodes += 1
            if self.nodes > max_nodes:
                self.limit(f"config has more than {max_nodes} values; the rest was not inspected", path)
                return
            if self.check is not None and not self.nodes & 0xFFF:
                self.check()
            if path in self.skip:
                continue
            if isinstance(node, str):
                self.string(key, node, path)
                continue
            if not isinstance(node, (dict, list)):
                continue
            if depth >= max_depth:
                self.limit(f"config nests deeper than {max_depth} levels; deeper parts were not inspected", path)
                continue
            if isinstance(node, dict):
                self.mapping(node, path)
                children = [(v, f"{path}.{k}", depth + 1, str(k)) for k, v in node.items()]
            else:
                children = [(v, f"{path}[{i}]", depth + 1, key) for i, v in enumerate(node)]
            stack.extend(reversed(children))

    def string(self, key: str, value: str, path: str) -> None:
        if len(value) > self.limits.max_secret_text:
            return
        for secret in indicators.secrets_in(value, key):
            self.add(indicators.SECRET_RULE, indicators.secret_message(f"config value {indicators.shown(key)!r}",
                                                                      secret), path, kind=secret.kind,
                     length=secret.length)
        if _URL.match(value):
            self.add("KER010", f"config value {key!r} is a URL: {_short(value)}", path, value=_short(value, 512))
        elif _PATH.search(value) and "\n" not in value:
            self.add("KER010", f"config value {key!r} is a path outside the model: {_short(value)}", path,
                     value=_short(value, 512))

    def mapping(self, node: dict, path: str) -> None:
        class_name = node.get("class_name")
        config = node.get("config")
        if node.get("safe_mode") is False:
            self.add("KER005", "config passes safe_mode=False (to a nested load_model or deserializer)",
                     f"{path}.safe_mode")
        if class_name == "__lambda__":
            self.lambda_code(config.get("code") if isinstance(config, dict) else None, "", path)
            self.skip.add(f"{path}.config.code")
            return
        if isinstance(class_name, str) and isinstance(config, dict):
            if class_name in LAMBDA_CLASSES:
                self.lambda_layer(config, f"{path}.config")
            elif class_name in TFOP_CLASSES:
                fn = config.get("function")
                if isinstance(fn, str):
                    self.tfops.append(fn)
                    hit = _gadget(fn)
                    if hit is not None:
                        self.add(hit[0],
                                 f"{class_name} layer {config.get('name')!r} calls tf.{fn}: {hit[1]}",
                                 f"{path}.config.function", function=fn)
        module = node.get("module")
        registered = node.get("registered_name")
        if isinstance(class_name, str) and isinstance(module, str) and module:
            is_function = class_name == "function"
            name = config if is_function and isinstance(config, str) else (
                registered if is_function and isinstance(registered, str) else class_name)
            self.reference(module, name, path, is_function=is_function)
        if isinstance(registered, str) and ">" in registered:
            package, _, name = registered.partition(">")
            verdict = self.policy.judge(package, name)
            if verdict.kind == "deny":
                self.denied(verdict, f"registered_name {registered!r}", path)
            elif not _trusted(package):
                self.custom.append(registered)

    def reference(self, module: str, name: str, path: str, *, is_function: bool, what: str = "") -> None:
        dotted = f"{module}.{name}"
        what = what or ("function" if is_function else "object")
        if _trusted(module):
            hit = _gadget(dotted)
            if hit is not None:
                self.add(hit[0], f"config references {what} {dotted}: {hit[1]}", path, callable=dotted)
                return
            verdict = self.policy.judge(module, name)
            if verdict.kind == "deny":
                self.denied(verdict, f"{what} {dotted}", path)
            return
        verdict = self.policy.judge(module, name)
        if verdict.kind == "deny":
            self.denied(verdict, f"{what} {dotted}", path)
        elif is_function and verdict.kind != "allow":
            self.add("KER004", f"config references {what} {dotted} outside Keras: Keras < 3.9 imports "
                               f"{module!r} and calls it while loading", path, callable=dotted)
        else:
            self.custom.append(dotted)

    def denied(self, verdict: Verdict, what: str, path: str) -> None:
        self.add("KER003", f"config references {what}, denied by policy ({verdict.capability}): loading "
                           "imports and calls it (CVE-2025-1550)", path,
                 callable=f"{verdict.module}.{verdict.name}", capability=verdict.capability,
                 policy_rule=verdict.rule_id)

    # -- Lambda layers --------------------------------------------------------------------------

    def lambda_layer(self, config: dict, path: str) -> None:
        layer = config.get("name")
        layer = layer if isinstance(layer, str) else ""
        for key in LAMBDA_FUNCTION_KEYS:
            value = config.get(key)
            kind = config.get(f"{key}_type")
            if value is None:
                continue
            if isinstance(value, dict) and value.get("class_name") == "__lambda__":
                cfg = value.get("config")
                self.lambda_code(cfg.get("code") if isinstance(cfg, dict) else None, layer, f"{path}.{key}")
                self.skip.add(f"{path}.{key}")
                for extra in ("defaults", "closure"):  # values, walked as usual
                    if isinstance(cfg, dict) and cfg.get(extra) is not None:
                        self.walk_child(cfg[extra], f"{path}.{key}.config.{extra}")
            elif kind == "lambda" or (key == "function" and kind is None and isinstance(value, list)):
                code = value[0] if isinstance(value, list) and value else value
                self.lambda_code(code, layer, f"{path}.{key}")
                self.skip.add(f"{path}.{key}")
            elif kind == "function" and isinstance(value, str):
                # Keras 2: the function is looked up by name among the globals of `module`.
                module = config.get("module" if key == "function" else f"{key}_module")
                if isinstance(module, str) and module:
                    self.reference(module, value, f"{path}.{key}", is_function=True,
                                   what=f"Lambda layer {layer!r} function")

    def walk_child(self, node: object, path: str) -> None:
        # Called from inside the walk; a nested walk shares counters and limits.
        self.skip.add(path)
        saved = self.skip
        self.skip = set()
        try:
            self.walk(node)
        finally:
            self.skip = saved

    def lambda_code(self, code: object, layer: str, path: str) -> None:
        label = f"Lambda layer {layer!r}" if layer else "serialised lambda"
        if not isinstance(code, str) or not code.strip():
            self.add("KER002", f"{label} has a function payload that is not base64 text{self.note}", path)
            return
        if len(code) > self.limits.max_keras_lambda_code * 4 // 3 + 4096:
            self.add("KER002", f"{label} carries a {len(code)}-character bytecode payload{self.note}", path)
            self.limit(f"{label} payload exceeds {self.limits.max_keras_lambda_code} bytes; not decoded", path)
            return
        try:
            raw = binascii.a2b_base64(code.encode("ascii"))
        except (UnicodeEncodeError, binascii.Error, ValueError) as exc:
            self.add("KER002", f"{label} payload is not valid base64 ({exc}); it is still run as "
                               f"bytecode by the loader{self.note}", path)
            return
        problem = ""
        try:
            info = decode_code(raw)
        except MarshalError as exc:
            problem = f"bytecode could not be decoded ({_short(str(exc), 200)}); strings in it"
            found = strings_in(raw)
            info = CodeInfo(names=found, strings=found)
        verdicts = self.judge_code(info)
        for text in info.strings:
            for secret in indicators.secrets_in(text, strong_only=True):
                self.add(indicators.SECRET_RULE, indicators.secret_message(f"{label} constant", secret), path,
                         kind=secret.kind, length=secret.length)
        where = f"Python {info.opcodes or info.layout}" if info.layout else "unknown Python version"
        evidence = {"names": info.names[:100], "strings": [_short(s, 200) for s in info.strings[:50]],
                    "numbers": info.numbers[:50], "python": info.layout or None, "bytes": len(raw)}
        if verdicts:
            reached = [f"{v.module}.{v.name}" if v.name != "*" else v.module for v in verdicts]
            caps = sorted({v.capability or "" for v in verdicts})
            self.add("KER001", f"{label} {problem or f'bytecode ({where})'} reaches {_listed(reached, 8)} "
                               f"({', '.join(caps)}){self.note}", path,
                     reached=reached[:50], capabilities=caps, **evidence)
        else:
            used = f"uses names {_listed(info.names, 12)}" if info.names else "uses no names"
            consts = _listed([repr(_short(s, 40)) for s in info.strings] + info.numbers, 8)
            self.add("KER002", f"{label} carries Python bytecode ({problem or where}) that runs on load; it "
                               f"{used}" + (f", constants {consts}" if consts else "") + self.note,
                     path, **evidence)

    def judge_code(self, info: CodeInfo) -> list[Verdict]:
        out: list[Verdict] = []
        seen: set[tuple[str, str]] = set()
        for module, name in referenced_globals(info):
            verdict = self.policy.judge(module, name)
            if verdict.kind == "deny" and (verdict.module, verdict.name) not in seen:
                seen.add((verdict.module, verdict.name))
                out.append(verdict)
        for name in info.names:  # keras/tf gadgets reached as attributes (keras.models.load_model)
            hit = _gadget(name)
            if hit is not None and ("keras", name) not in seen:
                seen.add(("keras", name))
                out.append(Verdict("deny", "keras/tensorflow", name, hit[0], hit[1].split(" (")[0]))
        return out


def _analyse(config: object, *, scanner_id: str, location: str, limits: Limits,
             check: Callable[[], None] | None = None, note: str = "") -> list[Finding]:
    walker = _Walker(scanner_id, location, limits, check, note)
    if isinstance(config, (bytes, bytearray)):
        try:
            config = config.decode("utf-8")
        except UnicodeDecodeError as exc:
            return [finding("KER011", scanner_id, f"Keras config is not UTF-8: {exc}", location=location)]
    if isinstance(config, str):
        if len(config) > limits.max_keras_config_bytes:
            return [finding("KER012", scanner_id, f"Keras config of {len(config)} bytes exceeds the "
                                                  f"{limits.max_keras_config_bytes}-byte limit; not inspected",
                            location=location)]
        try:
            config = json.loads(config)
        except RecursionError:
            return [finding("KER012", scanner_id, "Keras config nests too deeply to parse; not inspected",
                            location=location)]
        except ValueError as exc:
            return [finding("KER011", scanner_id, f"Keras config is not JSON: {_short(str(exc), 200)}",
                            location=location)]
    walker.walk(config)
    return walker.finish()


def analyse_keras_config(config: object, *, scanner_id: str, location: str = "") -> list[Finding]:
    """Findings for a parsed Keras model config (`model_config` of an .h5, `config.json` of a
    .keras archive): Lambda bytecode, module references outside Keras, safe-mode gadgets,
    TFOpLambda ops, custom objects and external references. A str or bytes is parsed as JSON
    first. Bounded by the default limits; never raises for bad input."""
    return _analyse(config, scanner_id=scanner_id, location=location, limits=DEFAULT_LIMITS)


# -- HDF5 ------------------------------------------------------------------------------------


class _ReaderFile(io.RawIOBase):
    """A read-only, seekable file over a RangeReader, for h5py's file-object driver. It
    counts what libhdf5 reads and stops it past a budget or the scan deadline."""

    def __init__(self, reader: RangeReader, budget: int, ctx: ScanContext) -> None:
        super().__init__()
        self._reader = reader
        self._pos = 0
        self._budget = budget
        self._ctx = ctx
        self.read_bytes = 0
        self.stopped: BaseException | None = None

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def writable(self) -> bool:
        return False

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._reader.size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        if self.read_bytes + len(view) > self._budget:
            self.stopped = _Limit(f"libhdf5 read more than {self._budget} bytes of metadata")
            raise OSError("read budget exhausted")
        try:
            self._ctx.check_deadline()
        except ScanTimeout as exc:
            self.stopped = exc
            raise OSError("scan timed out") from exc
        data = self._reader.read(self._pos, len(view))
        view[: len(data)] = data
        self._pos += len(data)
        self.read_bytes += len(data)
        return len(data)

    def write(self, data: Any) -> int:
        raise OSError("read-only")


def _attribute_text(h5py: Any, group: Any, name: str, limit: int) -> str | None:
    """A root attribute as text, or None when absent. Size is checked before reading where the
    type allows (fixed-length strings); variable-length strings are checked after."""
    key = name.encode()
    if not h5py.h5a.exists(group.id, key):
        return None
    attr = h5py.h5a.open(group.id, key)
    if attr.dtype.kind != "O" and attr.get_storage_size() > limit:
        raise _Limit(f"attribute {name!r} of {attr.get_storage_size()} bytes exceeds the {limit}-byte limit")
    value = group.attrs[name]
    if hasattr(value, "shape") and not isinstance(value, (bytes, str)):
        if getattr(value, "size", 0) != 1:
            raise ValueError(f"attribute {name!r} has shape {value.shape}, not one string")
        value = value.reshape(-1)[0]
    if isinstance(value, bytes):
        if len(value) > limit:
            raise _Limit(f"attribute {name!r} of {len(value)} bytes exceeds the {limit}-byte limit")
        return value.decode("utf-8")
    if isinstance(value, str):
        if len(value) > limit:
            raise _Limit(f"attribute {name!r} of {len(value)} characters exceeds the {limit}-byte limit")
        return value
    raise ValueError(f"attribute {name!r} is a {type(value).__name__}, not a string")


# -- HDF5 datasets for the weight analysis ----------------------------------------------------

#: HDF5 group nesting walked for datasets: Keras nests a few levels per nested model.
MAX_H5_DEPTH = 64
#: Objects (groups and datasets) visited per file: Keras writes two or three per weight.
MAX_H5_OBJECTS = 4_000_000
#: Little-endian IEEE floats by item size, as the weight analysis names them.
H5_FLOATS = {2: "F16", 4: "F32", 8: "F64"}
#: Last name components of Keras 2 kernels, stored (in, out): outputs on the last axis.
KERNEL_NAMES = ("kernel", "kernel:0")


def _h5_dtype(dtype: Any) -> tuple[str, str]:
    """(analysis name, why skipped; "" = analysed) of a dataset's NumPy dtype. bfloat16 is no
    HDF5 type: Keras writes it as uint16, which stays an integer here."""
    kind, size = dtype.kind, dtype.itemsize
    if kind == "f" and size in H5_FLOATS:
        return H5_FLOATS[size], ""
    if kind in "iu":
        return f"{kind.upper()}{size * 8}", "integer"
    if kind == "b":
        return "BOOL", "boolean"
    if kind in "SUO":
        return "STRING", "string"
    if kind == "f":
        return f"F{size * 8}", "extended precision"
    return str(dtype)[:20], "not numeric"


def _kernel_axis(name: str, shape: tuple[int, ...]) -> int | None:
    """Keras kernels are (in, out): the output axis is the last one."""
    return len(shape) - 1 if len(shape) >= 2 and name.rsplit("/", 1)[-1] in KERNEL_NAMES else None


def _contiguous_span(name: str, dset: Any, dtype: str, shape: tuple[int, ...]) -> TensorSpan:
    offset = dset.id.get_offset()
    size = dset.id.get_storage_size()
    if offset is None:
        return skipped(name, dtype, shape, 0, 0, "not allocated")
    nbytes = dset.dtype.itemsize
    for d in shape:
        nbytes *= d
    if size != nbytes:
        return skipped(name, dtype, shape, offset, size, "size mismatch")
    return TensorSpan(name, dtype, shape, offset, size, _kernel_axis(name, shape))


def _chunk_spans(name: str, dset: Any, dtype: str, spans: SpanList) -> None:
    """One span per stored chunk of an unfiltered chunked dataset: each holds the whole chunk
    shape in row-major order (edge chunks padded with the fill value). The chunk index is
    walked once (H5Dchunk_iter), stopping at the span limit."""
    chunk = tuple(dset.chunks)
    nbytes = dset.dtype.itemsize
    for d in chunk:
        nbytes *= d
    if not hasattr(dset.id, "chunk_iter"):  # pragma: no cover - HDF5 older than 1.10.10
        spans.add(skipped(name, dtype, tuple(dset.shape), 0, dset.id.get_storage_size(), "chunked"))
        return
    index = [0]

    def one(info: Any) -> bool | None:
        if spans.full:
            spans.left_out(info.size)
            return True  # ends the walk of the chunk index
        span_name = f"{name}[chunk {index[0]}]"
        index[0] += 1
        if info.size != nbytes:
            spans.add(skipped(span_name, dtype, chunk, info.byte_offset, info.size, "size mismatch"))
        else:
            spans.add(TensorSpan(span_name, dtype, chunk, info.byte_offset, info.size))
        return None

    dset.id.chunk_iter(one)


def _dataset_spans(h5py: Any, name: str, dset: Any, spans: SpanList) -> None:
    """The spans of one dataset, from its layout only: the data is never read."""
    dtype, reason = _h5_dtype(dset.dtype)
    shape = tuple(dset.shape) if dset.shape is not None else ()
    plist = dset.id.get_create_plist()
    layout = plist.get_layout()
    if not reason and dset.id.get_type().get_order() == h5py.h5t.ORDER_BE:
        reason = "big-endian"
    if not reason and dset.shape is None:
        reason = "empty"
    if not reason and layout == h5py.h5d.CHUNKED and plist.get_nfilters():
        reason = "compressed" if dset.compression else "filtered"
    if not reason and layout not in (h5py.h5d.CONTIGUOUS, h5py.h5d.CHUNKED):
        reason = "compact" if layout == h5py.h5d.COMPACT else "virtual"
    if reason:
        spans.add(skipped(name, dtype, shape, dset.id.get_offset() or 0, dset.id.get_storage_size(), reason))
    elif layout == h5py.h5d.CHUNKED:
        _chunk_spans(name, dset, dtype, spans)
    else:
        spans.add(_contiguous_span(name, dset, dtype, shape))


def h5_spans(h5py: Any, f: Any, spans: SpanList, check: Callable[[], None]) -> None:
    """Where each dataset's bytes are, for the weight analysis: the file is walked once
    (each object visited once whatever its links), at most `MAX_H5_OBJECTS` objects and
    `spans.limit` spans, with spans for datasets at most `MAX_H5_DEPTH` groups deep; what is
    left out is counted (as one more tensor where the walk stops)."""
    visited = [0]

    def visit(name: str, obj: Any) -> bool | None:
        check()
        visited[0] += 1
        dataset = isinstance(obj, h5py.Dataset)
        if visited[0] > MAX_H5_OBJECTS or (dataset and spans.full):
            spans.left_out()
            return True  # stops the walk: the rest is at least one more object
        if dataset:
            if name.count("/") >= MAX_H5_DEPTH:
                spans.add(skipped(name, "", (), 0, 0, "nested too deep"))
            else:
                _dataset_spans(h5py, name, obj, spans)
        return None

    f.visititems(visit)


class KerasH5Scanner(Scanner):
    id = SCANNER_ID
    description = ("Keras HDF5 models (.h5): model_config / training_config attributes (Lambda bytecode, "
                   "module references, safe-mode gadgets), read with h5py without loading anything")

    def scan(self, unit: Unit, reader: RangeReader, ctx: ScanContext) -> UnitResult:
        view = unit_view(unit, reader)
        try:
            import h5py
        except ImportError:  # pragma: no cover - h5py is a core dependency
            return UnitResult(error="h5py is not installed: HDF5 files are not analysed")
        limits = ctx.limits
        fileobj = _ReaderFile(view, limits.max_hdf5_metadata_read, ctx)
        texts: dict[str, str] = {}
        try:
            with h5py.File(fileobj, "r") as f:
                for name in (*CONFIG_ATTRIBUTES, *INFO_ATTRIBUTES):
                    ctx.check_deadline()
                    try:
                        text = _attribute_text(h5py, f, name, limits.max_keras_config_bytes
                                               if name in CONFIG_ATTRIBUTES else 4096)
                    except (ValueError, UnicodeDecodeError) as exc:
                        if name in CONFIG_ATTRIBUTES:
                            return UnitResult([finding("KER011", self.id, f"HDF5 attribute {name!r} is not "
                                                       f"Keras config text: {_short(str(exc), 200)}",
                                                       attribute=name)])
                        continue
                    if text is not None:
                        texts[name] = text
                weights_only = "model_config" not in texts and (
                    any(m in f for m in KERAS_WEIGHT_MARKERS) or h5py.h5a.exists(f.id, b"layer_names"))
                spans = self._spans(h5py, f, fileobj, ctx)
        except ScanTimeout:
            raise
        except _Limit as exc:
            return UnitResult([finding("KER012", self.id, f"HDF5 not fully inspected: {exc}", offset=0)])
        except Exception as exc:  # h5py raises OSError, KeyError, RuntimeError... for bad files
            if isinstance(fileobj.stopped, ScanTimeout):
                raise fileobj.stopped from exc
            if isinstance(fileobj.stopped, _Limit):
                return UnitResult([finding("KER012", self.id, f"HDF5 not fully inspected: {fileobj.stopped}",
                                           offset=0)])
            return UnitResult([finding("KER011", self.id, f"HDF5 file could not be read: "
                                       f"{type(exc).__name__}: {_short(str(exc), 200)}", offset=0)])
        if "model_config" not in texts:
            if weights_only:
                return _with_spans(UnitResult(), spans)
            return _with_spans(UnitResult([finding("KER013", self.id, "HDF5 file without a Keras model_config "
                                                    "attribute; datasets were not inspected", offset=0)]), spans)
        version = texts.get("keras_version", "")
        note = ""
        if version[:2] in ("1.", "2."):
            note = f" (saved by Keras {_short(version, 20)}, whose loader has no safe_mode: CVE-2024-3660)"
        else:
            note = " (.h5 files ignore safe_mode in Keras 3: CVE-2025-9905)"
        findings: list[Finding] = []
        for name in CONFIG_ATTRIBUTES:
            if name in texts:
                findings += [_with_attribute(f, name) for f in _analyse(
                    texts[name], scanner_id=self.id, location="", limits=limits, check=ctx.check_deadline,
                    note=note)]
        return _with_spans(UnitResult(findings), spans)

    @staticmethod
    def _spans(h5py: Any, f: Any, fileobj: _ReaderFile, ctx: ScanContext) -> list[TensorSpan]:
        """The datasets' spans; a file whose layout cannot be walked (a read budget, a bad
        object header) keeps those found before, with one more left out, and its config
        findings: the weights are an addition to them, not a reason to lose them."""
        spans = SpanList(ctx.limits.max_tensor_spans)
        try:
            h5_spans(h5py, f, spans, ctx.check_deadline)
        except ScanTimeout:
            raise
        except Exception as exc:  # h5py raises OSError, KeyError, RuntimeError... for bad files
            if isinstance(fileobj.stopped, ScanTimeout):
                raise fileobj.stopped from exc
            spans.left_out()
        return spans.finish()


def _with_spans(result: UnitResult, spans: list[TensorSpan]) -> UnitResult:
    result.partials[SPANS] = spans
    return result


def _with_attribute(f: Finding, attribute: str) -> Finding:
    return replace(f, evidence={**f.evidence, "attribute": attribute})
