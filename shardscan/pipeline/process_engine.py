"""The local engine's process pool (imported only when a scan uses more than one worker)."""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

from shardscan.pipeline.engines import TaskOutcome
from shardscan.pipeline.tasks import Task, WorkResult, run_task


class ProcessEngine:
    """A bounded pool of worker processes (parsing is CPU-bound; threads would share one GIL).

    Workers are started from a fork server, so a driver that already runs store client
    threads (s3fs, gcsfs) never forks them. A worker that dies breaks the whole pool in
    CPython; the pool is then rebuilt and every unfinished task resubmitted, each at most
    `max_retries` times before it is reported as failed.
    """

    def __init__(self, workers: int, max_retries: int) -> None:
        self.slots = max(1, workers)
        self.max_retries = max_retries
        self._ctx = multiprocessing.get_context("forkserver" if os.name == "posix" else "spawn")
        if os.name == "posix":
            self._ctx.set_forkserver_preload(["shardscan.pipeline.tasks"])
        self._pool = self._new_pool()
        self._futures: dict[Future[list[WorkResult]], Task] = {}
        self._tries: dict[int, int] = {}

    def _new_pool(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(max_workers=self.slots, mp_context=self._ctx)

    def submit(self, task: Task) -> None:
        self._futures[self._pool.submit(run_task, task)] = task

    def pending(self) -> int:
        return len(self._futures)

    def completed(self) -> Iterator[TaskOutcome]:
        if not self._futures:
            return
        done, _ = wait(self._futures, return_when=FIRST_COMPLETED)
        broken: list[Task] = []
        for future in done:
            task = self._futures.pop(future)
            try:
                yield TaskOutcome(task, future.result())
            except BrokenProcessPool:
                broken.append(task)
            except Exception as exc:  # a task that raised (should not happen: run_task catches)
                yield TaskOutcome(task, failure=f"worker failed: {type(exc).__name__}: {exc}")
        if broken:
            yield from self._recover(broken)

    def _recover(self, broken: list[Task]) -> Iterator[TaskOutcome]:
        """Rebuild the pool; resubmit the tasks it lost, unless they used up their tries."""
        lost = broken + list(self._futures.values())
        self._futures.clear()
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._pool = self._new_pool()
        for task in lost:
            tries = self._tries[id(task)] = self._tries.get(id(task), 0) + 1
            if tries > self.max_retries:
                yield TaskOutcome(task, failure=f"worker died {tries} times running this object's task")
            else:
                self.submit(task)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
