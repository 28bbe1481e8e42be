"""S3 and S3-compatible stores (`s3://bucket/prefix`, and Cloudflare R2 as `r2://bucket/prefix`).

Listing pages through ListObjectsV2 itself, one page at a time, so a bucket of millions of
objects starts scanning after the first page and never sits in memory as a whole. Reads go
through FsspecReader over s3fs's ranged GETs.

Configuration is the standard one: botocore's credential chain and its endpoint settings
(`AWS_ENDPOINT_URL_S3`, `AWS_ENDPOINT_URL`, `endpoint_url` in the config file: botocore applies
them itself, s3fs passes them through). R2 has its own variables, so that one process can scan
AWS and R2 buckets side by side:

- `R2_ENDPOINT_URL`, else `https://{R2_ACCOUNT_ID}.r2.cloudflarestorage.com`;
- `R2_ACCESS_KEY_ID` / `R2_SECRET_ACCESS_KEY`, else the AWS credential chain.

`AWS_NO_SIGN_REQUEST=true` reads public buckets without credentials, as the AWS CLI does.
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

__all__ = ["LIST_PAGE_SIZE", "R2ConfigError", "clear_cache", "filesystem", "list_objects", "open_reader"]

#: Keys per ListObjectsV2 request (S3's own maximum); tests lower it to see several pages.
LIST_PAGE_SIZE = 1000


class R2ConfigError(ValueError):
    """An r2:// target with no R2 endpoint configured."""


_lock = threading.Lock()
_cache: dict[tuple[str, str | None], Any] = {}
_cache_pid = os.getpid()


def clear_cache() -> None:
    """Forget the cached file systems (tests change credentials and endpoints between cases)."""
    global _cache_pid
    with _lock:
        _cache.clear()
        _cache_pid = os.getpid()


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def _settings(scheme: str) -> tuple[str | None, dict[str, Any]]:
    """The endpoint (for the cache key; None: botocore decides) and S3FileSystem arguments."""
    kwargs: dict[str, Any] = {}
    if _truthy(os.environ.get("AWS_NO_SIGN_REQUEST")):
        kwargs["anon"] = True
    if scheme != "r2":
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        return endpoint, kwargs
    endpoint = os.environ.get("R2_ENDPOINT_URL")
    if not endpoint and os.environ.get("R2_ACCOUNT_ID"):
        endpoint = f"https://{os.environ['R2_ACCOUNT_ID'].strip()}.r2.cloudflarestorage.com"
    if not endpoint:
        raise R2ConfigError("r2:// needs an endpoint: set R2_ENDPOINT_URL or R2_ACCOUNT_ID")
    kwargs["endpoint_url"] = endpoint
    # R2 signs with the region "auto"; given here, not in the environment, so that it does not
    # leak into the AWS file system.
    kwargs["client_kwargs"] = {"region_name": os.environ.get("R2_REGION", "auto")}
    key, secret = os.environ.get("R2_ACCESS_KEY_ID"), os.environ.get("R2_SECRET_ACCESS_KEY")
    if key and secret:
        kwargs["key"], kwargs["secret"] = key, secret
    return endpoint, kwargs


def filesystem(scheme: str = "s3") -> Any:
    """One s3fs.S3FileSystem per (scheme, endpoint) in this process.

    Built once because each holds a connection pool and resolved credentials. A forked child
    gets its own: the parent's instance is bound to the parent's event loop thread, which
    fsspec discards on fork, so the cache is dropped when the process id changes.
    """
    global _cache_pid
    endpoint, kwargs = _settings(scheme)
    cache_key = (scheme, endpoint)
    with _lock:
        if _cache_pid != os.getpid():
            _cache.clear()
            _cache_pid = os.getpid()
        fs = _cache.get(cache_key)
        if fs is None:
            import s3fs

            # skip_instance_cache: this module is the cache; fsspec's own would hand back an
            # instance with stale credentials after clear_cache().
            fs = s3fs.S3FileSystem(skip_instance_cache=True, **kwargs)
            _cache[cache_key] = fs
        return fs


def _target(location: Location) -> str:
    return f"{location.scheme}://{location.container}/{location.path}"


def _ref(location: Location, item: dict[str, Any]) -> ObjectRef:
    etag = (item.get("ETag") or "").strip('"') or None
    return ObjectRef(uri=location.object_uri(item["Key"]), size=int(item.get("Size", 0)), etag=etag)


def _is_marker(item: dict[str, Any]) -> bool:
    """A "folder" made by a console or a tool: a zero-byte key ending in '/', not an object."""
    return item["Key"].endswith("/") and int(item.get("Size", 0)) == 0


def list_objects(location: Location) -> Iterator[ObjectRef | ListingError]:
    """Objects under `location` in the store's listing order, one ListObjectsV2 page at a time.

    A path that is exactly an object's key names that object alone; otherwise it is a folder
    (`path/`), so `s3://b/models/a` does not also pick up `models/ab`. Any failure, before
    or after some objects, ends this target with one ListingError. A prefix with nothing under
    it is a ListingError too: a mistyped prefix must not pass as a clean scan.
    """
    target = _target(location)
    try:
        fs = filesystem(location.scheme)
        bucket, path = location.container, location.path
        prefix = path
        if path and not path.endswith("/"):
            # The key itself sorts first among the keys it prefixes: one key is enough to tell
            # an object from a folder (and a missing bucket surfaces here, before any output).
            first = fs.call_s3("list_objects_v2", Bucket=bucket, Prefix=path, MaxKeys=1).get("Contents") or []
            if first and first[0]["Key"] == path:
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
    except Exception as exc:  # NoSuchBucket, AccessDenied, network: this target ends here
        yield ListingError(target, _describe_listing_error(location, exc))


def _describe_listing_error(location: Location, exc: BaseException) -> str:
    """A listing request only fails "not found" when the bucket is missing (the client turns
    the store's 404 into FileNotFoundError); anything else reads as the store put it."""
    if isinstance(exc, FileNotFoundError):
        return f"not found: no such bucket {location.container!r}"
    return describe_error(exc)


def _pages(fs: Any, bucket: str, prefix: str) -> Iterator[dict[str, Any]]:
    """Every listed key, fetching the next page only when the previous one is consumed."""
    kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix, "MaxKeys": LIST_PAGE_SIZE}
    while True:
        page = fs.call_s3("list_objects_v2", **kwargs)
        yield from page.get("Contents") or ()
        token = page.get("NextContinuationToken")
        if not page.get("IsTruncated") or not token:
            return
        kwargs["ContinuationToken"] = token


def open_reader(location: Location, ref: ObjectRef) -> FsspecReader:
    """A ranged reader over the object. Reads are pinned to `ref.version` when the listing
    gave one; an ETag cannot be pinned (s3fs's cat_file takes no If-Match), so a replaced
    object is caught by the content hash, and a deleted one raises FileNotFoundError."""
    pin = {"version_id": ref.version} if ref.version else {}
    return FsspecReader(filesystem(location.scheme), f"{location.container}/{location.path}", ref.size, pin=pin)
