"""One large file per format: scan time against reading the same bytes.

    python benchmarks/bench_formats.py --workdir /tmp/bench-formats --mb 512

    python benchmarks/bench_formats.py --workdir /tmp/bench-formats --only tflite pmml

Each file is written byte by byte (no framework needed; h5py for HDF5); formats walked element
by element (a NumPy pickle, PMML XML) are capped in size so the run stays short, the page cache is
warmed, then `shardscan scan FILE --no-cache -q` (one file: the in-process engine, content hash
included) is timed against reading the file in a fresh process, best of three each.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.bench_scan import RAW_READ
from benchmarks.inputs import (
    MiB,
    flax_msgpack_file,
    gguf_file,
    hdf5_file,
    npy_file,
    numpy_pickle,
    onnx_file,
    pmml_file,
    safetensors_file,
    tar_file,
    tf_graph_file,
    tflite_file,
    torch_zip,
)

FORMATS = {
    "safetensors": ("model.safetensors", safetensors_file),
    "gguf": ("model.gguf", gguf_file),
    "onnx": ("model.onnx", onnx_file),
    "pytorch zip": ("model.pt", torch_zip),
    "hdf5": ("model.h5", hdf5_file),
    "tensorflow pb": ("frozen_graph.pb", tf_graph_file),
    "tflite": ("model.tflite", tflite_file),
    "flax msgpack": ("params.msgpack", flax_msgpack_file),
    "npy": ("weights.npy", npy_file),
    "tar": ("bundle.tar", tar_file),
    "numpy pickle": ("arrays.pkl", numpy_pickle),
    "pmml": ("model.pmml", pmml_file),
}
#: Formats walked element by element, capped so a run stays short (MB).
WALKED_MB = {"numpy pickle": 100, "pmml": 50}


def best(cmd: list[str], repeat: int = 3) -> tuple[float, str]:
    times, out = [], ""
    for _ in range(repeat):
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        times.append(time.perf_counter() - t0)
        if proc.returncode not in (0, 1):
            raise SystemExit(f"{cmd} failed ({proc.returncode}): {proc.stderr[-2000:]}")
        out = proc.stdout
    return min(times), out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--mb", type=int, default=512, help="size of each file in MiB (default 512)")
    ap.add_argument("--only", nargs="+", choices=sorted(FORMATS), metavar="FORMAT",
                    help=f"time only these formats (of: {', '.join(FORMATS)})")
    args = ap.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="shardscan-formats-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"machine: {platform.node()} {platform.machine()} {os.cpu_count()} cores, "
          f"Python {platform.python_version()}, {time.strftime('%Y-%m-%d %H:%M')}")
    print(f"{'format':<14} {'size':>10} {'scan':>8} {'raw read':>9} {'scan/raw':>9}  verdict")
    for label, (name, write) in FORMATS.items():
        if args.only and label not in args.only:
            continue
        path = work / name
        if not path.exists():
            size = min(args.mb, WALKED_MB[label]) * 1000 * 1000 if label in WALKED_MB else args.mb * MiB
            write(path, size)
        best([sys.executable, "-c", RAW_READ, str(path)], repeat=1)  # warm the page cache
        raw, _ = best([sys.executable, "-c", RAW_READ, str(path)])
        scan, out = best([sys.executable, "-m", "shardscan", "scan", str(path), "--no-cache"])
        verdict = out.strip().splitlines()[-1].rsplit("verdict: ", 1)[-1] if out.strip() else "?"
        print(f"{label:<14} {path.stat().st_size / 1e6:8.1f} MB {scan:7.3f}s {raw:8.3f}s {scan / raw:8.2f}x  {verdict}")


if __name__ == "__main__":
    main()
