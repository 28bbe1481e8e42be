"""Local files: every file under a directory, not a list of extensions."""

from __future__ import annotations

import os
from collections.abc import Iterator

from shardscan.model import ObjectRef
from shardscan.storage.errors import ListingError
from shardscan.storage.reader import LocalReader
from shardscan.storage.uri import Location

__all__ = ["ListingError", "list_local", "list_objects", "open_reader"]


def list_objects(location: Location) -> Iterator[ObjectRef | ListingError]:
    return list_local([location.path])


def open_reader(location: Location, ref: ObjectRef) -> LocalReader:
    return LocalReader(location.path)


def list_local(paths: list[str]) -> Iterator[ObjectRef | ListingError]:
    """Files in a stable order (sorted), directories walked without following symlinked
    directories, so a loop of links cannot trap the walk."""
    for path in paths:
        if not os.path.lexists(path):
            yield ListingError(path, "no such file or directory")
        elif os.path.isdir(path):
            yield from _walk(path)
        else:
            yield _stat(path)


def change_token(st: os.stat_result) -> str:
    """What changes whenever a local file's bytes may have: the local stand-in for an ETag."""
    return f"{st.st_mtime_ns}-{st.st_ctime_ns}-{st.st_ino}"


def _stat(path: str) -> ObjectRef | ListingError:
    try:
        st = os.stat(path)
    except OSError as exc:
        return ListingError(path, exc.strerror or str(exc))
    if not os.path.isfile(path):
        return ListingError(path, "not a regular file")
    return ObjectRef(uri=path, size=st.st_size, etag=change_token(st))


def _walk(root: str) -> Iterator[ObjectRef | ListingError]:
    errors: list[OSError] = []
    for dirpath, dirnames, filenames in os.walk(root, onerror=errors.append):
        dirnames.sort()
        for name in sorted(filenames):
            yield _stat(os.path.join(dirpath, name))
        while errors:
            err = errors.pop()
            yield ListingError(err.filename or dirpath, err.strerror or str(err))
    for err in errors:
        yield ListingError(err.filename or root, err.strerror or str(err))
