"""The Hugging Face hub: list a repository (or a folder or file in it) and read its files by range.

Every scan is pinned to one commit: the target's revision (a branch, tag or sha; None for the
default branch) is resolved to a commit sha first, the tree is listed at that sha, and every
object URI carries it (`hf://org/name@<sha>/path`), so a later read or rescan sees the same bytes
even when the branch has moved. LFS files keep their sha256, so the fingerprint index recognises
the same weights in any repository without reading them.

Listing goes through `HfApi.list_repo_tree(recursive=True)`, which follows the hub's `Link: <...>;
rel="next"` pages one at a time as the caller consumes it: the first objects are handed on after
one request, whatever the repository's size.

Reads are HTTP Range GETs on the file's `resolve/<sha>/<path>` address through huggingface_hub's
own shared session (its token, user agent, retries, and the redirect to the CDN for LFS and Xet
files), under the block cache of `FsspecReader`. `HfFileSystem` is not used for reads: its
`cat_file` reads 5 MiB ahead of every request unless told otherwise, and before each range it
lists the file's parent directory (`url()` -> `isdir()` -> `ls(parent)`), paginated, into a
per-instance `dircache` that its instance cache keeps for the life of the process; in a
long-lived worker that is unbounded memory and a stale view of branches. A plain GET needs
neither, and the size comes from the listing.

Endpoint and token: huggingface_hub reads `HF_ENDPOINT` (and `HF_HOME`, `HF_HUB_OFFLINE`) once, at
its first import. This module reads `HF_ENDPOINT` from the environment on every call and passes it
explicitly, so a mirror or a test stand-in set after huggingface_hub was imported is still used.
The token is huggingface_hub's usual one (`HF_TOKEN`, then the saved login) and is never logged
or put in a message. `HF_HUB_OFFLINE=1` present at import time makes every request fail; that is
reported as the store being unreachable.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from typing import Any

from shardscan.model import ObjectRef
from shardscan.storage.errors import ListingError, describe_error
from shardscan.storage.remote import FsspecReader
from shardscan.storage.uri import Location

__all__ = ["HubRanges", "ListingError", "endpoint", "list_objects", "open_reader", "repo_kind"]

#: `Location.container` prefix -> huggingface_hub repo_type.
_KINDS = {"datasets/": "dataset", "spaces/": "space"}
_CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")


def endpoint() -> str:
    """The hub to talk to: `HF_ENDPOINT` as it is now, else what huggingface_hub settled on
    at import (its default, https://huggingface.co)."""
    env = os.environ.get("HF_ENDPOINT", "").strip().rstrip("/")
    if env:
        return env
    from huggingface_hub import constants

    return constants.ENDPOINT.rstrip("/")


def repo_kind(container: str) -> tuple[str, str]:
    """(repo_type, repo_id) of a `Location.container`: `datasets/org/name` -> ("dataset", "org/name")."""
    for prefix, kind in _KINDS.items():
        if container.startswith(prefix):
            return kind, container[len(prefix):]
    return "model", container


def _api() -> Any:
    from huggingface_hub import HfApi

    return HfApi(endpoint=endpoint())


def _target(location: Location) -> str:
    rev = f"@{location.revision}" if location.revision else ""
    return f"hf://{location.container}{rev}" + (f"/{location.path}" if location.path else "")


def _pin(api: Any, location: Location) -> str:
    """The commit sha the location's revision names now (None: the default branch)."""
    repo_type, repo_id = repo_kind(location.container)
    info = api.repo_info(repo_id, repo_type=repo_type, revision=location.revision, expand=["sha"])
    if not info.sha:
        raise OSError(f"the hub gave no commit for {_target(location)}")
    return str(info.sha)


def list_objects(location: Location) -> Iterator[ObjectRef | ListingError]:
    """Files under the location at one pinned commit, lazily, in the hub's tree order.

    `location.path` may name a file (that file), a folder (everything under it) or be empty (the
    whole repository). A missing repository, revision or path, or one the token may not read,
    yields one ListingError with a readable reason; so does a failure part-way through a listing,
    after the objects already listed.
    """
    target = _target(location)
    repo_type, repo_id = repo_kind(location.container)
    try:
        api = _api()
        sha = _pin(api, location)
        pinned = Location("hf", location.container, revision=sha)
        if location.path:
            # paths-info tells a file from a folder in one request (the tree endpoint is for folders).
            found = api.get_paths_info(repo_id, [location.path], revision=sha, repo_type=repo_type)
            if not found:
                yield ListingError(target, f"not found: no file or folder {location.path!r} in {location.container}"
                                           f" at {location.revision or 'the default branch'} ({sha[:12]})")
                return
            if _is_file(found[0]):
                yield _ref(pinned, found[0])
                return
        tree = api.list_repo_tree(repo_id, location.path or None, recursive=True, revision=sha,
                                  repo_type=repo_type)
        for entry in tree:
            if _is_file(entry):
                yield _ref(pinned, entry)
    except ImportError:
        raise  # objects.list_objects says which package to install
    except Exception as exc:  # the hub's errors become one readable row; the scan goes on
        yield ListingError(target, _listing_message(_as_os_error(exc, target)))


def _is_file(entry: Any) -> bool:
    from huggingface_hub.hf_api import RepoFile

    return isinstance(entry, RepoFile)


def _ref(pinned: Location, entry: Any) -> ObjectRef:
    """An ObjectRef pinned to the commit: the git blob id as ETag, the LFS sha256 as content hash."""
    lfs = entry.lfs
    return ObjectRef(
        uri=pinned.object_uri(entry.path),
        size=int(lfs.size if lfs is not None else entry.size),
        etag=entry.blob_id or None,
        version=pinned.revision,
        sha256=(lfs.sha256 if lfs is not None else None) or None,
    )


def open_reader(location: Location, ref: ObjectRef) -> FsspecReader:
    """A ranged reader over one file at the commit the listing saw (the sha in its URI).

    A ref without a revision (built by hand) is pinned to the default branch's commit now.
    """
    from huggingface_hub import hf_hub_url

    repo_type, repo_id = repo_kind(location.container)
    revision = location.revision or ref.version
    if not revision:
        try:
            revision = _pin(_api(), location)
        except Exception as exc:
            mapped = _as_os_error(exc, ref.uri)
            if mapped is exc:
                raise
            raise mapped from exc
    url = hf_hub_url(repo_id, location.path, repo_type=repo_type, revision=revision, endpoint=endpoint())
    return FsspecReader(HubRanges(ref.uri), url, ref.size)


class HubRanges:
    """The one method FsspecReader calls, `cat_file(url, start, end)`, as a Range GET on a hub
    `resolve` URL. It never downloads more than asked: a server that ignores Range and starts
    sending the whole file is cut off with an error instead."""

    def __init__(self, uri: str) -> None:
        self.uri = uri  # for messages: the object's hf:// URI, not the download URL

    def cat_file(self, path: str, start: int | None = None, end: int | None = None, **_: Any) -> bytes:
        from huggingface_hub import constants
        from huggingface_hub.utils import build_hf_headers, hf_raise_for_status, http_stream_backoff

        start = start or 0
        if end is None or end <= start:
            return b""
        # identity: the byte counts must be the file's, not a compressed body's.
        headers = {**build_hf_headers(), "Range": f"bytes={start}-{end - 1}", "Accept-Encoding": "identity"}
        try:
            with http_stream_backoff("GET", path, headers=headers, timeout=constants.HF_HUB_DOWNLOAD_TIMEOUT) as r:
                if r.status_code >= 400:
                    r.read()  # error bodies are small; hf_raise_for_status reads the hub's message from it
                    hf_raise_for_status(r)
                if r.status_code == 206:
                    got = _CONTENT_RANGE.match(r.headers.get("Content-Range", "").strip())
                    if got is None or int(got.group(1)) != start:
                        raise OSError(f"{self.uri}: the hub answered bytes {start}-{end - 1} with "
                                      f"Content-Range {r.headers.get('Content-Range')!r}")
                elif r.status_code != 200 or start != 0 or _length(r) not in (None, end):
                    raise OSError(f"{self.uri}: the hub ignored the byte range (HTTP {r.status_code}); "
                                  "not downloading the whole file")
                data = b"".join(_take(r, end - start))
        except Exception as exc:  # the hub's HTTP errors and httpx's transport errors, as OSErrors
            mapped = _as_os_error(exc, self.uri)
            if mapped is exc:
                raise
            raise mapped from exc
        if len(data) != end - start:
            raise OSError(f"{self.uri}: short read at {start}: {len(data)} of {end - start} bytes")
        return data


def _length(response: Any) -> int | None:
    value = response.headers.get("Content-Length")
    return int(value) if value and value.isdigit() else None


def _take(response: Any, limit: int) -> Iterator[bytes]:
    """At most `limit` bytes of the body (a 200 for a whole small file is still bounded)."""
    left = limit
    for chunk in response.iter_bytes():
        if left <= 0:
            break
        yield chunk[:left]
        left -= len(chunk)


def _as_os_error(exc: BaseException, uri: str) -> OSError:
    """The hub's error as the OSError kind `describe_error` words: FileNotFoundError for a
    missing repo, revision or file, PermissionError for gated, private or forbidden, TimeoutError,
    ConnectionError; else the error itself when it is an OSError. Messages name the object, never
    a token."""
    import httpx2
    from huggingface_hub import errors

    if isinstance(exc, errors.GatedRepoError):
        return PermissionError(f"{uri}: gated repository; request access on the hub and log in (HF_TOKEN)")
    if isinstance(exc, errors.DisabledRepoError):
        return PermissionError(f"{uri}: repository disabled by the hub")
    status = getattr(getattr(exc, "response", None), "status_code", None)
    if isinstance(exc, errors.RepositoryNotFoundError):
        if status == 401:
            return PermissionError(f"{uri}: repository is private or does not exist (no token with access to it)")
        return FileNotFoundError(f"{uri}: repository does not exist (or is private and the token cannot see it)")
    if isinstance(exc, errors.RevisionNotFoundError):
        return FileNotFoundError(f"{uri}: revision does not exist")
    if isinstance(exc, errors.EntryNotFoundError):
        return FileNotFoundError(f"{uri}: no such file or folder at this revision")
    if isinstance(exc, errors.OfflineModeIsEnabled):
        return ConnectionError(f"{uri}: HF_HUB_OFFLINE is set (read by huggingface_hub at import)")
    if isinstance(exc, errors.HfHubHTTPError) and status in (401, 403):
        return PermissionError(f"{uri}: HTTP {status} from the hub")
    if isinstance(exc, errors.HfHubHTTPError) and status == 404:
        return FileNotFoundError(f"{uri}: HTTP 404 from the hub")
    if isinstance(exc, httpx2.TimeoutException):
        return TimeoutError(f"{uri}: {type(exc).__name__}")
    if isinstance(exc, httpx2.TransportError):
        return ConnectionError(f"{uri}: {type(exc).__name__}: {exc}")
    if isinstance(exc, OSError):
        return exc
    return OSError(f"{uri}: {type(exc).__name__}: {exc}")


def _listing_message(exc: OSError) -> str:
    """`not found: ...` / `access denied: ...` for a listing (describe_error's wording for a file
    that vanished after listing does not fit a target that never existed)."""
    if isinstance(exc, FileNotFoundError):
        return f"not found: {exc}"
    if isinstance(exc, PermissionError):
        return f"access denied: {exc}"
    return describe_error(exc)
