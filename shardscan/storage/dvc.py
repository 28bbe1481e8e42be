"""DVC pointer files (`model.pkl.dvc`): scan the bytes a pointer names, wherever they are kept.

A `.dvc` file is a small YAML file committed to git in place of a model; the model itself lives
in DVC's content-addressed cache and in a remote. Scanning only the pointer would pass a
malicious model as clean, so each output it records is found and listed as an object of the
store that holds it:

1. the local cache (`.dvc/cache/files/md5/ab/cdef...` for DVC 3, `.dvc/cache/ab/cdef...` for
   DVC 2 outputs, or the folder `cache.dir` names): exactly the bytes the pointer records, since
   the object's name is their md5. The object is named by its cache path, unless the workspace
   file is the very same file (a hardlink or symlink checkout), which is then named instead: a
   copied or reflinked workspace file may have been edited since `dvc add` and is not what the
   pointer records;
2. the default remote (`[core] remote` in `.dvc/config` or `.dvc/config.local`, or the output's
   own `remote:`), when it is an s3://, gs:// or local-folder remote, checked through the
   family's own listing so that the object row carries the store's size and ETag;
3. the workspace file next to the pointer, when it exists inside the repository with the
   recorded size: what the project loads, though not checked against the md5 (hashing a model
   during listing would read it twice).

When none holds the bytes the output becomes a ListingError under rule SRC001 (coverage
incomplete: the model was not scanned), never a silent omission. A `.dvc` file that cannot be
read or parsed is a plain ListingError: DVC could not resolve it either, so nothing is pulled
from it, and the object row in error already fails the scan (exit 2).

Not handled (documented limits): remotes other than s3://, gs:// and local folders (ssh,
azure, http, hdfs, ...), remote settings other than `url` (a DVC remote's `endpointurl` or
credentials: the s3/gcs families take theirs from the standard environment), the user's
global and system DVC configs, cloud-versioned (`version_aware`) remotes, and pipeline outputs
recorded in `dvc.lock`. A `.dvc` file met inside a folder target is scanned as the small text
file it is, not resolved: pointers are followed only when named as targets.

Every path built here comes from validated md5 digests (32 hex digits) and relative paths
without `..`, so a crafted pointer or directory manifest cannot point the scan outside the
cache, the remote or the repository.
"""

from __future__ import annotations

import configparser
import json
import os
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

from shardscan.model import ObjectRef
from shardscan.storage import objects
from shardscan.storage.errors import ListingError
from shardscan.storage.local import change_token, list_local
from shardscan.storage.reader import ClosableReader, LocalReader
from shardscan.storage.uri import Location, TargetError, parse_target

__all__ = ["MAX_DIR_FILES", "MAX_DVC_FILE_BYTES", "PointerError", "list_objects", "open_reader"]

#: The rule a pointer whose bytes were found nowhere is reported under.
UNRESOLVED_RULE = "SRC001"
#: A `.dvc` file is a few hundred bytes; anything larger is not one, and is not parsed.
MAX_DVC_FILE_BYTES = 1024 * 1024
#: `.dvc/config` and `.dvc/config.local` are read whole: bounded like the pointer.
MAX_CONFIG_BYTES = 1024 * 1024
#: Outputs in one pointer (DVC writes one per `dvc add`; a hand-made file may list more).
MAX_OUTS = 1000
#: Folders walked up from the pointer looking for the repository's `.dvc/` folder.
MAX_REPO_DEPTH = 64
#: A directory output's manifest (`<md5>.dir`, a JSON list of files) read into memory.
MAX_DIR_MANIFEST_BYTES = 32 * 1024 * 1024
#: Files listed from one directory output; the rest are reported as not scanned (SRC001).
MAX_DIR_FILES = 100_000

_MD5 = re.compile(r"[0-9a-f]{32}")
#: DVC's config is written by configobj, which quotes section names: `['remote "name"']`.
_SECTION = re.compile(r"^\[\s*(['\"]?)(.*?)\1\s*\]$")
_REMOTE_SECTION = re.compile(r'^remote\s+"(.+)"$')
_USERINFO = re.compile(r"(?<=://)[^/@\s]+@")
#: Remote kinds whose objects a family module here can list and read.
_REMOTE_SCHEMES = ("s3", "gs", "gcs")


class PointerError(ValueError):
    """A `.dvc` file that cannot be used as a pointer: too large, not YAML, wrong shape."""


@dataclass(frozen=True, slots=True)
class _Out:
    """One output a pointer records."""

    path: str
    md5: str | None
    size: int | None
    #: DVC 2 hashing (no `hash: md5` field): objects live in the legacy `ab/cdef...` layout.
    legacy: bool
    remote: str | None
    cached: bool


@dataclass(slots=True)
class _Remote:
    """A configured remote, and why it failed once it has (so later objects skip it)."""

    name: str
    url: str
    #: "local" (a folder), "uri" (a store a family lists) or "" (not supported here).
    kind: str
    failure: str | None = None

    def describe(self) -> str:
        return f"remote {self.name} ({_mask(self.url)})" if self.url else f"remote {self.name}"


@dataclass(slots=True)
class _Repo:
    """What the pointer's repository says about where objects are kept."""

    root: str | None
    cache_dir: str | None
    default_remote: str | None = None
    remotes: dict[str, _Remote] = field(default_factory=dict)
    #: Why the config could not be read, appended to miss messages (it may hide the cache).
    config_error: str | None = None


@dataclass(slots=True)
class _Context:
    dvc_path: str
    base_dir: str
    repo: _Repo


def list_objects(location: Location) -> Iterator[ObjectRef | ListingError]:
    """Every file the pointer at `location.path` records, as an object of the store that
    holds it; one ListingError per output (or directory file) found nowhere."""
    dvc_path = location.path
    if os.path.isdir(dvc_path):
        # A folder whose name ends in .dvc (the repository's own `.dvc/`, with its cache) is a
        # folder target like any other, not a pointer.
        yield from list_local([dvc_path])
        return
    try:
        outs, wdir = read_pointer(dvc_path)
    except PointerError as exc:
        yield ListingError(dvc_path, str(exc))
        return
    pointer_dir = os.path.dirname(dvc_path) or "."
    ctx = _Context(dvc_path, os.path.normpath(os.path.join(pointer_dir, wdir)), _find_repo(pointer_dir))
    for out in outs:
        if out.md5 is not None and out.md5.endswith(".dir"):
            yield from _directory(ctx, out)
        else:
            yield _file(ctx, out)


def open_reader(location: Location, ref: ObjectRef) -> ClosableReader:
    """The pointer file's own bytes, read as a local file.

    Objects listed from a pointer are never `.dvc` files, so this only opens a `.dvc` file met
    as a plain file (a folder walk lists it by its path, and its URI routes here): it is read
    and scanned like any other small file, not resolved again.
    """
    return LocalReader(location.path)


# --- the pointer -------------------------------------------------------------------------------

def read_pointer(path: str) -> tuple[list[_Out], str]:
    """The outputs a `.dvc` file records, and its `wdir` (outputs' paths are relative to it).

    Parsed with yaml.safe_load only (no Python tags), after a size check.
    """
    import yaml

    text = _read_bounded(path, MAX_DVC_FILE_BYTES, "a .dvc file")
    try:
        doc = yaml.safe_load(text)
    except Exception as exc:  # YAMLError, RecursionError on absurd nesting
        raise PointerError(f"not a valid .dvc file: malformed YAML ({_first_line(exc)})") from None
    if not isinstance(doc, dict):
        raise PointerError("not a valid .dvc file: expected a YAML mapping with `outs`")
    wdir = doc.get("wdir", ".")
    if not isinstance(wdir, str) or os.path.isabs(wdir):
        raise PointerError("not a valid .dvc file: `wdir` must be a relative path")
    raw_outs = doc.get("outs")
    if not isinstance(raw_outs, list) or not raw_outs:
        raise PointerError("not a valid .dvc file: no `outs` list (nothing is tracked)")
    if len(raw_outs) > MAX_OUTS:
        raise PointerError(f"not a valid .dvc file: {len(raw_outs)} outputs (at most {MAX_OUTS} are read)")
    return [_out(i, raw) for i, raw in enumerate(raw_outs)], wdir


def _out(index: int, raw: Any) -> _Out:
    where = f"not a valid .dvc file: outs[{index}]"
    if not isinstance(raw, dict):
        raise PointerError(f"{where} is not a mapping")
    path = raw.get("path")
    if not isinstance(path, str) or not path:
        raise PointerError(f"{where} has no `path`")
    md5 = raw.get("md5")
    hash_name = raw.get("hash")
    if md5 is not None:
        if not isinstance(md5, str) or not _valid_md5(md5, allow_dir=True):
            raise PointerError(f"{where} ({path}): `md5` is not an md5 digest")
        if hash_name not in (None, "md5"):
            md5 = None  # another algorithm's digest under `md5:` is not a cache key we know
    size = raw.get("size")
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 0):
        raise PointerError(f"{where} ({path}): `size` is not a byte count")
    remote = raw.get("remote")
    cached = raw.get("cache", True)
    return _Out(path=path, md5=md5.lower() if md5 else None, size=size, legacy=hash_name is None,
                remote=remote if isinstance(remote, str) and remote else None, cached=cached is not False)


def _valid_md5(text: str, *, allow_dir: bool = False) -> bool:
    digest = text[:-4] if allow_dir and text.endswith(".dir") else text
    return _MD5.fullmatch(digest.lower()) is not None


# --- the repository: cache and remotes ---------------------------------------------------------

def _find_repo(start: str) -> _Repo:
    """The DVC repository holding `start`: the nearest folder above with a `.dvc/` folder."""
    here = os.path.abspath(start)
    for _ in range(MAX_REPO_DEPTH):
        if os.path.isdir(os.path.join(here, ".dvc")):
            return _read_repo(here)
        parent = os.path.dirname(here)
        if parent == here:
            break
        here = parent
    return _Repo(root=None, cache_dir=None)


def _read_repo(root: str) -> _Repo:
    """Cache folder and remotes from `.dvc/config`, overridden by `.dvc/config.local` (as DVC
    merges them); relative paths there are relative to the `.dvc/` folder, as DVC writes them."""
    dvc_dir = os.path.join(root, ".dvc")
    repo = _Repo(root=root, cache_dir=os.path.join(dvc_dir, "cache"))
    sections: dict[str, dict[str, str]] = {}
    for name in ("config", "config.local"):
        path = os.path.join(dvc_dir, name)
        if not os.path.exists(path):
            continue
        try:
            for section, values in _read_config(path).items():
                sections.setdefault(section, {}).update(values)
        except (OSError, PointerError, configparser.Error) as exc:
            repo.config_error = f".dvc/{name} could not be read: {_first_line(exc)}"
    cache_dir = sections.get("cache", {}).get("dir")
    if cache_dir:
        repo.cache_dir = _local_path(dvc_dir, cache_dir)
    repo.default_remote = sections.get("core", {}).get("remote") or None
    for section, values in sections.items():
        match = _REMOTE_SECTION.match(section)
        if match and values.get("url"):
            repo.remotes[match.group(1)] = _remote(match.group(1), values["url"], dvc_dir)
    return repo


def _read_config(path: str) -> dict[str, dict[str, str]]:
    """configobj's INI dialect read with configparser: section headers unquoted, values
    unquoted, no interpolation (a `%` in a URL is not a reference)."""
    text = _read_bounded(path, MAX_CONFIG_BYTES, "a DVC config file")
    lines = []
    for line in text.splitlines():
        line = line.strip()
        match = _SECTION.match(line)
        lines.append(f"[{match.group(2)}]" if match else line)
    parser = configparser.ConfigParser(interpolation=None, strict=False, inline_comment_prefixes=("#",))
    parser.read_string("\n".join(lines), source=path)
    return {section: {k: _unquote(v) for k, v in parser.items(section)} for section in parser.sections()}


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def _local_path(dvc_dir: str, value: str) -> str:
    if value.startswith("file://"):
        value = unquote(urlsplit(value).path)
    return os.path.normpath(os.path.join(dvc_dir, os.path.expanduser(value)))


def _remote(name: str, url: str, dvc_dir: str) -> _Remote:
    scheme = url.partition("://")[0].lower() if "://" in url else ""
    if not scheme or scheme == "file":
        return _Remote(name, _local_path(dvc_dir, url), "local")
    if scheme in _REMOTE_SCHEMES:
        return _Remote(name, url.rstrip("/"), "uri")
    return _Remote(name, url, "", failure=f"{scheme}:// remotes are not supported by shardscan")


# --- finding one object ------------------------------------------------------------------------

def _object_key(md5: str, legacy: bool) -> str:
    """Where an object sits under a cache or remote root, in the layout its hashing uses."""
    return f"{md5[:2]}/{md5[2:]}" if legacy else f"files/md5/{md5[:2]}/{md5[2:]}"


def _file(ctx: _Context, out: _Out) -> ObjectRef | ListingError:
    workspace = _workspace_path(ctx, out.path)
    label = f"{ctx.dvc_path}#{out.path}"
    if not out.cached or out.md5 is None:
        ref = _workspace_ref(ctx, workspace, out.size)
        if ref is not None:
            return ref
        why = "is not cached by DVC (cache: false)" if not out.cached else "records no md5"
        return ListingError(label, f"{out.path} {why} and is not in the workspace: not scanned; "
                                   "run `dvc pull` or check it out", rule_id=UNRESOLVED_RULE)
    found = _resolve(ctx, out.md5, out.legacy, out.size, workspace, out.remote)
    return found if isinstance(found, ObjectRef) else _miss(ctx, label, out.path, out.md5, found)


def _resolve(ctx: _Context, md5: str, legacy: bool, size: int | None, workspace: str | None,
             remote_name: str | None) -> ObjectRef | _Remote | None:
    """The object for `md5`: from the cache, else the remote, else the workspace file. When
    none has it, the remote that was tried (for the message), or None when there is none."""
    cached = _cache_ref(ctx, md5, legacy, size)
    if cached is not None:
        if workspace is not None and _same_file(workspace, cached.uri):
            return ObjectRef(uri=workspace, size=cached.size, etag=change_token(os.stat(workspace)))
        return cached
    remote = _pick_remote(ctx, remote_name)
    if remote is not None and remote.failure is None:
        found = _remote_ref(remote, _object_key(md5, legacy), size)
        if found is not None:
            return found
    workspace_ref = _workspace_ref(ctx, workspace, size)
    return workspace_ref if workspace_ref is not None else remote


def _cache_ref(ctx: _Context, md5: str, legacy: bool, size: int | None) -> ObjectRef | None:
    """The cached object, in its own layout first and then the other one (DVC 3 keeps DVC 2
    outputs in the legacy layout; a cache moved by hand may hold either)."""
    cache_dir = ctx.repo.cache_dir
    if cache_dir is None:
        return None
    for layout in (legacy, not legacy):
        path = os.path.join(cache_dir, *_object_key(md5, layout).split("/"))
        ref = _local_ref(path, size, etag=f"md5:{md5}")
        if ref is not None:
            return ref
    return None


def _local_ref(path: str, size: int | None, *, etag: str | None = None) -> ObjectRef | None:
    """A regular file with the expected size (when one is recorded), or None."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    if not stat.S_ISREG(st.st_mode) or (size is not None and st.st_size != size):
        return None
    return ObjectRef(uri=path, size=st.st_size, etag=etag or change_token(st))


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _pick_remote(ctx: _Context, name: str | None) -> _Remote | None:
    name = name or ctx.repo.default_remote
    if name is None:
        return None
    remote = ctx.repo.remotes.get(name)
    if remote is None:
        remote = _Remote(name, "", "", failure="not defined in .dvc/config")
        ctx.repo.remotes[name] = remote
    return remote


def _remote_ref(remote: _Remote, key: str, size: int | None) -> ObjectRef | None:
    """The object at `key` under the remote, or None. A failure other than "no such object"
    (no such bucket, access denied, unreachable, client not installed) is kept on the remote,
    so the objects after this one do not each wait on a store that cannot answer."""
    if remote.kind == "local":
        digest = "".join(key.split("/")[-2:])
        return _local_ref(os.path.join(remote.url, *key.split("/")), size, etag=f"md5:{digest}")
    uri = f"{remote.url}/{key}"
    items = objects.list_objects([uri])
    try:
        first = next(items, None)
    finally:
        items.close()
    if isinstance(first, ObjectRef):
        if _same_object(first.uri, uri) and (size is None or first.size == size):
            return first
        return None
    if isinstance(first, ListingError) and not first.message.startswith("not found: no object"):
        # The families say "not found: no object ..." for a missing key; anything else (no such
        # bucket, access denied, unreachable) will fail the same way for every other key.
        remote.failure = first.message
    return None


def _same_object(listed: str, wanted: str) -> bool:
    try:
        a, b = parse_target(listed), parse_target(wanted)
    except TargetError:
        return False
    return (a.family, a.container, a.path) == (b.family, b.container, b.path)


def _workspace_path(ctx: _Context, relpath: str) -> str | None:
    """The output's path in the working tree, or None when it would leave the repository
    (an absolute path or `..` in a crafted pointer must not make the scan read elsewhere)."""
    path = os.path.normpath(os.path.join(ctx.base_dir, relpath))
    root = _root(ctx)
    absolute = os.path.abspath(path)
    if os.path.commonpath([absolute, root]) != root:
        return None
    return path


def _workspace_ref(ctx: _Context, workspace: str | None, size: int | None) -> ObjectRef | None:
    """The workspace file as the last resort, only where it resolves (links followed) inside
    the repository: a link committed in place of a model must not get another file scanned."""
    if workspace is None:
        return None
    real, root = os.path.realpath(workspace), os.path.realpath(_root(ctx))
    if os.path.commonpath([real, root]) != root:
        return None
    return _local_ref(workspace, size)


def _root(ctx: _Context) -> str:
    """The folder outputs must stay in: the repository, else the pointer's own folder."""
    return ctx.repo.root or os.path.abspath(os.path.dirname(ctx.dvc_path) or ".")


def _miss(ctx: _Context, label: str, what: str, md5: str, remote: _Remote | None) -> ListingError:
    """SRC001: the output was found nowhere, with where it was looked for and why it failed."""
    if remote is None:
        where = "the DVC cache, and no DVC remote is configured"
    elif remote.failure is not None:
        where = f"the DVC cache, and {remote.describe()} could not be used ({remote.failure})"
    else:
        where = f"the DVC cache or {remote.describe()}"
    if ctx.repo.root is None:
        where = "any DVC cache (no .dvc/ folder above the pointer) or remote"
    note = f" ({ctx.repo.config_error})" if ctx.repo.config_error else ""
    return ListingError(label, f"{what} (md5 {md5}) is not in {where}{note}: not scanned; "
                               "run `dvc pull` or make the remote reachable", rule_id=UNRESOLVED_RULE)


# --- directory outputs -------------------------------------------------------------------------

def _directory(ctx: _Context, out: _Out) -> Iterator[ObjectRef | ListingError]:
    """Each file of a directory output, from the manifest `<md5>.dir` (cache or remote)."""
    assert out.md5 is not None
    label = f"{ctx.dvc_path}#{out.path}"
    manifest = _resolve(ctx, out.md5, out.legacy, None, None, out.remote)
    if not isinstance(manifest, ObjectRef):
        yield _miss(ctx, label, f"{out.path}/ (directory listing)", out.md5, manifest)
        return
    try:
        entries = _read_manifest(manifest)
    except (OSError, PointerError) as exc:
        yield ListingError(label, f"directory listing {manifest.uri} could not be read: {_first_line(exc)}")
        return
    workspace_dir = _workspace_path(ctx, out.path)
    for md5, relpath in entries[:MAX_DIR_FILES]:
        workspace = None if workspace_dir is None else os.path.join(workspace_dir, *relpath.split("/"))
        found = _resolve(ctx, md5, out.legacy, None, workspace, out.remote)
        if isinstance(found, ObjectRef):
            yield found
        else:
            yield _miss(ctx, f"{label}/{relpath}", f"{out.path}/{relpath}", md5, found)
    if len(entries) > MAX_DIR_FILES:
        yield ListingError(label, f"{out.path}/ holds {len(entries)} files; only the first {MAX_DIR_FILES} "
                                  "were listed, the rest were not scanned", rule_id=UNRESOLVED_RULE)


def _read_manifest(ref: ObjectRef) -> list[tuple[str, str]]:
    """(md5, relpath) for each file, sorted by path, each checked: a digest of 32 hex digits
    and a relative path that stays inside the directory."""
    if ref.size > MAX_DIR_MANIFEST_BYTES:
        raise PointerError(f"{ref.size} bytes, over the {MAX_DIR_MANIFEST_BYTES}-byte limit")
    with objects.open_reader(ref) as reader:
        data = reader.read(0, MAX_DIR_MANIFEST_BYTES + 1)
    try:
        doc = json.loads(data)
    except ValueError as exc:
        raise PointerError(f"not JSON ({exc})") from None
    if not isinstance(doc, list):
        raise PointerError("not a JSON list of files")
    entries: list[tuple[str, str]] = []
    for item in doc:
        md5 = item.get("md5") if isinstance(item, dict) else None
        relpath = item.get("relpath") if isinstance(item, dict) else None
        if not isinstance(md5, str) or not _valid_md5(md5) or not isinstance(relpath, str) or not _safe_rel(relpath):
            raise PointerError(f"entry {str(item)[:120]!r} is not {{md5, relpath}} with a safe relative path")
        entries.append((md5.lower(), relpath))
    entries.sort(key=lambda e: e[1])
    return entries


def _safe_rel(relpath: str) -> bool:
    parts = relpath.split("/")
    return bool(relpath) and not relpath.startswith("/") and "\\" not in relpath and "\x00" not in relpath \
        and all(p not in ("", ".", "..") for p in parts)


# --- helpers -----------------------------------------------------------------------------------

def _read_bounded(path: str, limit: int, what: str) -> str:
    """A small text file read whole, refusing anything that is not a regular file under `limit`."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):  # before open: a FIFO would block it
            raise PointerError(f"not {what}: not a regular file")
        with open(path, "rb") as fh:
            data = fh.read(limit + 1)
    except FileNotFoundError:
        raise PointerError("no such file") from None
    except OSError as exc:
        raise PointerError(exc.strerror or str(exc)) from None
    if len(data) > limit:
        raise PointerError(f"not {what}: larger than {limit} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise PointerError(f"not {what}: not UTF-8 text") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300]


def _mask(url: str) -> str:
    """A remote URL without any `user:password@` in it."""
    return _USERINFO.sub("***@", url)
