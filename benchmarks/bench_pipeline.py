"""Fleet-scale speed: a full scan of several GB of mixed models against raw read speed, the
same with the Ray engine, and a rescan of an unchanged 10,000-object bucket.

    python benchmarks/bench_pipeline.py --workdir /tmp/bench-pipeline

Every figure is printed next to its baseline, measured in the same run:

- raw read: every file of the directory read once from page cache into a reused 8 MiB buffer
  (one process, then one process per core), the fastest any scanner could touch the bytes;
- full scan: `shardscan scan DIR --no-cache` (local engine, one worker per core), content
  hashes included, per format family and for the whole directory;
- Ray: the same scan as Ray tasks on a local cluster started before the clock starts (what
  joining a running cluster costs), then the same against a cold start;
- rescan: a SeaweedFS bucket of 10,000 small objects (started here on loopback) scanned into
  a results store, then scanned again: the second run must read no object and finish in under
  30 s.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.inputs import MiB, numpy_pickle, safetensors_file, state_dict_pickle, tiny_pickle, torch_zip

READ_BUFFER = 8 * MiB


def build_corpus(root: Path, gib: float) -> dict[str, list[Path]]:
    """About `gib` GiB: 45% SafeTensors, 45% PyTorch zips, the rest pickles and small files."""
    total = int(gib * (1 << 30))
    groups: dict[str, list[Path]] = {"safetensors": [], "torch": [], "other": []}
    for family, share, size in (("safetensors", 0.45, 512 * MiB), ("torch", 0.45, 512 * MiB)):
        folder = root / family
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(max(1, int(total * share) // size)):
            path = folder / (f"model-{i:05d}.safetensors" if family == "safetensors" else f"ckpt-{i}.pt")
            if not path.exists():
                (safetensors_file if family == "safetensors" else torch_zip)(path, size)
            groups[family].append(path)
    other = root / "other"
    other.mkdir(exist_ok=True)
    for i in range(4):
        path = other / f"arrays-{i}.pkl"
        if not path.exists():
            numpy_pickle(path, 50 * 1000 * 1000)
        groups["other"].append(path)
    for i in range(200):
        path = other / f"small-{i:03d}.pkl"
        if not path.exists():
            tiny_pickle(path) if i % 2 else path.write_bytes(state_dict_pickle([16] * (i + 1)))
        groups["other"].append(path)
    return groups


def _read_all(paths: list[str]) -> int:
    buf = bytearray(READ_BUFFER)
    view = memoryview(buf)
    total = 0
    for name in paths:
        with open(name, "rb", buffering=0) as fh:
            while n := fh.readinto(view):
                total += n
    return total


def raw_read(paths: list[Path], processes: int) -> float:
    """Best of three: seconds to read every byte from page cache."""
    names = [str(p) for p in paths]
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        if processes == 1:
            _read_all(names)
        else:
            with ProcessPoolExecutor(processes) as pool:
                list(pool.map(_read_all, [names[i::processes] for i in range(processes)]))
        best = min(best, time.perf_counter() - t0)
    return best


def timed_scan(targets: list[str], repeat: int = 2, **config: object) -> tuple[float, object]:
    from shardscan.pipeline.runner import ScanOptions
    from shardscan.pipeline.session import ScanConfig, scan

    best, run = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        run = scan(targets, ScanOptions(), ScanConfig(**config))
        best = min(best, time.perf_counter() - t0)
    return best, run


def report(label: str, nbytes: int, seconds: float, raw1: float, rawn: float) -> None:
    gb = nbytes / 1e9
    print(f"  {label:<34} {gb:6.2f} GB {seconds:7.2f} s {gb / seconds:6.2f} GB/s"
          f"   vs raw read 1 proc {raw1 / seconds * 100:5.0f}%   vs raw read {os.cpu_count()} procs "
          f"{rawn / seconds * 100:5.0f}%")


def bench_directory(work: Path, gib: float) -> None:
    groups = build_corpus(work / "corpus", gib)
    everything = [p for paths in groups.values() for p in paths]
    _read_all([str(p) for p in everything])  # warm the page cache
    cores = os.cpu_count() or 1
    print(f"\nfull scan of {work / 'corpus'} (page cache warm; local engine, {cores} workers, content hashes on)")
    for family in ("safetensors", "torch"):
        paths = groups[family]
        nbytes = sum(p.stat().st_size for p in paths)
        seconds, run = timed_scan([str(work / "corpus" / family)], workers=cores)
        assert all(o.status == "scanned" and o.content_hash for o in run.objects)
        report(family, nbytes, seconds, raw_read(paths, 1), raw_read(paths, cores))
    nbytes = sum(p.stat().st_size for p in everything)
    seconds, run = timed_scan([str(work / "corpus")], workers=cores)
    raw1, rawn = raw_read(everything, 1), raw_read(everything, cores)
    report(f"everything ({len(everything)} files)", nbytes, seconds, raw1, rawn)

    print("\nthe same with the Ray engine (local cluster)")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray

    t0 = time.perf_counter()
    ray.init(num_cpus=cores, include_dashboard=False, log_to_driver=False,
             object_store_memory=256 * MiB, _temp_dir=tempfile.mkdtemp(prefix="ray", dir=work))
    started = time.perf_counter() - t0
    try:
        seconds, ray_run = timed_scan([str(work / "corpus")], engine="ray", workers=cores)
    finally:
        ray.shutdown()
    same = [(o.object.uri, o.content_hash, [f.key() for f in o.findings]) for o in ray_run.objects] == \
           [(o.object.uri, o.content_hash, [f.key() for f in o.findings]) for o in run.objects]
    report("everything, ray (cluster running)", nbytes, seconds, raw1, rawn)
    print(f"  ray cluster start {started:.1f} s (paid once per job); findings and hashes identical to the "
          f"local engine: {same}")


def bench_rescan(work: Path, objects: int) -> None:
    from tests.servers.seaweed import ADMIN_KEY, ADMIN_SECRET, SeaweedServer

    print(f"\nrescan of an unchanged {objects}-object bucket (SeaweedFS on loopback, local engine)")
    server = SeaweedServer(Path(tempfile.mkdtemp(prefix="seaweed", dir=work)))
    server.start()
    try:
        os.environ.update(AWS_ACCESS_KEY_ID=ADMIN_KEY, AWS_SECRET_ACCESS_KEY=ADMIN_SECRET,
                          AWS_DEFAULT_REGION="us-east-1", AWS_ENDPOINT_URL=server.endpoint)
        bucket = server.make_bucket({})
        client = server.client()
        payloads = [tiny_pickle_bytes(i) for i in range(objects)]
        t0 = time.perf_counter()
        with ThreadPoolExecutor(16) as pool:
            list(pool.map(lambda i: client.put_object(Bucket=bucket, Key=f"repo-{i % 100:03d}/m-{i:05d}.pkl",
                                                      Body=payloads[i]), range(objects)))
        print(f"  upload {time.perf_counter() - t0:.1f} s")
        results = str(work / f"results-{bucket}")
        first, run1 = timed_scan([f"s3://{bucket}/"], repeat=1, results=results)
        read1 = sum(o.bytes_read for o in run1.objects)
        print(f"  first scan  {first:6.2f} s  objects {len(run1.objects)}  bytes read {read1}")
        second, run2 = timed_scan([f"s3://{bucket}/"], repeat=1, results=results)
        read2 = sum(o.bytes_read for o in run2.objects)
        reused = sum(o.status == "reused" for o in run2.objects)
        print(f"  rescan      {second:6.2f} s  objects {len(run2.objects)}  reused {reused}  bytes read {read2}"
              f"  (goal: 0 bytes, < 30 s: {'met' if read2 == 0 and second < 30 else 'NOT met'})")
    finally:
        server.stop()


def tiny_pickle_bytes(i: int) -> bytes:
    import pickle

    return pickle.dumps({"weight": [0.1 * i, 0.2], "epoch": i}, protocol=4)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--gib", type=float, default=4.0, help="size of the mixed directory (default 4 GiB)")
    ap.add_argument("--objects", type=int, default=10_000, help="objects in the rescanned bucket")
    ap.add_argument("--skip", choices=("directory", "rescan"), action="append", default=[])
    args = ap.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="shardscan-pipeline-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"machine: {platform.node()} {platform.machine()} {os.cpu_count()} cores, "
          f"Python {platform.python_version()}, {time.strftime('%Y-%m-%d %H:%M')}")
    if "directory" not in args.skip:
        bench_directory(work, args.gib)
    if "rescan" not in args.skip:
        bench_rescan(work, args.objects)


if __name__ == "__main__":
    main()
