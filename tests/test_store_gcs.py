"""The GCS family (gs://) against fake-gcs-server on 127.0.0.1: the JSON API's paging,
generations and ranged downloads as gcsfs speaks them."""

from __future__ import annotations

import base64
import hashlib
import multiprocessing
import os
from typing import Any

import pytest

from shardscan.model import ObjectRef
from shardscan.storage import gcs
from shardscan.storage.errors import ListingError
from shardscan.storage.objects import list_objects, open_reader

MiB = 1024 * 1024
BIG = os.urandom(2 * MiB + 777)
NESTED = {
    "models/a.bin": b"alpha",
    "models/sub/b.bin": b"bravo" * 100,
    "models/sub/deeper/c.bin": b"c",
    "models/sp ace/\u00fc#x?y.bin": b"unicode, space, # and ?",
    "models-old/x.bin": b"not under models/",
    "models/empty-dir/": b"",
    "top.bin": b"top",
}


@pytest.fixture(scope="module")
def bucket(gcs_server) -> str:
    return gcs_server.make_bucket({**NESTED, "big.bin": BIG})


def _refs(target: str) -> list[ObjectRef]:
    items = list(list_objects([target]))
    assert all(isinstance(i, ObjectRef) for i in items), items
    return items


def _count_calls(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Record every JSON API call the family module makes through its file system."""
    fs = gcs.filesystem()
    real = fs.call
    calls: list[dict[str, Any]] = []

    def counted(method: str, path: str, *args: Any, **kwargs: Any) -> Any:
        calls.append({"method": method, "path": path, **kwargs})
        return real(method, path, *args, **kwargs)

    monkeypatch.setattr(fs, "call", counted)
    return calls


def test_lists_whole_bucket_in_name_order_with_generations(bucket: str) -> None:
    refs = _refs(f"gs://{bucket}")
    expected = {k: v for k, v in {**NESTED, "big.bin": BIG}.items() if not k.endswith("/")}
    assert [r.uri for r in refs] == [f"gs://{bucket}/{k}" for k in sorted(expected)]
    for ref in refs:
        data = expected[ref.uri.split("/", 3)[3]]
        assert ref.size == len(data)
        assert ref.etag == base64.b64encode(hashlib.md5(data).digest()).decode()  # the emulator's ETag
        assert ref.version and ref.version.isdigit()  # the generation
    assert len({r.version for r in refs}) == len(refs)


def test_prefix_is_a_folder_not_a_string_prefix(bucket: str) -> None:
    want = sorted(f"gs://{bucket}/{k}" for k in NESTED if k.startswith("models/") and not k.endswith("/"))
    assert [r.uri for r in _refs(f"gs://{bucket}/models")] == want
    assert [r.uri for r in _refs(f"gcs://{bucket}/models/")] == want
    assert [r.uri for r in _refs(f"gs://{bucket}/models/sub")] == [
        f"gs://{bucket}/models/sub/b.bin", f"gs://{bucket}/models/sub/deeper/c.bin"]


def test_exact_name_is_that_object_alone(bucket: str) -> None:
    (ref,) = _refs(f"gs://{bucket}/models/a.bin")
    assert (ref.uri, ref.size) == (f"gs://{bucket}/models/a.bin", 5)
    (ref,) = _refs(f"gs://{bucket}/models/sp ace/\u00fc#x?y.bin")
    with open_reader(ref) as reader:
        assert reader.read(0, 100) == b"unicode, space, # and ?"


def test_pages_through_page_tokens(gcs_server, monkeypatch: pytest.MonkeyPatch) -> None:
    names = [f"p/{i:03d}.bin" for i in range(7)]
    name = gcs_server.make_bucket({k: k.encode() for k in names})
    monkeypatch.setattr(gcs, "LIST_PAGE_SIZE", 2)
    calls = _count_calls(monkeypatch)
    assert [r.uri for r in _refs(f"gs://{name}/p/")] == [f"gs://{name}/{k}" for k in names]
    assert [c.get("pageToken") is not None for c in calls] == [False, True, True, True]
    assert all(c["maxResults"] == 2 and c["prefix"] == "p/" for c in calls)


def test_listing_is_lazy(gcs_server, monkeypatch: pytest.MonkeyPatch) -> None:
    name = gcs_server.make_bucket({f"{i}.bin": b"x" for i in range(6)})
    monkeypatch.setattr(gcs, "LIST_PAGE_SIZE", 2)
    calls = _count_calls(monkeypatch)
    listing = list_objects([f"gs://{name}"])
    first = next(listing)
    assert isinstance(first, ObjectRef) and first.uri == f"gs://{name}/0.bin"
    assert len(calls) == 1  # the first object came out of the first page, nothing more fetched
    next(listing), next(listing)
    assert len(calls) == 2
    listing.close()


def test_ranged_reads_head_tail_middle_and_big(bucket: str) -> None:
    (ref,) = _refs(f"gs://{bucket}/big.bin")
    size = len(BIG)
    with open_reader(ref) as reader:
        assert reader.size == size
        assert reader.pin == {"generation": ref.version}
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


def test_reads_stay_on_the_listed_generation(gcs_server) -> None:
    name = gcs_server.make_bucket({"w.bin": b"first version"})
    (old,) = _refs(f"gs://{name}/w.bin")
    gcs_server.put_object(name, "w.bin", b"SECOND VERSION, longer")
    with pytest.raises(FileNotFoundError), open_reader(old) as reader:
        reader.read(0, 5)  # the listed generation is gone: never the new bytes under the old size
    (new,) = _refs(f"gs://{name}/w.bin")
    assert new.version != old.version
    with open_reader(new) as reader:
        assert reader.read(0, 100) == b"SECOND VERSION, longer"


def test_object_deleted_after_listing_raises_file_not_found(gcs_server) -> None:
    name = gcs_server.make_bucket({"gone.bin": b"soon gone"})
    (ref,) = _refs(f"gs://{name}/gone.bin")
    gcs_server.delete_object(name, "gone.bin")
    with pytest.raises(FileNotFoundError), open_reader(ref) as reader:
        reader.read(0, 4)


def test_missing_bucket_is_a_listing_error(gcs_server) -> None:
    (err,) = list(list_objects(["gs://no-such-bucket-shardscan/x"]))
    assert isinstance(err, ListingError)
    assert err.uri == "gs://no-such-bucket-shardscan/x"
    assert err.message == "not found: no such bucket 'no-such-bucket-shardscan'"


def test_missing_prefix_and_empty_bucket_are_listing_errors(gcs_server, bucket: str) -> None:
    (err,) = list(list_objects([f"gs://{bucket}/nothing-here"]))
    assert isinstance(err, ListingError) and err.message.startswith("not found")
    (err,) = list(list_objects([f"gs://{bucket}/models/empty-dir/"]))  # a folder marker only
    assert isinstance(err, ListingError) and "no objects" in err.message
    (err,) = list(list_objects([f"gs://{gcs_server.make_bucket({})}"]))
    assert isinstance(err, ListingError) and "no objects" in err.message


def test_error_after_some_objects_ends_the_target_with_one_error(gcs_server, monkeypatch) -> None:
    name = gcs_server.make_bucket({f"{i}.bin": b"x" for i in range(5)})
    monkeypatch.setattr(gcs, "LIST_PAGE_SIZE", 2)
    listing = list_objects([f"gs://{name}", f"gs://{name}/4.bin"])
    assert [next(listing).uri for _ in range(2)] == [f"gs://{name}/0.bin", f"gs://{name}/1.bin"]
    for i in range(5):
        gcs_server.delete_object(name, f"{i}.bin")
    gcs_server.delete_bucket(name)  # the bucket vanishes between two pages
    rest = list(listing)
    assert len(rest) == 2 and all(isinstance(i, ListingError) for i in rest), rest
    assert rest[0].uri == f"gs://{name}/" and rest[0].message.startswith("not found")


def test_forbidden_reads_as_access_denied() -> None:
    """fake-gcs-server has no access control; gcsfs turns a 403 into a bare OSError."""
    forbidden = OSError("Forbidden: b/x/o\nuser lacks storage.objects.list")
    assert isinstance(gcs._translate(forbidden), PermissionError)
    assert gcs._describe(forbidden).startswith("access denied")


def test_one_filesystem_per_process_and_anonymous_on_emulator(gcs_server) -> None:
    fs = gcs.filesystem()
    assert fs is gcs.filesystem()
    assert fs.credentials.method == "anon"
    assert type(fs).__module__ == "gcsfs.core"  # not the zonal/HNS file system


def _list_in_child(target: str, out: Any) -> None:
    out.put([i.uri for i in list_objects([target])])


def test_filesystem_rebuilt_after_fork(gcs_server, bucket: str) -> None:
    assert _refs(f"gs://{bucket}/models/sub/")  # the parent's session is live before the fork
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    child = ctx.Process(target=_list_in_child, args=(f"gs://{bucket}/models/sub/", out))
    child.start()
    try:
        uris = out.get(timeout=30)
    finally:
        child.join(timeout=10)
        if child.is_alive():
            child.kill()
    assert uris == [f"gs://{bucket}/models/sub/b.bin", f"gs://{bucket}/models/sub/deeper/c.bin"]
