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
from collections.abc import Iterator
from typing import Any

from shardscan.model import ObjectRef
from shardscan.storage.buckets import ClientCache, describe_listing_error, list_bucket
from shardscan.storage.errors import ListingError, describe_error
from shardscan.storage.remote import FsspecReader
from shardscan.storage.uri import Location

__all__ = ["LIST_PAGE_SIZE", "clear_cache", "filesystem", "list_objects", "open_reader"]

#: Objects per `objects.list` request (the API's maximum); tests lower it to see several pages.
LIST_PAGE_SIZE = 1000
#: Only what an ObjectRef needs, so a page of a thousand objects stays small.
_LIST_FIELDS = "items(name,size,etag,generation),nextPageToken"

_clients = ClientCache()
clear_cache = _clients.clear


def filesystem() -> Any:
    """The gcsfs.GCSFileSystem for this process and endpoint (see ClientCache)."""
    emulator = os.environ.get("STORAGE_EMULATOR_HOST") or None

    def build() -> Any:
        # gcsfs 2026.x otherwise swaps in a file system that probes for zonal/HNS buckets over
        # gRPC first, which waits out a 60 s timeout against an emulator; must be set before
        # gcsfs is first imported.
        os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")
        import gcsfs

        kwargs: dict[str, Any] = {"token": "anon"} if emulator else {}
        return gcsfs.GCSFileSystem(skip_instance_cache=True, **kwargs)

    return _clients.get(("gs", emulator), build)


def _ref(location: Location, item: dict[str, Any]) -> ObjectRef:
    generation = item.get("generation")
    return ObjectRef(uri=location.object_uri(item["name"]), size=int(item.get("size", 0)),
                     etag=item.get("etag") or None, version=str(generation) if generation else None)


def _translate(exc: BaseException) -> BaseException:
    """gcsfs raises a bare OSError("Forbidden: ...") for 403: make it a PermissionError so the
    message reads "access denied" like the other stores."""
    if type(exc) is OSError and str(exc).startswith("Forbidden"):
        return PermissionError(str(exc).replace("\n", " "))
    return exc


def list_objects(location: Location) -> Iterator[ObjectRef | ListingError]:
    """Objects under `location` in name order, one `objects.list` page at a time (see
    `buckets.list_bucket` for what a path names and when a target is an error)."""
    fs = filesystem()
    bucket = location.container

    def first(prefix: str) -> dict[str, Any] | None:
        items = _page(fs, bucket, prefix, max_results=1).get("items") or []
        return items[0] if items else None

    return list_bucket(location, first=first, pages=lambda prefix: _pages(fs, bucket, prefix), key="name",
                       size="size", ref=lambda item: _ref(location, item),
                       describe=lambda exc: describe_listing_error(location, exc, _describe))


def _page(fs: Any, bucket: str, prefix: str, *, max_results: int, token: str | None = None) -> dict[str, Any]:
    return fs.call("GET", "b/{}/o", bucket, prefix=prefix or None, maxResults=max_results,
                   pageToken=token, fields=_LIST_FIELDS, json_out=True)


def _describe(exc: BaseException) -> str:
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
