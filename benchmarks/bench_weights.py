"""Throughput of the default weight detectors against reading the same bytes.

    python benchmarks/bench_weights.py --gib 1
    python benchmarks/bench_weights.py --gib 0.25 --dtype F32

Writes one tensor file per dtype (float32 weights ~N(0, 0.02), the same values truncated to bf16
or rounded to fp16), warms the page cache, then times, each in a fresh process and single-threaded:
  raw read   readinto() of the file in block-sized pieces;
  min/max    the same reads plus a NumPy min and max per piece;
  detectors  the same reads plus block_partial (the default pass: exponent and trailing-zero
             histograms, counts, min/max, W5 header scan), merge, detect: what every scan runs.
             The compiled pass (shardscan/weights/_blockpass.c) computes the partials;
  numpy      the same with the NumPy pass, which installs without a C compiler use: the same
             partials, the reference the compiled pass is tested against;
  deep       block_partial(deep=True) (NumPy): adds moments M2-M4, the low-16-bit histogram and
             row sums, which only `--weights deep` needs (skip with --no-deep).
"pass alone" is the time inside block_partial, merge and detect, without the reads: the figure
to set against the 1 GB/s per core goal. Peak RSS (ru_maxrss) of each child shows memory bounded
by the block and chunk sizes, not by the tensor size. The script prints; nothing else in the
package does.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from shardscan.weights import blocks
from shardscan.weights.blocks import block_partial
from shardscan.weights.detectors import detect
from shardscan.weights.merge import merge
from shardscan.weights.thresholds import BLOCK_ELEMENTS

GiB = 1 << 30
ITEMSIZE = {"F32": 4, "BF16": 2, "F16": 2}
NUMPY = {"F32": np.float32, "BF16": np.uint16, "F16": np.float16}
TAIL_ELEMENTS = 8192  # look-ahead handed to block_partial for headers crossing a block end
REPEATS = 3


def write_tensor(path: Path, dtype: str, nbytes: int) -> None:
    """Trained-looking weights, generated and written a block at a time (bounded memory)."""
    rng = np.random.default_rng(0)
    n = nbytes // ITEMSIZE[dtype]
    with path.open("wb") as fh:
        for start in range(0, n, BLOCK_ELEMENTS):
            w = (rng.standard_normal(min(BLOCK_ELEMENTS, n - start), dtype=np.float32) * 0.02).astype(np.float32)
            if dtype == "BF16":
                w = (w.view(np.uint32) >> 16).astype(np.uint16)
            elif dtype == "F16":
                w = w.astype(np.float16)
            fh.write(w.tobytes())


def peak_rss_mib() -> tuple[float, float]:
    """(ru_maxrss, VmHWM) in MiB. Linux carries ru_maxrss across fork+exec, so a child reports at
    least its parent's peak; VmHWM belongs to the process image and shows the child's own peak."""
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    hwm = float("nan")
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                hwm = int(line.split()[1]) / 1024
    return maxrss, hwm


def child(mode: str, path: str, dtype: str) -> dict[str, float]:
    """One measured pass in this process; returns seconds and peak RSS."""
    size = ITEMSIZE[dtype]
    if mode == "numpy":
        blocks._compiled = None
    block_bytes = BLOCK_ELEMENTS * size
    bufs = [bytearray(block_bytes), bytearray(block_bytes)]
    t0 = time.perf_counter()
    compute = 0.0
    partials = []
    lo = hi = 0.0
    with open(path, "rb", buffering=0) as fh:
        got = fh.readinto(bufs[0])
        index = 0
        while got:
            cur = np.frombuffer(bufs[index % 2], dtype=NUMPY[dtype], count=got // size)
            nxt_got = fh.readinto(bufs[(index + 1) % 2])
            if mode == "minmax":
                lo, hi = min(lo, float(cur.min())), max(hi, float(cur.max()))
            elif mode in ("detectors", "numpy", "deep"):
                tail = np.frombuffer(
                    bufs[(index + 1) % 2], dtype=NUMPY[dtype], count=min(nxt_got // size, TAIL_ELEMENTS)
                )
                t = time.perf_counter()
                partials.append(block_partial(cur, dtype, index, tail=tail, deep=mode == "deep"))
                compute += time.perf_counter() - t
            index += 1
            got = nxt_got
    findings = 0
    if mode in ("detectors", "numpy", "deep"):
        t = time.perf_counter()
        findings = len(detect(merge(partials)))
        compute += time.perf_counter() - t
    seconds = time.perf_counter() - t0
    maxrss, hwm = peak_rss_mib()
    return {"seconds": seconds, "compute": compute, "max_rss_mib": maxrss, "hwm_mib": hwm, "evidence": findings}


def measure(mode: str, path: Path, dtype: str) -> dict[str, float]:
    """Best of REPEATS fresh processes (the page cache is warm)."""
    best: dict[str, float] | None = None
    for _ in range(REPEATS):
        out = subprocess.run(
            [sys.executable, __file__, "--child", mode, str(path), dtype],
            check=True,
            capture_output=True,
            text=True,
            env={**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"},
        )
        got = json.loads(out.stdout)
        if best is None or got["seconds"] < best["seconds"]:
            best = got
    assert best is not None
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gib", type=float, default=1.0, help="tensor size in GiB (default 1)")
    parser.add_argument("--dtype", choices=sorted(ITEMSIZE), nargs="*", default=["F32", "BF16"])
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--no-deep", action="store_true", help="skip timing the opt-in deep pass")
    parser.add_argument("--child", nargs=3, metavar=("MODE", "PATH", "DTYPE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(*args.child)))
        return

    nbytes = int(args.gib * GiB)
    print(f"python {platform.python_version()}, numpy {np.__version__}, {platform.machine()}, {os.cpu_count()} cpus")
    if blocks._compiled is None:
        print("the compiled pass is not built: 'default detectors' runs the NumPy pass")
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        for dtype in args.dtype:
            path = Path(tmp) / f"weights_{dtype.lower()}.bin"
            write_tensor(path, dtype, nbytes)
            with path.open("rb") as fh:  # warm the page cache
                while fh.read(64 << 20):
                    pass
            raw = measure("raw", path, dtype)
            minmax = measure("minmax", path, dtype)
            det = measure("detectors", path, dtype)
            rows = [("raw read", raw), ("numpy min/max", minmax), ("default detectors", det)]
            rows.append(("  NumPy pass", measure("numpy", path, dtype)))
            if not args.no_deep:
                rows.append(("deep pass", measure("deep", path, dtype)))
            gb = nbytes / 1e9
            print(f"\n{dtype}: {nbytes / GiB:.3g} GiB, blocks of {BLOCK_ELEMENTS} elements")
            for name, r in rows:
                rate = gb / r["seconds"]
                alone = f"pass alone {gb / r['compute']:5.2f} GB/s" if r["compute"] else " " * 21
                print(
                    f"  {name:18s} {r['seconds']:7.3f} s  {rate:7.2f} GB/s  {alone}"
                    f"  peak RSS: VmHWM {r['hwm_mib']:6.1f} MiB (ru_maxrss {r['max_rss_mib']:6.1f})"
                )
            print(f"  detectors / raw read  {det['seconds'] / raw['seconds']:6.1f}x the time")
            print(f"  detectors / min-max   {det['seconds'] / minmax['seconds']:6.1f}x the time")
            print(f"  evidence records on these benign weights: {det['evidence']:.0f}")


if __name__ == "__main__":
    main()
