"""Scanners, one per format family, registered here explicitly and in one place."""

from __future__ import annotations

from shardscan.scanners.base import Scanner
from shardscan.scanners.pickle.scanner import PickleScanner
from shardscan.scanners.unanalysed import UnanalysedScanner

SCANNERS: tuple[type[Scanner], ...] = (
    PickleScanner,
    UnanalysedScanner,
)


def registry() -> dict[str, Scanner]:
    """Scanner instances by id; a duplicate id or format is a programming error."""
    out: dict[str, Scanner] = {}
    formats: set[str] = set()
    for cls in SCANNERS:
        if cls.id in out:
            raise ValueError(f"duplicate scanner id {cls.id}")
        overlap = formats & set(cls.formats)
        if overlap:
            raise ValueError(f"formats {sorted(overlap)} claimed twice")
        formats |= set(cls.formats)
        out[cls.id] = cls()
    return out
