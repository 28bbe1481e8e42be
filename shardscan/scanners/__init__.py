"""Scanners, one per format family, registered here explicitly and in one place."""

from __future__ import annotations

from shardscan.scanners.base import Scanner
from shardscan.scanners.compressed import CompressedScanner
from shardscan.scanners.npy import NpyScanner
from shardscan.scanners.pickle.scanner import PickleScanner
from shardscan.scanners.sevenzip import SevenZipScanner
from shardscan.scanners.tararchive import TarScanner
from shardscan.scanners.unanalysed import UnanalysedScanner
from shardscan.scanners.ziparchive import ZipScanner

SCANNERS: tuple[type[Scanner], ...] = (
    PickleScanner,
    UnanalysedScanner,
    ZipScanner,
    NpyScanner,
    CompressedScanner,
    TarScanner,
    SevenZipScanner,
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
