"""Every parser against the same damage: one real file per format, cut short, with bytes of its
header overwritten by hostile sizes, and with random bytes after its magic. Whatever the damage,
the scan ends within its bounds with a clear result: findings or an error message, never a
traceback, never a hang, and a file cut short is never reported clean."""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest

from shardscan.model import Status
from shardscan.pipeline.runner import Runner, ScanOptions

FIXTURES = Path(__file__).parent / "fixtures"
#: One real file per parser, written by its own library.
REAL = [
    "benign/torch_mlp_fp32.pt", "benign/torch_legacy_state_dict.pt", "benign/sklearn_pipeline_logreg.pkl",
    "benign/sklearn_random_forest.joblib.gz", "benign/numpy_float32.npy", "benign/numpy_two_arrays.npz",
    "benign/torch_jit_script.pt", "safetensors/multi.safetensors", "gguf/llama3_q8.gguf", "onnx/mlp.onnx",
    "onnx/control_flow.onnx", "keras/sequential.h5", "keras/sequential.keras", "tensorflow/frozen_graph.pb",
    "tensorflow/saved_model/saved_model.pb", "tensorflow/tiny.meta", "tensorflow/tiny.tflite",
    "pmml/logreg.pmml", "flax/mlp.msgpack", "configs/llama-3-8b-instruct.tokenizer_config.json",
    "configs/nemo.conformer_ctc_bpe.excerpt.yaml",
]
CUTS = (1, 7, 0.33, 0.5, 0.9, -1)
#: Values written over header bytes: sizes and counts a reader must not trust.
HOSTILE = (b"\xff" * 8, b"\x7f\xff\xff\xff", b"\x00" * 8, b"\xff\xff\xff\x0f")
FLIPS = 12
#: Seconds a damaged file of a few KB may take at most, including the detection.
BOUND_S = 10


def damaged(data: bytes, rng: random.Random) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    for cut in CUTS:
        n = int(len(data) * cut) if isinstance(cut, float) else (cut if cut > 0 else len(data) + cut)
        out[f"cut{n}"] = data[:n]
    head = min(len(data), 512)
    for i in range(FLIPS):
        at = rng.randrange(0, max(1, head - 8))
        value = HOSTILE[i % len(HOSTILE)]
        out[f"at{at}-{i}"] = data[:at] + value + data[at + len(value):]
    out["random"] = data[:16] + rng.randbytes(max(64, len(data) - 16))
    return out


@pytest.mark.parametrize("source", REAL)
def test_damaged_files_end_cleanly(tmp_path: Path, source: str):
    path = FIXTURES / source
    data = path.read_bytes()
    name = path.name
    cases = damaged(data, random.Random(source))
    paths = []
    for label, blob in cases.items():
        folder = tmp_path / label
        folder.mkdir()
        (folder / name).write_bytes(blob)
        paths.append(str(folder / name))
    started = time.monotonic()
    run = Runner(ScanOptions(timeout=BOUND_S)).run(paths)
    assert time.monotonic() - started < BOUND_S * 3
    assert len(run.objects) == len(cases)
    for label, obj in zip(cases, run.objects, strict=True):
        assert obj.status in (Status.SCANNED, Status.ERROR), (label, obj.status)
        if obj.error:
            assert "Traceback" not in obj.error and "Error:" not in obj.error.split(":", 1)[0], (label, obj.error)
        cut_off = data[len(cases[label]):]
        # Cut short, a file must say it broke: text can still read as text, and a cut that
        # drops only a final newline leaves a whole document.
        if label.startswith("cut") and cut_off.strip() and obj.format != "text":
            assert obj.status == Status.ERROR or obj.findings, (label, obj.format)


def test_legacy_torch_file_cut_in_its_storages_says_which_storage(tmp_path: Path):
    data = (FIXTURES / "benign/torch_legacy_state_dict.pt").read_bytes()
    whole = Runner(ScanOptions()).run([str(FIXTURES / "benign/torch_legacy_state_dict.pt")])
    assert not whole.findings  # every storage count matches its declaration and fits the file
    (tmp_path / "cut.pt").write_bytes(data[:-100])
    [obj] = Runner(ScanOptions()).run([str(tmp_path / "cut.pt")]).objects
    [hit] = [f for f in obj.findings if f.rule_id == "TRC102"]
    assert "runs past the end" in hit.message and hit.evidence["key"]
