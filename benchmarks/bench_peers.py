"""Detection and speed of shardscan against peer scanners, all run in the same command.

    python benchmarks/bench_peers.py --peer-venv /tmp/peers [--workdir DIR] [--timeout 60]
        [--large-timeout 600] [--repeat 1] [--torch-gb 1] [--pickle-mb 50] [--no-large]
        [--tools shardscan,picklescan,modelscan,modelaudit,fickling]
        [--shardscan EXE] [--picklescan EXE] [--modelscan EXE] [--modelaudit EXE] [--fickling EXE]

Peers (picklescan, modelscan, modelaudit, fickling) live in a virtual environment of their own
(`python3 -m venv /tmp/peers && /tmp/peers/bin/pip install picklescan modelscan modelaudit
fickling`); a peer whose executable is found neither as an option, nor in `--peer-venv`, nor on
PATH is skipped. shardscan is the `shardscan` next to this interpreter.

1. A corpus is written into the work dir: every ATTACKS sample of tests/samples.py as
   `<id>.pkl` (bytes only), and a copy of every benign fixture of tests/fixtures/benign.
2. Every tool scans every file on its own, through its command line, with a per-file timeout.
   Files are the outer loop and tools the inner one, so noise on the machine is spread evenly.
   "flagged" is each tool's own verdict (see `Tool.judge`); an error (exit status meaning
   "could not scan", a traceback, a timeout) is counted apart, and a file may be both.
3. The tables: per tool attacks detected, attacks passed as clean (neither flagged nor in
   error: what a CI gate lets through), benign files flagged, errors, time; then which attack
   each tool missed, and which benign file it flagged.
4. Every tool on two large benign inputs of benchmarks/inputs.py (a NumPy pickle and a torch
   zip, generated once into the work dir and reused), next to reading the bytes from page cache.

Nothing here loads a scanned file: the corpus is written as bytes and only the tools read it.
Raw results are written to `<workdir>/peer-results.json`. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))
from inputs import numpy_pickle, torch_zip  # noqa: E402

from tests.samples import ATTACKS  # noqa: E402

BENIGN_DIR = ROOT / "tests" / "fixtures" / "benign"
NOT_FIXTURES = {"README.md", "GLOBALS.txt", "generate.py"}
PEERS = ("picklescan", "modelscan", "modelaudit", "fickling")
DIST = {"shardscan": "shardscan", "picklescan": "picklescan", "modelscan": "modelscan",
        "modelaudit": "modelaudit", "fickling": "fickling"}
# Peers must not phone home from a benchmark (modelaudit sends PostHog telemetry by default).
QUIET_ENV = {"PROMPTFOO_DISABLE_TELEMETRY": "1", "NO_ANALYTICS": "1", "DO_NOT_TRACK": "1",
             "HF_HUB_OFFLINE": "1", "PYTHONWARNINGS": "ignore"}

RAW_READ = """
import sys
buf = bytearray(8 << 20)
with open(sys.argv[1], "rb", buffering=0) as f:
    while f.readinto(buf):
        pass
"""


@dataclass
class Run:
    """One tool on one file."""

    rc: int | None  # None: killed at the timeout
    seconds: float
    stdout: str
    stderr: str
    report: str  # the tool's JSON report file, "" when it wrote none


@dataclass
class Verdict:
    flagged: bool
    error: str  # "" when the tool scanned the file; else why not
    detail: str = ""  # what the tool said, short
    seconds: float = 0.0


@dataclass
class Tool:
    name: str
    exe: str
    argv: Callable[[str, Path], list[str]]  # (file, report path) -> command line
    judge: Callable[[Run], Verdict]
    version: str = "?"


def _crash(run: Run) -> str:
    return "traceback" if "Traceback (most recent call last)" in run.stderr + run.stdout else ""


def _load(report: str) -> dict | None:
    try:
        return json.loads(report)
    except ValueError:
        return None


def _load_all(report: str) -> list[dict]:
    """Every JSON object in a file that may hold several back to back (fickling writes one per
    stacked pickle)."""
    dec, out, i = json.JSONDecoder(), [], 0
    while True:
        while i < len(report) and report[i].isspace():
            i += 1
        if i >= len(report):
            return out
        try:
            obj, i = dec.raw_decode(report, i)
        except ValueError:
            return out
        if isinstance(obj, dict):
            out.append(obj)


def judge_shardscan(run: Run) -> Verdict:
    """0 clean, 1 a finding at WARNING or above, 2 could not scan (README)."""
    data = _load(run.report) or _load(run.stdout) or {}
    rules = sorted({f["rule_id"] for f in data.get("findings", []) if f.get("severity") in ("CRITICAL", "WARNING")})
    errors = [f"{f['status']}: {f.get('error')}" for f in data.get("files", []) if f.get("status") != "scanned"]
    error = "" if run.rc in (0, 1) else ("; ".join(errors) or f"exit {run.rc}")
    if run.rc == 1 and errors:
        error = "; ".join(errors)
    return Verdict(run.rc == 1, error, ",".join(rules))


def judge_picklescan(run: Run) -> Verdict:
    """0 clean, 1 dangerous globals, 2 scan error (which wins over 1, so the summary decides)."""
    infected = re.search(r"Infected files: (\d+)", run.stdout)
    scanned = re.search(r"Scanned files: (\d+)", run.stdout)
    dangerous = re.findall(r"dangerous import '([^']*)'", run.stdout)
    flagged = run.rc == 1 or bool(infected and int(infected.group(1)) > 0)
    error = _crash(run) or ("" if run.rc in (0, 1) else f"exit {run.rc}")
    if not error and scanned and int(scanned.group(1)) == 0:
        error = "not scanned (extension)"
    if not error and not flagged and "could not parse" in run.stdout + run.stderr:
        error = "could not parse as pickle, exit 0"  # it reports such a file as clean
    return Verdict(flagged, error, ",".join(dict.fromkeys(dangerous)))


def judge_modelscan(run: Run) -> Verdict:
    """0 clean, 1 issues, 2 scan errors (wins over 1, so the JSON decides), 3 nothing scanned."""
    data = _load(run.report) or {}
    issues = data.get("issues", [])
    errs = [e.get("description", "") for e in data.get("errors", [])]
    flagged = run.rc == 1 or bool(issues)
    error = _crash(run) or {0: "", 1: "", 3: "not scanned (extension)"}.get(run.rc, f"exit {run.rc}")
    if errs:
        error = "; ".join(errs)[:120]
    detail = ",".join(dict.fromkeys(f"{i.get('module')}.{i.get('operator')}" for i in issues))
    return Verdict(flagged, error, detail)


def judge_modelaudit(run: Run) -> Verdict:
    """0 clean, 1 issues at WARNING or CRITICAL, 2 operational error (wins over 1, so the JSON
    decides): flagged means what its exit status 1 means, a WARNING or CRITICAL issue."""
    data = _load(run.report) or _load(run.stdout) or {}
    issues = [i for i in data.get("issues", []) if str(i.get("severity", "")).lower() in ("warning", "critical")]
    flagged = run.rc == 1 or bool(issues)
    error = _crash(run) or ("" if run.rc in (0, 1) else f"exit {run.rc}")
    if not error and not flagged and data and not data.get("scanner_names"):
        error = "no scanner ran, exit 0"  # e.g. a .lzma file: counted as scanned, nothing analysed
    crit = [i for i in issues if str(i.get("severity")).lower() == "critical"]
    detail = f"{len(crit)} critical, {len(issues) - len(crit)} warning"
    if issues:
        detail += ": " + (crit or issues)[0].get("message", "")[:70]
    return Verdict(flagged, error, detail)


def judge_fickling(run: Run) -> Verdict:
    """--check-safety: 0 likely safe, 1 unsafe, 2 could not parse. An uncaught exception also
    exits 1, so a traceback is an error, not a verdict."""
    crash = _crash(run)
    if crash:
        last = [ln for ln in run.stderr.strip().splitlines() if ln.strip()]
        return Verdict(False, f"{crash}: {last[-1][:80] if last else ''}")
    severities = [str(d.get("severity", "")) for d in _load_all(run.report)]
    error = "" if run.rc in (0, 1) else f"exit {run.rc}"
    if run.rc == 2:
        error = "could not parse" if "failed to parse" in run.stderr else f"exit {run.rc}"
    return Verdict(run.rc == 1, error, ",".join(dict.fromkeys(severities)))


def make_tools(args: argparse.Namespace) -> tuple[list[Tool], list[str]]:
    """The tools found, and a line for each one skipped."""
    venv_bin = Path(args.peer_venv) / "bin" if args.peer_venv else None
    found: dict[str, str] = {}
    skipped: list[str] = []
    wanted = [t.strip() for t in args.tools.split(",") if t.strip()]
    for name in wanted:
        explicit = getattr(args, name, None)
        if name == "shardscan":
            candidates = [explicit, str(Path(sys.executable).parent / "shardscan"), shutil.which("shardscan")]
        else:
            candidates = [explicit, str(venv_bin / name) if venv_bin else None, shutil.which(name)]
        exe = next((c for c in candidates if c and os.access(c, os.X_OK) and Path(c).is_file()), None)
        if exe:
            found[name] = exe
        else:
            skipped.append(f"{name}: no executable (tried {', '.join(c for c in candidates if c) or 'nothing'})")

    def shardscan_argv(path: str, rep: Path) -> list[str]:
        return [found["shardscan"], "scan", "--no-cache", "-f", "json", "-o", str(rep), path]

    def picklescan_argv(path: str, rep: Path) -> list[str]:
        return [found["picklescan"], "-p", path]

    def modelscan_argv(path: str, rep: Path) -> list[str]:
        return [found["modelscan"], "-p", path, "-r", "json", "-o", str(rep)]

    def modelaudit_argv(path: str, rep: Path) -> list[str]:
        return [found["modelaudit"], "scan", "--no-cache", "-f", "json", "-o", str(rep), path]

    def fickling_argv(path: str, rep: Path) -> list[str]:
        return [found["fickling"], "--check-safety", "--json-output", str(rep), path]

    table = {"shardscan": (shardscan_argv, judge_shardscan), "picklescan": (picklescan_argv, judge_picklescan),
             "modelscan": (modelscan_argv, judge_modelscan), "modelaudit": (modelaudit_argv, judge_modelaudit),
             "fickling": (fickling_argv, judge_fickling)}
    tools = []
    for name in wanted:
        if name not in table:
            skipped.append(f"{name}: unknown tool")
        elif name in found:
            argv, judge = table[name]
            tools.append(Tool(name, found[name], argv, judge, tool_version(found[name], DIST[name])))
    return tools, skipped


def interpreter_of(exe: str) -> str | None:
    """The Python a console script runs under, from its #! line."""
    try:
        with open(exe, "rb") as f:
            first = f.readline(512).decode(errors="replace").strip()
    except OSError:
        return None
    if first.startswith("#!"):
        parts = first[2:].split()
        if parts and "python" in Path(parts[-1] if parts[0].endswith("env") else parts[0]).name:
            return parts[-1] if parts[0].endswith("env") else parts[0]
    return None


def tool_version(exe: str, dist: str) -> str:
    py = interpreter_of(exe)
    if not py:
        return "?"
    code = f"import importlib.metadata as m; print(m.version({dist!r}))"
    try:
        out = subprocess.run([py, "-c", code], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    return out.stdout.strip() or "?"


def run_cmd(cmd: list[str], cwd: Path, timeout: float, report: Path | None = None) -> Run:
    """Run in a session of its own so that a timeout kills the whole process group."""
    if report is not None:
        with contextlib.suppress(FileNotFoundError):
            report.unlink()
    env = {**os.environ, **QUIET_ENV}
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                            env=env, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
        rc: int | None = proc.returncode
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        rc = None
    seconds = time.perf_counter() - t0
    rep = ""
    if report is not None and report.exists():
        rep = report.read_text(errors="replace")
    return Run(rc, seconds, out.decode(errors="replace"), err.decode(errors="replace"), rep)


def scan(tool: Tool, path: Path, scratch: Path, timeout: float) -> Verdict:
    d = scratch / tool.name
    d.mkdir(parents=True, exist_ok=True)
    report = d / "report.json"
    run = run_cmd(tool.argv(str(path), report), d, timeout, report)
    if run.rc is None:
        verdict = Verdict(False, f"timeout after {timeout:g} s")
        with contextlib.suppress(Exception):  # keep a finding printed before the timeout
            verdict = tool.judge(run)
            verdict.error = f"timeout after {timeout:g} s"
    elif run.rc < 0:
        verdict = Verdict(False, f"killed by signal {-run.rc}")
    else:
        verdict = tool.judge(run)
    verdict.seconds = run.seconds
    return verdict


def write_corpus(work: Path) -> tuple[list[Path], list[Path]]:
    attacks_dir, benign_dir = work / "corpus" / "attacks", work / "corpus" / "benign"
    for d in (attacks_dir, benign_dir):
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
    attacks = []
    for ident, data, _rules in ATTACKS:
        p = attacks_dir / f"{ident}.pkl"
        p.write_bytes(data)
        attacks.append(p)
    benign = []
    for src in sorted(BENIGN_DIR.iterdir()):
        if src.is_file() and src.name not in NOT_FIXTURES:
            shutil.copyfile(src, benign_dir / src.name)
            benign.append(benign_dir / src.name)
    return attacks, benign


def machine_line() -> str:
    cpu = platform.processor() or platform.machine()
    mem = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        kib = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))
        mem = f", {kib / (1 << 20):.0f} GiB RAM"
    return (f"machine: {platform.node()} {platform.machine()}, {cpu}, {os.cpu_count()} cores{mem}, "
            f"{platform.system()} {platform.release()}, Python {platform.python_version()}")


def cell(v: Verdict) -> str:
    if v.error.startswith("timeout"):
        return "T/O+hit" if v.flagged else "T/O"
    if v.flagged:
        return "hit+err" if v.error else "hit"
    if v.error.startswith("not scanned"):
        return "skip"
    return "err" if v.error else "MISS"


def print_table(rows: list[list[str]], header: list[str]) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    print("| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        print("| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)) + " |")


def best_of(tool: Tool, path: Path, scratch: Path, timeout: float, repeat: int) -> Verdict:
    best = None
    for _ in range(repeat):
        v = scan(tool, path, scratch, timeout)
        if best is None or v.seconds < best.seconds:
            best = v
        if v.error.startswith("timeout"):
            break
    assert best is not None
    return best


def raw_read(path: Path, repeat: int) -> float:
    cmd = [sys.executable, "-c", RAW_READ, str(path)]
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True)
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--peer-venv", default=None, help="virtual environment holding the peer tools")
    ap.add_argument("--workdir", type=Path, default=None, help="corpus, large inputs and reports (default: a temp dir)")
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds per tool and corpus file")
    ap.add_argument("--large-timeout", type=float, default=600.0, help="seconds per tool and large input")
    ap.add_argument("--repeat", type=int, default=1, help="runs per tool on each large input (best is kept)")
    ap.add_argument("--torch-gb", type=float, default=1.0)
    ap.add_argument("--pickle-mb", type=float, default=50.0)
    ap.add_argument("--no-large", action="store_true", help="skip the large inputs")
    ap.add_argument("--tools", default="shardscan," + ",".join(PEERS))
    for name in ("shardscan", *PEERS):
        ap.add_argument(f"--{name}", default=None, metavar="EXE", help=f"the {name} executable")
    args = ap.parse_args()

    work = (args.workdir or Path(tempfile.mkdtemp(prefix="shardscan-peers-"))).resolve()
    work.mkdir(parents=True, exist_ok=True)
    scratch = work / "scratch"
    tools, skipped = make_tools(args)
    print(machine_line())
    print(f"date: {time.strftime('%Y-%m-%d %H:%M %Z')}")
    print(f"workdir: {work}")
    for t in tools:
        print(f"  {t.name:<11} {t.version:<10} {t.exe}")
    for s in skipped:
        print(f"  skipped     {s}")
    if not tools:
        raise SystemExit("no tool to run")

    attacks, benign = write_corpus(work)
    results: dict[str, dict[str, Verdict]] = {t.name: {} for t in tools}
    started = time.perf_counter()
    for path in [*attacks, *benign]:
        for t in tools:
            results[t.name][path.name] = scan(t, path, scratch, args.timeout)
    print(f"\ncorpus: {len(attacks)} attacks (tests/samples.py ATTACKS), {len(benign)} benign fixtures; "
          f"per-file timeout {args.timeout:g} s; scanned in {time.perf_counter() - started:.0f} s")

    summary = []
    for t in tools:
        r = results[t.name]
        att = [r[p.name] for p in attacks]
        ben = [r[p.name] for p in benign]
        times = [v.seconds for v in r.values()]
        errors = [v for v in r.values() if v.error]
        summary.append([
            t.name,
            f"{sum(v.flagged for v in att)}/{len(att)}",
            f"{sum(not v.flagged and not v.error for v in att)}/{len(att)}",
            f"{sum(v.flagged for v in ben)}/{len(ben)}",
            f"{sum(bool(v.error) for v in att)}+{sum(bool(v.error) for v in ben)}",
            str(sum(v.error.startswith("timeout") for v in errors)),
            f"{sum(times):.1f}",
            f"{statistics.median(times):.2f}",
        ])
    print()
    print_table(summary, ["tool", "attacks detected", "attacks passed clean", "benign flagged (FP)",
                          "errors (attack+benign)", "timeouts", "total s", "median s/file"])

    print("\nper attack (hit: flagged; MISS: exit clean; err: could not scan and not flagged; "
          "hit+err: flagged with an error; skip: not scanned, by extension; T/O: timeout)\n")
    rows = []
    for p in attacks:
        cells = [cell(results[t.name][p.name]) for t in tools]
        mark = " <" if any(c not in ("hit", "hit+err") for c in cells) else ""
        rows.append([p.stem + mark, *cells])
    print_table(rows, ["attack", *[t.name for t in tools]])

    print("\nbenign fixtures (ok: not flagged, scanned; FP: flagged; err/skip as above)\n")
    rows = []
    for p in benign:
        cells = []
        for t in tools:
            v = results[t.name][p.name]
            c = cell(v)
            cells.append({"hit": "FP", "MISS": "ok", "hit+err": "FP+err", "T/O+hit": "FP+T/O"}.get(c, c))
        rows.append([p.name, *cells])
    print_table(rows, ["benign file", *[t.name for t in tools]])

    large_rows = []
    if not args.no_large:
        pkl = work / "numpy-arrays.pkl"
        if not pkl.exists():
            numpy_pickle(pkl, int(args.pickle_mb * 1e6))
        tz = work / "checkpoint.pt"
        if not tz.exists():
            torch_zip(tz, int(args.torch_gb * (1 << 30)))
        for label, path in (("NumPy pickle", pkl), ("torch zip", tz)):
            raw_read(path, 1)  # warm the page cache
            raw = raw_read(path, max(args.repeat, 3))
            mb = path.stat().st_size / 1e6
            for t in tools:
                v = best_of(t, path, scratch, args.large_timeout, args.repeat)
                verdict = "flagged" if v.flagged else "clean"
                if v.error:
                    verdict += f", error: {v.error[:60]}"
                large_rows.append([f"{label} {mb:.0f} MB", t.name, f"{v.seconds:.2f}", f"{raw:.2f}",
                                   f"{v.seconds / raw:.1f}x", verdict])
                results[t.name][path.name] = v
        print(f"\nlarge benign inputs (benchmarks/inputs.py; best of {args.repeat}; "
              f"raw read: best of {max(args.repeat, 3)} from page cache)\n")
        print_table(large_rows, ["input", "tool", "wall s", "raw read s", "wall/raw", "verdict"])

    print("\nwhat each tool said, where the tools disagree on an attack or a benign file:\n")
    for p in [*attacks, *benign]:
        flags = {t.name: results[t.name][p.name].flagged for t in tools}
        if len(set(flags.values())) > 1:
            print(f"  {p.name}")
            for t in tools:
                v = results[t.name][p.name]
                said = v.detail or ""
                if v.error:
                    said = f"{said} [error: {v.error[:90]}]".strip()
                print(f"    {t.name:<11} {'flagged' if v.flagged else 'not flagged':<12} {said[:150]}")

    out = work / "peer-results.json"
    out.write_text(json.dumps({
        "machine": machine_line(), "date": time.strftime("%Y-%m-%d"),
        "tools": {t.name: {"exe": t.exe, "version": t.version} for t in tools}, "skipped": skipped,
        "attacks": [p.name for p in attacks], "benign": [p.name for p in benign],
        "results": {name: {f: asdict(v) for f, v in r.items()} for name, r in results.items()},
        "large": large_rows,
    }, indent=1))
    print(f"\nraw results: {out}")


if __name__ == "__main__":
    main()
