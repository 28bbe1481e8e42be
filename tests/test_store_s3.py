"""The S3 family (s3://, r2://) against a real S3 server: SeaweedFS on 127.0.0.1.

What matters is wire behaviour that a mock would only restate: pagination tokens, ranged GETs,
ETags, and the store's own error codes as s3fs translates them.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
from collections.abc import Iterator
from typing import Any

import pytest

from shardscan.model import ObjectRef
from shardscan.storage import s3
from shardscan.storage.errors import ListingError
from shardscan.storage.objects import list_objects, open_reader
from tests.servers.seaweed import ADMIN_KEY, ADMIN_SECRET, READER_BUCKET, READER_KEY, READER_SECRET

MiB = 1024 * 1024
BIG = os.urandom(2 * MiB + 12345)
NESTED = {
    "models/a.bin": b"alpha",
    "models/sub/b.bin": b"bravo" * 100,
    "models/sub/deeper/c.bin": b"c",
    "models/sp ace/\u00fc-x+y.bin": b"unicode and space",
    "models-old/x.bin": b"not under models/",
    "models/empty-dir/": b"",
    "top.bin": b"top",
}


@pytest.fixture(scope="module")
def bucket(s3_server) -> str:
    return s3_server.make_bucket({**NESTED, "big.bin": BIG})


@pytest.fixture
def fresh_clients() -> Iterator[None]:
    """For tests that change credentials or endpoints: no file system built before or kept after."""
    s3.clear_cache()
    yield
    s3.clear_cache()


def _refs(target: str) -> list[ObjectRef]:
    items = list(list_objects([target]))
    assert all(isinstance(i, ObjectRef) for i in items), items
    return items


def _count_calls(monkeypatch: pytest.MonkeyPatch, scheme: str = "s3") -> list[dict[str, Any]]:
    """Record every S3 API call the family module makes through its file system."""
    fs = s3.filesystem(scheme)
    real = fs.call_s3
    calls: list[dict[str, Any]] = []

    def counted(method: str, *args: Any, **kwargs: Any) -> Any:
        calls.append({"method": method, **kwargs})
        return real(method, *args, **kwargs)

    monkeypatch.setattr(fs, "call_s3", counted)
    return calls


def test_lists_whole_bucket_with_sizes_and_etags(bucket: str) -> None:
    refs = _refs(f"s3://{bucket}")
    expected = {k: v for k, v in {**NESTED, "big.bin": BIG}.items() if not k.endswith("/")}
    # SeaweedFS lists folder by folder ("models/" before "models-old/"), AWS in byte order:
    # either way the same order every time.
    assert sorted(r.uri for r in refs) == [f"s3://{bucket}/{k}" for k in sorted(expected)]
    assert [r.uri for r in _refs(f"s3://{bucket}")] == [r.uri for r in refs]
    for ref in refs:
        data = expected[ref.uri.split("/", 3)[3]]
        assert ref.size == len(data)
        assert ref.etag == hashlib.md5(data).hexdigest()  # single-part upload: the ETag is the MD5
        assert ref.version is None
        assert ref.fingerprint() is not None


def test_prefix_is_a_folder_not_a_string_prefix(bucket: str) -> None:
    want = sorted(f"s3://{bucket}/{k}" for k in NESTED if k.startswith("models/") and not k.endswith("/"))
    assert sorted(r.uri for r in _refs(f"s3://{bucket}/models")) == want
    assert sorted(r.uri for r in _refs(f"s3://{bucket}/models/")) == want
    assert [r.uri for r in _refs(f"s3://{bucket}/models/sub")] == [
        f"s3://{bucket}/models/sub/b.bin", f"s3://{bucket}/models/sub/deeper/c.bin"]


def test_exact_key_is_that_object_alone(bucket: str) -> None:
    (ref,) = _refs(f"s3://{bucket}/models/a.bin")
    assert (ref.uri, ref.size) == (f"s3://{bucket}/models/a.bin", 5)
    (ref,) = _refs(f"s3://{bucket}/models/sp ace/\u00fc-x+y.bin")
    with open_reader(ref) as reader:
        assert reader.read(0, 100) == b"unicode and space"


def test_pages_through_continuation_tokens(s3_server, monkeypatch: pytest.MonkeyPatch) -> None:
    keys = [f"p/{i:03d}.bin" for i in range(7)]
    name = s3_server.make_bucket({k: k.encode() for k in keys})
    monkeypatch.setattr(s3, "LIST_PAGE_SIZE", 2)
    calls = _count_calls(monkeypatch)
    assert [r.uri for r in _refs(f"s3://{name}/p/")] == [f"s3://{name}/{k}" for k in keys]
    assert [c.get("ContinuationToken") is not None for c in calls] == [False, True, True, True]
    assert all(c["MaxKeys"] == 2 and c["Prefix"] == "p/" for c in calls)


def test_listing_is_lazy(s3_server, monkeypatch: pytest.MonkeyPatch) -> None:
    name = s3_server.make_bucket({f"{i}.bin": b"x" for i in range(6)})
    monkeypatch.setattr(s3, "LIST_PAGE_SIZE", 2)
    calls = _count_calls(monkeypatch)
    listing = list_objects([f"s3://{name}"])
    first = next(listing)
    assert isinstance(first, ObjectRef) and first.uri == f"s3://{name}/0.bin"
    assert len(calls) == 1  # the first object came out of the first page, nothing more fetched
    next(listing), next(listing)
    assert len(calls) == 2
    listing.close()


def test_ranged_reads_head_tail_middle_and_big(bucket: str) -> None:
    (ref,) = _refs(f"s3://{bucket}/big.bin")
    size = len(BIG)
    with open_reader(ref) as reader:
        assert reader.size == size
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


def test_missing_bucket_is_a_listing_error(s3_server) -> None:
    (err,) = list(list_objects(["s3://no-such-bucket-shardscan/x"]))
    assert isinstance(err, ListingError)
    assert err.uri == "s3://no-such-bucket-shardscan/x"
    assert err.message == "not found: no such bucket 'no-such-bucket-shardscan'"


def test_missing_prefix_and_empty_bucket_are_listing_errors(s3_server, bucket: str) -> None:
    (err,) = list(list_objects([f"s3://{bucket}/nothing-here"]))
    assert isinstance(err, ListingError) and err.message.startswith("not found")
    (err,) = list(list_objects([f"s3://{bucket}/models/empty-dir/"]))  # a folder marker only
    assert isinstance(err, ListingError) and "no objects" in err.message
    (err,) = list(list_objects([f"s3://{s3_server.make_bucket({})}"]))
    assert isinstance(err, ListingError) and "no objects" in err.message


def test_listing_goes_on_with_the_next_target(s3_server, bucket: str) -> None:
    items = list(list_objects(["s3://no-such-bucket-shardscan", f"s3://{bucket}/top.bin"]))
    assert isinstance(items[0], ListingError)
    assert isinstance(items[1], ObjectRef) and items[1].uri == f"s3://{bucket}/top.bin"


def test_error_after_some_objects_ends_the_target_with_one_error(s3_server, monkeypatch) -> None:
    name = s3_server.make_bucket({f"{i}.bin": b"x" for i in range(5)})
    monkeypatch.setattr(s3, "LIST_PAGE_SIZE", 2)
    listing = list_objects([f"s3://{name}", f"s3://{name}/4.bin"])
    assert [next(listing).uri for _ in range(2)] == [f"s3://{name}/0.bin", f"s3://{name}/1.bin"]
    client = s3_server.client()
    for i in range(5):
        client.delete_object(Bucket=name, Key=f"{i}.bin")
    client.delete_bucket(Bucket=name)  # the bucket vanishes between two pages
    rest = list(listing)
    assert len(rest) == 2 and all(isinstance(i, ListingError) for i in rest), rest
    assert rest[0].uri == f"s3://{name}/" and rest[0].message.startswith("not found")


def test_object_deleted_after_listing_raises_file_not_found(s3_server) -> None:
    name = s3_server.make_bucket({"gone.bin": b"soon gone"})
    (ref,) = _refs(f"s3://{name}/gone.bin")
    s3_server.delete_object(name, "gone.bin")
    with pytest.raises(FileNotFoundError), open_reader(ref) as reader:
        reader.read(0, 4)


def test_access_denied_is_a_listing_error(s3_server, bucket: str, monkeypatch, fresh_clients) -> None:
    s3_server.make_bucket({"ok.bin": b"readable"}, name=READER_BUCKET)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", READER_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", READER_SECRET)
    (err,) = list(list_objects([f"s3://{bucket}"]))
    assert isinstance(err, ListingError)
    assert err.message.startswith("access denied")
    assert READER_SECRET not in err.message
    (ref,) = _refs(f"s3://{READER_BUCKET}/ok.bin")  # the bucket is shared with other tests
    with open_reader(ref) as reader:
        assert reader.read(0, 100) == b"readable"
    # Listed as admin, read as the reader: the GET itself is refused.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ADMIN_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", ADMIN_SECRET)
    s3.clear_cache()
    (ref,) = _refs(f"s3://{bucket}/top.bin")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", READER_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", READER_SECRET)
    s3.clear_cache()
    with pytest.raises(PermissionError), open_reader(ref) as reader:
        reader.read(0, 3)


def test_r2_uses_its_own_endpoint_and_credentials(s3_server, bucket: str, monkeypatch, fresh_clients) -> None:
    # The AWS settings point nowhere useful: only the R2 ones can make this work.
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "wrong")
    monkeypatch.setenv("R2_ENDPOINT_URL", s3_server.endpoint)
    monkeypatch.setenv("R2_ACCESS_KEY_ID", ADMIN_KEY)
    monkeypatch.setenv("R2_SECRET_ACCESS_KEY", ADMIN_SECRET)
    refs = _refs(f"r2://{bucket}/models/sub/")
    assert [r.uri for r in refs] == [f"r2://{bucket}/models/sub/b.bin", f"r2://{bucket}/models/sub/deeper/c.bin"]
    with open_reader(refs[0]) as reader:
        assert reader.read(5, 5) == b"bravo"
    assert s3.filesystem("r2") is not s3.filesystem("s3")


def test_r2_falls_back_to_aws_credentials(s3_server, bucket: str, monkeypatch, fresh_clients) -> None:
    monkeypatch.setenv("R2_ENDPOINT_URL", s3_server.endpoint)
    (ref,) = _refs(f"r2://{bucket}/top.bin")
    assert ref.size == 3


def test_r2_without_endpoint_says_what_to_set(monkeypatch, fresh_clients) -> None:
    monkeypatch.delenv("R2_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("R2_ACCOUNT_ID", raising=False)
    (err,) = list(list_objects(["r2://bucket/prefix"]))
    assert isinstance(err, ListingError)
    assert "R2_ENDPOINT_URL" in err.message and "R2_ACCOUNT_ID" in err.message
    with pytest.raises(s3.R2ConfigError):
        open_reader(ObjectRef("r2://bucket/key", 1))


def test_r2_account_id_builds_the_cloudflare_endpoint(monkeypatch, fresh_clients) -> None:
    monkeypatch.delenv("R2_ENDPOINT_URL", raising=False)
    monkeypatch.setenv("R2_ACCOUNT_ID", "abc123")
    endpoint, kwargs = s3._settings("r2")
    assert endpoint == kwargs["endpoint_url"] == "https://abc123.r2.cloudflarestorage.com"


def test_no_sign_request_reads_anonymously(monkeypatch) -> None:
    monkeypatch.setenv("AWS_NO_SIGN_REQUEST", "true")
    assert s3._settings("s3")[1]["anon"] is True
    monkeypatch.setenv("AWS_NO_SIGN_REQUEST", "false")
    assert "anon" not in s3._settings("s3")[1]


def test_service_specific_endpoint_wins(s3_server, bucket: str, monkeypatch, fresh_clients) -> None:
    """botocore (through s3fs) applies AWS_ENDPOINT_URL_S3 over AWS_ENDPOINT_URL itself."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_server.endpoint)
    assert len(_refs(f"s3://{bucket}/models/sub/")) == 2


def test_one_filesystem_per_process(s3_server) -> None:
    assert s3.filesystem("s3") is s3.filesystem("s3")


def _list_in_child(target: str, out: Any) -> None:
    out.put([i.uri for i in list_objects([target])])


def test_filesystem_rebuilt_after_fork(s3_server, bucket: str) -> None:
    parent_fs = s3.filesystem("s3")
    assert _refs(f"s3://{bucket}/models/sub/")  # the parent's client is live before the fork
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    child = ctx.Process(target=_list_in_child, args=(f"s3://{bucket}/models/sub/", out))
    child.start()
    try:
        uris = out.get(timeout=30)
    finally:
        child.join(timeout=10)
        if child.is_alive():
            child.kill()
    assert uris == [f"s3://{bucket}/models/sub/b.bin", f"s3://{bucket}/models/sub/deeper/c.bin"]
    assert s3.filesystem("s3") is parent_fs
