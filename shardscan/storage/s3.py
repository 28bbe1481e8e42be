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
from collections.abc import Iterator
from typing import Any

from shardscan.model import ObjectRef
from shardscan.storage.buckets import ClientCache, describe_listing_error, list_bucket, target_uri
from shardscan.storage.errors import ListingError, describe_error
from shardscan.storage.remote import FsspecReader
from shardscan.storage.uri import Location

__all__ = ["LIST_PAGE_SIZE", "R2ConfigError", "clear_cache", "filesystem", "list_objects", "open_reader"]

#: Keys per ListObjectsV2 request (S3's own maximum); tests lower it to see several pages.
LIST_PAGE_SIZE = 1000


class R2ConfigError(ValueError):
    """An r2:// target with no R2 endpoint configured."""


_clients = ClientCache()
clear_cache = _clients.clear


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
    """The s3fs.S3FileSystem for this process, scheme and endpoint (see ClientCache)."""
    endpoint, kwargs = _settings(scheme)

    def build() -> Any:
        import s3fs

        # skip_instance_cache: ClientCache is the cache; fsspec's own would hand back an
        # instance with stale credentials after clear_cache().
        return s3fs.S3FileSystem(skip_instance_cache=True, **kwargs)

    return _clients.get((scheme, endpoint), build)


def _ref(location: Location, item: dict[str, Any]) -> ObjectRef:
    etag = (item.get("ETag") or "").strip('"') or None
    return ObjectRef(uri=location.object_uri(item["Key"]), size=int(item.get("Size", 0)), etag=etag)


def list_objects(location: Location) -> Iterator[ObjectRef | ListingError]:
    """Objects under `location` in the store's listing order, one ListObjectsV2 page at a time
    (see `buckets.list_bucket` for what a path names and when a target is an error)."""
    try:
        fs = filesystem(location.scheme)
    except R2ConfigError as exc:
        yield ListingError(target_uri(location), str(exc))
        return
    bucket = location.container

    def first(prefix: str) -> dict[str, Any] | None:
        items = fs.call_s3("list_objects_v2", Bucket=bucket, Prefix=prefix, MaxKeys=1).get("Contents") or []
        return items[0] if items else None

    yield from list_bucket(location, first=first, pages=lambda prefix: _pages(fs, bucket, prefix), key="Key",
                           size="Size", ref=lambda item: _ref(location, item),
                           describe=lambda exc: describe_listing_error(location, exc, describe_error))


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
