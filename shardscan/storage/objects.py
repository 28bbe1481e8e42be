"""One entry point to every store: list the objects a target names, and open one for reading.

Each store family has a module with the same two functions, `list_objects(location)` and
`open_reader(location, ref)`; this module only dispatches, so the pipeline never knows which
store it reads. Store clients (s3fs, gcsfs, huggingface_hub, mlflow) are imported on first use.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from types import ModuleType

from shardscan.model import ObjectRef
from shardscan.storage.errors import ListingError, describe_error
from shardscan.storage.reader import ClosableReader
from shardscan.storage.uri import Location, TargetError, parse_target

#: Store family -> the module that lists and reads it.
FAMILIES = {
    "local": "shardscan.storage.local",
    "s3": "shardscan.storage.s3",
    "gcs": "shardscan.storage.gcs",
    "hf": "shardscan.storage.hf",
    "mlflow": "shardscan.storage.mlflow",
    "dvc": "shardscan.storage.dvc",
}


def _module(location: Location) -> ModuleType:
    return importlib.import_module(FAMILIES[location.family])


def list_objects(targets: list[str]) -> Iterator[ObjectRef | ListingError]:
    """Objects under every target, lazily and in a stable order per target.

    A target that cannot be listed (no such bucket, access denied, a client library that is
    not installed) yields a ListingError and the next target is listed.
    """
    for target in targets:
        try:
            location = parse_target(target)
            yield from _module(location).list_objects(location)
        except TargetError as exc:
            yield ListingError(target, str(exc))
        except ImportError as exc:
            yield ListingError(target, f"{exc.name or exc} is not installed: pip install 'shardscan[remote]'")
        except Exception as exc:  # a store that fails mid-listing: say so, go on with the next target
            yield ListingError(target, describe_error(exc))


def open_reader(ref: ObjectRef) -> ClosableReader:
    """A reader over one listed object, pinned to the version the listing saw where the store
    can pin one. Raises OSError (or the store's error) when it cannot be opened."""
    location = parse_target(ref.uri)
    return _module(location).open_reader(location, ref)
