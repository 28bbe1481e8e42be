"""The scanner for files that are pickles: plain pickles, joblib, dill, legacy torch."""

from __future__ import annotations

from shardscan.model import Unit, UnitResult
from shardscan.scanners.base import ScanContext, Scanner, finding
from shardscan.scanners.detect import CODE_FREE_EXTENSIONS, extension
from shardscan.scanners.pickle.stream import scan_pickle_range
from shardscan.storage.reader import RangeReader
from shardscan.weights.spans import SPANS


class PickleScanner(Scanner):
    id = "pickle"
    description = "Pickle streams (protocols 0-5): joblib, dill, legacy PyTorch, stacked pickles"

    def scan(self, unit: Unit, reader: RangeReader, ctx: ScanContext) -> UnitResult:
        outcome = scan_pickle_range(reader, ctx, self.id, unit.start, unit.end)
        result = UnitResult(findings=outcome.findings, error=outcome.error)
        if outcome.spans:  # stream positions: offsets in `reader` already
            result.partials[SPANS] = outcome.spans
        if outcome.error is None and extension(unit.object.name) in CODE_FREE_EXTENSIONS:
            result.findings.append(finding(
                "FMT004", self.id,
                f"pickle content under a {extension(unit.object.name)} name", offset=unit.start))
        if outcome.timed_out:
            result.error = "timed out"
        return result
