"""A real Ray head and worker nodes on 127.0.0.1 for tests, stopped by process group.

Each node is ``ray start --block`` in a process group of its own (with its raylet, GCS and
workers), one CPU, no dashboard, a small object store, its own temp folder and ports.
``stop`` sends SIGTERM to the group, then SIGKILL to what is left; ``kill`` is a node dying
(SIGKILL at once).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path

from tests.tuner.rpc_fixtures import HOST, free_port

ROOT = Path(__file__).resolve().parents[2]
RAY = str(Path(sys.executable).with_name("ray"))
START_TIMEOUT_S = 120.0


def node_env(first: Path | None = None) -> dict[str, str]:
    """A node's environment: this checkout importable (after ``first``, when given), no usage
    reporting."""
    env = dict(os.environ)
    paths = [str(first) if first else None, str(ROOT), env.get("PYTHONPATH")]
    env["PYTHONPATH"] = os.pathsep.join(filter(None, paths))
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    env.pop("RAY_ADDRESS", None)
    return env


@dataclass
class RayNodeProcess:
    """One ``ray start --block`` process (and its process group)."""

    proc: subprocess.Popen[bytes]
    log: Path
    node_id: str = ""  # the Ray node id, once the cluster lists it

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        """The node dies: every process of its group gets SIGKILL."""
        with suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        """Stop the node: SIGTERM to its group, SIGKILL to what is left after 10 s."""
        with suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        with suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)
        self.kill()


@dataclass
class RayTestCluster:
    """A head node and the worker nodes added to it."""

    port: int
    folder: Path
    head: RayNodeProcess
    workers: list[RayNodeProcess] = field(default_factory=list)

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    def add_worker(
        self, cpus: int = 1, core: int | None = None, path_first: Path | None = None
    ) -> RayNodeProcess:
        """Start one more node declaring ``cpus`` (its processes pinned to ``core`` if
        given; ``path_first`` put before this checkout on its Python path) and wait until the
        cluster lists it."""
        before = self.alive_nodes()
        name = f"worker{len(self.workers)}_{time.monotonic_ns() % 10_000}"
        node = _start(
            self.folder / name, ["--address", self.address], cpus=cpus, core=core,
            env=node_env(path_first),
        )  # fmt: skip
        self.workers.append(node)
        _wait(lambda: bool(self.alive_nodes() - before), node, "the worker node to join")
        node.node_id = (self.alive_nodes() - before).pop()
        return node

    def alive_nodes(self) -> set[str]:
        """The ids of the nodes the head lists as alive (asked from a fresh process)."""
        code = (
            "import ray,logging;"
            f"ray.init(address='{self.address}',logging_level=logging.ERROR,log_to_driver=False);"
            "print(' '.join(n['NodeID'] for n in ray.nodes() if n['Alive']))"
        )
        out = subprocess.run(
            [sys.executable, "-c", code], env=node_env(), capture_output=True, timeout=60
        )
        lines = out.stdout.decode().strip().splitlines() if out.returncode == 0 else []
        return set(lines[-1].split()) if lines else set()

    def stop(self) -> None:
        for node in [*self.workers, self.head]:
            node.stop()


def start_cluster(folder: Path) -> RayTestCluster:
    """A head node on a free port of 127.0.0.1; raises RuntimeError if it does not start."""
    port = free_port()
    head = _start(
        folder / "head",
        ["--head", f"--port={port}", "--include-dashboard=false", "--ray-client-server-port",
         str(free_port()), "--node-manager-port", str(free_port())],
    )  # fmt: skip
    cluster = RayTestCluster(port, folder, head)
    try:
        _wait(lambda: bool(cluster.alive_nodes()), head, "the head node to start")
    except BaseException:
        head.stop()
        raise
    return cluster


def _start(
    folder: Path,
    args: list[str],
    *,
    cpus: int = 1,
    core: int | None = None,
    env: dict[str, str] | None = None,
) -> RayNodeProcess:
    folder.mkdir(parents=True)
    log = folder / "ray.log"
    pinned = ["taskset", "-c", str(core)] if core is not None else []
    command = [
        *pinned, RAY, "start", "--block", *args, f"--node-ip-address={HOST}",
        f"--num-cpus={cpus}", "--object-store-memory=100000000", f"--temp-dir={folder}",
        "--disable-usage-stats",
    ]  # fmt: skip
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env or node_env(),
            start_new_session=True,
        )
    return RayNodeProcess(proc, log)


def _wait(ready: object, node: RayNodeProcess, what: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if not node.alive():
            raise RuntimeError(f"ray start exited: {node.log.read_text()[-2000:]}")
        if ready():  # type: ignore[operator]
            return
        time.sleep(0.5)
    node.stop()
    raise RuntimeError(f"timed out waiting for {what}")
