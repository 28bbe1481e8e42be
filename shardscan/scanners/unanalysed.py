"""Content no scanner analyses: reported, never silently dropped.

Executables among model files are a finding of their own; recognised model formats whose
scanner is not written yet, and unknown content, are INFO (failures under --strict).
"""

from __future__ import annotations

from shardscan.model import Unit, UnitResult
from shardscan.scanners import detect as fmt
from shardscan.scanners.base import ScanContext, Scanner, finding
from shardscan.storage.reader import RangeReader


class UnanalysedScanner(Scanner):
    id = "unanalysed"
    description = "Reports executables, empty files, unknown content and formats not yet analysed"

    def scan(self, unit: Unit, reader: RangeReader, ctx: ScanContext) -> UnitResult:
        kind = unit.context.get("format", fmt.UNKNOWN)
        if kind == fmt.EMPTY:
            return UnitResult(error="empty file: nothing to scan")
        if kind in fmt.EXECUTABLES:
            return UnitResult([finding("FMT003", self.id, f"{kind.upper()} executable", offset=0,
                                       format=kind)])
        if kind == fmt.UNKNOWN:
            return UnitResult([finding("FMT001", self.id, "content of unknown format", offset=0)])
        return UnitResult([finding("FMT002", self.id, f"{kind} content is not analysed yet",
                                   offset=0, format=kind)])
