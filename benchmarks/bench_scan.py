"""Scan speed and memory against baselines measured in the same run.

    python benchmarks/bench_scan.py [--workdir DIR] [--torch-gb 1] [--pickle-mb 50]

Each figure is printed next to its baseline so the ratio holds on a noisy machine:
- start-up: `shardscan scan tiny.pkl` against `python -c pass` (interpreter start);
- a 50 MB pickle of many NumPy arrays and a 1 GB PyTorch zip: wall time and peak RSS of
  `shardscan scan`, against reading the same bytes from page cache in a fresh process.
Goals (issue 2): tiny file < 0.3 s; 50 MB pickle < 1 s; 1 GB checkpoint at >= 0.5x raw read
speed; peak memory < 200 MB.
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from inputs import numpy_pickle, tiny_pickle, torch_zip

RAW_READ = """
import sys
buf = bytearray(8 << 20)
with open(sys.argv[1], "rb", buffering=0) as f:
    while f.readinto(buf):
        pass
"""


PEAK = """
import resource, runpy, sys
code = 0
try:
    sys.argv = sys.argv[1:]
    if sys.argv[0] == "-m":
        sys.argv = sys.argv[1:]
        runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
    else:
        runpy.run_path(sys.argv[0], run_name="__main__")
except SystemExit as exc:
    code = exc.code or 0
sys.stderr.write(f"\\nPEAK_KIB={resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}\\n")
sys.exit(code)
"""


def measure(cmd: list[str], repeat: int = 3) -> tuple[float, float]:
    """Best wall time in seconds over `repeat` runs, and the largest peak RSS (MiB) of the
    command's own process, read by a wrapper inside that process."""
    best = float("inf")
    peak = 0.0
    for _ in range(repeat):
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        elapsed = time.perf_counter() - t0
        if proc.returncode not in (0, 1):
            raise SystemExit(f"{cmd} failed ({proc.returncode}): {proc.stderr[-2000:]}")
        best = min(best, elapsed)
        marker = proc.stderr.rfind("PEAK_KIB=")
        if marker >= 0:
            peak = max(peak, int(proc.stderr[marker + 9:].split()[0]) / 1024)
    return best, peak


def with_peak(cmd: list[str]) -> list[str]:
    return [sys.executable, "-c", PEAK, *cmd[1:]]


def scan_cmd(path: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "shardscan", "scan", "--quiet", "--no-cache", *extra, str(path)]


def scan_measure(path: Path, *extra: str) -> tuple[float, float]:
    """Time without the wrapper, peak memory with it."""
    return measure(scan_cmd(path, *extra))[0], measure(with_peak(scan_cmd(path, *extra)), repeat=1)[1]


def row(label: str, size: int, scan: tuple[float, float], raw: tuple[float, float]) -> None:
    mb = size / 1e6
    print(f"{label:<28} {mb:>9.1f} MB  scan {scan[0]:7.3f} s ({mb / scan[0]:8.1f} MB/s, peak {scan[1]:6.1f} MiB)"
          f"  raw read {raw[0]:7.3f} s ({mb / raw[0]:8.1f} MB/s)  scan/raw speed {raw[0] / scan[0]:5.2f}x")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--torch-gb", type=float, default=1.0)
    ap.add_argument("--pickle-mb", type=float, default=50.0)
    args = ap.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="shardscan-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"machine: {platform.node()} {platform.machine()} {os.cpu_count()} cores, "
          f"Python {platform.python_version()}, {time.strftime('%Y-%m-%d')}")

    tiny = tiny_pickle(work / "tiny.pkl")
    python_start = measure([sys.executable, "-c", "pass"], repeat=5)
    tiny_scan = measure(scan_cmd(tiny), repeat=5)
    tiny_peak = measure(with_peak(scan_cmd(tiny)), repeat=1)[1]
    print(f"{'start-up, tiny pickle':<28} scan {tiny_scan[0]:.3f} s (peak {tiny_peak:.1f} MiB)"
          f"  python -c pass {python_start[0]:.3f} s  overhead {tiny_scan[0] - python_start[0]:.3f} s")

    pkl = work / "numpy-arrays.pkl"
    if not pkl.exists():
        numpy_pickle(pkl, int(args.pickle_mb * 1e6))
    raw_cmd = [sys.executable, "-c", RAW_READ]
    row("pickle of 1000 NumPy arrays", pkl.stat().st_size, scan_measure(pkl), measure([*raw_cmd, str(pkl)]))

    tz = work / "checkpoint.pt"
    if not tz.exists():
        torch_zip(tz, int(args.torch_gb * (1 << 30)))
    measure([*raw_cmd, str(tz)], repeat=1)  # warm the page cache
    raw = measure([*raw_cmd, str(tz)])
    row("PyTorch zip checkpoint", tz.stat().st_size, scan_measure(tz), raw)
    row("  the same, --weights off", tz.stat().st_size, scan_measure(tz, "--weights", "off"), raw)


if __name__ == "__main__":
    main()
