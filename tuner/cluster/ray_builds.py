"""Builds on a Ray node: the build pool of a ``client:NODE:i`` resource.

Each such resource has one Ray actor on its node (``num_cpus=1``, pinned to the node by
``NodeAffinitySchedulingStrategy``), holding an ordinary ``BuildPool`` of one worker pinned to
the resource's core: TVM is imported once per node core, a crashing or hanging build fails
alone, exactly as on this machine. A build stage sends the batch's modules and the target to
the actor and gets each candidate's shared library back as bytes, written here under this
pool's scratch folder: the profiler (the local device, or an RPC server through the tracker)
takes it from there as from a local build. Select and update never leave this process.

If the actor dies mid-build (its node died, or was killed), ``build`` raises ``NodeLost``:
the job's driver retries the stage, and ``on_lost`` tells the cluster to take the node out,
so the retry runs on another node's resource. Every build records its ``BuildTiming``: how
long the batch waited to start on the node, how long the builds took, and how long the
artifacts took to come back.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tuner._base import one_line
from tuner.metaschedule.build import BuildOutcome, write_artifact

if TYPE_CHECKING:
    from tvm.ir import IRModule
    from tvm.target import Target

READY_TIMEOUT_S = 120.0  # an actor's worker starts and imports TVM
DEADLINE_GRACE_S = 60.0  # beyond the builds' own timeouts, before a batch is given up


class NodeLost(RuntimeError):
    """The node a build stage ran on went away (its builder died) mid-build."""


@dataclass(frozen=True, slots=True)
class BuildTiming:
    """One build stage on a node: seconds from the call to the node starting the batch
    (``dispatch_s``), building it there (``build_s``), and from the node's last build to
    the artifacts written here (``transfer_s``), with the artifacts' total size."""

    candidates: int
    dispatch_s: float
    build_s: float
    transfer_s: float
    artifact_bytes: int

    @property
    def overhead_s(self) -> float:
        return self.dispatch_s + self.transfer_s


class NodeBuilder:
    """Runs on a node, as a Ray actor: a one-worker ``BuildPool`` pinned to ``cores``."""

    def __init__(self, cores: Sequence[int] | None, timeout_s: float) -> None:
        from tuner.metaschedule.build import BuildPool

        self._pool = BuildPool(cores, workers=1, timeout_s=timeout_s)

    def ready(self) -> int:
        """Start the build worker (it imports TVM); the actor's PID."""
        self._pool.start()
        return os.getpid()

    def build(
        self, mods: Sequence[IRModule], target: Target
    ) -> tuple[float, float, list[tuple[bytes | None, str | None]]]:
        """Build the batch: (when it started, when it ended, each library's bytes or error)."""
        from tuner.metaschedule.build import read_artifact

        started = time.time()
        outcomes = self._pool.build(mods, target)
        ended = time.time()
        return (
            started,
            ended,
            [
                (read_artifact(o.artifact), None) if o.artifact else (None, o.error)
                for o in outcomes
            ],
        )


class RayBuildPool:
    """The build pool of one client resource on a Ray node (``BuildPool``'s interface).

    ``node_id`` is the Ray node, ``cores`` the node's cores the builds are pinned to (None:
    not pinned), ``on_lost(reason)`` is called when the actor dies mid-build. Artifacts go
    under ``scratch_dir`` (one of its own by default, removed by ``close``; a shared one
    outlives the pool, so candidates built before a node left can still be profiled).
    """

    def __init__(
        self,
        resource: str,
        node_id: str,
        cores: Sequence[int] | None,
        *,
        timeout_s: float = 30.0,
        on_lost: Callable[[str], None] | None = None,
        scratch_dir: str | None = None,
    ) -> None:
        self.resource = resource
        self.node_id = node_id
        self.cores = tuple(cores) if cores else None
        self.timeout_s = timeout_s
        self.on_lost = on_lost
        self._own_scratch = scratch_dir is None
        self.scratch_dir = scratch_dir or tempfile.mkdtemp(prefix="tuneloom-ray-build-")
        self.timings: list[BuildTiming] = []
        self.building = False  # a batch is on the node now
        self._actor: Any = None
        self._lock = threading.Lock()

    @property
    def pids(self) -> list[int]:
        return []  # the workers are on the node, not here

    def start(self) -> None:
        """Start the node's builder now (normally on the first build)."""
        import ray

        try:
            self._started_actor()
        except ray.exceptions.RayError as exc:
            self._lost(exc)

    def build(self, mods: Sequence[IRModule], target: Target) -> list[BuildOutcome]:
        """Build each module on the node; failures are per candidate, except a lost node
        (``NodeLost``)."""
        import ray

        if not mods:
            return []
        try:
            actor = self._started_actor()
            called = time.time()
            ref = actor.build.remote(list(mods), target)
            deadline = self.timeout_s * len(mods) + DEADLINE_GRACE_S
            self.building = True
            started, ended, results = ray.get(ref, timeout=deadline)
        except ray.exceptions.GetTimeoutError:
            self._kill_actor()
            return [BuildOutcome(None, f"build on {self.resource} timed out")] * len(mods)
        except ray.exceptions.RayTaskError as exc:  # the builder itself raised: a bug
            message = f"build on {self.resource} raised: {one_line(exc, last=True)}"
            raise RuntimeError(message) from None
        except ray.exceptions.RayError as exc:
            raise self._lost(exc) from None
        finally:
            self.building = False
        outcomes = [
            BuildOutcome(write_artifact(data, self.scratch_dir)) if data is not None
            else BuildOutcome(None, error)
            for data, error in results
        ]  # fmt: skip
        self.timings.append(
            BuildTiming(
                candidates=len(mods),
                dispatch_s=max(0.0, started - called),
                build_s=ended - started,
                transfer_s=max(0.0, time.time() - ended),
                artifact_bytes=sum(len(data) for data, _ in results if data is not None),
            )
        )
        return outcomes

    def close(self) -> None:
        """Stop the node's builder; remove the scratch folder if this pool made it."""
        self._kill_actor()
        if self._own_scratch:
            shutil.rmtree(self.scratch_dir, ignore_errors=True)

    def _started_actor(self) -> Any:
        import ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        with self._lock:
            if self._actor is None:
                actor = (
                    ray.remote(NodeBuilder)
                    .options(
                        num_cpus=1,
                        max_restarts=0,
                        scheduling_strategy=NodeAffinitySchedulingStrategy(
                            self.node_id, soft=False
                        ),
                    )
                    .remote(self.cores, self.timeout_s)
                )
                ray.get(actor.ready.remote(), timeout=READY_TIMEOUT_S)
                self._actor = actor
            return self._actor

    def _kill_actor(self) -> None:
        import ray

        with self._lock:
            actor, self._actor = self._actor, None
        if actor is not None and ray.is_initialized():
            with contextlib.suppress(Exception):  # already gone with its node
                ray.kill(actor)

    def _lost(self, exc: BaseException) -> NodeLost:
        with self._lock:
            self._actor = None
        reason = f"the builder of {self.resource} died: {one_line(exc, last=True)}"
        if self.on_lost is not None:
            self.on_lost(reason)
        return NodeLost(reason)
