"""Where extracting an archive member would write: the checks every archive scanner shares.

Backslashes count as separators (Windows extractors split on them) and drive letters as
absolute, so a name is judged as the most permissive extractor would read it.
"""

from __future__ import annotations

import posixpath
import re

_DRIVE = re.compile(r"^[A-Za-z]:")


def path_escape(name: str) -> str | None:
    """Why extracting a member called `name` writes outside the target directory, or None.

    Backslashes count as separators: Windows extractors split on them.
    """
    path = name.replace("\\", "/")
    if path.startswith("/"):
        return "absolute path"
    if _DRIVE.match(path):
        return "drive-qualified path"
    depth = 0
    for part in path.split("/"):
        if part == "..":
            depth -= 1
            if depth < 0:
                return "'..' leads above the extraction directory"
        elif part not in ("", "."):
            depth += 1
    return None


def link_escape(name: str, target: str, *, hard: bool) -> str | None:
    """Why a link member `name` -> `target` reaches outside the archive, or None.

    A symbolic link resolves from the directory that holds it; a hard link names another
    member, relative to the extraction directory.
    """
    path = target.replace("\\", "/")
    if not path:
        return None
    if path.startswith("/") or _DRIVE.match(path):
        return f"link target {target!r} is absolute"
    base = "" if hard else posixpath.dirname(name.replace("\\", "/"))
    if path_escape(posixpath.join(base, path) if base else path) is not None:
        return f"link target {target!r} resolves outside the archive"
    return None


def normalised(name: str) -> str:
    """The path extraction would write for `name`, for spotting duplicates."""
    path = posixpath.normpath(name.replace("\\", "/").lstrip("/"))
    return "" if path == "." else path
