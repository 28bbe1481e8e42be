"""Real object-store servers on 127.0.0.1 for the store tests: SeaweedFS (S3) and
fake-gcs-server (GCS), started by the tests themselves and stopped by PID.

Emulators rather than mocks, because what the store modules must get right is the wire
behaviour: pagination tokens, ranged GETs, error codes, ETags and generations.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import time
from collections.abc import Callable

#: Go servers open a gRPC port at each HTTP port + this offset (SeaweedFS does).
GRPC_OFFSET = 10000


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_ports(count: int, *, room: int = GRPC_OFFSET) -> list[int]:
    """`count` ports that are free on 127.0.0.1 together with each port + `room`.

    Picked at random from a range below the kernel's ephemeral range, so that two test runs
    on one machine (or a client's outgoing connection) rarely collide; a server that still
    loses a race fails to start and says so.
    """
    chosen: list[int] = []
    rng = random.Random()
    for _ in range(10000):
        port = rng.randrange(15000, 32768 - room - 1)
        taken = {p for c in chosen for p in (c, c + room)}
        if port in taken or port + room in taken:
            continue
        if _port_free(port) and (room == 0 or _port_free(port + room)):
            chosen.append(port)
            if len(chosen) == count:
                return chosen
    raise RuntimeError(f"could not find {count} free ports with +{room} room on 127.0.0.1")


def wait_until(ready: Callable[[], bool], proc: subprocess.Popen, *, timeout: float, what: str,
               log_path: str | None = None) -> None:
    """Poll `ready()` until it holds; fail loudly (with the server's log tail) if the process
    exits or the deadline passes, so a broken server never looks like a failing test."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with status {proc.returncode} before it was ready"
                               f"{_log_tail(log_path)}")
        try:
            if ready():
                return
        except OSError:
            pass
        time.sleep(0.1)
    stop_process(proc)
    raise RuntimeError(f"{what} was not ready within {timeout:.0f} s{_log_tail(log_path)}")


def port_answers(port: int) -> bool:
    """True once something accepts TCP connections on 127.0.0.1:port."""
    with socket.create_connection(("127.0.0.1", port), timeout=1):
        return True


def stop_process(proc: subprocess.Popen, *, timeout: float = 15.0) -> None:
    """SIGTERM to this process's PID, SIGKILL if it is still alive after `timeout` seconds."""
    if proc.poll() is not None:
        return
    try:
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=timeout)
    except ProcessLookupError:
        pass


def _log_tail(path: str | None, limit: int = 4000) -> str:
    if not path or not os.path.exists(path):
        return ""
    with open(path, "rb") as fh:
        fh.seek(max(0, os.path.getsize(path) - limit))
        return "\n--- server output (tail) ---\n" + fh.read().decode(errors="replace")
