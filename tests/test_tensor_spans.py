"""Tensor spans the ONNX, HDF5/Keras and NumPy scanners hand to the weight analysis.

Every analysed span is checked against the real library's reading of the same file: the bytes
at [offset, offset + nbytes) of the scanned reader (or of `source`), as the span's dtype and
shape, must equal the array exactly. ONNX is not installed here: its fixtures are compared with
the arrays their generator wrote (`tests/fixtures/onnx/generate.py`, seeded), and hand-built
models with the values they were built from. Nothing is ever unpickled (`allow_pickle=False`).
"""

from __future__ import annotations

import io
import os
import struct
from dataclasses import replace
from pathlib import Path

import h5py
import numpy as np
import pytest

from shardscan.limits import DEFAULT_LIMITS, Limits
from shardscan.model import UnitResult
from shardscan.pipeline.runner import Runner, ScanOptions
from shardscan.scanners.base import ScanContext
from shardscan.storage.reader import BytesReader, LocalReader, RangeReader
from shardscan.weights.spans import MORE_TENSORS, SPANS, TensorSpan
from tests.protowire import key, ld, varint, vi

FIXTURES = Path(__file__).parent / "fixtures"
ONNX = FIXTURES / "onnx"
KERAS = FIXTURES / "keras"
BENIGN = FIXTURES / "benign"
NP_DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2"}

# --- scanning and checking ------------------------------------------------------------------------


class Scan:
    """One object's scan, with the spans and bytes of every member the containers handed back.

    The context is built here without a weight coverage, so only the spans are produced (the
    analysis itself is tested elsewhere)."""

    def __init__(self, name: str, reader: RangeReader, limits: Limits = DEFAULT_LIMITS) -> None:
        self.runner = Runner(ScanOptions(limits=limits))
        self.members: dict[str, tuple[list[TensorSpan], bytes]] = {}
        ctx = ScanContext(policy=self.runner.policy, limits=limits, scan_member=self._member)
        self.result: UnitResult = self.runner.scan_content(name, reader, ctx)
        self.data = reader.read(0, reader.size)

    def _member(self, name: str, reader: RangeReader, ctx: ScanContext) -> UnitResult:
        result = self.runner.scan_content(name, reader, ctx)
        self.members[name] = (list(result.partials.get(SPANS, ())), reader.read(0, reader.size))
        return result

    @property
    def spans(self) -> list[TensorSpan]:
        return list(self.result.partials.get(SPANS, ()))


def scan_file(path: Path, limits: Limits = DEFAULT_LIMITS) -> Scan:
    return Scan(str(path), LocalReader(path), limits)


def array_of(span: TensorSpan, data: bytes) -> np.ndarray:
    """The span's bytes as NumPy reads them (from `source` when the span names another file)."""
    if span.source:
        data = Path(span.source).read_bytes()
    assert span.offset + span.nbytes <= len(data), span
    raw = data[span.offset : span.offset + span.nbytes]
    return np.frombuffer(raw, dtype=NP_DTYPES[span.dtype]).reshape(span.shape)


def by_name(spans: list[TensorSpan]) -> dict[str, TensorSpan]:
    return {s.name: s for s in spans}


def exactly(actual: np.ndarray, expected: np.ndarray) -> None:
    assert actual.dtype == expected.dtype and actual.shape == expected.shape
    assert actual.tobytes() == expected.tobytes()


# --- ONNX -----------------------------------------------------------------------------------------


def mlp_arrays() -> dict[str, np.ndarray]:
    """The initializers `generate.py` writes into mlp.onnx and external/model.onnx."""
    r = np.random.default_rng(0)
    w1 = r.standard_normal((4, 8)).astype(np.float32)
    w2 = r.standard_normal((8, 2)).astype(np.float32)
    return {"w1": w1, "b1": np.zeros(8, np.float32), "w2": w2}


def test_onnx_raw_data_initializers_match_the_generator():
    scan = scan_file(ONNX / "mlp.onnx")
    spans = by_name(scan.spans)
    assert sorted(spans) == ["b1", "w1", "w2"]
    for name, expected in mlp_arrays().items():
        assert spans[name].analysed and not spans[name].source
        exactly(array_of(spans[name], scan.data), expected)
    # w1 and w2 are input B of MatMul: (in, out).
    assert (spans["w1"].out_axis, spans["w2"].out_axis, spans["b1"].out_axis) == (1, 1, None)


def test_onnx_external_data_spans_point_into_the_data_file():
    scan = scan_file(ONNX / "external" / "model.onnx")
    spans = by_name(scan.spans)
    data_file = os.path.abspath(ONNX / "external" / "model.onnx.data")
    for name, expected in mlp_arrays().items():
        assert spans[name].source == data_file and spans[name].analysed
        exactly(array_of(spans[name], scan.data), expected)
    assert spans["w1"].out_axis == 1


def test_onnx_external_data_of_a_remote_model_is_skipped():
    data = (ONNX / "external" / "model.onnx").read_bytes()
    spans = Scan("s3://bucket/model.onnx", BytesReader(data)).spans
    assert [(s.name, s.skip, s.source) for s in spans] == [(n, "external data", "") for n in ("w1", "b1", "w2")]


def test_onnx_fixtures_spans_lie_inside_their_files():
    for path in sorted(ONNX.glob("*.onnx")):
        scan = scan_file(path)
        for span in scan.spans:
            if span.analysed:
                array_of(span, scan.data)  # within the file, of the declared size
    control = by_name(scan_file(ONNX / "control_flow.onnx").spans)
    exactly(array_of(control["one"], (ONNX / "control_flow.onnx").read_bytes()), np.array([1.0], np.float32))
    assert (control["trip"].dtype, control["trip"].skip, control["trip"].nbytes) == ("I64", "integer", 8)
    conv = scan_file(ONNX / "backend_torch_conv2d.onnx").spans
    assert [(s.dtype, s.shape) for s in conv if s.analysed] == [("F32", (4, 3, 3, 2)), ("F32", (4,))]


# Hand-built ModelProto pieces (onnx.proto field numbers).
FLOAT, INT64, STRING, FLOAT16, DOUBLE, BFLOAT16, FLOAT8E4M3FN = 1, 7, 8, 10, 11, 16, 17


def tensor(name: str, data_type: int, dims: tuple[int, ...], *fields: bytes) -> bytes:
    return b"".join(vi(1, d) for d in dims) + vi(2, data_type) + ld(8, name) + b"".join(fields)


def node(op: str, inputs: list[str], **ints: int) -> bytes:
    attrs = b"".join(ld(5, ld(1, k) + vi(3, v) + vi(20, 2)) for k, v in ints.items())
    return b"".join(ld(1, i) for i in inputs) + ld(2, f"{op}_out") + ld(4, op) + attrs


def model(*graph_fields: bytes) -> bytes:
    return vi(1, 8) + ld(7, b"".join(graph_fields) + ld(2, "g"))


def test_onnx_typed_fields_skips_and_output_axes():
    f32 = np.arange(6, dtype=np.float32).reshape(2, 3) / 7
    f64 = np.array([1.5, -2.25, 1e-300])
    f16 = np.array([[0.5, -1.0], [65504.0, 1e-3]], np.float16)
    bf16 = np.array([0x3F80, 0xC000, 0x0001], "<u2")  # 1.0, -2.0, a subnormal
    batched = np.ones((2, 3, 4), np.float32)
    unpacked = b"".join(key(4, 5) + struct.pack("<f", v) for v in (1.0, 2.0))
    data = model(
        ld(1, node("Gemm", ["x", "gemm_t"], transB=1)),  # nodes first...
        ld(5, tensor("gemm_t", FLOAT, (2, 3), ld(9, f32.tobytes()))),
        ld(5, tensor("gemm", FLOAT, (2, 3), ld(4, f32.tobytes()))),  # packed float_data
        ld(5, tensor("matmul3d", FLOAT, (2, 3, 4), ld(9, batched.tobytes()))),
        ld(5, tensor("both", FLOAT, (2, 3), ld(9, f32.tobytes()))),
        ld(5, tensor("doubles", DOUBLE, (3,), ld(10, f64.tobytes()))),  # packed double_data
        ld(5, tensor("halves", FLOAT16, (2, 2), ld(9, f16.tobytes()))),
        ld(5, tensor("brains", BFLOAT16, (3,), ld(9, bf16.tobytes()))),
        ld(5, tensor("ints", INT64, (2,), ld(9, np.array([1, 2], "<i8").tobytes()))),
        ld(5, tensor("fp8", FLOAT8E4M3FN, (2,), ld(9, b"\x38\x40"))),
        ld(5, tensor("words", STRING, (1,), ld(6, b"hello"))),
        ld(5, tensor("loose", FLOAT, (2,), unpacked)),
        ld(5, tensor("short", FLOAT, (4,), ld(9, f32.tobytes()[:8]))),
        ld(5, tensor("packed_dims", FLOAT, (), ld(1, varint(3) + varint(2)), ld(9, f32.tobytes()))),
        ld(1, node("Gemm", ["x", "gemm"])),  # ...and after the initializers they feed
        ld(1, node("MatMul", ["x", "matmul3d"])),
        ld(1, node("MatMul", ["x", "both"])),
        ld(1, node("Gemm", ["x", "both"], transB=1)),
    )
    scan = Scan("built.onnx", BytesReader(data))
    spans = by_name(scan.spans)
    exactly(array_of(spans["gemm_t"], data), f32)
    exactly(array_of(spans["gemm"], data), f32)
    exactly(array_of(spans["doubles"], data), f64)
    exactly(array_of(spans["packed_dims"], data), f32.reshape(3, 2))
    exactly(array_of(spans["halves"], data), f16)
    brains = spans["brains"]
    assert (brains.dtype, brains.shape, brains.analysed) == ("BF16", (3,), True)
    assert data[brains.offset : brains.offset + brains.nbytes] == bf16.tobytes()
    axes = {n: s.out_axis for n, s in spans.items()}
    assert (axes["gemm_t"], axes["gemm"], axes["matmul3d"], axes["both"], axes["halves"]) == (0, 1, 2, None, None)
    skips = {n: (s.dtype, s.skip) for n, s in spans.items() if not s.analysed}
    assert skips == {"ints": ("I64", "integer"), "fp8": ("F8_E4M3", "fp8"), "words": ("STRING", "string"),
                     "loose": ("F32", "unpacked"), "short": ("F32", "size mismatch")}
    assert spans["ints"].nbytes == 16 and data[spans["ints"].offset:][:16] == np.array([1, 2], "<i8").tobytes()


def external_model(tmp_path: Path, location: str) -> Path:
    ext = b"".join(ld(13, ld(1, k) + ld(2, v)) for k, v in (("location", location), ("offset", "0"),
                                                           ("length", "8")))
    path = tmp_path / "model" / "m.onnx"
    path.parent.mkdir()
    path.write_bytes(model(ld(5, tensor("w", FLOAT, (2,), ext, vi(14, 1)))))
    return path


def test_onnx_external_data_outside_the_directory_is_skipped(tmp_path):
    (tmp_path / "outside.bin").write_bytes(np.ones(2, np.float32).tobytes())
    [span] = scan_file(external_model(tmp_path, "../outside.bin")).spans
    assert (span.skip, span.source) == ("external data outside the local directory", "")


def test_onnx_external_data_missing_or_short_is_skipped(tmp_path):
    path = external_model(tmp_path, "w.bin")
    assert scan_file(path).spans[0].skip == "external data missing"
    (path.parent / "w.bin").write_bytes(b"\0" * 4)
    assert scan_file(path).spans[0].skip == "external data out of bounds"
    (path.parent / "w.bin").write_bytes(np.array([3.0, -4.0], np.float32).tobytes())
    [span] = scan_file(path).spans
    exactly(array_of(span, b""), np.array([3.0, -4.0], np.float32))


def test_span_limit_leaves_one_skipped_span_for_the_rest():
    limits = replace(DEFAULT_LIMITS, max_tensor_spans=1)
    spans = scan_file(ONNX / "mlp.onnx", limits).spans
    assert [s.name for s in spans] == ["w1", MORE_TENSORS]
    assert (spans[1].shape, spans[1].nbytes, spans[1].analysed) == ((2,), 32 + 64, False)
    h5 = scan_file(KERAS / "sequential.h5", limits).spans
    assert len(h5) == 2 and h5[1].name == MORE_TENSORS


# --- HDF5 / Keras ---------------------------------------------------------------------------------


def float_datasets(f: h5py.File) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}

    def visit(name: str, obj: object) -> None:
        if isinstance(obj, h5py.Dataset) and obj.dtype.kind == "f":
            out[name] = obj[()]

    f.visititems(visit)
    return out


def check_h5(spans: list[TensorSpan], data: bytes) -> None:
    """Every float dataset has an analysed span whose bytes are the dataset, exactly."""
    with h5py.File(io.BytesIO(data), "r") as f:
        expected = float_datasets(f)
    analysed = {s.name: s for s in spans if s.analysed}
    assert sorted(analysed) == sorted(expected)
    for name, array in expected.items():
        exactly(array_of(analysed[name], data), np.asarray(array))
        kernel = name.rsplit("/", 1)[-1] in ("kernel", "kernel:0") and array.ndim >= 2
        assert analysed[name].out_axis == (array.ndim - 1 if kernel else None)


@pytest.mark.parametrize("name", ["sequential.h5", "functional.h5", "lambda.h5", "weights.weights.h5"])
def test_h5_fixture_spans_match_h5py(name):
    scan = scan_file(KERAS / name)
    check_h5(scan.spans, scan.data)
    assert any(s.out_axis is not None for s in scan.spans) == (name != "weights.weights.h5")


@pytest.mark.parametrize("name", ["sequential.keras", "functional.keras", "lambda.keras"])
def test_keras_zip_weights_member_spans_match_h5py(name):
    scan = scan_file(KERAS / name)
    spans, data = scan.members["model.weights.h5"]
    assert spans
    check_h5(spans, data)


def test_h5_skip_reasons_and_chunks(tmp_path):
    path = tmp_path / "weights.h5"
    grid = np.arange(20, dtype=np.float32).reshape(5, 4) - 3.5
    with h5py.File(path, "w") as f:
        layers = f.create_group("layers")
        layers.create_dataset("gzip", data=grid, compression="gzip")
        layers.create_dataset("big", data=grid.astype(">f4"))
        layers.create_dataset("ints", data=np.arange(4, dtype=np.int64))
        layers.create_dataset("bf16_bits", data=np.arange(4, dtype=np.uint16))
        layers.create_dataset("empty", shape=(3,), dtype="<f4")
        layers.create_dataset("chunked", data=grid, chunks=(2, 3))
        layers.create_dataset("double/kernel", data=grid.astype(np.float64))
    scan = scan_file(path)
    spans = scan.spans
    skips = {s.name: (s.dtype, s.skip) for s in spans if not s.analysed}
    assert skips == {"layers/gzip": ("F32", "compressed"), "layers/big": ("F32", "big-endian"),
                     "layers/ints": ("I64", "integer"), "layers/bf16_bits": ("U16", "integer"),
                     "layers/empty": ("F32", "not allocated")}
    kernel = by_name(spans)["layers/double/kernel"]
    exactly(array_of(kernel, scan.data), grid.astype(np.float64))
    assert kernel.out_axis == 1
    chunks = [s for s in spans if s.name.startswith("layers/chunked[chunk ")]
    assert len(chunks) == 6  # 3 x 2 chunks of (2, 3), the edge ones padded
    with h5py.File(path, "r") as f:
        dset = f["layers/chunked"]
        where = {dset.id.get_chunk_info(i).byte_offset: dset.id.get_chunk_info(i).chunk_offset
                 for i in range(dset.id.get_num_chunks())}
    for span in chunks:
        assert span.shape == (2, 3) and span.out_axis is None
        r, c = where[span.offset]
        valid = grid[r : r + 2, c : c + 3]
        exactly(array_of(span, scan.data)[: valid.shape[0], : valid.shape[1]], valid)


# --- NumPy ----------------------------------------------------------------------------------------


def test_npy_fixture_span_matches_numpy():
    path = BENIGN / "numpy_float32.npy"
    scan = scan_file(path)
    [span] = scan.spans
    assert (span.dtype, span.out_axis) == ("F32", None)
    exactly(array_of(span, scan.data), np.load(path, allow_pickle=False))


@pytest.mark.parametrize("name", ["numpy_two_arrays.npz", "numpy_compressed.npz"])
def test_npz_member_spans_match_numpy(name):
    path = BENIGN / name
    scan = scan_file(path)
    with np.load(path, allow_pickle=False) as npz:
        expected = {f"{k}.npy": npz[k] for k in npz.files}
    assert sorted(scan.members) == sorted(expected)
    for member, array in expected.items():
        spans, data = scan.members[member]
        [span] = spans
        exactly(array_of(span, data), array)


def npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


def npy_span(data: bytes) -> TensorSpan:
    [span] = Scan("a.npy", BytesReader(data)).spans
    return span


def test_npy_dtypes_byte_orders_and_fortran_order():
    grid = (np.arange(12, dtype=np.float64).reshape(3, 4) - 5) / 3
    for dtype, name in (("<f2", "F16"), ("<f4", "F32"), ("<f8", "F64")):
        data = npy_bytes(grid.astype(dtype))
        span = npy_span(data)
        assert (span.dtype, span.shape, span.analysed) == (name, (3, 4), True)
        exactly(array_of(span, data), grid.astype(dtype))
    big = npy_span(npy_bytes(grid.astype(">f4")))
    assert (big.dtype, big.skip) == ("F32", "big-endian")
    ints = npy_span(npy_bytes(np.arange(4, dtype="<i8")))
    assert (ints.dtype, ints.skip, ints.nbytes) == ("I64", "integer", 32)
    native = npy_bytes(grid.astype("<f4")).replace(b"'<f4'", b"'=f4'")
    assert npy_span(native).skip == "native byte order"
    # A Fortran-ordered array is described as the row-major array of the reversed shape.
    fortran = np.asfortranarray(grid.astype(np.float32))
    data = npy_bytes(fortran)
    span = npy_span(data)
    assert (span.shape, span.out_axis, span.analysed) == ((4, 3), None, True)
    exactly(array_of(span, data), np.ascontiguousarray(fortran.T))


def test_npy_object_array_has_no_span():
    scan = scan_file(BENIGN / "numpy_object_strings.npy")
    assert scan.spans == []
