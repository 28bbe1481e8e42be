"""What every bucket store does alike (`buckets.list_bucket` and the ranged reader), run
against each real server: S3 on SeaweedFS, GCS on fake-gcs-server.

Each test runs once per store through a small adapter (`store`) that hides how the two are
driven: the scheme, the server, and how a list request is recorded. What only one store does
(S3 ETags, access denied and R2; GCS generations) stays in test_store_s3.py / test_store_gcs.py.
"""

from __future__ import annotations

import multiprocessing
import os
from types import ModuleType
from typing import Any

import pytest

from shardscan.model import ObjectRef
from shardscan.storage import gcs, s3
from shardscan.storage.errors import ListingError
from shardscan.storage.objects import list_objects, open_reader

MiB = 1024 * 1024
BIG = os.urandom(2 * MiB + 12345)
NESTED = {
    "models/a.bin": b"alpha",
    "models/sub/b.bin": b"bravo" * 100,
    "models/sub/deeper/c.bin": b"c",
    "models-old/x.bin": b"not under models/",
    "models/empty-dir/": b"",
    "top.bin": b"top",
}


class BucketStore:
    """One bucket store as these tests drive it; a subclass a store."""

    scheme: str  # the URI scheme listings answer with
    alias: str  # a scheme that names the same store
    family: ModuleType  # the shardscan.storage module that lists and reads it
    server_fixture: str  # the session fixture that runs its server
    special: tuple[str, bytes]  # a key with the characters its API must escape, and its bytes
    name_order: bool  # whether the server lists in byte order of the keys
    _call: str  # the file system method every list request goes through

    def __init__(self, server: Any) -> None:
        self.server = server

    def make_bucket(self, objects: dict[str, bytes]) -> str:
        return self.server.make_bucket(objects)

    def delete_object(self, bucket: str, key: str) -> None:
        self.server.delete_object(bucket, key)

    def delete_bucket(self, bucket: str) -> None:
        raise NotImplementedError

    def filesystem(self) -> Any:
        raise NotImplementedError

    def pin(self, ref: ObjectRef) -> dict[str, Any]:
        """What a reader of a listed object carries to stay on the version listed."""
        raise NotImplementedError

    def in_listing_order(self, uris: list[str]) -> list[str]:
        """`uris` as a listing in byte order of the keys returns them."""
        return uris if self.name_order else sorted(uris)

    def count_calls(self, monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
        """Record every request the family module makes through its file system, as
        `{"request": "list" or what else it was, "token", "page_size", "prefix"}`."""
        fs = self.filesystem()
        real = getattr(fs, self._call)
        calls: list[dict[str, Any]] = []

        def counted(*args: Any, **kwargs: Any) -> Any:
            calls.append(self._normalise(*args, **kwargs))
            return real(*args, **kwargs)

        monkeypatch.setattr(fs, self._call, counted)
        return calls

    def _normalise(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        raise NotImplementedError


class S3Store(BucketStore):
    scheme = alias = "s3"
    family = s3
    server_fixture = "s3_server"
    special = ("models/sp ace/\u00fc-x+y.bin", b"unicode and space")
    name_order = False  # SeaweedFS lists folder by folder ("models/" before "models-old/"), AWS in byte order
    _call = "call_s3"

    def delete_bucket(self, bucket: str) -> None:
        self.server.client().delete_bucket(Bucket=bucket)

    def filesystem(self) -> Any:
        return s3.filesystem("s3")

    def pin(self, ref: ObjectRef) -> dict[str, Any]:
        return {}  # an unversioned bucket: no version to pin, and an ETag cannot be pinned

    def _normalise(self, method: str, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return {"request": "list" if method == "list_objects_v2" else method,
                "token": kwargs.get("ContinuationToken"), "page_size": kwargs.get("MaxKeys"),
                "prefix": kwargs.get("Prefix")}


class GcsStore(BucketStore):
    scheme, alias = "gs", "gcs"
    family = gcs
    server_fixture = "gcs_server"
    special = ("models/sp ace/\u00fc#x?y.bin", b"unicode, space, # and ?")
    name_order = True
    _call = "call"

    def delete_bucket(self, bucket: str) -> None:
        self.server.delete_bucket(bucket)

    def filesystem(self) -> Any:
        return gcs.filesystem()

    def pin(self, ref: ObjectRef) -> dict[str, Any]:
        return {"generation": ref.version}

    def _normalise(self, method: str, path: str, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return {"request": "list" if (method, path) == ("GET", "b/{}/o") else f"{method} {path}",
                "token": kwargs.get("pageToken"), "page_size": kwargs.get("maxResults"),
                "prefix": kwargs.get("prefix")}


STORES: dict[str, type[BucketStore]] = {"s3": S3Store, "gs": GcsStore}


@pytest.fixture(scope="module", params=list(STORES))
def store(request: pytest.FixtureRequest) -> BucketStore:
    """Each store in turn; only the server of the store in use is started."""
    kind = STORES[request.param]
    return kind(request.getfixturevalue(kind.server_fixture))


def _contents(store: BucketStore) -> dict[str, bytes]:
    key, data = store.special
    return {**NESTED, key: data, "big.bin": BIG}


@pytest.fixture(scope="module")
def bucket(store: BucketStore) -> str:
    return store.make_bucket(_contents(store))


def _refs(target: str) -> list[ObjectRef]:
    items = list(list_objects([target]))
    assert all(isinstance(i, ObjectRef) for i in items), items
    return items


def test_lists_whole_bucket_in_a_stable_order_with_sizes(store: BucketStore, bucket: str) -> None:
    refs = _refs(f"{store.scheme}://{bucket}")
    expected = {k: v for k, v in _contents(store).items() if not k.endswith("/")}
    assert store.in_listing_order([r.uri for r in refs]) == [f"{store.scheme}://{bucket}/{k}" for k in sorted(expected)]
    assert [r.uri for r in _refs(f"{store.scheme}://{bucket}")] == [r.uri for r in refs]  # the same every time
    for ref in refs:
        assert ref.size == len(expected[ref.uri.split("/", 3)[3]])
        assert ref.fingerprint() is not None


def test_prefix_is_a_folder_not_a_string_prefix(store: BucketStore, bucket: str) -> None:
    scheme = store.scheme
    want = sorted(f"{scheme}://{bucket}/{k}" for k in _contents(store)
                  if k.startswith("models/") and not k.endswith("/"))
    assert store.in_listing_order([r.uri for r in _refs(f"{scheme}://{bucket}/models")]) == want
    assert store.in_listing_order([r.uri for r in _refs(f"{store.alias}://{bucket}/models/")]) == want
    assert [r.uri for r in _refs(f"{scheme}://{bucket}/models/sub")] == [
        f"{scheme}://{bucket}/models/sub/b.bin", f"{scheme}://{bucket}/models/sub/deeper/c.bin"]


def test_exact_key_is_that_object_alone(store: BucketStore, bucket: str) -> None:
    (ref,) = _refs(f"{store.scheme}://{bucket}/models/a.bin")
    assert (ref.uri, ref.size) == (f"{store.scheme}://{bucket}/models/a.bin", 5)
    key, data = store.special
    (ref,) = _refs(f"{store.scheme}://{bucket}/{key}")
    with open_reader(ref) as reader:
        assert reader.read(0, 100) == data


def test_pages_through_tokens(store: BucketStore, monkeypatch: pytest.MonkeyPatch) -> None:
    keys = [f"p/{i:03d}.bin" for i in range(7)]
    name = store.make_bucket({k: k.encode() for k in keys})
    monkeypatch.setattr(store.family, "LIST_PAGE_SIZE", 2)
    calls = store.count_calls(monkeypatch)
    assert [r.uri for r in _refs(f"{store.scheme}://{name}/p/")] == [f"{store.scheme}://{name}/{k}" for k in keys]
    assert [c["token"] is not None for c in calls] == [False, True, True, True]
    assert all(c["request"] == "list" and c["page_size"] == 2 and c["prefix"] == "p/" for c in calls), calls


def test_listing_is_lazy(store: BucketStore, monkeypatch: pytest.MonkeyPatch) -> None:
    name = store.make_bucket({f"{i}.bin": b"x" for i in range(6)})
    monkeypatch.setattr(store.family, "LIST_PAGE_SIZE", 2)
    calls = store.count_calls(monkeypatch)
    listing = list_objects([f"{store.scheme}://{name}"])
    first = next(listing)
    assert isinstance(first, ObjectRef) and first.uri == f"{store.scheme}://{name}/0.bin"
    assert len(calls) == 1  # the first object came out of the first page, nothing more fetched
    next(listing), next(listing)
    assert len(calls) == 2
    listing.close()


def test_ranged_reads_head_tail_middle_and_big(store: BucketStore, bucket: str) -> None:
    (ref,) = _refs(f"{store.scheme}://{bucket}/big.bin")
    size = len(BIG)
    with open_reader(ref) as reader:
        assert reader.size == size
        assert reader.pin == store.pin(ref)
        assert reader.read(0, 100) == BIG[:100]
        assert (reader.requests, reader.bytes_read) == (1, MiB)  # one aligned block
        assert reader.read(200, 300) == BIG[200:500]  # same block: no round trip
        assert reader.requests == 1
        assert reader.read(size - 64, 1000) == BIG[-64:]  # tail, clipped at the end
        assert reader.requests == 2
        assert reader.read(MiB - 10, 20) == BIG[MiB - 10 : MiB + 10]  # across blocks 0 and 1
        assert reader.requests == 3
        requests, fetched = reader.requests, reader.bytes_read
        assert reader.read(5, 2 * MiB) == BIG[5 : 5 + 2 * MiB]  # a big read goes straight through
        assert (reader.requests, reader.bytes_read) == (requests + 1, fetched + 2 * MiB)
        assert reader.read(size, 10) == b""


def test_missing_bucket_is_a_listing_error(store: BucketStore) -> None:
    (err,) = list(list_objects([f"{store.scheme}://no-such-bucket-shardscan/x"]))
    assert isinstance(err, ListingError)
    assert err.uri == f"{store.scheme}://no-such-bucket-shardscan/x"
    assert err.message == "not found: no such bucket 'no-such-bucket-shardscan'"


def test_missing_prefix_and_empty_bucket_are_listing_errors(store: BucketStore, bucket: str) -> None:
    (err,) = list(list_objects([f"{store.scheme}://{bucket}/nothing-here"]))
    assert isinstance(err, ListingError) and err.message.startswith("not found")
    (err,) = list(list_objects([f"{store.scheme}://{bucket}/models/empty-dir/"]))  # a folder marker only
    assert isinstance(err, ListingError) and "no objects" in err.message
    (err,) = list(list_objects([f"{store.scheme}://{store.make_bucket({})}"]))
    assert isinstance(err, ListingError) and "no objects" in err.message


def test_listing_goes_on_with_the_next_target(store: BucketStore, bucket: str) -> None:
    items = list(list_objects([f"{store.scheme}://no-such-bucket-shardscan", f"{store.scheme}://{bucket}/top.bin"]))
    assert isinstance(items[0], ListingError)
    assert isinstance(items[1], ObjectRef) and items[1].uri == f"{store.scheme}://{bucket}/top.bin"


def test_error_after_some_objects_ends_the_target_with_one_error(store: BucketStore, monkeypatch) -> None:
    name = store.make_bucket({f"{i}.bin": b"x" for i in range(5)})
    monkeypatch.setattr(store.family, "LIST_PAGE_SIZE", 2)
    listing = list_objects([f"{store.scheme}://{name}", f"{store.scheme}://{name}/4.bin"])
    assert [next(listing).uri for _ in range(2)] == [f"{store.scheme}://{name}/0.bin", f"{store.scheme}://{name}/1.bin"]
    for i in range(5):
        store.delete_object(name, f"{i}.bin")
    store.delete_bucket(name)  # the bucket vanishes between two pages
    rest = list(listing)
    assert len(rest) == 2 and all(isinstance(i, ListingError) for i in rest), rest
    assert rest[0].uri == f"{store.scheme}://{name}/" and rest[0].message.startswith("not found")


def test_object_deleted_after_listing_raises_file_not_found(store: BucketStore) -> None:
    name = store.make_bucket({"gone.bin": b"soon gone"})
    (ref,) = _refs(f"{store.scheme}://{name}/gone.bin")
    store.delete_object(name, "gone.bin")
    with pytest.raises(FileNotFoundError), open_reader(ref) as reader:
        reader.read(0, 4)


def test_one_filesystem_per_process(store: BucketStore) -> None:
    assert store.filesystem() is store.filesystem()


def _list_in_child(target: str, out: Any) -> None:
    out.put([i.uri for i in list_objects([target])])


def test_filesystem_rebuilt_after_fork(store: BucketStore, bucket: str) -> None:
    parent_fs = store.filesystem()
    target = f"{store.scheme}://{bucket}/models/sub/"
    assert _refs(target)  # the parent's client is live before the fork
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    child = ctx.Process(target=_list_in_child, args=(target, out))
    child.start()
    try:
        uris = out.get(timeout=30)
    finally:
        child.join(timeout=10)
        if child.is_alive():
            child.kill()
    assert uris == [f"{store.scheme}://{bucket}/models/sub/b.bin", f"{store.scheme}://{bucket}/models/sub/deeper/c.bin"]
    assert store.filesystem() is parent_fs
