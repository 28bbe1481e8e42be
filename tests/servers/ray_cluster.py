"""A local Ray cluster for the tests: 2 CPUs, no dashboard, no auth, its sockets and logs in
the session's temp dir, shut down at the end of the session."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

#: Object store size: small, so a 2-core CI machine's /dev/shm holds it.
OBJECT_STORE_BYTES = 128 * 1024 * 1024


@pytest.fixture(scope="session")
def ray_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    os.environ["RAY_AUTH_MODE"] = "disabled"
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    import ray

    temp = tmp_path_factory.mktemp("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False,
             object_store_memory=OBJECT_STORE_BYTES, _temp_dir=str(temp))
    try:
        yield ray
    finally:
        ray.shutdown()
