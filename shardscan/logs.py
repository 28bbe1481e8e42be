"""Structured logs for long scans: key=value lines, or JSON lines with `--log-format json`.

Logs describe the run (started, object failed, task done, finished); findings are data and
never travel through logs. The driver binds the scan id; every task carries the log format and
scan id, so a worker anywhere (a pool process, a Ray worker on another node) logs the same way.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

LOG_FORMATS = ("text", "json")

#: (format, scan id, pid) this process is configured for: a forked worker sees its parent's.
_configured: tuple[str, str | None, int] | None = None


def configure(fmt: str = "text", scan_id: str | None = None, role: str = "driver",
              level: int = logging.INFO) -> None:
    """Set up structlog on stderr, every line carrying the scan id and who wrote it."""
    global _configured
    import structlog

    _configured = (fmt, scan_id, os.getpid())
    renderer: Any = (structlog.processors.JSONRenderer(sort_keys=True) if fmt == "json"
                     else structlog.processors.KeyValueRenderer(key_order=["event"], sort_keys=True))
    structlog.configure(
        processors=[structlog.contextvars.merge_contextvars, structlog.processors.add_log_level,
                    structlog.processors.TimeStamper(fmt="iso", utc=True), renderer],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=False,
    )
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(process=role if role == "driver" else f"{role}-{os.getpid()}")
    if scan_id:
        structlog.contextvars.bind_contextvars(scan_id=scan_id)


def configure_worker(fmt: str, scan_id: str) -> None:
    """In a worker: log like the driver of this scan. In the driver's own process (the
    in-process engine) its configuration stays as it is."""
    if _configured != (fmt, scan_id, os.getpid()):
        configure(fmt, scan_id, role="worker")


def get_logger() -> Any:
    import structlog

    return structlog.get_logger("shardscan")
