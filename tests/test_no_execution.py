"""Scanning malicious samples imports none of the modules they name and runs none of them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.samples import ATTACKS, bu, call1, glob, p4, sbu, sglob

SCRIPT = r"""
import json, sys
from shardscan.pipeline.runner import Runner, ScanOptions
from shardscan.scanners import SCANNERS
runner = Runner(ScanOptions())
for entry in SCANNERS:  # shardscan's own imports happen before the snapshot
    entry.load()
before = set(sys.modules)
run = runner.run([sys.argv[1]])
print(json.dumps({"before": sorted(before), "after": sorted(sys.modules),
                  "findings": len(run.findings)}))
"""


def named_modules(data: bytes) -> set[str]:
    """Top-level module names a sample mentions in GLOBAL/STACK_GLOBAL operands."""
    text = data.decode("latin-1")
    candidates = {"os", "posix", "nt", "subprocess", "runpy", "pip", "ensurepip", "code", "idlelib",
                  "timeit", "cProfile", "numpy", "torch", "multiprocessing", "uuid", "pkgutil", "pydoc",
                  "importlib", "ctypes", "ssl", "atexit", "smtplib", "picklescan", "dill", "cloudpickle",
                  "marshal", "types", "_operator", "_pickle", "pickle", "pathlib", "binascii", "base64",
                  "codecs", "_io"}
    return {m for m in candidates if m in text}


def test_scan_imports_nothing_it_names_and_runs_nothing(tmp_path: Path):
    marker = tmp_path / "pwned-marker"
    samples = tmp_path / "samples"
    samples.mkdir()
    for name, data, _ in ATTACKS:
        (samples / f"{name}.pkl").write_bytes(data)
    # Payloads that would leave a marker if anything ran them.
    touch = f"touch {marker}"
    write = f"open({str(marker)!r}, 'w').write('x')"
    (samples / "marker-system.pkl").write_bytes(b"\x80\x02" + glob("posix", "system") + bu(touch) + b"\x85R.")
    (samples / "marker-exec.pkl").write_bytes(p4(call1("builtins", "exec", bu(write))))
    (samples / "marker-eval.pkl").write_bytes(p4(sglob("builtins", "eval") + sbu(write) + b"\x85R"))
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(samples)], capture_output=True, text=True,
                         timeout=120, check=True)
    result = json.loads(out.stdout)
    assert result["findings"] > len(ATTACKS)
    assert not marker.exists()
    newly_imported = set(result["after"]) - set(result["before"])
    mentioned = set().union(*(named_modules(data) for _, data, _ in ATTACKS))
    assert mentioned, "the samples name modules"
    assert not (newly_imported & mentioned), sorted(newly_imported & mentioned)
    for heavy in ("torch", "numpy", "pip", "idlelib", "ctypes", "runpy", "timeit", "cProfile", "smtplib"):
        assert heavy not in result["after"], heavy
