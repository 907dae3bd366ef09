"""A real `tuneloom server` in a subprocess on a free loopback port, stopped by PID (for the
service's tests and ``benchmarks/server_bench.py``)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from tuneloom.client import ServerClient, ServerUnavailable

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServerProcess:
    """``tuneloom server --db DB`` (plus ``args``) in a session of its own."""

    def __init__(self, db: Path, *args: str) -> None:
        self.db, self.args = db, args
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[str] | None = None

    def start(self, timeout: float = 60.0) -> float:
        """Start it; the seconds until its API answered."""
        started = time.monotonic()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tuneloom", "server", "--db", str(self.db),
             "--port", str(self.port), "--no-library", *self.args],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)}, start_new_session=True,
        )  # fmt: skip
        client = ServerClient(self.url, timeout=5)
        while True:
            try:
                client.health()
                return time.monotonic() - started
            except ServerUnavailable:
                if self.proc.poll() is not None:
                    output = self.proc.stdout.read() if self.proc.stdout else ""
                    raise RuntimeError(f"the server exited at start:\n{output}") from None
                if time.monotonic() - started > timeout:
                    raise RuntimeError(f"the server did not answer in {timeout:g} s") from None
                time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        """SIGTERM (SIGKILL to its session after 30 s)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
