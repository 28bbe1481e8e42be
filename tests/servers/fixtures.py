"""Pytest fixtures for the object-store servers (registered from tests/conftest.py).

Each server is session-scoped: it starts the first time a test asks for it (SeaweedFS takes
a few seconds), and is stopped by PID at the end of the session. While it runs, the process
environment points clients at it, the way a user's environment would point them at a real
store, so the code under test is exercised through its normal configuration path.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.servers.fakegcs import FakeGcsServer
from tests.servers.seaweed import ADMIN_KEY, ADMIN_SECRET, SeaweedServer

#: Variables that would point a client at a real account or another endpoint.
_AWS_ISOLATE = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN",
                "AWS_ENDPOINT_URL_S3", "AWS_NO_SIGN_REQUEST", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE",
                "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                "R2_ENDPOINT_URL", "R2_ACCOUNT_ID", "R2_ACCESS_KEY_ID", "R2_SECRET_ACCESS_KEY")


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedServer]:
    """A SeaweedFS S3 endpoint on 127.0.0.1, with AWS_* set so botocore/s3fs use it.

    Has `endpoint`, `make_bucket({key: bytes}) -> name`, `delete_object(bucket, key)`.
    """
    from shardscan.storage import s3

    base = tmp_path_factory.mktemp("seaweedfs")
    srv = SeaweedServer(base)
    config = base / "aws-config-none"  # an empty, private AWS config: nothing from ~/.aws
    config.write_text("")
    try:
        srv.start()
        with pytest.MonkeyPatch.context() as mp:
            for name in _AWS_ISOLATE:
                mp.delenv(name, raising=False)
            mp.setenv("AWS_CONFIG_FILE", str(config))
            mp.setenv("AWS_SHARED_CREDENTIALS_FILE", str(config))
            mp.setenv("AWS_EC2_METADATA_DISABLED", "true")
            mp.setenv("AWS_ACCESS_KEY_ID", ADMIN_KEY)
            mp.setenv("AWS_SECRET_ACCESS_KEY", ADMIN_SECRET)
            mp.setenv("AWS_DEFAULT_REGION", "us-east-1")
            mp.setenv("AWS_ENDPOINT_URL", srv.endpoint)
            s3.clear_cache()
            yield srv
    finally:
        s3.clear_cache()
        srv.stop()


@pytest.fixture(scope="session")
def gcs_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeGcsServer]:
    """A fake-gcs-server on 127.0.0.1, with STORAGE_EMULATOR_HOST set so gcsfs uses it.

    Has `endpoint`, `make_bucket({key: bytes}) -> name`, `put_object`, `delete_object`.
    """
    # Before gcsfs is imported anywhere: otherwise each call waits out a gRPC probe.
    os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")
    from shardscan.storage import gcs

    srv = FakeGcsServer(tmp_path_factory.mktemp("fake-gcs"))
    try:
        srv.start()
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("STORAGE_EMULATOR_HOST", srv.endpoint)
            mp.setenv("NO_GCE_CHECK", "true")
            mp.setenv("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")
            gcs.clear_cache()
            yield srv
    finally:
        gcs.clear_cache()
        srv.stop()
