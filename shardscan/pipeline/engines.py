"""Engines run tasks; the driver decides which. Both engines take the same `Task` values and
return the same `WorkResult`s, so findings and hashes cannot depend on the engine.

An engine is asked for what finished (`completed`), never for a particular task: results
stream to the sink in completion order and the driver reduces them in canonical order.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

from shardscan.pipeline.tasks import Task, WorkResult, run_task


@dataclass(slots=True)
class TaskOutcome:
    """A task's results, or why it could not run (its worker died more often than allowed)."""

    task: Task
    results: list[WorkResult] | None = None
    failure: str | None = None


#: Longest an engine waits for a result before letting the driver look around.
WAIT_S = 1.0


class Engine(Protocol):
    #: Tasks the engine runs at once; the driver keeps about twice this many in flight.
    slots: int

    def submit(self, task: Task) -> None: ...

    def completed(self) -> Iterator[TaskOutcome]:
        """Wait until at least one task finished, then yield every finished one; may return
        with nothing after about WAIT_S, so the driver can notice a stop request."""
        ...

    def pending(self) -> int: ...

    def close(self) -> None: ...


def default_workers() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


class InlineEngine:
    """Runs each task in this process when it is submitted: one worker, no start-up cost,
    what a single-file CI scan wants."""

    slots = 1

    def __init__(self) -> None:
        self._done: list[TaskOutcome] = []

    def submit(self, task: Task) -> None:
        self._done.append(TaskOutcome(task, run_task(task)))

    def completed(self) -> Iterator[TaskOutcome]:
        done, self._done = self._done, []
        yield from done

    def pending(self) -> int:
        return len(self._done)

    def close(self) -> None:
        self._done.clear()
