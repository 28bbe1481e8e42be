"""The local engine's process pool (imported only when a scan uses more than one worker)."""

from __future__ import annotations

import multiprocessing
import os
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

from shardscan.pipeline.engines import WAIT_S, TaskOutcome
from shardscan.pipeline.tasks import Task, WorkResult, run_task


class ProcessEngine:
    """A bounded pool of worker processes (parsing is CPU-bound; threads would share one GIL).

    Workers are forked while the driver runs a single thread, else started from a fork server,
    so a driver that already runs store client threads (s3fs, gcsfs) never forks them. A
    worker that dies breaks the whole pool in CPython, and every task in flight is lost with it,
    without saying which one killed it. So the pool is rebuilt and the lost tasks become
    suspects, run one at a time: a suspect that breaks the pool alone is the culprit, retried up
    to `max_retries` times, then reported as failed; the innocent ones simply complete.
    """

    def __init__(self, workers: int, max_retries: int,
                 task_fn: Callable[[Task], list[WorkResult]] = run_task) -> None:
        """`task_fn` replaces `run_task` for fault-injection tests (a module-level function)."""
        self.slots = max(1, workers)
        self.task_fn = task_fn
        self.max_retries = max_retries
        self._ctx = multiprocessing.get_context(_start_method())
        if self._ctx.get_start_method() == "fork":
            _import_scanners()  # once here, shared by every forked worker
        elif self._ctx.get_start_method() == "forkserver":
            self._ctx.set_forkserver_preload(["shardscan.pipeline.tasks", *_scanner_modules()])
        self._pool = self._new_pool()
        self._futures: dict[Future[list[WorkResult]], Task] = {}
        self._waiting: deque[Task] = deque()
        self._suspects: deque[Task] = deque()
        self._tries: dict[int, int] = {}

    def _new_pool(self) -> ProcessPoolExecutor:
        # Workers come from a long-lived fork server; give them the driver's environment as it
        # is now (store endpoints, credentials), not as it was when the server started.
        return ProcessPoolExecutor(max_workers=self.slots, mp_context=self._ctx,
                                   initializer=_adopt_environment, initargs=(dict(os.environ),))

    def submit(self, task: Task) -> None:
        self._waiting.append(task)
        self._launch()

    def _launch(self) -> None:
        if self._suspects:
            if not self._futures:
                task = self._suspects.popleft()
                self._futures[self._pool.submit(self.task_fn, task)] = task
            return
        while self._waiting:
            task = self._waiting.popleft()
            self._futures[self._pool.submit(self.task_fn, task)] = task

    def pending(self) -> int:
        return len(self._futures) + len(self._waiting) + len(self._suspects)

    def completed(self) -> Iterator[TaskOutcome]:
        self._launch()
        if not self._futures:
            return
        done, _ = wait(self._futures, timeout=WAIT_S, return_when=FIRST_COMPLETED)
        broken = False
        for future in done:
            task = self._futures.pop(future)
            try:
                yield TaskOutcome(task, future.result())
            except BrokenProcessPool:
                self._futures[future] = task  # lost with the others; sorted out below
                broken = True
            except Exception as exc:  # a task that raised (should not happen: run_task catches)
                yield TaskOutcome(task, failure=f"worker failed: {type(exc).__name__}: {exc}")
        if broken:
            yield from self._recover()
        self._launch()

    def _recover(self) -> Iterator[TaskOutcome]:
        lost = list(self._futures.values())
        self._futures.clear()
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._pool = self._new_pool()
        if len(lost) > 1:
            self._suspects.extend(lost)
            return
        (task,) = lost
        tries = self._tries[id(task)] = self._tries.get(id(task), 0) + 1
        if tries > self.max_retries:
            yield TaskOutcome(task, failure=f"worker died {tries} times running this task")
        else:
            self._suspects.appendleft(task)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def _start_method() -> str:
    """fork when this process runs no other thread (workers start in milliseconds with the
    scanners already imported); a fork server once store clients run threads, whose locks a
    fork could copy in a held state; spawn where neither exists."""
    methods = multiprocessing.get_all_start_methods()
    if "fork" in methods and threading.active_count() == 1:
        return "fork"
    return "forkserver" if "forkserver" in methods else "spawn"


def _scanner_modules() -> list[str]:
    from shardscan.scanners import registry

    return sorted({entry.target.partition(":")[0] for entry in registry().values()})


def _import_scanners() -> None:
    from shardscan.scanners import registry

    for entry in registry().values():
        entry.load()


def _adopt_environment(environ: dict[str, str]) -> None:
    os.environ.clear()
    os.environ.update(environ)
