"""The S3 family (s3://, r2://) against a real S3 server: SeaweedFS on 127.0.0.1: what only
S3 does. What every bucket store does alike (folders, paging, ranged reads, listing errors, one
client per process) is tested for S3 and GCS together in test_store_buckets.py.

What matters is wire behaviour that a mock would only restate: ETags, the store's own error
codes as s3fs translates them, and which endpoint and credentials each scheme picks up.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator

import pytest

from shardscan.model import ObjectRef
from shardscan.storage import s3
from shardscan.storage.errors import ListingError
from shardscan.storage.objects import list_objects, open_reader
from tests.servers.seaweed import ADMIN_KEY, ADMIN_SECRET, READER_BUCKET, READER_KEY, READER_SECRET

#: Every kind of key the ETags are checked on: nested, escaped, and one past the 1 MiB read block.
OBJECTS = {"models/sub/b.bin": b"bravo" * 100, "models/sub/deeper/c.bin": b"c", "top.bin": b"top",
           "models/sp ace/\u00fc-x+y.bin": b"unicode and space", "big.bin": os.urandom(2 * 1024 * 1024 + 12345)}


@pytest.fixture(scope="module")
def bucket(s3_server) -> str:
    return s3_server.make_bucket(OBJECTS)


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


def test_etag_is_the_md5_and_there_is_no_version(bucket: str) -> None:
    """A single-part upload's ETag is its MD5, in hex; an unversioned bucket lists no version."""
    listed = {r.uri: (r.etag, r.version) for r in _refs(f"s3://{bucket}")}
    assert listed == {f"s3://{bucket}/{k}": (hashlib.md5(v).hexdigest(), None) for k, v in OBJECTS.items()}


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
