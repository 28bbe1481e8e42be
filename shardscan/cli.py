"""The command line: `shardscan scan`, `shardscan query`, `shardscan rules`, `shardscan --version`.

The flags of `scan` are those of ModelAudit's `scan` command, so a pipeline can switch tools
without rewriting its invocation. Start-up time matters (a pre-commit hook scans one file), so
this module imports only the standard library at load time; the pipeline and the one report
module a command needs are imported when that command runs.

Exit codes: 0 clean, 1 a finding at WARNING or above, 2 something could not be scanned and
nothing was found, or the command line itself was wrong. Bad input never prints a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from shardscan import __version__

if TYPE_CHECKING:
    from shardscan.model import ObjectReport, ScanRun
    from shardscan.pipeline.runner import ScanOptions

EXIT_CLEAN = 0
EXIT_FINDINGS = 1
EXIT_ERROR = 2
EXIT_INTERRUPTED = 130

#: Per-object timeout of `scan`, in seconds (ModelAudit's default).
DEFAULT_TIMEOUT_S = 300.0

#: Size units of --max-size. Binary multiples throughout: "1GB" is 1024**3 bytes, as most
#: scanners' size flags read it, and a limit a little larger than expected is the safe error.
SIZE_UNITS: dict[str, int] = {
    "": 1, "b": 1,
    "k": 1024, "kb": 1024, "kib": 1024,
    "m": 1024**2, "mb": 1024**2, "mib": 1024**2,
    "g": 1024**3, "gb": 1024**3, "gib": 1024**3,
    "t": 1024**4, "tb": 1024**4, "tib": 1024**4,
}
_SIZE = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([a-z]*)\s*", re.IGNORECASE)


class CliError(Exception):
    """A problem with what the user asked for: one line on stderr, exit 2, no traceback."""


# --------------------------------------------------------------------------------------------
# Argument parsing


def parse_size(text: str) -> int:
    """`500MB`, `1GB`, `1.5GiB`, `10` (bytes) -> bytes."""
    match = _SIZE.fullmatch(text)
    if match is None or match.group(2).lower() not in SIZE_UNITS:
        raise argparse.ArgumentTypeError(
            f"invalid size {text!r}: use a number of bytes or a unit such as 500MB, 1GB, 1.5GiB")
    return int(float(match.group(1)) * SIZE_UNITS[match.group(2).lower()])


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0:  # also rejects NaN
        raise argparse.ArgumentTypeError(f"invalid number of seconds {text!r} (0 means no limit)")
    return value


def _split_names(values: Sequence[str] | None) -> list[str]:
    """Repeatable options that also take comma lists: `--scanners a,b --scanners c`."""
    return [name.strip() for value in values or () for name in value.split(",") if name.strip()]


class _VersionAction(argparse.Action):
    """`--version`, computed only when asked: the policy version needs the scanner registry."""

    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS,
                 default: Any = argparse.SUPPRESS, help: str | None = None) -> None:
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        from shardscan.pipeline.runner import policy_version

        sys.stdout.write(f"shardscan {__version__} (policy {policy_version()})\n")
        parser.exit(EXIT_CLEAN)


EXIT_EPILOG = ("exit status: 0 clean; 1 a finding at WARNING or above; 2 an object could not be "
               "scanned and nothing was found, or a usage error")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="shardscan",
        description="Static security scanner for machine-learning model files. It parses bytes "
                    "and never loads, imports or executes what it scans.",
        epilog=EXIT_EPILOG)
    parser.add_argument("--version", action=_VersionAction,
                        help="print the version and the policy version, then exit")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    scan = commands.add_parser(
        "scan", help="scan files and directories",
        description="Scan model files and directories (every file under a directory, whatever "
                    "its extension). Formats are detected from content first, extension second.",
        epilog=EXIT_EPILOG)
    scan.set_defaults(handler=_cmd_scan, subparser=scan)
    scan.add_argument("paths", nargs="*", metavar="PATH", help="files or directories to scan")
    scan.add_argument("--format", "-f", choices=("text", "json", "sarif"), default="text",
                      help="output format (default: text); json is documented in "
                           "docs/json-schema.md, sarif is SARIF 2.1.0")
    scan.add_argument("--output", "-o", metavar="FILE",
                      help="write the report to FILE instead of stdout ('-' is stdout)")
    scan.add_argument("--timeout", "-t", type=_seconds, default=DEFAULT_TIMEOUT_S, metavar="SECONDS",
                      help=f"time allowed per object (default: {DEFAULT_TIMEOUT_S:g}; 0: no limit); "
                           "an object that runs out is reported as an error")
    talk = scan.add_mutually_exclusive_group()
    talk.add_argument("--verbose", "-v", action="store_true",
                      help="text output also shows INFO and DEBUG findings and a line per clean file")
    talk.add_argument("--quiet", "-q", action="store_true",
                      help="print nothing on stdout for text output; the exit code is the result "
                           "(json and sarif still go to stdout, and -o still writes its file)")
    scan.add_argument("--max-size", type=parse_size, metavar="SIZE",
                      help="skip objects larger than SIZE, e.g. 500MB, 1GB, 1.5GiB or bytes; units "
                           "are powers of 1024; 0: no limit. A skipped object is not clean: "
                           "with nothing found, the exit status is 2")
    scan.add_argument("--strict", action="store_true",
                      help="treat what the policy does not know as a failure: callables and "
                           "classes outside the allowlist become CRITICAL, unknown or unanalysed "
                           "content and incomplete coverage become WARNING")
    scan.add_argument("--weights", choices=("on", "off", "deep"), default="on",
                      help="statistical integrity checks of the weights of every model (NaN/Inf, absurd "
                           "magnitudes, low bits a tensor's precision cannot produce, EvilModel byte "
                           "substitution, executable headers in the low bits); default on. deep adds "
                           "informational statistics: class outliers of classification heads and layers "
                           "unlike their same-role peers")
    scan.add_argument("--dry-run", action="store_true",
                      help="list what would be scanned (detected format, how it was detected, "
                           "size) reading only each file's head and tail; exit 0, or 2 if a "
                           "path is missing")
    scan.add_argument("--scanners", action="append", metavar="ID[,ID...]",
                      help="use only these scanners (repeatable or comma-separated; see "
                           "--list-scanners)")
    scan.add_argument("--exclude-scanner", action="append", metavar="ID[,ID...]",
                      help="do not use these scanners (repeatable or comma-separated)")
    scan.add_argument("--list-scanners", action="store_true",
                      help="list the scanners (id, version, formats, description) and exit")
    scan.add_argument("--blacklist", "-b", action="append", default=[], metavar="PATTERN",
                      help="report names matching PATTERN as CRITICAL (BLK001): a glob if it has "
                           "wildcards, else a case-insensitive substring; repeatable")
    scan.add_argument("--progress", action="store_true",
                      help="report progress on stderr: objects and bytes done, rate, and an ETA once the "
                           "listing has ended")
    scan.add_argument("--no-cache", action="store_true",
                      help="scan everything again: neither reuse the local result cache "
                           "($XDG_CACHE_HOME/shardscan, else ~/.cache/shardscan; keyed by path, size, "
                           "times and inode plus policy version and options) nor, with --results, the "
                           "store's fingerprint index and content hashes")
    fleet = scan.add_argument_group("fleet scans", "object stores, engines and the Parquet results store")
    fleet.add_argument("--results", metavar="DIR_OR_URI", default=os.environ.get("SHARDSCAN_RESULTS"),
                       help="append scans, objects and findings to the Parquet results store at this "
                            "directory or s3://, gs:// prefix (default: $SHARDSCAN_RESULTS); content "
                            "already scanned under the same policy is reused, not scanned again")
    fleet.add_argument("--flush-interval", type=_seconds, metavar="SECONDS",
                       help="publish results to the store at least this often (default: 60); a killed "
                            "driver loses at most this much, an interrupted one (Ctrl-C) nothing")
    fleet.add_argument("--engine", choices=("local", "ray"), default="local",
                       help="local: a process pool on this machine (default); ray: Ray tasks on a "
                            "cluster (--ray-address or RAY_ADDRESS; else a local one is started)")
    fleet.add_argument("--workers", type=_positive_int, metavar="N",
                       help="worker processes or concurrent Ray tasks (default: one per core)")
    fleet.add_argument("--chunk-size", type=parse_size, metavar="SIZE",
                       help="most bytes of one object a task reads (default: 64MiB; rounded up to "
                            "4MiB); large objects are hashed in chunks spread over workers")
    fleet.add_argument("--max-inflight", type=parse_size, metavar="SIZE",
                       help="bytes that running tasks may read at once (default: 2 x workers x "
                            "chunk size)")
    fleet.add_argument("--ray-address", metavar="ADDRESS",
                       help="join this Ray cluster (e.g. auto, ray://head:10001)")
    fleet.add_argument("--sha256", action="store_true",
                       help="also compute each object's SHA-256 (for SBOMs and matching hub hashes; "
                            "costs a sequential pass)")
    fleet.add_argument("--log-format", choices=("text", "json"),
                       help="log the run on stderr as key=value or JSON lines (structlog, with the "
                            "scan id bound; Ray workers too)")

    query = commands.add_parser(
        "query", help="run SQL over a results store",
        description="Run DuckDB SQL over the results store's tables: scans, objects, findings, and "
                    "object_findings (each object joined to the findings of the scan that produced "
                    "them). scan_date is a DATE partition column.",
        epilog="example: shardscan query --results ./audit \"select uri, rule_id from object_findings "
               "where severity = 'CRITICAL' and scan_date = current_date\"")
    query.set_defaults(handler=_cmd_query, subparser=query)
    query.add_argument("sql", metavar="SQL", help="the query")
    query.add_argument("--results", metavar="DIR_OR_URI", default=os.environ.get("SHARDSCAN_RESULTS"),
                       help="the results store (default: $SHARDSCAN_RESULTS)")
    query.add_argument("--format", "-f", choices=("table", "csv", "json"), default="table",
                       help="output format (default: table)")

    rules = commands.add_parser(
        "rules", help="list the detection rules, or show one in full",
        description="The rule catalogue: every finding carries one of these ids.")
    rules.set_defaults(handler=_cmd_rules, subparser=rules)
    rules.add_argument("rule_id", nargs="?", metavar="RULE_ID", help="show this rule in full")
    rules.add_argument("--format", "-f", choices=("text", "json"), default="text",
                       help="output format (default: text)")
    return parser


# --------------------------------------------------------------------------------------------
# Entry point


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return its exit status (never raises for bad input)."""
    try:
        return _main(argv)
    except SystemExit as exc:  # argparse: --help, --version, usage errors
        return _exit_status(exc.code)
    except CliError as exc:
        _error(str(exc))
    except KeyboardInterrupt:
        _error("interrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        _silence_stdout()  # the reader went away (| head): nothing left to say
    except Exception as exc:
        if os.environ.get("SHARDSCAN_DEBUG"):
            raise
        _error(f"{type(exc).__name__}: {exc} (set SHARDSCAN_DEBUG=1 for a traceback)")
    return EXIT_ERROR


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_ERROR
    return int(args.handler(args))


def _exit_status(code: object) -> int:
    if code is None:
        return EXIT_CLEAN
    if isinstance(code, int):
        return code
    _error(str(code))
    return EXIT_ERROR


def _error(message: str) -> None:
    """One line on stderr, whatever the message holds, so scripts can grep it."""
    sys.stderr.write(f"shardscan: error: {' '.join(message.split())}\n")


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


# --------------------------------------------------------------------------------------------
# scan


def _cmd_scan(args: argparse.Namespace) -> int:
    if args.list_scanners:
        return _list_scanners(args)
    if not args.paths:
        args.subparser.error("the following arguments are required: PATH (or --list-scanners)")
    options = _scan_options(args)
    output = None if args.output in (None, "-") else args.output
    if output is not None:
        _check_writable(output)
    if args.dry_run:
        return _dry_run(args, options, output)

    from shardscan.pipeline.session import MissingExtra, ScanConfig, scan, totals_of
    from shardscan.report.progress import Progress

    config = ScanConfig(engine=args.engine, workers=args.workers, chunk_size=args.chunk_size,
                        max_inflight=args.max_inflight, ray_address=args.ray_address, sha256=args.sha256,
                        results=args.results, flush_seconds=args.flush_interval, reuse=not args.no_cache,
                        log_format=args.log_format, arguments=_recorded_arguments(args))
    progress: Progress | None = None

    def started(pipeline: Any) -> None:
        nonlocal progress
        if args.log_format:
            from shardscan.logs import configure, get_logger

            configure(args.log_format, pipeline.scan_id)
            get_logger().info("scan started", targets=list(args.paths), engine=args.engine,
                              results=args.results)
        if args.progress:
            progress = Progress(sys.stderr, totals_of(pipeline))

    def finished_object(report: Any) -> None:
        if progress is not None:
            progress.update(report)
        if args.log_format and report.status == "error":
            from shardscan.logs import get_logger

            get_logger().warning("object failed", uri=report.object.uri, error=report.error)

    # A text report lists what needs attention: a scan of millions of clean objects keeps counts
    # of them, not their reports.
    keep_all = args.format != "text" or args.verbose
    try:
        run = scan(list(args.paths), options, config, on_object=finished_object, on_start=started,
                   retain=None if keep_all else _needs_attention)
    except MissingExtra as exc:
        raise CliError(str(exc)) from None
    if progress is not None:
        progress.finish()
    if args.log_format:
        from shardscan.logs import get_logger

        get_logger().info("scan finished", objects=run.total_objects, findings=len(run.findings),
                          exit_code=run.exit_code, interrupted=run.interrupted, duration_s=round(run.duration_s, 3))
    _emit_report(args, run, output)
    if run.interrupted:
        _error("interrupted: the report and the results store hold the objects finished before")
        return EXIT_INTERRUPTED
    return run.exit_code


def _needs_attention(report: ObjectReport) -> bool:
    return bool(report.findings) or report.status not in ("scanned", "reused")


def _recorded_arguments(args: argparse.Namespace) -> dict[str, Any]:
    """The options of a run as the scans table records them (no handler objects)."""
    return {k: v for k, v in sorted(vars(args).items()) if k not in ("handler", "subparser")}


def _scan_options(args: argparse.Namespace) -> ScanOptions:
    from shardscan.pipeline.cache import default_cache_dir
    from shardscan.pipeline.runner import ScanOptions
    from shardscan.scanners import registry

    known = sorted(registry())
    wanted = _split_names(args.scanners)
    excluded = _split_names(args.exclude_scanner)
    unknown = sorted({name for name in wanted + excluded if name not in known})
    if unknown:
        raise CliError(f"unknown scanner{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}; "
                       f"known: {', '.join(known)} (see --list-scanners)")
    if args.scanners is not None and not wanted:
        raise CliError("--scanners needs at least one scanner id")
    return ScanOptions(
        strict=args.strict,
        blacklist=tuple(args.blacklist),
        scanners=frozenset(wanted) if args.scanners is not None else None,
        exclude=frozenset(excluded),
        timeout=args.timeout or None,
        max_size=args.max_size or None,
        # With a results store, the store is the cache (keyed by content, shared by machines).
        cache_dir=None if args.no_cache or args.dry_run or args.results else default_cache_dir(),
        weights=args.weights != "off",
        deep_weights=args.weights == "deep",
    )


def _check_writable(path: str) -> None:
    """Fail before a long scan, not after it, when the report cannot be written."""
    parent = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise CliError(f"cannot write {path}: it is a directory")
    if not os.path.isdir(parent):
        raise CliError(f"cannot write {path}: directory {parent} does not exist")
    if not os.access(parent, os.W_OK) or (os.path.exists(path) and not os.access(path, os.W_OK)):
        raise CliError(f"cannot write {path}: permission denied")


def _write_file(path: str, text: str) -> None:
    try:
        with open(path, "w", encoding="utf-8", errors="backslashreplace") as fh:
            fh.write(text)
    except OSError as exc:
        raise CliError(f"cannot write {path}: {exc.strerror or exc}") from exc


def _emit_report(args: argparse.Namespace, run: ScanRun, output: str | None) -> None:
    from shardscan.report import renderer

    render = renderer(args.format)
    if output is not None:
        _write_file(output, render(run, verbose=args.verbose, color=False))
        if not args.quiet:
            from shardscan.report.text import summary_line, use_color

            sys.stderr.write(f"{summary_line(run, verbose=args.verbose, color=use_color(sys.stderr))}"
                             f"\nreport written to {output}\n")
        return
    if args.format == "text":
        if args.quiet:
            return
        from shardscan.report.text import use_color

        _write_stdout(render(run, verbose=args.verbose, color=use_color(sys.stdout)))
        return
    _write_stdout(render(run))


def _write_stdout(text: str) -> None:
    try:
        sys.stdout.write(text)
    except UnicodeEncodeError:
        # A file name that is not valid in the terminal's encoding must not cost the report.
        encoding = sys.stdout.encoding or "utf-8"
        sys.stdout.write(text.encode(encoding, "backslashreplace").decode(encoding))
    sys.stdout.flush()



# --------------------------------------------------------------------------------------------
# scan --dry-run, scan --list-scanners


def _dry_run(args: argparse.Namespace, options: ScanOptions, output: str | None) -> int:
    """What would be scanned, from each object's head and tail only: nothing is scanned."""
    from shardscan.pipeline.runner import iter_detections
    from shardscan.storage.local import ListingError

    if args.format == "sarif":
        raise CliError("--dry-run writes text or json, not sarif")
    rows: list[dict[str, Any]] = []
    for item, detection in iter_detections(list(args.paths)):
        if isinstance(item, ListingError) or detection is None:
            rows.append({"path": item.uri, "size": None, "format": None, "formats": [],
                         "detected_by": None, "action": "error",
                         "error": getattr(item, "message", "could not be read")})
            continue
        too_big = options.max_size is not None and item.size > options.max_size
        rows.append({"path": item.uri, "size": item.size, "format": detection.format,
                     "formats": list(detection.formats), "detected_by": detection.by,
                     "action": "skip" if too_big else "scan",
                     "error": None})
    status = EXIT_ERROR if any(row["action"] == "error" for row in rows) else EXIT_CLEAN
    if args.format == "json":
        text = json.dumps({"schema_version": 1, "dry_run": True, "paths": list(args.paths),
                           "objects": rows, "exit_code": status}, indent=2, ensure_ascii=False) + "\n"
    elif args.quiet and output is None:
        return status
    else:
        text = _dry_run_table(rows)
    if output is not None:
        _write_file(output, text)
    else:
        _write_stdout(text)
    return status


def _dry_run_table(rows: list[dict[str, Any]]) -> str:
    from shardscan.report.text import format_size

    table = [("FORMAT", "DETECTED BY", "SIZE", "ACTION", "PATH")]
    for row in rows:
        size = "-" if row["size"] is None else format_size(row["size"])
        action = row["action"] + (f": {row['error']}" if row["error"] else "")
        if row["action"] == "skip":
            action = "skip: larger than --max-size"
        fmt = "+".join(row["formats"]) or "-"
        table.append((fmt, row["detected_by"] or "-", size, action, row["path"]))
    counts = {key: sum(1 for r in rows if r["action"] == key) for key in ("scan", "skip", "error")}
    summary = (f"{len(rows)} object{'s' if len(rows) != 1 else ''}: {counts['scan']} to scan, "
               f"{counts['skip']} to skip, {counts['error']} error{'s' if counts['error'] != 1 else ''} "
               "(dry run: nothing was scanned)")
    return _table(table) + summary + "\n"


def _list_scanners(args: argparse.Namespace) -> int:
    from shardscan.scanners import registry

    scanners = sorted(registry().values(), key=lambda s: s.id)
    if args.format == "json":
        data = [{"id": s.id, "version": s.version, "formats": list(s.formats),
                 "description": s.load().description} for s in scanners]
        _write_stdout(json.dumps(data, indent=2) + "\n")
    else:
        rows = [("ID", "VERSION", "FORMATS", "DESCRIPTION")]
        rows += [(s.id, str(s.version), ",".join(s.formats), s.load().description) for s in scanners]
        _write_stdout(_table(rows))
    return EXIT_CLEAN


# --------------------------------------------------------------------------------------------
# query


def _cmd_query(args: argparse.Namespace) -> int:
    if not args.results:
        args.subparser.error("--results (or SHARDSCAN_RESULTS) names the store to query")
    try:
        from shardscan.storage.query import QueryError, render, run_query
    except ImportError as exc:
        raise CliError(f"query needs {exc.name or exc}: pip install 'shardscan[results]'") from None
    try:
        table = run_query(args.results, args.sql)
    except QueryError as exc:
        raise CliError(str(exc)) from None
    _write_stdout(render(table, args.format))
    return EXIT_CLEAN


# --------------------------------------------------------------------------------------------
# rules


def _cmd_rules(args: argparse.Namespace) -> int:
    from shardscan.rules import BY_ID, RULES, STRICT_SEVERITY

    if args.rule_id is not None:
        rule_id = args.rule_id.strip().upper()
        if rule_id not in BY_ID:
            raise CliError(f"unknown rule {args.rule_id!r}; `shardscan rules` lists them all")
        selected = [BY_ID[rule_id]]
    else:
        selected = list(RULES)

    if args.format == "json":
        data = [{"id": r.id, "severity": r.severity.name,
                 "strict_severity": STRICT_SEVERITY[r.id].name if r.id in STRICT_SEVERITY else None,
                 "title": r.title, "why": r.why, "references": list(r.references)}
                for r in selected]
        _write_stdout(json.dumps(data[0] if args.rule_id else data, indent=2, ensure_ascii=False) + "\n")
        return EXIT_CLEAN

    if args.rule_id is None:
        rows = [("ID", "SEVERITY", "TITLE")] + [(r.id, r.severity.name, r.title) for r in selected]
        _write_stdout(_table(rows) + f"{len(selected)} rules; `shardscan rules ID` shows one in full\n")
        return EXIT_CLEAN

    import textwrap

    rule = selected[0]
    lines = [f"{rule.id}  {rule.severity.name}", rule.title, ""]
    lines += textwrap.wrap(f"Why: {rule.why}", 100, subsequent_indent="     ")
    if rule.id in STRICT_SEVERITY:
        lines.append(f"Under --strict: {STRICT_SEVERITY[rule.id].name}")
    if rule.references:
        lines += ["", "References:"] + [f"  - {ref}" for ref in rule.references]
    _write_stdout("\n".join(lines) + "\n")
    return EXIT_CLEAN


def _table(rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned columns, two spaces apart; the last column is not padded."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    out = []
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=True)] + [row[-1]]
        out.append("  ".join(cells).rstrip())
    return "\n".join(out) + "\n"


if __name__ == "__main__":  # pragma: no cover - `python -m shardscan` goes through __main__.py
    sys.exit(main())
