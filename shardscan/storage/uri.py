"""What a scan target names: a store, a bucket or repository in it, and a path or prefix.

Parsing is pure (no network, no imports of store clients), so the CLI can reject a bad target
before anything starts, and a worker can rebuild where an object lives from its URI alone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

#: Schemes that name a bucket in an object store, and the store family that serves each.
BUCKET_SCHEMES = {"s3": "s3", "r2": "s3", "gs": "gcs", "gcs": "gcs"}
#: Web addresses of the Hugging Face hub that name a repository.
HUB_HOSTS = ("huggingface.co", "www.huggingface.co", "hf.co")
#: Repository kinds on the hub, as they appear in paths (`datasets/org/name`).
HUB_REPO_KINDS = ("models", "datasets", "spaces")

_WINDOWS_DRIVE = re.compile(r"^[A-Za-z]:[\\/]")


class TargetError(ValueError):
    """A target that names no store shardscan can read."""


@dataclass(frozen=True, slots=True)
class Location:
    """A parsed target.

    - `local`: `path` is a file system path.
    - `s3` / `r2` / `gs`: `container` is the bucket, `path` the key or prefix ("" for all).
    - `hf`: `container` is the repository id (`org/name`, or `datasets/org/name`), `path` a
      file or folder inside it, `revision` a branch, tag or commit (None: the default branch).
    - `mlflow`: `container` is the registered model name, `revision` its version or alias.
    - `dvc`: `path` is the local `.dvc` pointer file.
    """

    scheme: str
    container: str = ""
    path: str = ""
    revision: str | None = None

    @property
    def family(self) -> str:
        """The store family that lists and reads this location (s3 serves r2 too)."""
        return BUCKET_SCHEMES.get(self.scheme, self.scheme)

    def object_uri(self, key: str) -> str:
        """The URI of one object found under this location; `parse_target` reads it back."""
        if self.scheme == "local":
            return key
        if self.scheme == "hf":
            rev = f"@{self.revision}" if self.revision else ""
            return f"hf://{self.container}{rev}/{key}"
        return f"{self.scheme}://{self.container}/{key}"


def parse_target(text: str) -> Location:
    """Read a target as the user typed it: a path, `file://`, `s3://`, `r2://`, `gs://`,
    `gcs://`, `hf://`, a huggingface.co address, `models:/Name/Version`, or a `.dvc` file."""
    if not text:
        raise TargetError("empty target")
    if _WINDOWS_DRIVE.match(text):
        return Location("local", path=text)
    if text.startswith("models:/"):
        return _mlflow(text)
    scheme, sep, rest = text.partition("://")
    if not sep:
        if text.endswith(".dvc"):
            return Location("dvc", path=text)
        return Location("local", path=text)
    scheme = scheme.lower()
    if scheme == "file":
        path = unquote(urlsplit(text).path)
        if not path:
            raise TargetError(f"{text}: a file:// URI needs a path")
        return Location("dvc" if path.endswith(".dvc") else "local", path=path)
    if scheme in BUCKET_SCHEMES:
        bucket, _, key = rest.partition("/")
        if not bucket:
            raise TargetError(f"{text}: no bucket named")
        return Location("gs" if scheme == "gcs" else scheme, bucket, key)
    if scheme == "hf":
        return _hub_path(text, rest)
    if scheme in ("http", "https"):
        return _hub_address(text)
    raise TargetError(f"{text}: unsupported scheme {scheme!r} (local paths, file://, s3://, r2://, gs://, "
                      "hf://, https://huggingface.co/..., models:/ and .dvc files are)")


def _mlflow(text: str) -> Location:
    parts = [p for p in text[len("models:/"):].split("/") if p]
    if len(parts) == 2:
        return Location("mlflow", parts[0], revision=parts[1])
    name, at, alias = (parts[0].partition("@") if len(parts) == 1 else ("", "", ""))
    if at and name and alias:
        return Location("mlflow", name, revision=f"@{alias}")
    raise TargetError(f"{text}: expected models:/Name/Version or models:/Name@alias")


def _hub_path(text: str, rest: str) -> Location:
    """`hf://org/name[@revision][/path]`, with an optional `datasets/` or `spaces/` kind."""
    parts = rest.split("/")
    kind = ""
    if parts and parts[0] in HUB_REPO_KINDS:
        kind = "" if parts[0] == "models" else parts[0] + "/"
        parts = parts[1:]
    if len(parts) < 2 or not parts[0] or not parts[1]:
        raise TargetError(f"{text}: expected hf://org/name[@revision][/path]")
    name, _, revision = parts[1].partition("@")
    rest = parts[2:]
    if revision == "refs" and len(rest) >= 2 and rest[0] in ("pr", "convert"):  # refs/pr/1 holds slashes
        revision, rest = "/".join(["refs", *rest[:2]]), rest[2:]
    return Location("hf", f"{kind}{parts[0]}/{name}", "/".join(p for p in rest if p), unquote(revision) or None)


def _hub_address(text: str) -> Location:
    """A huggingface.co page or download address: `/org/name`, `/org/name/tree/rev/dir`,
    `/org/name/blob/rev/file`, `/org/name/resolve/rev/file` (and `/datasets/...`)."""
    url = urlsplit(text)
    if url.hostname not in HUB_HOSTS:
        raise TargetError(f"{text}: only huggingface.co addresses are scanned over http(s)")
    parts = [unquote(p) for p in url.path.split("/") if p]
    kind = ""
    if parts and parts[0] in HUB_REPO_KINDS:
        kind = "" if parts[0] == "models" else parts[0] + "/"
        parts = parts[1:]
    if len(parts) < 2:
        raise TargetError(f"{text}: expected https://huggingface.co/org/name[/tree/REV/PATH]")
    repo = f"{kind}{parts[0]}/{parts[1]}"
    if len(parts) == 2:
        return Location("hf", repo)
    if parts[2] not in ("tree", "blob", "resolve") or len(parts) < 4:
        raise TargetError(f"{text}: expected /tree/, /blob/ or /resolve/ followed by a revision")
    return Location("hf", repo, "/".join(parts[4:]), parts[3])
