"""Every scanner module is registered once, and its table entry matches its class."""

from __future__ import annotations

import ast
from pathlib import Path

import shardscan.scanners as scanners_pkg
from shardscan.scanners import SCANNERS, registry
from shardscan.scanners.base import Scanner
from shardscan.scanners.detect import MAGIC


def scanner_classes_in_source() -> set[str]:
    """`module:Class` for every class deriving from Scanner under shardscan/scanners/."""
    root = Path(scanners_pkg.__file__).parent
    found = set()
    for path in root.rglob("*.py"):
        tree = ast.parse(path.read_text("utf-8"))
        module = ".".join(("shardscan", *path.relative_to(root.parent).with_suffix("").parts))
        for node in tree.body:
            if isinstance(node, ast.ClassDef) and any(getattr(b, "id", None) == "Scanner" for b in node.bases):
                found.add(f"{module}:{node.name}")
    return found


def test_every_scanner_class_is_registered():
    assert scanner_classes_in_source() == {e.target for e in SCANNERS}


def test_entries_match_their_classes():
    entries = registry()
    for entry in entries.values():
        scanner = entry.load()
        assert isinstance(scanner, Scanner)
        assert scanner.id == entry.id
        assert scanner.description
        assert entry.version >= 1


def test_magic_table_formats_all_have_a_scanner():
    claimed = {f for e in SCANNERS for f in e.formats}
    assert {fmt for _, _, fmt in MAGIC} <= claimed
