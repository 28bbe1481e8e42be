"""The human report: what is wrong, where, and what to do about it, compactly.

Each object with something to say gets a header line; each finding gives its severity, rule
id and message, where it sits (member path, byte offset) and the rule's "why", because a
finding a reader cannot act on is noise. Clean objects stay silent unless asked (--verbose),
so a directory of a thousand good files prints one summary line.
"""

from __future__ import annotations

import os
import textwrap
from typing import TextIO

from shardscan.model import FAILING_SEVERITY, Finding, ObjectReport, ScanRun, Severity, Status
from shardscan.report import SEVERITY_ORDER, count_status, counts_by_severity, finding_order
from shardscan.rules import BY_ID

#: Column where a finding's details start: 2 spaces, the widest severity name, 1 space.
DETAIL_INDENT = " " * (2 + len("CRITICAL") + 1)
#: The why text wraps here; wide enough for a sentence, narrow enough for a CI log pane.
WRAP_WIDTH = 100

_SGR = {
    Severity.CRITICAL: "1;31",
    Severity.WARNING: "33",
    Severity.INFO: "36",
    Severity.DEBUG: "2",
}
_VERDICTS = {
    0: ("PASS", "32"),
    1: ("FAIL: findings at WARNING or above", "1;31"),
    2: ("INCOMPLETE: some objects could not be scanned", "33"),
}


def use_color(stream: TextIO) -> bool:
    """ANSI colour only for a terminal, and never when NO_COLOR is set (no-color.org), so
    files and CI logs never get escape codes."""
    if "NO_COLOR" in os.environ:
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def format_size(n: int) -> str:
    """Bytes in binary units, short enough for a table column."""
    if n < 1024:
        return f"{n} B"
    size = float(n)
    for unit in ("KiB", "MiB", "GiB"):
        size /= 1024
        if size < 1024:
            return f"{size:.1f} {unit}"
    return f"{size / 1024:.1f} TiB"


def render(run: ScanRun, *, verbose: bool = False, color: bool = False) -> str:
    """The whole report, ending with the summary line and a newline."""
    paint = _Paint(color)
    shown = Severity.DEBUG if verbose else Severity.WARNING
    lines: list[str] = []
    for obj in run.objects:
        lines += _object_lines(obj, shown, verbose, paint)
    if lines:
        lines.append("")
    lines.append(summary_line(run, verbose=verbose, color=color))
    return "\n".join(lines) + "\n"


def summary_line(run: ScanRun, *, verbose: bool = False, color: bool = False) -> str:
    """Objects, findings by severity, errors, duration and the verdict on one line."""
    paint = _Paint(color)
    total = run.total_objects
    parts = [f"{count_status(run, Status.SCANNED)} scanned"]
    reused = count_status(run, Status.REUSED)
    if reused:
        parts.append(f"{reused} reused")
    errors = count_status(run, Status.ERROR)
    skipped = count_status(run, Status.SKIPPED)
    parts.append(f"{errors} error{'s' if errors != 1 else ''}")
    if skipped:
        parts.append(f"{skipped} skipped")
    counts = counts_by_severity(run)
    found = [
        f"{counts[sev.name]} {sev.name.lower()}"
        for sev in SEVERITY_ORDER
        if sev >= Severity.INFO or counts[sev.name]
    ]
    hidden = 0 if verbose else sum(counts[s.name] for s in SEVERITY_ORDER if s < FAILING_SEVERITY)
    hint = f" ({hidden} below WARNING hidden; -v shows them)" if hidden else ""
    verdict, sgr = _VERDICTS.get(run.exit_code, ("UNKNOWN", "0"))
    return (
        f"{total} object{'s' if total != 1 else ''} ({', '.join(parts)}) in {run.duration_s:.2f}s; "
        f"findings: {', '.join(found)}{hint}; verdict: {paint(verdict, sgr)}"
    )


def _object_lines(obj: ObjectReport, shown: Severity, verbose: bool, paint: _Paint) -> list[str]:
    findings = sorted((f for f in obj.findings if f.severity >= shown), key=finding_order)
    described = f"{obj.format or 'unknown format'}, {format_size(obj.object.size)}"
    if obj.status == Status.SKIPPED:
        return [f"{obj.object.uri}  skipped: {obj.error or 'not scanned'}"]
    if obj.status == Status.ERROR and not obj.format and not findings:
        return [f"{obj.object.uri}  {paint('error', '33')}: {obj.error}"]
    if obj.status == Status.REUSED:
        described += ", unchanged content: findings of an earlier scan"
    if not findings and obj.status in (Status.SCANNED, Status.REUSED):
        return [f"{obj.object.uri}  [{described}]  clean"] if verbose else []
    lines = [f"{obj.object.uri}  [{described}]"]
    if obj.error:
        lines.append(f"  {paint('error', '33')}: {obj.error}")
    explained: set[str] = set()
    for finding in findings:
        lines += _finding_lines(finding, paint, explain=finding.rule_id not in explained)
        explained.add(finding.rule_id)
    return lines


def _finding_lines(finding: Finding, paint: _Paint, *, explain: bool) -> list[str]:
    """The finding on one line; the rule's why under the first finding of each rule in an
    object, since a block of twenty identical explanations hides the findings."""
    severity = paint(f"{finding.severity.name:<8}", _SGR.get(finding.severity, "0"))
    where = _where(finding)
    lines = [f"  {severity} {finding.rule_id}  {finding.message}" + (f"  ({where})" if where else "")]
    rule = BY_ID.get(finding.rule_id)
    if explain and rule is not None:
        lines += textwrap.wrap(f"why: {rule.why}", WRAP_WIDTH, initial_indent=DETAIL_INDENT,
                               subsequent_indent=DETAIL_INDENT + "     ")
    return lines


def _where(finding: Finding) -> str:
    if finding.location and finding.offset is not None:
        return f"in {finding.location}, byte {finding.offset}"
    if finding.location:
        return f"in {finding.location}"
    if finding.offset is not None:
        return f"at byte {finding.offset}"
    return ""


class _Paint:
    """Wraps text in an ANSI SGR sequence, or leaves it alone when colour is off."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def __call__(self, text: str, sgr: str) -> str:
        return f"\x1b[{sgr}m{text}\x1b[0m" if self.enabled else text
