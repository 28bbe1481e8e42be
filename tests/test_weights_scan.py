"""The weight analysis end to end: tensors found by each format scanner, read from the file,
judged, and reported with the tensor's name and the byte offsets of what was found. Tampered
files are written here from bytes; nothing is loaded."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest

from shardscan.cli import main
from shardscan.limits import Limits
from shardscan.model import Severity, Status
from shardscan.pipeline.runner import Runner, ScanOptions
from tests.test_gguf import G
from tests.test_msgpack import arr, pk
from tests.test_weight_detectors import _evilmodel, _plant, elf64_header
from tests.test_zip import state_dict_pkl, torch_zip

FIXTURES = Path(__file__).parent / "fixtures"
ELEMENTS = 1 << 18  # 1 MiB of float32: four W4 sub-blocks
WEIGHT_RULES = ("WGT001", "WGT002", "WGT003", "WGT004", "WGT005", "WGT006", "WGT101", "WGT102")


def weights(seed: int = 1, n: int = ELEMENTS) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(n) * 0.02).astype("<f4")


def safetensors(tensors: dict[str, np.ndarray], dtype: str = "F32") -> tuple[bytes, int, dict[str, int]]:
    """A SafeTensors file, the start of its data section, and each tensor's data offset."""
    header, offset, begins = {}, 0, {}
    for name, array in tensors.items():
        header[name] = {"dtype": dtype, "shape": list(array.shape), "data_offsets": [offset, offset + array.nbytes]}
        begins[name] = offset
        offset += array.nbytes
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    start = 8 + len(raw)
    return len(raw).to_bytes(8, "little") + raw + b"".join(a.tobytes() for a in tensors.values()), start, begins


def scan(tmp_path: Path, name: str, data: bytes, **options):
    (tmp_path / name).write_bytes(data)
    [obj] = Runner(ScanOptions(**options)).run([str(tmp_path / name)]).objects
    return obj


def weight_findings(obj, severity: Severity = Severity.DEBUG) -> list:
    return [f for f in obj.findings if f.rule_id in WEIGHT_RULES and f.severity >= severity]


# --- real models ------------------------------------------------------------------------------

MODELS = [
    "safetensors/f32.safetensors", "safetensors/f16.safetensors", "safetensors/bf16.safetensors",
    "safetensors/multi.safetensors", "safetensors/lora_kohya_metadata.safetensors",
    "benign/torch_mlp_fp32.pt", "benign/torch_mlp_fp16.pt", "benign/torch_mlp_bf16.pt",
    "benign/torch_cnn_bn.pth", "benign/torch_transformer_layer.pt", "benign/torch_legacy_state_dict.pt",
    "benign/torch_checkpoint.pt", "benign/torch_optim_adam.pt", "benign/torch_strided_shared.pt",
    "benign/pytorch_model.bin", "gguf/chatml_f16.gguf", "gguf/llama3_q8.gguf", "onnx/mlp.onnx",
    "onnx/backend_light_alexnet.onnx", "onnx/external/model.onnx", "keras/sequential.h5", "keras/functional.keras",
    "benign/numpy_float32.npy", "benign/numpy_two_arrays.npz", "flax/mlp.msgpack", "flax/bf16.flax",
    "flax/conv.msgpack",
]


@pytest.mark.parametrize("source", MODELS)
def test_real_weights_are_analysed_and_clean(source: str):
    [obj] = Runner(ScanOptions()).run([str(FIXTURES / source)]).objects
    assert obj.status == Status.SCANNED
    assert obj.weights is not None and obj.weights["tensors"] > 0 and obj.weights["bytes"] > 0, obj.weights
    assert weight_findings(obj, Severity.WARNING) == [], weight_findings(obj)


def test_every_fixture_is_free_of_weight_warnings():
    run = Runner(ScanOptions()).run([str(FIXTURES)])
    loud = [(o.object.uri, f.rule_id, f.message) for o in run.objects for f in weight_findings(o, Severity.WARNING)]
    assert loud == []
    assert sum(o.weights["tensors"] for o in run.objects if o.weights) >= 100


def test_quantised_and_integer_tensors_are_recorded_as_skipped():
    [obj] = Runner(ScanOptions()).run([str(FIXTURES / "gguf/llama3_q8.gguf")]).objects
    assert obj.weights["skipped"]["quantised"]["tensors"] > 0
    [obj] = Runner(ScanOptions()).run([str(FIXTURES / "safetensors/i64.safetensors")]).objects
    assert obj.weights == {"tensors": 0, "bytes": 0, "skipped": {"integer": {"tensors": 1, "bytes": 128}}}


# --- planted tampering, found at the right tensor and bytes -------------------------------------


def test_nan_in_safetensors_names_tensor_and_byte(tmp_path: Path):
    bad = weights(2)
    bad[4321] = np.nan
    data, start, begins = safetensors({"encoder.weight": weights(1), "decoder.weight": bad})
    obj = scan(tmp_path, "m.safetensors", data)
    [hit] = weight_findings(obj)
    assert (hit.rule_id, hit.severity, hit.evidence["tensor"]) == ("WGT001", Severity.WARNING, "decoder.weight")
    assert hit.offset == start + begins["decoder.weight"] + 4321 * 4
    begin = start + begins["decoder.weight"]
    assert hit.evidence["byte_range"] == [begin, begin + bad.nbytes]
    assert hit.evidence["threshold"] == 0.0 and hit.evidence["benign_reference"]


def test_exponent_flip_in_torch_checkpoint(tmp_path: Path):
    w = weights(3)
    w.view("<u4")[77_777] ^= np.uint32(1 << 30)
    data = torch_zip(state_dict_pkl([("0", "FloatStorage", w.size)]), {"0": w.tobytes()})
    obj = scan(tmp_path, "model.pt", data)
    [hit] = weight_findings(obj)
    assert (hit.rule_id, hit.evidence["tensor"], hit.evidence["offending_elements"]) == ("WGT002", "layer0.weight",
                                                                                           [77_777])
    with zipfile.ZipFile(tmp_path / "model.pt") as z:
        member = z.getinfo("archive/data/0")
    # the finding's offset is the flipped float's place in the file
    raw = (tmp_path / "model.pt").read_bytes()
    assert hit.offset == hit.evidence["byte_range"][0] + 77_777 * 4
    assert raw[hit.offset:hit.offset + 4] == w[77_777:77_778].tobytes() and member.compress_type == zipfile.ZIP_STORED


def test_payload_in_the_low_bits_of_an_fp16_origin_tensor(tmp_path: Path):
    rng = np.random.default_rng(5)
    w = weights(4).astype(np.float16).astype("<f4").reshape(512, 512)
    flat = w.reshape(-1).view("<u4")
    where = np.sort(rng.choice(flat.size, size=300, replace=False))
    flat[where] = (flat[where] & np.uint32(0xFFFFE000)) | rng.integers(1, 1 << 13, size=where.size, dtype=np.uint32)
    data, start, _ = safetensors({"lm_head.weight": w})
    [hit] = weight_findings(scan(tmp_path, "m.safetensors", data))
    assert (hit.rule_id, hit.severity) == ("WGT003", Severity.WARNING)
    assert hit.evidence["offending_elements"] == where[:8].tolist()
    assert hit.evidence["offending_offsets"][0] == start + int(where[0]) * 4


def test_evilmodel_substitution_and_elf_in_low_bytes(tmp_path: Path):
    host = weights(101)
    evil = _evilmodel(host, 1, np.random.default_rng(1).bytes(3 * 65_536))
    elf = _plant(host, 1000, elf64_header() + bytes(64), 8, "le")
    data, start, begins = safetensors({"a": evil, "b": elf})
    obj = scan(tmp_path, "m.safetensors", data)
    by_rule = {f.rule_id: f for f in weight_findings(obj)}
    assert by_rule["WGT004"].evidence["tensor"] == "a" and by_rule["WGT004"].severity == Severity.WARNING
    assert by_rule["WGT005"].evidence["tensor"] == "b" and by_rule["WGT005"].severity == Severity.CRITICAL
    assert by_rule["WGT005"].offset == start + begins["b"] + 1000 * 4


def test_infinity_in_a_gguf_tensor(tmp_path: Path):
    g = G()
    w = weights(8, 4096)
    w[10] = np.inf
    tensor = g.tensor("blk.0.ffn_up.weight", (64, 64), 0, 0)
    data = g.file([g.kv_str("general.architecture", "llama")], [tensor], w.tobytes())
    [hit] = weight_findings(scan(tmp_path, "m.gguf", data))
    assert (hit.rule_id, hit.evidence["tensor"], hit.evidence["offending_elements"]) == ("WGT001",
                                                                                           "blk.0.ffn_up.weight", [10])
    assert hit.offset == len(data) - w.nbytes + 40


def test_exponent_flip_in_a_flax_kernel(tmp_path: Path):
    w = weights(12, 64 * 64)
    w.view("<u4")[100] ^= np.uint32(1 << 30)
    data = pk({"params": {"Dense_0": {"kernel": arr((64, 64), "float32", w.tobytes()),
                                      "bias": arr((64,), "float32", bytes(256))}}})
    [hit] = weight_findings(scan(tmp_path, "params.msgpack", data))
    assert (hit.rule_id, hit.evidence["tensor"], hit.evidence["offending_elements"]) == (
        "WGT002", "params/Dense_0/kernel", [100])
    raw = (tmp_path / "params.msgpack").read_bytes()
    assert raw[hit.offset:hit.offset + 4] == w[100:101].tobytes()


# --- options, budgets, determinism --------------------------------------------------------------


def test_weights_off_reads_no_tensor(tmp_path: Path):
    bad = weights(9)
    bad[0] = np.nan
    obj = scan(tmp_path, "m.safetensors", safetensors({"w": bad})[0], weights=False)
    assert weight_findings(obj) == [] and obj.weights is None


def test_over_budget_is_reported_not_silently_clean(tmp_path: Path):
    data, _, _ = safetensors({"a": weights(1), "b": weights(2)})
    obj = scan(tmp_path, "m.safetensors", data, limits=Limits(max_weight_bytes=ELEMENTS * 4))
    [hit] = weight_findings(obj)
    assert (hit.rule_id, hit.severity, hit.evidence["tensors"]) == ("WGT006", Severity.INFO, 1)
    assert obj.weights["tensors"] == 1 and obj.weights["skipped"]["over the analysis budget"]["tensors"] == 1


def test_findings_identical_with_one_and_two_workers_and_in_the_cli_report(tmp_path: Path, capsys):
    bad = weights(10)
    bad[[5, 600]] = np.nan
    folder = tmp_path / "models"
    folder.mkdir()
    (folder / "a.safetensors").write_bytes(safetensors({"w": bad})[0])
    shutil.copy(FIXTURES / "benign/torch_mlp_fp32.pt", folder / "b.pt")
    runs = []
    for workers in ("1", "2"):
        assert main(["scan", str(folder), "-f", "json", "--workers", workers, "--no-cache"]) == 1
        report = json.loads(capsys.readouterr().out)
        runs.append(([(f["path"], f["rule_id"], f["offset"], f["evidence"]) for f in report["findings"]],
                     [(f["path"], f["weights"]) for f in report["files"]]))
    assert runs[0] == runs[1]
    assert [r for _, r, *_ in runs[0][0]] == ["WGT001"]
    assert runs[0][1][0][1]["tensors"] == 1


def test_mask_tensors_with_infinities_are_info(tmp_path: Path):
    mask = np.triu(np.full((64, 64), -np.inf, dtype="<f4"), 1)
    obj = scan(tmp_path, "m.safetensors", safetensors({"attn.causal_mask": mask})[0])
    assert {(f.rule_id, f.severity) for f in weight_findings(obj)} == {("WGT001", Severity.INFO)}


# --- spread over workers ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tampered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Models of several blocks per tensor, each with a tampering somewhere past its first block."""
    folder = tmp_path_factory.mktemp("tampered")
    big = (np.random.default_rng(11).standard_normal(3 << 20) * 0.02).astype("<f4")  # 3 blocks, 12 MiB
    nan = big.copy()
    nan[(2 << 20) + 99] = np.nan
    flipped = big.copy()
    flipped.view("<u4")[(1 << 20) + 7] ^= np.uint32(1 << 30)
    (folder / "a.safetensors").write_bytes(safetensors({"x": nan, "y": flipped})[0])
    elf = _plant(big, (1 << 20) - 2, elf64_header() + bytes(64), 8, "le")  # straddles blocks 0 and 1
    (folder / "b.pt").write_bytes(torch_zip(state_dict_pkl([("0", "FloatStorage", elf.size)]), {"0": elf.tobytes()}))
    shutil.copy(FIXTURES / "benign/torch_mlp_bf16.pt", folder / "c.pt")
    return folder


def _weights_summary(run) -> list[tuple]:
    return [(o.object.uri, o.status, o.weights,
             [(f.rule_id, f.severity, f.offset, json.dumps(dict(f.evidence), sort_keys=True)) for f in o.findings])
            for o in run.objects]


def crash_on_weights(task):
    """A task function whose worker dies on any weight block (module level: pools pickle it)."""
    import os

    from shardscan.pipeline.tasks import WeightWork, run_task

    if any(isinstance(w, WeightWork) for w in task.works):
        os._exit(17)
    return run_task(task)


def test_a_worker_dying_on_weight_blocks_costs_only_the_analysis(tampered: Path):
    from shardscan.pipeline.session import ScanConfig, scan

    run = scan([str(tampered)], ScanOptions(), ScanConfig(workers=2, chunk_size=4 << 20, task_fn=crash_on_weights))
    by_name = {o.object.uri.rsplit("/", 1)[-1]: o for o in run.objects}
    big = by_name["a.safetensors"]
    assert big.status == Status.SCANNED and big.format == "safetensors"
    assert big.weights["tensors"] == 0 and big.weights["skipped"]["analysis failed"]["tensors"] == 2
    assert [f.rule_id for f in big.findings] == ["WGT006"]
    assert by_name["c.pt"].weights["tensors"] == 4  # small: analysed inside its scan task


def test_blocks_spread_over_1_2_and_7_workers_give_identical_findings(tampered: Path):
    from shardscan.pipeline.session import ScanConfig, scan

    runs = [_weights_summary(scan([str(tampered)], ScanOptions(), ScanConfig(workers=n, chunk_size=4 << 20)))
            for n in (1, 2, 7)]
    assert runs[0] == runs[1] == runs[2]
    rules = {(uri.rsplit("/", 1)[-1], f[0]) for uri, _, _, findings in runs[0] for f in findings}
    assert {("a.safetensors", "WGT001"), ("a.safetensors", "WGT002"), ("b.pt", "WGT005")} <= rules
    assert runs[0][0][2] == {"tensors": 2, "bytes": 2 * (12 << 20), "skipped": {}}


def test_the_numpy_pass_gives_the_compiled_pass_findings(tampered: Path, monkeypatch):
    """An install without a C compiler computes the same verdicts, evidence and coverage."""
    from shardscan.pipeline.session import ScanConfig, scan
    from shardscan.weights import blocks

    compiled = _weights_summary(scan([str(tampered)], ScanOptions(), ScanConfig(workers=1)))
    monkeypatch.setattr(blocks, "_compiled", None)
    assert _weights_summary(scan([str(tampered)], ScanOptions(), ScanConfig(workers=1))) == compiled
    assert any(f[0] == "WGT005" for _, _, _, findings in compiled for f in findings)


def test_blocks_spread_over_ray_workers_give_the_same_findings(tampered: Path, ray_cluster):
    from shardscan.pipeline.session import ScanConfig, scan

    local = _weights_summary(scan([str(tampered)], ScanOptions(), ScanConfig(workers=1)))
    ray = _weights_summary(scan([str(tampered)], ScanOptions(), ScanConfig(engine="ray", workers=2,
                                                                           chunk_size=4 << 20)))
    assert ray == local


def test_a_failing_analysis_keeps_the_format_findings(tmp_path: Path, monkeypatch):
    from shardscan.weights import blocks

    def broken(*args, **kwargs):
        raise ValueError("defect")

    monkeypatch.setattr(blocks, "block_partial", broken)
    data = safetensors({"w": weights(1)})[0]
    path = tmp_path / "m.safetensors"
    path.write_bytes(data + b"\x7fELF")  # trailing bytes: a format finding that must survive
    [obj] = Runner(ScanOptions()).run([str(path)]).objects
    assert obj.status == Status.SCANNED and obj.format == "safetensors"
    assert any(f.rule_id.startswith("STF") for f in obj.findings)
    [cut] = [f for f in obj.findings if f.rule_id == "WGT006"]
    assert cut.evidence["reason"] == "analysis failed"
    assert obj.weights["skipped"] == {"analysis failed": {"tensors": 1, "bytes": ELEMENTS * 4}}


# --- opt-in statistics (--weights deep) ---------------------------------------------------------


def test_deep_mode_names_a_head_class_outlier_and_a_replaced_layer(tmp_path: Path):
    rng = np.random.default_rng(21)
    head = (rng.uniform(-1, 1, (10, 512)) / np.sqrt(512)).astype("<f4")
    head[7] *= 3  # one class's weights scaled: what a favoured target class can look like
    layers = {f"model.layers.{i}.mlp.up_proj.weight": (rng.standard_normal((64, 64)) * 0.02).astype("<f4")
              for i in range(8)}
    layers["model.layers.5.mlp.up_proj.weight"] = (rng.standard_normal((64, 64)) * 1.0).astype("<f4")
    tensors = {**layers, "classifier.weight": head}
    data, _, _ = safetensors(tensors)
    raw = json.loads(data[8:8 + int.from_bytes(data[:8], "little")])
    raw["__metadata__"] = {"format": "pt"}  # PyTorch layout: the head's classes are its rows
    header = json.dumps(raw).encode()
    header += b" " * (-len(header) % 8)
    data = len(header).to_bytes(8, "little") + header + data[8 + int.from_bytes(data[:8], "little"):]
    default = scan(tmp_path, "m.safetensors", data)
    assert weight_findings(default) == []
    deep = scan(tmp_path, "m.safetensors", data, deep_weights=True)
    found = {(f.rule_id, f.evidence["tensor"], f.severity) for f in weight_findings(deep)}
    assert found == {("WGT101", "classifier.weight", Severity.INFO),
                     ("WGT102", "model.layers.5.mlp.up_proj.weight", Severity.INFO)}
    [head_finding] = [f for f in weight_findings(deep) if f.rule_id == "WGT101"]
    assert head_finding.evidence["confidence"] == "low"
