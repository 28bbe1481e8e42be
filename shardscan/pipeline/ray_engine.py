"""The Ray engine: the same tasks as the local engine, as Ray tasks on a cluster.

Workers get work items naming (uri, range) and read the bytes from storage themselves; the
driver only sees results. Workers log (with `--log-format`) to their own stderr, which Ray keeps
in its session logs (`logs/worker-*.err`) rather than prefixing it into the driver's output.
Backpressure is the driver's bounded window of tasks in flight (`ray.wait` for whichever
finishes first). A task whose worker dies is retried by Ray up to `max_retries` times; after
that its objects are reported as errors and the scan goes on.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

from shardscan.pipeline.engines import WAIT_S, TaskOutcome
from shardscan.pipeline.tasks import Task, run_task


class RayEngine:
    def __init__(self, address: str | None, workers: int | None, max_retries: int,
                 init_kwargs: dict[str, Any] | None = None, task_fn: Any = None) -> None:
        """Join the cluster at `address` (or RAY_ADDRESS), else start a local one.

        `task_fn` replaces the function each task runs (it must behave like `run_task`): for
        fault-injection tests only.
        """
        import ray

        self._ray = ray
        self._owns_cluster = False
        if not ray.is_initialized():
            address = address or os.environ.get("RAY_ADDRESS") or None
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                                      "configure_logging": False, "runtime_env": {"env_vars": _forwarded_env()}}
            if address is None and workers:
                kwargs["num_cpus"] = workers
            kwargs.update(init_kwargs or {})
            ray.init(address=address, **kwargs)
            self._owns_cluster = True
        cpus = int(ray.cluster_resources().get("CPU", 1))
        self.slots = max(1, min(workers or cpus, cpus) if workers else cpus)
        self._remote = ray.remote(task_fn or run_task).options(num_cpus=1, max_retries=max_retries,
                                                               retry_exceptions=False)
        self._refs: dict[Any, Task] = {}

    def submit(self, task: Task) -> None:
        self._refs[self._remote.remote(task)] = task

    def pending(self) -> int:
        return len(self._refs)

    def completed(self) -> Iterator[TaskOutcome]:
        if not self._refs:
            return
        ready, _ = self._ray.wait(list(self._refs), num_returns=1, timeout=WAIT_S)
        if not ready:
            return
        ready, _ = self._ray.wait(list(self._refs), num_returns=len(self._refs), timeout=0)
        for ref in ready:
            task = self._refs.pop(ref)
            try:
                yield TaskOutcome(task, self._ray.get(ref))
            except self._ray.exceptions.RayError as exc:
                yield TaskOutcome(task, failure=f"ray task failed after retries: {type(exc).__name__}")

    def close(self) -> None:
        for ref in self._refs:
            self._ray.cancel(ref, force=True)
        self._refs.clear()
        if self._owns_cluster:
            self._ray.shutdown()


def _forwarded_env() -> dict[str, str]:
    """What workers on other nodes need to reach the same stores as the driver: endpoints,
    not credentials (each node uses its own)."""
    names = ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3",
             "AWS_DEFAULT_REGION", "R2_ENDPOINT_URL", "R2_ACCOUNT_ID", "STORAGE_EMULATOR_HOST", "HF_ENDPOINT",
             "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "NO_GCE_CHECK")
    return {name: os.environ[name] for name in names if name in os.environ}
