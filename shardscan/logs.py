"""Structured logs for long scans: key=value lines, or JSON lines with `--log-format json`.

Logs describe the run (started, object failed, task retried, finished); findings are data and
never travel through logs. The driver binds the scan id; Ray workers read the same settings
from the environment in their setup hook, so their lines carry the same id.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

LOG_FORMAT_ENV = "SHARDSCAN_LOG_FORMAT"
SCAN_ID_ENV = "SHARDSCAN_SCAN_ID"
LOG_FORMATS = ("text", "json")


def configure(fmt: str = "text", scan_id: str | None = None, level: int = logging.INFO) -> None:
    """Set up structlog on stderr and publish the settings for worker processes."""
    import structlog

    os.environ[LOG_FORMAT_ENV] = fmt
    if scan_id:
        os.environ[SCAN_ID_ENV] = scan_id
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
    structlog.contextvars.bind_contextvars(process="driver")
    if scan_id:
        structlog.contextvars.bind_contextvars(scan_id=scan_id)


def configure_from_env() -> None:
    """For worker processes: the driver's format and scan id, from the environment."""
    configure(os.environ.get(LOG_FORMAT_ENV, "text"), os.environ.get(SCAN_ID_ENV))
    import structlog

    structlog.contextvars.bind_contextvars(process=f"worker-{os.getpid()}")


def get_logger() -> Any:
    import structlog

    return structlog.get_logger("shardscan")
