"""The nodes of a Ray cluster as client resources: find them, check them, name their cores.

The scheduler stays in the tuning process; each core a node declares (its Ray ``CPU``
resource) becomes one resource ``client:NODE:i`` (``NODE``: the first 8 hex digits of the Ray
node id) in the scheduler's ``node`` pool, which takes the builds; they run on that node
(``ray_builds``). Select and update stay on the tuning process's own ``client:N`` cores,
where a job's search state lives. A node is taken only after a tiny Ray
task on it says it runs the same tuneloom and TVM as this process and may use the cores it
declares; otherwise it is refused with one line naming it. ``RayCluster.watch`` polls the
cluster: nodes that join start taking stages, nodes that leave (or whose builder died)
leave the scheduler.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tuner._base import CLIENT_POOL, TunerError, one_line

log = logging.getLogger(__name__)

AUTO = "auto"
POLL_S = 3.0  # how often the cluster is asked which nodes are alive
PROBE_TIMEOUT_S = 60.0  # a node's first Ray worker imports TVM: seconds on a loaded machine
SUSPECT_WAIT_S = 20.0  # a node whose builder died is checked again after this long
CONNECT_TIMEOUT_S = 3.0
CURRENT_CLUSTER = Path("/tmp/ray/ray_current_cluster")  # where `ray start --head` notes itself


@dataclass(frozen=True, slots=True)
class RayNode:
    """An alive node as the cluster lists it: id, address and the CPUs it declares."""

    node_id: str
    address: str
    cpus: int

    @property
    def short(self) -> str:
        """The id's first 8 hex digits: what resource names and messages call the node."""
        return self.node_id[:8]

    def describe(self) -> str:
        return f"Ray node {self.short} ({self.address})"


@dataclass(frozen=True, slots=True)
class NodeFacts:
    """What a node's own Ray worker reports: its tuneloom and TVM versions and the cores
    its processes may run on."""

    tuneloom: str
    tvm: str
    cores: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class NodeSlot:
    """A client resource on a node: the node and the cores its builds are pinned to (None:
    the node shares its cores with other work, so the OS places them)."""

    node: RayNode
    cores: tuple[int, ...] | None


def resolve_address(
    text: str, env: Mapping[str, str] | None = None, current: Path = CURRENT_CLUSTER
) -> str:
    """``HOST:PORT`` of the cluster ``--ray`` names: ``auto`` means ``$RAY_ADDRESS`` or the
    cluster ``ray start --head`` last started on this machine."""
    env = os.environ if env is None else env
    text = text.strip()
    if text == AUTO:
        found = env.get("RAY_ADDRESS", "").strip()
        if not found and current.is_file():
            found = current.read_text().strip()
        if not found or found == AUTO:
            raise TunerError(
                f"--ray auto found no running Ray cluster (no RAY_ADDRESS, no {current}); "
                "start one with `ray start --head` or give --ray HOST:PORT"
            )
        text = found
    if "://" in text:
        raise TunerError(
            f"--ray {text!r}: give HOST:PORT of the Ray head's GCS (the port of `ray start "
            "--head --port`), not a Ray Client URL"
        )
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise TunerError(f"--ray {text!r}: give auto or HOST:PORT of the Ray head (its GCS port)")
    return f"{host}:{port}"


def check_reachable(address: str, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
    """Raise a one-line ``TunerError`` naming ``address`` unless something listens there."""
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s):
            return
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise TunerError(
            f"cannot reach the Ray cluster at {address} ({reason}); is `ray start --head` "
            "running there?"
        ) from None


def alive_nodes(listing: Iterable[Mapping[str, Any]]) -> list[RayNode]:
    """The alive nodes with at least one CPU, from ``ray.nodes()``, in a stable order."""
    nodes = [
        RayNode(
            node_id=str(entry["NodeID"]),
            address=str(entry.get("NodeManagerAddress", "?")),
            cpus=int(entry.get("Resources", {}).get("CPU", 0)),
        )
        for entry in listing
        if entry.get("Alive")
    ]
    return sorted((n for n in nodes if n.cpus > 0), key=lambda n: n.node_id)


def node_resources(node: RayNode) -> tuple[str, ...]:
    """The resources of a node's cores: ``client:NODE:0`` ... ``client:NODE:n-1``."""
    return tuple(f"{CLIENT_POOL}:{node.short}:{i}" for i in range(node.cpus))


def node_slots(node: RayNode, facts: NodeFacts) -> dict[str, NodeSlot]:
    """Each resource of a node and the core it is pinned to: core ``i`` of the node's cores
    when the node may use exactly the cores it declares, else unpinned."""
    pinned = len(facts.cores) == node.cpus
    return {
        name: NodeSlot(node, (facts.cores[i],) if pinned else None)
        for i, name in enumerate(node_resources(node))
    }


def node_refusal(node: RayNode, facts: NodeFacts, ours: NodeFacts) -> str | None:
    """Why a node cannot take builds (one line naming it), or None when it can."""
    for what in ("tuneloom", "tvm"):
        theirs, mine = getattr(facts, what), getattr(ours, what)
        if theirs != mine:
            name = "TVM" if what == "tvm" else what
            return (
                f"{node.describe()} refused: it runs {name} {theirs}, this server {mine}; "
                "install the same version there"
            )
    if len(facts.cores) < node.cpus:
        return (
            f"{node.describe()} refused: it declares {node.cpus} CPUs but its processes may "
            f"use only {len(facts.cores)} core(s); start it with --num-cpus {len(facts.cores)}"
        )
    return None


def local_facts() -> NodeFacts:
    """This process's tuneloom and TVM versions and cores (what every node must match)."""
    from tuner.metaschedule.build import tvm_version

    return NodeFacts(_tuneloom_version(), tvm_version(), tuple(sorted(os.sched_getaffinity(0))))


def _tuneloom_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("tuneloom")
    except PackageNotFoundError:
        return "unknown"


def _node_facts() -> tuple[str, str, tuple[int, ...]]:
    """Runs on a node, as a Ray task: its ``local_facts``."""
    facts = local_facts()
    return facts.tuneloom, facts.tvm, facts.cores


Joined = Callable[[RayNode, Sequence[str]], None]
Left = Callable[[RayNode, Sequence[str], str], None]


class RayCluster:
    """A connection to a Ray cluster and the nodes this process builds on.

    ``connect`` joins the cluster (never starts one) and takes every node that passes the
    check; ``slots`` maps each client resource to its node and core. ``watch`` starts a
    thread that polls the cluster every ``poll_s`` and calls ``on_join`` / ``on_leave``
    with a node's resources as nodes come and go. ``lost`` takes a node out at once (its
    builder died); it comes back if a later check finds it well.
    """

    def __init__(
        self,
        address: str,
        *,
        poll_s: float = POLL_S,
        probe_timeout_s: float = PROBE_TIMEOUT_S,
    ) -> None:
        self.address = resolve_address(address)
        self.poll_s = poll_s
        self.probe_timeout_s = probe_timeout_s
        self.slots: dict[str, NodeSlot] = {}
        self.refused: dict[str, str] = {}  # node id -> why (versions: for good)
        self._suspects: dict[str, float] = {}  # node id -> when its builder died
        self._ours: NodeFacts | None = None
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._on_join: Joined | None = None
        self._on_leave: Left | None = None

    @property
    def resources(self) -> tuple[str, ...]:
        with self._lock:
            return tuple(self.slots)

    def nodes(self) -> dict[RayNode, tuple[str, ...]]:
        """Each node taken, with its resources."""
        out: dict[RayNode, tuple[str, ...]] = {}
        with self._lock:
            for resource, slot in self.slots.items():
                out[slot.node] = (*out.get(slot.node, ()), resource)
        return out

    def connect(self) -> None:
        """Join the cluster and take its nodes; a one-line ``TunerError`` when the address
        cannot be reached or no node can take builds."""
        check_reachable(self.address)
        import ray

        try:
            ray.init(
                address=self.address,
                logging_level=logging.ERROR,
                log_to_driver=False,
                include_dashboard=False,
            )
        except Exception as exc:  # Ray raises several kinds for one thing: not joined
            raise TunerError(
                f"cannot join the Ray cluster at {self.address}: {one_line(exc)}"
            ) from None
        self._ours = local_facts()
        self.refresh()
        if not self.slots:
            reasons = "; ".join(self.refused.values()) or "no alive node declares a CPU"
            ray.shutdown()
            raise TunerError(f"no Ray node at {self.address} can take builds: {reasons}")

    def refresh(self) -> None:
        """Compare the cluster's alive nodes with the ones taken: take the new ones that
        pass the check, let go of the gone ones."""
        import ray

        nodes = {n.node_id: n for n in alive_nodes(ray.nodes())}
        with self._lock:
            taken = {slot.node.node_id: slot.node for slot in self.slots.values()}
        for node_id, node in taken.items():
            if node_id not in nodes:
                self._drop(node, "it left the Ray cluster")
        now = time.monotonic()
        for node_id, node in nodes.items():
            if node_id in taken or node_id in self.refused:
                continue
            if now - self._suspects.get(node_id, -SUSPECT_WAIT_S) < SUSPECT_WAIT_S:
                continue
            self._take(node)

    def watch(self, on_join: Joined, on_leave: Left) -> None:
        """Poll the cluster on a daemon thread until ``close``."""
        self._on_join, self._on_leave = on_join, on_leave
        if self._thread is None:
            self._thread = threading.Thread(target=self._poll, name="tuneloom-ray", daemon=True)
            self._thread.start()

    def lost(self, resource: str, reason: str) -> None:
        """The builder of ``resource`` died: its node leaves until a check finds it well."""
        with self._lock:
            slot = self.slots.get(resource)
            if slot is None:
                return
            self._suspects[slot.node.node_id] = time.monotonic()
        self._drop(slot.node, reason)

    def close(self) -> None:
        """Stop watching and leave the cluster (the cluster itself keeps running)."""
        self._stop.set()
        if self._thread is not None:  # a check in flight is abandoned after a few seconds
            self._thread.join(timeout=self.poll_s + 5.0)
        import ray

        ray.shutdown()

    def _poll(self) -> None:
        while not self._stop.wait(self.poll_s):
            try:
                self.refresh()
            except Exception as exc:  # the cluster may be restarting: try again next time
                log.warning("cannot list the Ray cluster's nodes: %s", one_line(exc))

    def _take(self, node: RayNode) -> None:
        facts = self._probe(node)
        if facts is None:
            return
        assert self._ours is not None
        refusal = node_refusal(node, facts, self._ours)
        if refusal is not None:
            self.refused[node.node_id] = refusal
            log.warning("%s", refusal)
            return
        slots = node_slots(node, facts)
        with self._lock:
            self.slots.update(slots)
            self._suspects.pop(node.node_id, None)
        log.info("%s joined: %s", node.describe(), ", ".join(slots))
        if self._on_join is not None:
            self._on_join(node, tuple(slots))

    def _drop(self, node: RayNode, reason: str) -> None:
        with self._lock:
            gone = [r for r, slot in self.slots.items() if slot.node.node_id == node.node_id]
            for resource in gone:
                del self.slots[resource]
        if gone:
            log.warning("%s left: %s", node.describe(), reason)
            if self._on_leave is not None:
                self._on_leave(node, tuple(gone), reason)

    def _probe(self, node: RayNode) -> NodeFacts | None:
        """A tiny task on the node reports its facts; None (checked again on a later poll)
        when it does not answer in time."""
        import ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        task = ray.remote(_node_facts).options(
            num_cpus=0,
            max_retries=0,
            scheduling_strategy=NodeAffinitySchedulingStrategy(node.node_id, soft=False),
        )
        ref = task.remote()
        try:
            tuneloom, tvm, cores = ray.get(ref, timeout=self.probe_timeout_s)
        except Exception as exc:
            ray.cancel(ref, force=True)
            log.warning("%s did not answer its check: %s", node.describe(), one_line(exc))
            self._suspects[node.node_id] = time.monotonic()
            return None
        return NodeFacts(str(tuneloom), str(tvm), tuple(int(c) for c in cores))
