"""MLflow model registry entries (`models:/Name/Version`, `models:/Name@alias`).

A registry entry is a pointer: the model's files sit in an artifact store (a bucket, a folder)
that the registry names. The entry is resolved through the MLflow client (`mlflow-skinny` is
enough) to that artifact location, and the files under it are listed by this package's own
families (s3://, gs://, local folders and file://), so they are read the same way as any other
target: ranged, pinned, never downloaded through MLflow and never loaded.

Configuration is MLflow's own: `MLFLOW_TRACKING_URI` (and `MLFLOW_REGISTRY_URI` where the
registry is elsewhere) name the server, and MLflow reads its credentials (`MLFLOW_TRACKING_TOKEN`,
`MLFLOW_TRACKING_USERNAME` / `_PASSWORD`, Databricks profiles) itself; nothing here reads or
prints them, and messages have `user:password@` masked out of URLs. One of the two variables
must be set: without them the client would fall back to a store in the current folder and
create it, which a scanner must not do.

Outcomes:
- the registry cannot answer (no such model, version or alias; server unreachable; mlflow not
  installed): a plain ListingError, like a missing path or bucket;
- the registry answers but its artifacts cannot be listed here: SRC001 (a pointer whose model
  was not scanned). That covers artifacts served only through the tracking server's proxy
  (`mlflow-artifacts:/...`, whose real location only the server knows), artifact stores this
  package has no family for (dbfs:, wasbs:, hdfs:, ...), and an artifact location that is
  missing or empty. Nothing is downloaded through MLflow as a fallback.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote, urlsplit

from shardscan.model import ObjectRef
from shardscan.storage import objects
from shardscan.storage.errors import ListingError, describe_error
from shardscan.storage.reader import ClosableReader
from shardscan.storage.uri import BUCKET_SCHEMES, Location

__all__ = ["MAX_RESOLVE_STEPS", "list_objects", "open_reader"]

#: The rule an entry whose artifacts could not be listed is reported under.
UNRESOLVED_RULE = "SRC001"
#: Indirections followed from a version's source (runs:/ -> run artifacts, models:/ -> another
#: version or a logged model) before giving up: a registry can point at itself.
MAX_RESOLVE_STEPS = 8
#: The environment variables that name the registry; one must be set.
REGISTRY_ENV = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")

_USERINFO = re.compile(r"(?<=://)[^/@\s]+@")
_WINDOWS_DRIVE = re.compile(r"^[A-Za-z]:[\\/]")


class _Unreachable(Exception):
    """The registry answered, but the artifacts it names cannot be listed by shardscan."""


def list_objects(location: Location) -> Iterator[ObjectRef | ListingError]:
    """The files of one registered model version, as objects of the store that holds them."""
    target = _target_text(location)
    if not any(os.environ.get(name) for name in REGISTRY_ENV):
        yield ListingError(target, "MLFLOW_TRACKING_URI is not set: point it (or MLFLOW_REGISTRY_URI) at the "
                                   "MLflow tracking server or registry that holds this model")
        return
    try:
        from mlflow import MlflowClient
    except ImportError:
        yield ListingError(target, "mlflow is not installed: pip install mlflow-skinny "
                                   "(models:/ targets are resolved through the MLflow client)")
        return
    try:
        client = MlflowClient()
        version = _version(client, location.container, location.revision or "")
        source = client.get_model_version_download_uri(location.container, version)
    except Exception as exc:  # RestException, MlflowException, connection errors
        yield ListingError(target, f"the MLflow registry could not resolve it: {_describe(exc)}")
        return
    where = f"{target} (version {version})"
    try:
        artifacts = _underlying(client, source)
    except _Unreachable as exc:
        yield ListingError(target, f"{where}: {exc}: not scanned", rule_id=UNRESOLVED_RULE)
        return
    except Exception as exc:  # the run or logged model it names is gone, the server failed
        yield ListingError(target, f"{where}: its source {_mask(source)} could not be resolved: "
                                   f"{_describe(exc)}: not scanned", rule_id=UNRESOLVED_RULE)
        return
    first = True
    for item in objects.list_objects([artifacts]):
        if first and isinstance(item, ListingError) and item.rule_id is None:
            # The artifact location itself is missing or empty: the entry points at nothing.
            yield ListingError(target, f"{where} resolves to {_mask(artifacts)}, which could not be listed "
                                       f"({item.message}): not scanned", rule_id=UNRESOLVED_RULE)
        else:
            yield item
        first = False


def open_reader(location: Location, ref: ObjectRef) -> ClosableReader:
    """Never needed: the objects listed here are those of the artifact store's own family."""
    raise OSError(f"models:/{location.container}: a registry entry is not read itself; its artifacts are "
                  "listed as objects of the store that holds them")


def _target_text(location: Location) -> str:
    revision = location.revision or ""
    return f"models:/{location.container}{revision}" if revision.startswith("@") \
        else f"models:/{location.container}/{revision}"


def _version(client: Any, name: str, revision: str) -> str:
    """A version number from `models:/` syntax: a number, `@alias`, `latest` or a stage name."""
    if revision.startswith("@"):
        return str(client.get_model_version_by_alias(name, revision[1:]).version)
    if revision.isdigit():
        return revision
    with warnings.catch_warnings():  # stages are deprecated in MLflow 2.9+, still served
        warnings.simplefilter("ignore")
        stages = None if revision.lower() == "latest" else [revision]
        latest = client.get_latest_versions(name, stages)
    if not latest:
        raise LookupError(f"no version of {name!r}" + (f" in stage {revision!r}" if stages else ""))
    return str(max(int(mv.version) for mv in latest))


def _underlying(client: Any, uri: str) -> str:
    """The artifact location a download URI stands for, as a target `objects` can list:
    runs:/ and models:/ URIs are followed through the client, file:// becomes a path."""
    for _ in range(MAX_RESOLVE_STEPS):
        if _WINDOWS_DRIVE.match(uri):
            return uri
        parts = urlsplit(uri)
        scheme = parts.scheme.lower()
        if scheme == "runs":
            run_id, _, sub = parts.path.lstrip("/").partition("/")
            base = client.get_run(run_id or parts.netloc).info.artifact_uri
            uri = f"{base.rstrip('/')}/{sub}" if sub else base
        elif scheme == "models":
            uri = _models_uri(client, parts.path.lstrip("/"))
        elif scheme == "mlflow-artifacts" or (scheme in ("http", "https") and "/mlflow-artifacts/" in parts.path):
            raise _Unreachable(f"its artifacts ({_mask(uri)}) are served only through the MLflow tracking "
                               "server's artifact proxy, whose storage location the client is not told; "
                               "scan that location directly (s3://, gs:// or a path)")
        elif scheme == "file":
            return unquote(parts.path)
        elif scheme == "" or scheme in BUCKET_SCHEMES:  # a path, s3://, r2://, gs://
            return uri
        else:
            raise _Unreachable(f"its artifacts are in a {scheme}: store ({_mask(uri)}), which shardscan "
                               "cannot list")
    raise _Unreachable(f"its source is more than {MAX_RESOLVE_STEPS} runs:/ or models:/ references deep")


def _models_uri(client: Any, path: str) -> str:
    """The download location behind a `models:/` source: another registered version
    (`Name/Version`, `Name@alias`) or a logged model (`m-<id>`, MLflow 3)."""
    parts = [p for p in path.split("/") if p]
    if len(parts) == 1 and "@" in parts[0]:
        name, _, alias = parts[0].partition("@")
        return str(client.get_model_version_download_uri(name, _version(client, name, f"@{alias}")))
    if len(parts) == 1:
        return str(client.get_logged_model(parts[0]).artifact_location)
    if len(parts) == 2:
        return str(client.get_model_version_download_uri(parts[0], _version(client, parts[0], parts[1])))
    raise _Unreachable(f"its source models:/{path} is not a models:/ form shardscan follows")


def _describe(exc: BaseException) -> str:
    return _mask(describe_error(exc))


def _mask(text: str) -> str:
    """`scheme://user:password@host` with the user information hidden."""
    return _USERINFO.sub("***@", text)
