"""Benchmark inputs, written byte by byte without torch or joblib installed.

`torch_zip` writes a PyTorch-layout zip (archive/data.pkl, archive/data/N, version, byteorder)
whose data.pkl is what torch.save writes for a state dict: protocol 2, `_rebuild_tensor_v2`,
BINPERSID storage tuples. `numpy_pickle` writes a pickle of many NumPy arrays.
"""

from __future__ import annotations

import json
import os
import pickle
import struct
import zipfile
from pathlib import Path
from typing import Any

MiB = 1 << 20


def _sbu(s: str) -> bytes:
    b = s.encode()
    return b"X" + struct.pack("<I", len(b)) + b


def state_dict_pickle(sizes: list[int]) -> bytes:
    """data.pkl for an OrderedDict of float32 tensors of `sizes` elements, one storage each."""
    out = [b"\x80\x02ccollections\nOrderedDict\nq\x00)Rq\x01("]
    for i, numel in enumerate(sizes):
        out.append(_sbu(f"layers.{i}.weight"))
        out.append(b"ctorch._utils\n_rebuild_tensor_v2\n(")
        out.append(b"(" + _sbu("storage") + b"ctorch\nFloatStorage\n" + _sbu(str(i)) + _sbu("cpu")
                   + b"J" + struct.pack("<i", numel) + b"tQ")
        out.append(b"K\x00J" + struct.pack("<i", numel) + b"\x85K\x01\x85\x89ccollections\nOrderedDict\n)Rt")
        out.append(b"R")
    out.append(b"u.")
    return b"".join(out)


def torch_zip(path: Path, total_bytes: int, tensor_bytes: int = 64 * MiB) -> Path:
    """A stored (uncompressed) torch zip of about `total_bytes` of float32 storages."""
    count = max(1, total_bytes // tensor_bytes)
    sizes = [tensor_bytes // 4] * count
    block = os.urandom(MiB)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("archive/data.pkl", state_dict_pickle(sizes))
        zf.writestr("archive/byteorder", "little")
        for i, numel in enumerate(sizes):
            with zf.open(f"archive/data/{i}", "w", force_zip64=True) as member:
                for _ in range(numel * 4 // MiB):
                    member.write(block)
        zf.writestr("archive/version", "3\n")
    return path


def numpy_pickle(path: Path, total_bytes: int, arrays: int = 1000, protocol: int = 4) -> Path:
    """A pickle of a dict of `arrays` float32 NumPy arrays, as scikit-learn and joblib
    users save them (written by pickle.dumps; nothing is loaded)."""
    import numpy as np

    rng = np.random.default_rng(0)
    per = total_bytes // arrays // 4
    data = {f"w{i}": rng.standard_normal(per).astype(np.float32) for i in range(arrays)}
    path.write_bytes(pickle.dumps(data, protocol=protocol))
    return path


def tiny_pickle(path: Path) -> Path:
    path.write_bytes(pickle.dumps({"weight": [0.1, 0.2], "epoch": 3}, protocol=4))
    return path


def safetensors_file(path: Path, total_bytes: int, tensor_bytes: int = 64 * MiB) -> Path:
    """A SafeTensors file of float32 tensors (header written by hand: no library needed)."""
    count = max(1, total_bytes // tensor_bytes)
    header, offset = {}, 0
    for i in range(count):
        header[f"layers.{i}.weight"] = {"dtype": "F32", "shape": [tensor_bytes // 4],
                                        "data_offsets": [offset, offset + tensor_bytes]}
        offset += tensor_bytes
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    block = os.urandom(MiB)
    with open(path, "wb") as fh:
        fh.write(len(raw).to_bytes(8, "little") + raw)
        for _ in range(offset // MiB):
            fh.write(block)
    return path


def _gguf_string(text: str) -> bytes:
    raw = text.encode()
    return struct.pack("<Q", len(raw)) + raw


def gguf_file(path: Path, total_bytes: int, tensor_bytes: int = 64 * MiB) -> Path:
    """A GGUF v3 file of F32 tensors with llama-style metadata, written field by field."""
    count = max(1, total_bytes // tensor_bytes)
    alignment = 32
    kv = [
        _gguf_string("general.architecture") + struct.pack("<I", 8) + _gguf_string("llama"),
        _gguf_string("general.alignment") + struct.pack("<I", 4) + struct.pack("<I", alignment),
        _gguf_string("general.name") + struct.pack("<I", 8) + _gguf_string("bench"),
    ]
    infos = []
    for i in range(count):
        infos.append(_gguf_string(f"blk.{i}.weight") + struct.pack("<I", 1) + struct.pack("<Q", tensor_bytes // 4)
                     + struct.pack("<I", 0) + struct.pack("<Q", i * tensor_bytes))
    header = b"GGUF" + struct.pack("<IQQ", 3, count, len(kv)) + b"".join(kv) + b"".join(infos)
    header += b"\x00" * (-len(header) % alignment)
    block = os.urandom(MiB)
    with open(path, "wb") as fh:
        fh.write(header)
        for _ in range(count * tensor_bytes // MiB):
            fh.write(block)
    return path


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field(number: int, payload: bytes | int) -> bytes:
    if isinstance(payload, int):
        return _varint(number << 3) + _varint(payload)
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def onnx_file(path: Path, total_bytes: int, tensor_bytes: int = 64 * MiB) -> Path:
    """An ONNX ModelProto of MatMul nodes over float32 initializers, encoded field by field
    (ModelProto: ir_version 1, graph 7, opset_import 8; GraphProto: node 1, name 2,
    initializer 5, input 11, output 12; TensorProto: dims 1, data_type 2, name 8, raw_data 9)."""
    count = max(1, total_bytes // tensor_bytes)
    block = os.urandom(MiB)
    raw = block * (tensor_bytes // MiB)
    nodes, inits = [], []
    for i in range(count):
        nodes.append(_field(1, _field(1, f"x{i}".encode()) + _field(1, f"w{i}".encode())
                            + _field(2, f"x{i + 1}".encode()) + _field(4, b"MatMul")))
        inits.append(_field(5, _field(1, tensor_bytes // 4) + _field(2, 1) + _field(8, f"w{i}".encode())
                            + _field(9, raw)))
    graph = b"".join(nodes) + _field(2, b"bench") + b"".join(inits) + _field(11, _field(1, b"x0")) \
        + _field(12, _field(1, f"x{count}".encode()))
    model = _field(1, 8) + _field(2, b"bench") + _field(7, graph) + _field(8, _field(1, b"") + _field(2, 17))
    path.write_bytes(model)
    return path


def hdf5_file(path: Path, total_bytes: int) -> Path:
    """An HDF5 file of one float32 dataset (h5py, a dependency of the Keras scanner)."""
    import h5py
    import numpy as np

    with h5py.File(path, "w") as fh:
        data = fh.create_dataset("weights", shape=(total_bytes // 4,), dtype="float32")
        step = 16 * MiB // 4
        chunk = np.random.default_rng(0).standard_normal(step).astype(np.float32)
        for start in range(0, total_bytes // 4, step):
            data[start:start + step] = chunk[: min(step, total_bytes // 4 - start)]
    return path


def tf_graph_file(path: Path, total_bytes: int, tensor_bytes: int = 64 * MiB) -> Path:
    """A frozen TensorFlow GraphDef of Const nodes holding float32 tensor_content (GraphDef node 1;
    NodeDef name 1, op 2, attr 5; AttrValue tensor 8; TensorProto dtype 1, tensor_shape 2,
    tensor_content 4; TensorShapeProto dim 2, Dim size 1)."""
    count = max(1, total_bytes // tensor_bytes)
    raw = os.urandom(MiB) * (tensor_bytes // MiB)
    nodes = []
    for i in range(count):
        tensor = _field(1, 1) + _field(2, _field(2, _field(1, tensor_bytes // 4))) + _field(4, raw)
        attrs = _field(5, _field(1, b"value") + _field(2, _field(8, tensor))) \
            + _field(5, _field(1, b"dtype") + _field(2, _field(6, 1)))
        nodes.append(_field(1, _field(1, f"w{i}".encode()) + _field(2, b"Const") + attrs))
    path.write_bytes(b"".join(nodes) + _field(4, _field(1, 1808)))
    return path


def flax_msgpack_file(path: Path, total_bytes: int, tensor_bytes: int = 64 * MiB) -> Path:
    """A Flax checkpoint as flax.serialization writes it: a msgpack map of layers whose arrays
    are ExtType(1, packb((shape, dtype name, bytes)))."""
    count = max(1, total_bytes // tensor_bytes)
    raw = os.urandom(MiB) * (tensor_bytes // MiB)

    def fixstr(text: str) -> bytes:
        data = text.encode()
        return bytes([0xA0 | len(data)]) + data

    record = b"\x93" + b"\x91\xce" + struct.pack(">I", tensor_bytes // 4) + fixstr("float32") \
        + b"\xc6" + struct.pack(">I", len(raw)) + raw
    ext = b"\xc9" + struct.pack(">I", len(record)) + b"\x01" + record
    layers = b"".join(fixstr(f"Dense_{i}") + b"\x81" + fixstr("kernel") + ext for i in range(count))
    path.write_bytes(b"\x81" + fixstr("params") + b"\xde" + struct.pack(">H", count) + layers)
    return path


def pmml_file(path: Path, total_bytes: int) -> Path:
    """A PMML regression model with many predictors (plain XML, as PMML exporters write it)."""
    predictor = '<NumericPredictor name="x" exponent="1" coefficient="0.123456789"/>\n'
    with open(path, "w", encoding="utf-8") as fh:
        fh.write('<?xml version="1.0" encoding="UTF-8"?>\n<PMML version="4.4" xmlns="http://www.dmg.org/PMML-4_4">\n'
                 '<Header/><DataDictionary numberOfFields="1"><DataField name="x" optype="continuous" '
                 'dataType="double"/></DataDictionary>\n<RegressionModel functionName="regression">'
                 '<MiningSchema><MiningField name="x"/></MiningSchema>\n<RegressionTable intercept="0">\n')
        fh.write(predictor * (total_bytes // len(predictor)))
        fh.write("</RegressionTable></RegressionModel></PMML>\n")
    return path


#: Flatbuffer scalar kinds and their struct formats.
_FB_SCALARS = {"i8": "<b", "i32": "<i", "u32": "<I"}


class _FlatWriter:
    """A forward-only flatbuffer writer: every child (table, vector, string) is written after the
    table that points at it, as flatbuffer uoffsets point forward. A table is {slot: (kind,
    value)}; kinds are the scalars above, "str", "ints" (a vector of int32), "table", "tables"
    and "data" (a [ubyte] vector written later by `finish`: the big tensor buffers)."""

    def __init__(self) -> None:
        self.buf = bytearray(8)
        self.buf[4:8] = b"TFL3"
        self.deferred: list[tuple[int, int]] = []  # (uoffset position, byte length)

    def _align(self) -> None:
        self.buf += bytes(-len(self.buf) % 4)

    def _patch(self, at: int, target: int) -> None:
        struct.pack_into("<I", self.buf, at, target - at)

    def table(self, fields: dict[int, tuple[str, object]]) -> int:
        self._align()
        slots = max(fields, default=-1) + 1
        offsets = [0] * slots
        for k, slot in enumerate(sorted(fields)):
            offsets[slot] = 4 + 4 * k
        vtable = len(self.buf)
        self.buf += struct.pack(f"<HH{slots}H", 4 + 2 * slots, 4 + 4 * len(fields), *offsets)
        self._align()
        pos = len(self.buf)
        self.buf += struct.pack("<i", pos - vtable) + bytes(4 * len(fields))
        children = []
        for slot, (kind, value) in fields.items():
            if kind in _FB_SCALARS:
                struct.pack_into(_FB_SCALARS[kind], self.buf, pos + offsets[slot], value)
            else:
                children.append((pos + offsets[slot], kind, value))
        for at, kind, value in children:
            if kind == "data":
                self.deferred.append((at, int(value)))  # type: ignore[call-overload]
            else:
                self._patch(at, self.child(kind, value))
        return pos

    def child(self, kind: str, value: object) -> int:
        self._align()
        pos = len(self.buf)
        if kind == "str":
            data = str(value).encode()
            self.buf += struct.pack("<I", len(data)) + data + b"\0"
        elif kind == "ints":
            ints = list(value)  # type: ignore[call-overload]
            self.buf += struct.pack(f"<I{len(ints)}i", len(ints), *ints)
        elif kind == "table":
            return self.table(value)  # type: ignore[arg-type]
        else:  # "tables"
            tables = list(value)  # type: ignore[call-overload]
            self.buf += struct.pack("<I", len(tables)) + bytes(4 * len(tables))
            for k, t in enumerate(tables):
                self._patch(pos + 4 + 4 * k, self.table(t))
        return pos

    def finish(self, root: dict[int, tuple[str, object]], fh: Any, block: bytes) -> None:
        """Write the flatbuffer, then each deferred data vector of repeated `block`s."""
        struct.pack_into("<I", self.buf, 0, self.table(root))
        self._align()
        pos = len(self.buf)
        for at, length in self.deferred:
            self._patch(at, pos)
            pos += 4 + length + (-length % 4)
        fh.write(self.buf)
        for _, length in self.deferred:
            fh.write(struct.pack("<I", length))
            for _ in range(length // len(block)):
                fh.write(block)
            fh.write(bytes(length % len(block) + (-length % 4)))


def tflite_file(path: Path, total_bytes: int, tensor_bytes: int = 64 * MiB) -> Path:
    """A TFLite model as the converter writes one under 2 GB: one subgraph of FULLY_CONNECTED
    operators, one float32 weight tensor each, the weights inline in the buffers vector
    (Model: version 0, operator_codes 1, subgraphs 2, description 3, buffers 4; OperatorCode:
    deprecated_builtin_code 0, version 2, builtin_code 3; SubGraph: tensors 0, inputs 1, outputs 2,
    operators 3, name 4; Tensor: shape 0, type 1, buffer 2, name 3; Operator: opcode_index 0,
    inputs 1, outputs 2; Buffer: data 0). Buffer 0 is the empty buffer, by convention."""
    count = max(1, total_bytes // tensor_bytes)
    fully_connected, float32 = 9, 0
    tensors = [{0: ("ints", [1, 256]), 1: ("i8", float32), 2: ("u32", 0), 3: ("str", "input")}]
    operators = []
    for i in range(count):
        tensors.append({0: ("ints", [tensor_bytes // 4 // 256, 256]), 1: ("i8", float32), 2: ("u32", i + 1),
                        3: ("str", f"dense_{i}/kernel")})
        tensors.append({0: ("ints", [1, 256]), 1: ("i8", float32), 2: ("u32", 0), 3: ("str", f"dense_{i}/out")})
        src = 0 if i == 0 else 2 * i
        operators.append({0: ("u32", 0), 1: ("ints", [src, 2 * i + 1]), 2: ("ints", [2 * i + 2])})
    subgraph = {0: ("tables", tensors), 1: ("ints", [0]), 2: ("ints", [2 * count]), 3: ("tables", operators),
                4: ("str", "main")}
    buffers = [{}] + [{0: ("data", tensor_bytes)} for _ in range(count)]
    root = {0: ("u32", 3), 1: ("tables", [{0: ("i8", fully_connected), 2: ("i32", 1), 3: ("i32", fully_connected)}]),
            2: ("tables", [subgraph]), 3: ("str", "bench"), 4: ("tables", buffers)}
    writer = _FlatWriter()
    with open(path, "wb") as fh:
        writer.finish(root, fh, os.urandom(MiB))
    return path


def npy_file(path: Path, total_bytes: int) -> Path:
    """A NumPy .npy of float32 (format 1.0 header padded to 64 bytes, as numpy.save writes it)."""
    count = total_bytes // 4
    header = f"{{'descr': '<f4', 'fortran_order': False, 'shape': ({count},), }}".encode()
    header += b" " * (-(10 + len(header) + 1) % 64) + b"\n"
    block = os.urandom(MiB)
    with open(path, "wb") as fh:
        fh.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header)
        for _ in range(count * 4 // MiB):
            fh.write(block)
    return path


def tar_file(path: Path, total_bytes: int) -> Path:
    """An uncompressed tar holding one SafeTensors file, as model bundles ship weights."""
    import tarfile

    inner = safetensors_file(path.with_suffix(".inner.safetensors"), total_bytes)
    with tarfile.open(path, "w") as tar:
        tar.add(inner, arcname="model/model.safetensors")
    inner.unlink()
    return path
