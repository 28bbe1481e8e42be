"""One scan from start to end: choose the engine, open the results store, run the driver,
close the store whether the run completed or was interrupted.

The command line and library callers (a scheduled job, a test) go through `scan()`, so a run
started either way writes the same tables.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from shardscan.model import ObjectReport, ScanRun
from shardscan.pipeline.driver import Pipeline, PipelineSettings, Totals, new_scan_id
from shardscan.pipeline.engines import Engine, InlineEngine, default_workers
from shardscan.pipeline.runner import ScanOptions
from shardscan.pipeline.tasks import run_task

ENGINES = ("local", "ray")


class MissingExtra(RuntimeError):
    """A feature whose libraries are an optional extra that is not installed."""


@contextlib.contextmanager
def _extra(extra: str, feature: str) -> Iterator[None]:
    try:
        yield
    except ImportError as exc:
        raise MissingExtra(f"{feature} needs {exc.name or exc}: pip install 'shardscan[{extra}]'") from None


@dataclass
class ScanConfig:
    """How a scan runs and where its results go; nothing here changes a finding."""

    engine: str = "local"
    #: Worker processes (local) or concurrent tasks (ray); None: one per core.
    workers: int | None = None
    chunk_size: int | None = None
    max_inflight: int | None = None
    ray_address: str | None = None
    sha256: bool = False
    #: Results store (directory or object-store prefix); None: none.
    results: str | None = None
    #: Seconds between publications of the results store's parts: what a killed driver loses at most.
    flush_seconds: float | None = None
    #: Reuse results of unchanged content (fingerprints and content hashes in the store).
    reuse: bool = True
    #: Log format of the run (None: no logs); workers log their tasks the same way.
    log_format: str | None = None
    #: Recorded in the scans table.
    arguments: dict[str, Any] = field(default_factory=dict)
    #: For fault-injection tests: what tasks run instead of `run_task`.
    task_fn: Any = None
    ray_init: dict[str, Any] = field(default_factory=dict)


def make_engine(config: ScanConfig, options: ScanOptions, targets: list[str]) -> Engine:
    """The local engine runs a single local file in this process (no pool to start: a
    pre-commit hook's case); anything more gets the process pool."""
    retries = options.limits.max_task_retries
    if config.engine == "ray":
        from shardscan.pipeline.ray_engine import RayEngine

        with _extra("ray", "--engine ray"):
            return RayEngine(config.ray_address, config.workers, retries, config.ray_init, config.task_fn)
    if config.engine != "local":
        raise ValueError(f"unknown engine {config.engine!r}; choose one of {', '.join(ENGINES)}")
    workers = config.workers or default_workers()
    single_file = len(targets) == 1 and "://" not in targets[0] and os.path.isfile(targets[0])
    if (workers == 1 or single_file) and config.task_fn is None:
        return InlineEngine()
    from shardscan.pipeline.process_engine import ProcessEngine

    return ProcessEngine(workers, retries, config.task_fn or run_task)


def scan(targets: list[str], options: ScanOptions, config: ScanConfig,
         on_object: Callable[[ObjectReport], None] | None = None,
         on_start: Callable[[Pipeline], None] | None = None,
         retain: Callable[[ObjectReport], bool] | None = None) -> ScanRun:
    """Scan `targets`; with a results store, every object row and finding is written as it
    completes, and an interrupted run still leaves a readable store. With `retain`, the run
    keeps only the reports it accepts and counts the others by status."""
    scan_id = new_scan_id()
    started = datetime.now(timezone.utc)
    version = options.policy_key()
    writer = index = None
    if config.results:
        with _extra("results", "--results"):
            from shardscan.storage.results import ResultsStore
        store = ResultsStore(config.results)
        index = store.index(version) if config.reuse else None
        writer = store.writer(scan_id, started, **(
            {"part_seconds": config.flush_seconds} if config.flush_seconds else {}))

    def sink(report: ObjectReport) -> None:
        if writer is not None:
            writer.add_report(report, version)
        if on_object is not None:
            on_object(report)

    engine = make_engine(config, options, targets)
    chunk = config.chunk_size or options.limits.chunk_size
    settings = PipelineSettings(chunk_size=chunk, max_inflight=config.max_inflight or 2 * engine.slots * chunk,
                                sha256=config.sha256, max_objects_per_task=options.limits.max_objects_per_task,
                                log_format=config.log_format)
    pipeline = Pipeline(options, engine, settings, scan_id=scan_id, index=index, on_object=sink, retain=retain)
    try:
        with _stop_on_interrupt(pipeline):
            if on_start is not None:
                on_start(pipeline)
            run = pipeline.run(targets)
    except BaseException:
        engine.close()
        if writer is not None:
            writer.abort({"status": "failed", **_scan_row(config, targets, engine)})
        raise
    finally:
        if index is not None:
            index.close()
    if writer is not None:
        row = _scan_row(config, targets, engine)
        (writer.abort if run.interrupted else writer.close)(row)
    return run


@contextlib.contextmanager
def _stop_on_interrupt(pipeline: Pipeline) -> Iterator[None]:
    """The first Ctrl-C asks the pipeline to stop at a safe point, so the report and the store
    agree on what finished; a second one interrupts at once."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def first(signum: int, frame: object) -> None:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        pipeline.stop()

    previous = signal.signal(signal.SIGINT, first)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _scan_row(config: ScanConfig, targets: list[str], engine: Engine) -> dict[str, Any]:
    return {"targets": targets, "arguments": config.arguments, "engine": config.engine, "workers": engine.slots}


def totals_of(pipeline: Pipeline) -> Callable[[], Totals]:
    return lambda: pipeline.totals
