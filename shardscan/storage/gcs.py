"""Google Cloud Storage (`gs://bucket/prefix`, `gcs://` is read as the same).

Listing pages through the JSON API's `objects.list` itself, one page at a time, so the first
objects are scanned while the rest of a large bucket is still being listed. Every object is
recorded with its generation, and reads ask for that generation: an object overwritten after
listing is then not found (FileNotFoundError) instead of read half old, half new.

Credentials are Google's default chain; with `STORAGE_EMULATOR_HOST` set (an emulator), the
requests are anonymous and go to that host.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from typing import Any

from shardscan.model import ObjectRef
from shardscan.storage.errors import ListingError, describe_error
from shardscan.storage.remote import FsspecReader
from shardscan.storage.uri import Location

__all__ = ["LIST_PAGE_SIZE", "clear_cache", "filesystem", "list_objects", "open_reader"]

#: Objects per `objects.list` request (the API's maximum); tests lower it to see several pages.
LIST_PAGE_SIZE = 1000
#: Only what an ObjectRef needs, so a page of a thousand objects stays small.
_LIST_FIELDS = "items(name,size,etag,generation),nextPageToken"

_lock = threading.Lock()
_cache: dict[tuple[str, str | None], Any] = {}
_cache_pid = os.getpid()


def clear_cache() -> None:
    """Forget the cached file system (tests switch emulators and credentials)."""
    global _cache_pid
    with _lock:
        _cache.clear()
        _cache_pid = os.getpid()


def filesystem() -> Any:
    """One gcsfs.GCSFileSystem per endpoint in this process, rebuilt in a forked child (the
    parent's is bound to an event loop thread that fsspec discards on fork)."""
    global _cache_pid
    emulator = os.environ.get("STORAGE_EMULATOR_HOST") or None
    cache_key = ("gs", emulator)
    with _lock:
        if _cache_pid != os.getpid():
            _cache.clear()
            _cache_pid = os.getpid()
        fs = _cache.get(cache_key)
        if fs is None:
            # gcsfs 2026.x otherwise swaps in a file system that probes for zonal/HNS buckets
            # over gRPC first, which waits out a 60 s timeout against an emulator; must be set
            # before gcsfs is first imported.
            os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")
            import gcsfs

            kwargs: dict[str, Any] = {"token": "anon"} if emulator else {}
            fs = gcsfs.GCSFileSystem(skip_instance_cache=True, **kwargs)
            _cache[cache_key] = fs
        return fs


def _target(location: Location) -> str:
    return f"{location.scheme}://{location.container}/{location.path}"


def _ref(location: Location, item: dict[str, Any]) -> ObjectRef:
    generation = item.get("generation")
    return ObjectRef(uri=location.object_uri(item["name"]), size=int(item.get("size", 0)),
                     etag=item.get("etag") or None, version=str(generation) if generation else None)


def _is_marker(item: dict[str, Any]) -> bool:
    """A "folder" made by the console or a tool: a zero-byte name ending in '/'."""
    return item["name"].endswith("/") and int(item.get("size", 0)) == 0


def _translate(exc: BaseException) -> BaseException:
    """gcsfs raises a bare OSError("Forbidden: ...") for 403: make it a PermissionError so the
    message reads "access denied" like the other stores."""
    if type(exc) is OSError and str(exc).startswith("Forbidden"):
        return PermissionError(str(exc).replace("\n", " "))
    return exc


def list_objects(location: Location) -> Iterator[ObjectRef | ListingError]:
    """Objects under `location` in name order, one `objects.list` page at a time.

    A path that is exactly an object's name names that object alone; otherwise it is a folder
    (`path/`). Any failure, before or after some objects, ends this target with one
    ListingError; so does a prefix with nothing under it (a mistyped prefix is not clean).
    """
    target = _target(location)
    try:
        fs = filesystem()
        bucket, path = location.container, location.path
        prefix = path
        if path and not path.endswith("/"):
            # The name itself sorts first among the names it prefixes.
            first = _page(fs, bucket, path, max_results=1).get("items") or []
            if first and first[0]["name"] == path:
                yield _ref(location, first[0])
                return
            if not first:
                yield ListingError(target, "not found: no object or prefix by that name")
                return
            prefix = path + "/"
        found = 0
        for item in _pages(fs, bucket, prefix):
            if not _is_marker(item):
                found += 1
                yield _ref(location, item)
        if not found:
            yield ListingError(target, "not found: no objects under this prefix" if prefix
                               else "the bucket holds no objects")
    except Exception as exc:  # no such bucket, forbidden, network: this target ends here
        yield ListingError(target, _describe_listing_error(location, exc))


def _page(fs: Any, bucket: str, prefix: str, *, max_results: int, token: str | None = None) -> dict[str, Any]:
    return fs.call("GET", "b/{}/o", bucket, prefix=prefix or None, maxResults=max_results,
                   pageToken=token, fields=_LIST_FIELDS, json_out=True)


def _describe_listing_error(location: Location, exc: BaseException) -> str:
    """A listing request only fails "not found" when the bucket is missing (the client turns
    the store's 404 into FileNotFoundError); anything else reads as the store put it."""
    if isinstance(exc, FileNotFoundError):
        return f"not found: no such bucket {location.container!r}"
    return describe_error(_translate(exc))


def _pages(fs: Any, bucket: str, prefix: str) -> Iterator[dict[str, Any]]:
    """Every listed object, fetching the next page only when the previous one is consumed."""
    token: str | None = None
    while True:
        page = _page(fs, bucket, prefix, max_results=LIST_PAGE_SIZE, token=token)
        yield from page.get("items") or ()
        token = page.get("nextPageToken")
        if not token:
            return


def open_reader(location: Location, ref: ObjectRef) -> FsspecReader:
    """A ranged reader pinned to the generation the listing saw (`generation=` on each GET)."""
    pin = {"generation": ref.version} if ref.version else {}
    return FsspecReader(filesystem(), f"{location.container}/{location.path}", ref.size, pin=pin)
