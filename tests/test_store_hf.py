"""The hf store family against a stand-in hub on 127.0.0.1: pinned, paginated, lazy listing;
ranged reads that never fetch a whole file; readable errors; model and dataset repositories."""

from __future__ import annotations

import hashlib
import random

import pytest

from shardscan.model import ObjectRef
from shardscan.storage import hf, objects
from shardscan.storage.errors import ListingError, describe_error
from shardscan.storage.uri import Location, parse_target
from tests.servers.hf_fixture import FAKE_TOKEN
from tests.servers.hfhub import HubStandIn, git_blob_oid, lfs_pointer

BLOCK = 1024 * 1024  # FsspecReader's default block (DEFAULT_LIMITS.remote_block)
BIG = random.Random(7).randbytes(3 * BLOCK + 12345)  # an LFS "weights" file over three blocks
FILES = {
    "README.md": b"# a model\n",
    "config.json": b'{"hidden": 8}',
    "model.safetensors": BIG,
    "sub/a.pkl": b"\x80\x04K\x01.",
    "sub/deeper/b.bin": b"b" * 100,
    "sub/deeper/c.bin": b"c" * 200,
    "tokenizer.json": b"{}",
}
LFS = {"model.safetensors", "sub/deeper/c.bin"}


def _listed(target: str) -> list[ObjectRef | ListingError]:
    return list(objects.list_objects([target]))


def _refs(items: list[ObjectRef | ListingError]) -> dict[str, ObjectRef]:
    errors = [i for i in items if isinstance(i, ListingError)]
    assert not errors, errors
    return {ref.uri: ref for ref in items if isinstance(ref, ObjectRef)}


@pytest.fixture
def model(hf_hub: HubStandIn) -> str:
    """org/model with FILES on main, listed three entries a page; returns the commit sha."""
    hf_hub.page_size = 3
    return hf_hub.add_repo("org/model", FILES, lfs=LFS)


def test_targets_parse_to_hub_locations() -> None:
    assert parse_target("hf://org/model@main/sub") == Location("hf", "org/model", "sub", "main")
    assert parse_target("hf://datasets/org/ds") == Location("hf", "datasets/org/ds")
    assert parse_target("https://huggingface.co/org/model/blob/v1/sub/a.pkl") == \
        Location("hf", "org/model", "sub/a.pkl", "v1")
    assert hf.repo_kind("datasets/org/ds") == ("dataset", "org/ds")
    assert hf.repo_kind("spaces/org/app") == ("space", "org/app")
    assert hf.repo_kind("org/model") == ("model", "org/model")


def test_listing_pages_and_pins_every_object_to_the_commit(hf_hub: HubStandIn, model: str) -> None:
    refs = _refs(_listed("hf://org/model@main"))
    assert set(refs) == {f"hf://org/model@{model}/{path}" for path in FILES}
    entries = len(FILES) + 2  # sub/ and sub/deeper/ are listed too
    assert hf_hub.counts["tree"] == -(-entries // 3) > 2  # every page, one request each
    for path, data in FILES.items():
        ref = refs[f"hf://org/model@{model}/{path}"]
        assert ref.size == len(data) and ref.version == model
        if path in LFS:
            assert ref.sha256 == hashlib.sha256(data).hexdigest()
            assert ref.etag == git_blob_oid(lfs_pointer(data))
        else:
            assert ref.sha256 is None and ref.etag == git_blob_oid(data)
        assert parse_target(ref.uri).revision == model
    assert hf_hub.bytes_served == 0 and not hf_hub.ranges()  # listing reads no object bytes

    # The default branch and an https address name the same commit; the branch moving on
    # afterwards leaves the listed objects reading the bytes they were listed with.
    assert set(_refs(_listed("hf://org/model"))) == set(refs)
    assert set(_refs(_listed("https://huggingface.co/org/model"))) == set(refs)
    hf_hub.commit("org/model", {**FILES, "config.json": b'{"hidden": 16}'})
    with objects.open_reader(refs[f"hf://org/model@{model}/config.json"]) as reader:
        assert reader.read(0, 100) == FILES["config.json"]


def test_listing_is_lazy_first_object_before_second_page(hf_hub: HubStandIn, model: str) -> None:
    listing = hf.list_objects(parse_target("hf://org/model"))
    first = next(listing)
    assert isinstance(first, ObjectRef) and first.uri.endswith("/README.md")
    assert hf_hub.counts["tree"] == 1
    rest = list(listing)
    assert hf_hub.counts["tree"] == 3 and len(rest) == len(FILES) - 1


def test_failure_mid_listing_keeps_what_was_listed(hf_hub: HubStandIn, model: str) -> None:
    listing = hf.list_objects(parse_target("hf://org/model"))
    first = next(listing)
    hf_hub.repos["org/model"].gated = True  # access withdrawn before the second page
    rest = list(listing)
    assert isinstance(first, ObjectRef) and len(rest) == 3  # the rest of page one, then the error
    assert isinstance(rest[-1], ListingError) and rest[-1].message.startswith("access denied:")


def test_folder_file_and_missing_path_targets(hf_hub: HubStandIn, model: str) -> None:
    folder = _refs(_listed("https://huggingface.co/org/model/tree/main/sub/deeper"))
    assert set(folder) == {f"hf://org/model@{model}/sub/deeper/{n}" for n in ("b.bin", "c.bin")}
    single = _refs(_listed("hf://org/model/sub/a.pkl"))
    assert list(single) == [f"hf://org/model@{model}/sub/a.pkl"]
    [missing] = _listed("hf://org/model@main/nope")
    assert isinstance(missing, ListingError) and missing.message.startswith("not found:")
    assert "nope" in missing.message


def test_ranged_reads_fetch_only_what_is_asked(hf_hub: HubStandIn, model: str) -> None:
    [ref] = _refs(_listed("hf://org/model/model.safetensors")).values()
    hf_hub.reset_counts()
    size = len(BIG)
    with objects.open_reader(ref) as reader:
        assert reader.read(0, 8) == BIG[:8]                                # head: block 0
        assert reader.read(size - 100, 500) == BIG[-100:]                  # tail, clipped at the end
        assert reader.read(BLOCK - 10, 20) == BIG[BLOCK - 10 : BLOCK + 10]  # across two blocks
        assert reader.read(5, 50) == BIG[5:55]                             # from the block cache
        assert reader.read(BLOCK + 7, BLOCK) == BIG[BLOCK + 7 : 2 * BLOCK + 7]  # large: direct
        assert reader.read(size, 10) == b""
    ranges = hf_hub.ranges()
    assert None not in ranges  # never a whole-file GET
    assert hf_hub.ranges(("resolve-get",)) == [
        "bytes=0-1048575", f"bytes={3 * BLOCK}-{size - 1}", "bytes=1048576-2097151",
        f"bytes={BLOCK + 7}-{2 * BLOCK + 6}"]
    assert hf_hub.counts["cdn-get"] == 4  # LFS: followed the hub's redirect, Range kept
    assert hf_hub.cdn_authorized == 0  # and the token stayed on the hub
    assert hf_hub.counts["info"] == hf_hub.counts["tree"] == 0  # a read costs no API call
    assert hf_hub.bytes_served == BLOCK + (size - 3 * BLOCK) + BLOCK + BLOCK  # blocks 0, 3 (tail), 1; direct


def test_server_ignoring_range_is_not_downloaded(hf_hub: HubStandIn, model: str) -> None:
    hf_hub.add_repo("org/plain", {"big.bin": BIG})  # not LFS: served by the hub itself
    [ref] = _refs(_listed("hf://org/plain/big.bin")).values()
    hf_hub.ignore_range = True
    with objects.open_reader(ref) as reader, pytest.raises(OSError, match="ignored the byte range"):
        reader.read(10, 20)


def test_small_plain_file_read(hf_hub: HubStandIn, model: str) -> None:
    [ref] = _refs(_listed("hf://org/model/sub/deeper/b.bin")).values()
    with objects.open_reader(ref) as reader:
        assert reader.read(0, 1000) == FILES["sub/deeper/b.bin"]
    assert hf_hub.ranges(("resolve-get",)) == ["bytes=0-99"] and hf_hub.counts["cdn-get"] == 0


def test_missing_repo_and_revision(hf_hub: HubStandIn, model: str) -> None:
    [err] = _listed("hf://org/nothing-here")
    assert isinstance(err, ListingError) and err.uri == "hf://org/nothing-here"
    assert err.message.startswith("not found:") and "does not exist" in err.message
    [err] = _listed("hf://org/model@no-such-branch")
    assert isinstance(err, ListingError) and err.message.startswith("not found:") and "revision" in err.message


def test_gated_and_private_repos(hf_hub: HubStandIn, monkeypatch: pytest.MonkeyPatch) -> None:
    hf_hub.add_repo("org/gated", {"w.bin": b"w"}, gated=True, allowed_tokens={"hf_approved"})
    hf_hub.add_repo("org/private", {"w.bin": b"w"}, private=True, allowed_tokens={"hf_approved"})
    [err] = _listed("hf://org/gated")
    assert isinstance(err, ListingError) and err.message.startswith("access denied:") and "gated" in err.message
    [err] = _listed("hf://org/private")  # a token without access: the hub says "not found"
    assert isinstance(err, ListingError) and err.message.startswith("not found:")
    monkeypatch.delenv("HF_TOKEN")
    [err] = _listed("hf://org/private")  # no token at all: 401
    assert isinstance(err, ListingError) and err.message.startswith("access denied:")
    monkeypatch.setenv("HF_TOKEN", "hf_approved")  # the token is read per request
    [ref] = _refs(_listed("hf://org/gated")).values()
    hf_hub.repos["org/gated"].allowed_tokens.clear()  # access revoked between listing and reading
    with objects.open_reader(ref) as reader, pytest.raises(PermissionError) as denied:
        reader.read(0, 1)
    assert describe_error(denied.value).startswith("access denied")
    messages = [str(e) for e in (denied.value, err)]
    assert not any(FAKE_TOKEN in m or "hf_approved" in m for m in messages)


def test_file_gone_after_listing(hf_hub: HubStandIn, model: str) -> None:
    gone = ObjectRef(uri=f"hf://org/model@{model}/deleted.bin", size=10, version=model)
    with objects.open_reader(gone) as reader, pytest.raises(FileNotFoundError):
        reader.read(0, 10)


def test_dataset_repository(hf_hub: HubStandIn) -> None:
    sha = hf_hub.add_repo("datasets/org/ds", {"data/train.parquet": b"PAR1" * 10, "x.pkl": b"\x80\x04."},
                          lfs={"data/train.parquet"})
    refs = _refs(_listed("https://huggingface.co/datasets/org/ds"))
    assert set(refs) == {f"hf://datasets/org/ds@{sha}/data/train.parquet", f"hf://datasets/org/ds@{sha}/x.pkl"}
    with objects.open_reader(refs[f"hf://datasets/org/ds@{sha}/data/train.parquet"]) as reader:
        assert reader.read(4, 8) == b"PAR1PAR1"
    assert hf_hub.ranges() == ["bytes=0-39", "bytes=0-39"]  # resolve, then the CDN it redirects to


def test_endpoint_read_per_call_not_at_import(hf_hub: HubStandIn, model: str,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """huggingface_hub froze its endpoint at import (here: some other hub); HF_ENDPOINT wins."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")
    assert hf.endpoint() == hf_hub.endpoint
    assert len(_refs(_listed("hf://org/model/sub"))) == 3


def test_standin_speaks_huggingface_hub(hf_hub: HubStandIn, model: str) -> None:
    """The stand-in answers huggingface_hub's own download metadata and HfFileSystem reads."""
    from huggingface_hub import HfFileSystem, get_hf_file_metadata, hf_hub_url

    meta = get_hf_file_metadata(hf_hub_url("org/model", "model.safetensors", revision="main"))
    assert (meta.commit_hash, meta.etag, meta.size) == (model, hashlib.sha256(BIG).hexdigest(), len(BIG))
    meta = get_hf_file_metadata(hf_hub_url("org/model", "config.json"))
    assert meta.etag == git_blob_oid(FILES["config.json"]) and meta.size == len(FILES["config.json"])
    fs = HfFileSystem(skip_instance_cache=True)
    assert fs.cat_file(f"org/model@{model}/model.safetensors", 10, 20) == BIG[10:20]
    assert sorted(fs.find(f"org/model@{model}/sub")) == [f"org/model@{model}/sub/{p}" for p in
                                                        ("a.pkl", "deeper/b.bin", "deeper/c.bin")]
