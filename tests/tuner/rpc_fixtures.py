"""A real TVM RPC tracker and servers on 127.0.0.1 for tests, stopped by PID.

``rpc_cluster`` starts ``python -m tvm.exec.rpc_tracker`` and N ``python -m
tvm.exec.rpc_server`` processes on free ports, waits until the tracker lists every server,
and in the end kills each process together with its children (the ``tvm.exec.popen_worker``
that really serves, and its per-session processes).
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field

import psutil

from tuner.metaschedule.run import DeviceUnavailable, tracker_servers

HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def kill_tree(proc: subprocess.Popen[bytes]) -> None:
    """Kill a process and every process below it, by PID."""
    try:
        children = psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        children = []
    for process in [*children]:
        with suppress(psutil.NoSuchProcess):
            process.kill()
    with suppress(ProcessLookupError):
        proc.kill()
    with suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=10)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not all(_dead(p) for p in children):
        time.sleep(0.05)


def _dead(process: psutil.Process) -> bool:
    """Gone, or a zombie (killed; its new parent reaps it)."""
    try:
        return process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@dataclass
class RpcCluster:
    key: str
    port: int
    tracker: subprocess.Popen[bytes]
    servers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def host(self) -> str:
        return HOST

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}:{self.key}"

    def listed(self) -> int:
        """How many servers the tracker lists under the key now."""
        return tracker_servers(HOST, self.port, self.key, timeout_s=5)

    def add_server(self, wait_s: float = 60.0) -> subprocess.Popen[bytes]:
        """Start one more server under the key and wait until the tracker lists it."""
        before = self.listed()
        port = free_port()
        server = _spawn(
            "tvm.exec.rpc_server",
            "--host", HOST, "--port", str(port), "--port-end", str(port + 1),
            "--tracker", f"{HOST}:{self.port}", "--key", self.key,
        )  # fmt: skip
        self.servers.append(server)
        _wait(lambda: self.listed() > before, wait_s, f"server {len(self.servers)} to register")
        return server

    def busy_server(self) -> subprocess.Popen[bytes] | None:
        """A server that is serving a session now (it has a session process), if any."""
        for server in self.servers:
            if server.poll() is not None:
                continue
            with suppress(psutil.NoSuchProcess):
                if len(psutil.Process(server.pid).children(recursive=True)) >= 2:
                    return server
        return None

    def kill_server(self, server: subprocess.Popen[bytes]) -> None:
        kill_tree(server)

    def close(self) -> None:
        for server in self.servers:
            kill_tree(server)
        kill_tree(self.tracker)


@contextmanager
def rpc_cluster(key: str = "tltest", servers: int = 2) -> Iterator[RpcCluster]:
    """A tracker with ``servers`` servers under ``key``, all stopped (by PID) at the end."""
    cluster = None
    try:
        for _ in range(5):  # a free port can be taken between probing and binding
            port = free_port()
            tracker = _spawn(
                "tvm.exec.rpc_tracker", "--host", HOST, "--port", str(port),
                "--port-end", str(port + 1),
            )  # fmt: skip
            cluster = RpcCluster(key=key, port=port, tracker=tracker)
            if _answers(cluster, 30.0):
                break
            kill_tree(tracker)
            cluster = None
        if cluster is None:
            raise RuntimeError("could not start an RPC tracker")
        for _ in range(servers):
            cluster.add_server()
        yield cluster
    finally:
        if cluster is not None:
            cluster.close()


def _spawn(module: str, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", module, *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _answers(cluster: RpcCluster, wait_s: float) -> bool:
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if cluster.tracker.poll() is not None:
            return False
        with suppress(DeviceUnavailable):
            cluster.listed()
            return True
        time.sleep(0.2)
    return False


def _wait(condition: Callable[[], bool], wait_s: float, what: str) -> None:
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise RuntimeError(f"timed out waiting for {what}")
