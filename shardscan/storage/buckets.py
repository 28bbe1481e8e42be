"""What every bucket store (S3 and R2, GCS) does alike: one client per process, and the walk
from a target to the objects under it. The stores differ only in their requests and fields."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Hashable, Iterator
from typing import Any

from shardscan.model import ObjectRef
from shardscan.storage.errors import ListingError
from shardscan.storage.uri import Location

Item = dict[str, Any]


class ClientCache:
    """Store clients (fsspec file systems) built once per key in this process.

    Built once because each holds a connection pool and resolved credentials. A forked child
    builds its own: the parent's is bound to an event loop thread that fsspec discards on fork.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._clients: dict[Hashable, Any] = {}
        self._pid = os.getpid()

    def get(self, key: Hashable, build: Callable[[], Any]) -> Any:
        with self._lock:
            if self._pid != os.getpid():
                self._clients.clear()
                self._pid = os.getpid()
            client = self._clients.get(key)
            if client is None:
                client = self._clients[key] = build()
            return client

    def clear(self) -> None:
        """Forget every client (tests switch endpoints and credentials)."""
        with self._lock:
            self._clients.clear()
            self._pid = os.getpid()


def target_uri(location: Location) -> str:
    return f"{location.scheme}://{location.container}/{location.path}"


def list_bucket(location: Location, *, first: Callable[[str], Item | None], pages: Callable[[str], Iterator[Item]],
                key: str, size: str, ref: Callable[[Item], ObjectRef],
                describe: Callable[[BaseException], str]) -> Iterator[ObjectRef | ListingError]:
    """Objects under `location` in the store's listing order.

    A path that is exactly an object's key names that object alone; otherwise it is a folder
    (`path/`), so `models/a` does not also pick up `models/ab`. `first(prefix)` is the first
    listed item under a prefix: the key itself sorts first among the keys it prefixes, so one
    item tells an object from a folder (and a missing bucket surfaces there, before any output).
    Folder markers (zero-byte keys ending in '/') are not objects. Any failure, before or after
    some objects, ends the target with one ListingError; so does a prefix with nothing under it,
    because a mistyped prefix must not pass as a clean scan.
    """
    target = target_uri(location)
    try:
        path = prefix = location.path
        if path and not path.endswith("/"):
            item = first(path)
            if item is not None and item[key] == path:
                yield ref(item)
                return
            if item is None:
                yield ListingError(target, "not found: no object or prefix by that name")
                return
            prefix = path + "/"
        found = 0
        for item in pages(prefix):
            if not (item[key].endswith("/") and int(item.get(size, 0)) == 0):
                found += 1
                yield ref(item)
        if not found:
            yield ListingError(target, "not found: no objects under this prefix" if prefix
                               else "the bucket holds no objects")
    except Exception as exc:  # no such bucket, access denied, network: this target ends here
        yield ListingError(target, describe(exc))


def describe_listing_error(location: Location, exc: BaseException, describe: Callable[[BaseException], str]) -> str:
    """A listing request only fails "not found" when the bucket is missing (the clients turn
    the store's 404 into FileNotFoundError); anything else reads as the store put it."""
    if isinstance(exc, FileNotFoundError):
        return f"not found: no such bucket {location.container!r}"
    return describe(exc)
