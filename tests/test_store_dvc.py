"""The DVC family: `.dvc` pointer files resolved to the cache, a remote or the workspace.

Repositories are built by hand in the layout DVC 3.67 writes (checked against `dvc add`,
`dvc push` and `dvc config` output): the tests never need DVC installed.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from shardscan.model import ObjectRef, Severity, Status
from shardscan.pipeline.runner import ScanOptions
from shardscan.pipeline.session import ScanConfig, scan
from shardscan.storage import dvc
from shardscan.storage.errors import ListingError
from shardscan.storage.objects import list_objects, open_reader
from shardscan.storage.uri import parse_target

#: A pickle that would run `echo pwned` if loaded; only ever parsed here.
MALICIOUS = b"\x80\x02cposix\nsystem\nX\n\x00\x00\x00echo pwned\x85R."
BENIGN = b"plain bytes, not a model format"


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


class Repo:
    """A DVC repository on disk: `.dvc/`, its config, cache objects and pointer files."""

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / ".dvc").mkdir(parents=True)
        (root / ".dvc" / ".gitignore").write_text("/config.local\n/tmp\n/cache\n")
        (root / ".dvc" / "config").write_text("")

    def config(self, text: str, local: bool = False) -> None:
        (self.root / ".dvc" / ("config.local" if local else "config")).write_text(text)

    @staticmethod
    def key(digest: str, legacy: bool = False) -> str:
        return f"{digest[:2]}/{digest[2:]}" if legacy else f"files/md5/{digest[:2]}/{digest[2:]}"

    def cache(self, data: bytes, *, legacy: bool = False, cache_dir: Path | None = None,
              digest: str | None = None) -> Path:
        """Store `data` as DVC does: named by its md5 under the cache folder, read-only."""
        path = (cache_dir or self.root / ".dvc" / "cache") / self.key(digest or md5(data), legacy)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        path.chmod(0o444)
        return path

    def pointer(self, path: str, data: bytes, *, legacy: bool = False, where: Path | None = None) -> Path:
        """The `.dvc` file `dvc add path` writes (DVC 3; DVC 2 has no `hash: md5` line)."""
        hash_line = "" if legacy else "  hash: md5\n"
        text = f"outs:\n- md5: {md5(data)}\n  size: {len(data)}\n{hash_line}  path: {path}\n"
        dvc_file = (where or self.root) / f"{Path(path).name}.dvc"
        dvc_file.parent.mkdir(parents=True, exist_ok=True)
        dvc_file.write_text(text)
        return dvc_file

    def directory(self, path: str, files: dict[str, bytes], *, cache_files: bool = True,
                  cache_dir: Path | None = None) -> tuple[Path, bytes, str]:
        """A directory output: the `.dir` manifest (and, by default, every file) in the cache.
        Returns the pointer, the manifest's bytes and its md5."""
        entries = [{"md5": md5(data), "relpath": rel} for rel, data in sorted(files.items())]
        manifest = json.dumps(entries).encode()
        digest = md5(manifest) + ".dir"
        self.cache(manifest, digest=digest, cache_dir=cache_dir)
        if cache_files:
            for data in files.values():
                self.cache(data, cache_dir=cache_dir)
        size = sum(len(d) for d in files.values())
        dvc_file = self.root / f"{path}.dvc"
        dvc_file.write_text(f"outs:\n- md5: {digest}\n  size: {size}\n  nfiles: {len(files)}\n"
                            f"  hash: md5\n  path: {path}\n")
        return dvc_file, manifest, digest


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    return Repo(tmp_path / "project")


def items(target: str | Path) -> list[ObjectRef | ListingError]:
    return list(list_objects([str(target)]))


def read_all(ref: ObjectRef) -> bytes:
    with open_reader(ref) as reader:
        return reader.read(0, ref.size)


# --- the pointer is a target of its own family -------------------------------------------------

def test_dvc_files_parse_to_the_dvc_family(tmp_path: Path) -> None:
    assert parse_target("models/model.pkl.dvc").family == "dvc"
    assert parse_target(f"file://{tmp_path}/model.pkl.dvc") == parse_target(f"{tmp_path}/model.pkl.dvc")


def test_pointer_met_in_a_folder_walk_is_read_as_a_file(repo: Repo) -> None:
    """A folder target lists `.dvc` files by path; their URI routes to this family on open,
    which must read the pointer's own bytes rather than fail."""
    pointer = repo.pointer("model.pkl", MALICIOUS)
    [ref] = [i for i in items(repo.root) if isinstance(i, ObjectRef) and i.uri.endswith(".dvc")]
    assert read_all(ref) == pointer.read_bytes()


# --- local cache -------------------------------------------------------------------------------

def test_file_output_found_in_the_dvc3_cache(repo: Repo) -> None:
    cached = repo.cache(MALICIOUS)
    pointer = repo.pointer("model.pkl", MALICIOUS)
    [ref] = items(pointer)
    assert isinstance(ref, ObjectRef)
    assert ref.uri == str(cached) and ref.size == len(MALICIOUS)
    assert ref.etag == f"md5:{md5(MALICIOUS)}" and ref.sha256 is None  # md5 is not a sha256
    assert read_all(ref) == MALICIOUS


def test_dvc2_pointer_and_legacy_cache_layout(repo: Repo) -> None:
    cached = repo.cache(MALICIOUS, legacy=True)
    pointer = repo.pointer("model.pkl", MALICIOUS, legacy=True)
    assert items(pointer) == [ObjectRef(str(cached), len(MALICIOUS), etag=f"md5:{md5(MALICIOUS)}")]


def test_pointer_in_a_subfolder_and_cache_dir_from_config(repo: Repo, tmp_path: Path) -> None:
    shared = tmp_path / "shared-cache"
    repo.config("[cache]\n    dir = ../../shared-cache\n")  # relative to .dvc/, as `dvc config` writes it
    cached = repo.cache(MALICIOUS, cache_dir=shared)
    pointer = repo.pointer("models/model.pkl", MALICIOUS, where=repo.root / "models")
    [ref] = items(pointer)
    assert isinstance(ref, ObjectRef) and ref.uri == os.path.normpath(cached)


def test_cache_object_of_the_wrong_size_is_not_used(repo: Repo) -> None:
    repo.cache(b"truncated", digest=md5(MALICIOUS))
    [miss] = items(repo.pointer("model.pkl", MALICIOUS))
    assert isinstance(miss, ListingError) and miss.rule_id == "SRC001"


def test_workspace_named_only_when_it_is_the_cached_file(repo: Repo) -> None:
    cached = repo.cache(MALICIOUS)
    pointer = repo.pointer("model.pkl", MALICIOUS)
    workspace = repo.root / "model.pkl"
    os.link(cached, workspace)  # DVC's hardlink cache type: the same bytes, a readable name
    [ref] = items(pointer)
    assert isinstance(ref, ObjectRef) and ref.uri == str(workspace)

    workspace.unlink()
    workspace.write_bytes(b"x" * len(MALICIOUS))  # a copy edited since `dvc add`, same size
    [ref] = items(pointer)
    assert isinstance(ref, ObjectRef) and ref.uri == str(cached)  # the tracked bytes are scanned


def test_directory_output_yields_each_file(repo: Repo) -> None:
    files = {"weights.pkl": MALICIOUS, "sub/config.json": b'{"a": 1}', "sub/deeper/notes.txt": BENIGN}
    pointer, _, _ = repo.directory("model_dir", files)
    found = items(pointer)
    assert all(isinstance(i, ObjectRef) for i in found), found
    assert [i.uri for i in found] == [str(repo.root / ".dvc" / "cache" / repo.key(md5(files[rel])))
                                      for rel in sorted(files)]
    assert [read_all(i) for i in found] == [files[rel] for rel in sorted(files)]


def test_directory_output_with_a_missing_file(repo: Repo) -> None:
    files = {"a.bin": b"alpha", "b.bin": b"bravo"}
    pointer, _, _ = repo.directory("d", files, cache_files=False)
    repo.cache(b"alpha")
    first, second = items(pointer)
    assert isinstance(first, ObjectRef) and read_all(first) == b"alpha"
    assert isinstance(second, ListingError) and second.rule_id == "SRC001"
    assert second.uri == f"{pointer}#d/b.bin" and md5(b"bravo") in second.message


def test_directory_file_count_is_bounded(repo: Repo, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dvc, "MAX_DIR_FILES", 2)
    pointer, _, _ = repo.directory("d", {"a": b"1", "b": b"2", "c": b"3"})
    *refs, tail = items(pointer)
    assert len(refs) == 2 and all(isinstance(r, ObjectRef) for r in refs)
    assert isinstance(tail, ListingError) and tail.rule_id == "SRC001" and "3 files" in tail.message


def test_directory_manifest_cannot_escape(repo: Repo) -> None:
    manifest = json.dumps([{"md5": md5(b"x"), "relpath": "../../outside"}]).encode()
    digest = md5(manifest) + ".dir"
    repo.cache(manifest, digest=digest)
    pointer = repo.root / "d.dvc"
    pointer.write_text(f"outs:\n- md5: {digest}\n  hash: md5\n  path: d\n")
    [error] = items(pointer)
    assert isinstance(error, ListingError) and "safe relative path" in error.message


# --- misses ------------------------------------------------------------------------------------

def test_cache_miss_without_a_remote_is_src001(repo: Repo) -> None:
    pointer = repo.pointer("model.pkl", MALICIOUS)
    [miss] = items(pointer)
    assert isinstance(miss, ListingError) and miss.rule_id == "SRC001"
    assert miss.uri == f"{pointer}#model.pkl"
    assert md5(MALICIOUS) in miss.message and "dvc pull" in miss.message
    assert "no DVC remote is configured" in miss.message


def test_pointer_outside_any_repository(tmp_path: Path) -> None:
    pointer = tmp_path / "model.pkl.dvc"
    pointer.write_text(f"outs:\n- md5: {md5(MALICIOUS)}\n  size: {len(MALICIOUS)}\n  hash: md5\n  path: model.pkl\n")
    [miss] = items(pointer)
    assert isinstance(miss, ListingError) and miss.rule_id == "SRC001" and "no .dvc/ folder" in miss.message


def test_workspace_file_is_the_last_resort(repo: Repo) -> None:
    pointer = repo.pointer("model.pkl", MALICIOUS)
    (repo.root / "model.pkl").write_bytes(MALICIOUS)
    [ref] = items(pointer)
    assert isinstance(ref, ObjectRef) and ref.uri == str(repo.root / "model.pkl")


def test_workspace_link_leaving_the_repository_is_not_followed(repo: Repo, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere.bin"
    outside.write_bytes(MALICIOUS)
    pointer = repo.pointer("model.pkl", MALICIOUS)
    (repo.root / "model.pkl").symlink_to(outside)
    [miss] = items(pointer)
    assert isinstance(miss, ListingError) and miss.rule_id == "SRC001"


def test_uncached_output(repo: Repo) -> None:
    pointer = repo.root / "model.pkl.dvc"
    pointer.write_text(f"outs:\n- md5: {md5(MALICIOUS)}\n  size: {len(MALICIOUS)}\n  hash: md5\n"
                       "  path: model.pkl\n  cache: false\n")
    [miss] = items(pointer)
    assert isinstance(miss, ListingError) and miss.rule_id == "SRC001" and "cache: false" in miss.message
    (repo.root / "model.pkl").write_bytes(MALICIOUS)
    [ref] = items(pointer)
    assert isinstance(ref, ObjectRef) and ref.uri == str(repo.root / "model.pkl")


# --- remotes -----------------------------------------------------------------------------------

def test_local_remote_holds_the_object(repo: Repo, tmp_path: Path) -> None:
    remote = tmp_path / "dvc-remote"
    repo.config("[core]\n    remote = backup\n['remote \"backup\"']\n    url = ../../dvc-remote\n")
    stored = remote / repo.key(md5(MALICIOUS))
    stored.parent.mkdir(parents=True)
    stored.write_bytes(MALICIOUS)
    [ref] = items(repo.pointer("model.pkl", MALICIOUS))
    assert isinstance(ref, ObjectRef) and ref.uri == os.path.normpath(stored)
    assert read_all(ref) == MALICIOUS


def test_config_local_overrides_the_remote(repo: Repo, tmp_path: Path) -> None:
    repo.config("[core]\n    remote = backup\n['remote \"backup\"']\n    url = /nonexistent/remote\n")
    real = tmp_path / "real-remote"
    repo.config(f"['remote \"backup\"']\n    url = file://{real}\n", local=True)
    stored = real / repo.key(md5(MALICIOUS), legacy=True)
    stored.parent.mkdir(parents=True)
    stored.write_bytes(MALICIOUS)
    [ref] = items(repo.pointer("model.pkl", MALICIOUS, legacy=True))  # DVC 2 remote layout
    assert isinstance(ref, ObjectRef) and ref.uri == str(stored)


def test_remote_missing_the_object_is_named(repo: Repo, tmp_path: Path) -> None:
    (tmp_path / "empty-remote").mkdir()
    repo.config(f"[core]\n    remote = backup\n['remote \"backup\"']\n    url = {tmp_path / 'empty-remote'}\n")
    [miss] = items(repo.pointer("model.pkl", MALICIOUS))
    assert isinstance(miss, ListingError) and miss.rule_id == "SRC001"
    assert "remote backup" in miss.message and "dvc pull" in miss.message


def test_unsupported_remote_is_explained_without_credentials(repo: Repo) -> None:
    repo.config("[core]\n    remote = box\n['remote \"box\"']\n    url = ssh://user:hunter2@host/path\n")
    [miss] = items(repo.pointer("model.pkl", MALICIOUS))
    assert isinstance(miss, ListingError) and miss.rule_id == "SRC001"
    assert "ssh:// remotes are not supported" in miss.message and "hunter2" not in miss.message


def test_s3_remote_holds_file_and_directory(repo: Repo, s3_server) -> None:
    files = {"weights.pkl": MALICIOUS, "readme.txt": BENIGN}
    pointer_dir, manifest, digest = repo.directory("bundle", files, cache_files=False)
    # the manifest too lives only in the remote: the local cache is empty
    for path in (repo.root / ".dvc" / "cache").rglob("*"):
        if path.is_file():
            path.chmod(0o644)
            path.unlink()
    bucket = s3_server.make_bucket({
        f"store/{repo.key(md5(MALICIOUS))}": MALICIOUS,
        f"store/{repo.key(md5(BENIGN))}": BENIGN,
        f"store/{repo.key(digest)}": manifest,
    })
    repo.config(f"[core]\n    remote = storage\n['remote \"storage\"']\n    url = s3://{bucket}/store/\n")
    [ref] = items(repo.pointer("model.pkl", MALICIOUS))
    assert isinstance(ref, ObjectRef)
    assert ref.uri == f"s3://{bucket}/store/{repo.key(md5(MALICIOUS))}" and ref.size == len(MALICIOUS)
    assert ref.etag  # the store's ETag, for the fingerprint index
    assert read_all(ref) == MALICIOUS
    listed = items(pointer_dir)
    assert [i.uri for i in listed if isinstance(i, ObjectRef)] == [
        f"s3://{bucket}/store/{repo.key(md5(files[rel]))}" for rel in sorted(files)]


def test_s3_remote_miss_and_missing_bucket(repo: Repo, s3_server) -> None:
    bucket = s3_server.make_bucket({"store/unrelated": b"x"})
    repo.config(f"[core]\n    remote = storage\n['remote \"storage\"']\n    url = s3://{bucket}/store\n")
    [miss] = items(repo.pointer("model.pkl", MALICIOUS))
    assert isinstance(miss, ListingError) and miss.rule_id == "SRC001"
    assert f"remote storage (s3://{bucket}/store)" in miss.message

    repo.config("[core]\n    remote = storage\n['remote \"storage\"']\n    url = s3://no-such-bucket-here/x\n")
    pointer, _, _ = repo.directory("d", {"a": b"1", "b": b"2"}, cache_files=False)
    misses = items(pointer)
    assert len(misses) == 2 and all(isinstance(m, ListingError) and m.rule_id == "SRC001" for m in misses)
    assert all("could not be used" in m.message and "no-such-bucket-here" in m.message for m in misses)


# --- malformed pointers ------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "expected"), [
    ("outs: [unclosed\n", "malformed YAML"),
    ("- just\n- a list\n", "YAML mapping"),
    ("deps: []\n", "no `outs`"),
    ("outs:\n- size: 3\n", "no `path`"),
    ("outs:\n- md5: ../../../etc/passwd\n  path: x\n", "not an md5 digest"),
    ("outs:\n- md5: 900150983cd24fb0d6963f7d28e17f72\n  size: -1\n  path: x\n", "not a byte count"),
    ("!!python/object/apply:os.system ['echo pwned']\n", "malformed YAML"),  # safe_load refuses tags
])
def test_malformed_pointer_is_a_clear_error(repo: Repo, text: str, expected: str) -> None:
    pointer = repo.root / "bad.dvc"
    pointer.write_text(text)
    [error] = items(pointer)
    assert isinstance(error, ListingError) and error.uri == str(pointer)
    assert expected in error.message and error.rule_id is None


def test_dvc_folder_and_fifo_targets(repo: Repo) -> None:
    cached = repo.cache(MALICIOUS)
    # the repository's `.dvc/` folder ends in .dvc too: it is walked like any folder
    assert str(cached) in [i.uri for i in items(repo.root / ".dvc") if isinstance(i, ObjectRef)]
    fifo = repo.root / "pipe.dvc"
    os.mkfifo(fifo)
    [error] = items(fifo)  # refused without opening it (opening a FIFO would block)
    assert isinstance(error, ListingError) and "not a regular file" in error.message


def test_oversized_and_missing_pointers(repo: Repo) -> None:
    big = repo.root / "big.dvc"
    big.write_bytes(b"#" * (dvc.MAX_DVC_FILE_BYTES + 1))
    [error] = items(big)
    assert isinstance(error, ListingError) and "larger than" in error.message
    [error] = items(repo.root / "absent.dvc")
    assert isinstance(error, ListingError) and "no such file" in error.message


# --- end to end through the scan pipeline ------------------------------------------------------

def test_scan_finds_the_malicious_pickle_a_pointer_tracks(repo: Repo) -> None:
    repo.cache(MALICIOUS)
    pointer = repo.pointer("model.pkl", MALICIOUS)
    run = scan([str(pointer)], ScanOptions(), ScanConfig(workers=1))
    [obj] = run.objects
    assert obj.status == Status.SCANNED
    assert any(f.rule_id == "PKL102" and f.severity == Severity.CRITICAL for f in obj.findings)
    assert run.exit_code == 1


def test_scan_reports_an_unresolved_pointer(repo: Repo) -> None:
    pointer = repo.pointer("model.pkl", MALICIOUS)
    run = scan([str(pointer)], ScanOptions(), ScanConfig(workers=1))
    [obj] = run.objects
    assert obj.status == Status.ERROR and obj.object.uri == f"{pointer}#model.pkl"
    assert [(f.rule_id, f.severity) for f in obj.findings] == [("SRC001", Severity.WARNING)]
    assert run.exit_code == 1
