"""The GCS family (gs://) against fake-gcs-server on 127.0.0.1: what only GCS does. What every
bucket store does alike (folders, paging, ranged reads, listing errors, one client per process)
is tested for GCS and S3 together in test_store_buckets.py.

What is left here is generations as gcsfs speaks them (listed, kept apart, pinned on each read),
the ETag the JSON API gives, and how gcsfs's bare errors and the emulator's anonymity are taken.
"""

from __future__ import annotations

import base64
import hashlib
import os

import pytest

from shardscan.model import ObjectRef
from shardscan.storage import gcs
from shardscan.storage.objects import list_objects, open_reader


def _refs(target: str) -> list[ObjectRef]:
    items = list(list_objects([target]))
    assert all(isinstance(i, ObjectRef) for i in items), items
    return items


def test_lists_a_generation_and_md5_etag_per_object(gcs_server) -> None:
    # Nested, escaped and past the 1 MiB read block: every kind of name a bucket lists.
    objects = {"a.bin": b"alpha", "sub/deeper/c.bin": b"c", "sp ace/\u00fc#x?y.bin": b"unicode, space, # and ?",
               "big.bin": os.urandom(2 * 1024 * 1024 + 777)}
    name = gcs_server.make_bucket(objects)
    refs = _refs(f"gs://{name}")
    assert {r.uri: r.etag for r in refs} == {  # the emulator's ETag: the MD5, base64
        f"gs://{name}/{k}": base64.b64encode(hashlib.md5(v).digest()).decode() for k, v in objects.items()}
    assert all(r.version and r.version.isdigit() for r in refs), refs  # the generation
    assert len({r.version for r in refs}) == len(refs)


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


def test_forbidden_reads_as_access_denied() -> None:
    """fake-gcs-server has no access control; gcsfs turns a 403 into a bare OSError."""
    forbidden = OSError("Forbidden: b/x/o\nuser lacks storage.objects.list")
    assert isinstance(gcs._translate(forbidden), PermissionError)
    assert gcs._describe(forbidden).startswith("access denied")


def test_anonymous_on_emulator(gcs_server) -> None:
    fs = gcs.filesystem()
    assert fs.credentials.method == "anon"
    assert type(fs).__module__ == "gcsfs.core"  # not the zonal/HNS file system
