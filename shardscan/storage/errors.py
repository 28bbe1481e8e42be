"""Store failures as short messages for object rows: what happened, never a credential."""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ListingError:
    """A target or path that could not be listed or opened; it becomes an object row with an
    error and the scan goes on."""

    uri: str
    message: str
    #: A rule to report it under (SRC001 for an unresolved pointer); None: a plain error.
    rule_id: str | None = None


_SECRETISH = re.compile(r"(?i)(signature|credential|token|key|secret|password)=[^&\s]+")


def describe_error(exc: BaseException) -> str:
    """A one-line reason: not found, access denied, timed out, unreachable or the store's words,
    with query-string credentials (presigned URLs) masked."""
    if isinstance(exc, FileNotFoundError):
        reason = "not found (deleted or renamed after listing?)"
    elif isinstance(exc, PermissionError):
        reason = "access denied"
    elif isinstance(exc, TimeoutError):
        reason = "timed out"
    elif isinstance(exc, ConnectionError):
        reason = "unreachable"
    else:
        reason = ""
    detail = str(exc).strip() or type(exc).__name__
    if isinstance(exc, OSError) and exc.strerror and not exc.filename:
        detail = exc.strerror
    detail = _SECRETISH.sub(lambda m: f"{m.group(1)}=***", detail.splitlines()[0])[:300]
    return f"{reason}: {detail}" if reason else detail
