"""Device pools from a TVM RPC tracker: ``HOST:PORT:KEY`` -> resources ``device:rpc:KEY:N``.

One resource per server the tracker lists under the key when the run starts. A resource is
a slot, not a particular server: profiling on ``device:rpc:KEY:i`` asks the tracker for a
session with any free server of the key, and the scheduler never holds more slots than
there are servers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tuner._base import TunerError

RPC_FORMAT = "HOST:PORT:KEY (e.g. 127.0.0.1:9190:cpu)"
_KEY = re.compile(r"^[A-Za-z0-9_.-]+$")


@dataclass(frozen=True, slots=True)
class RpcPool:
    """A tracker address and the key its servers registered under."""

    host: str
    port: int
    key: str

    @property
    def pool(self) -> str:
        """The scheduler's pool name for these servers."""
        return f"device:rpc:{self.key}"

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def resources(self, servers: int) -> list[str]:
        return [f"{self.pool}:{i}" for i in range(servers)]


def parse_rpc(text: str) -> RpcPool:
    """Parse ``HOST:PORT:KEY``; raises TunerError naming what is wrong."""
    host, sep1, rest = (text or "").rpartition(":")
    host, sep2, port = host.rpartition(":")
    key = rest
    if not (sep1 and sep2 and host and port and key):
        raise TunerError(f"bad RPC pool {text!r}: expected {RPC_FORMAT}")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise TunerError(f"bad RPC pool {text!r}: port must be 1..65535, got {port!r}")
    if not _KEY.match(key):
        raise TunerError(f"bad RPC pool {text!r}: key may hold letters, digits, '_', '.', '-'")
    return RpcPool(host.strip("[]"), int(port), key)


def discover(pool: RpcPool, *, timeout_s: float = 5.0) -> list[str]:
    """Resource names for the servers the tracker lists under the pool's key.

    Raises TunerError when the tracker cannot be reached or lists no server for the key.
    """
    from tuner.metaschedule.run import DeviceUnavailable, tracker_servers

    try:
        servers = tracker_servers(pool.host, pool.port, pool.key, timeout_s=timeout_s)
    except DeviceUnavailable as exc:
        raise TunerError(str(exc)) from None
    if servers == 0:
        raise TunerError(
            f"RPC tracker {pool.address} lists no server under key {pool.key!r} "
            f"(start one with: python -m tvm.exec.rpc_server --tracker {pool.address} "
            f"--key {pool.key})"
        )
    return pool.resources(servers)
