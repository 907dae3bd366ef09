"""The long-lived build and profile workers every job's stages run on, one set per resource."""

from __future__ import annotations

import shutil
import tempfile
import threading
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from tuner._base import TunerError, resource_pool
from tuner.cpus import CpuPlan, available_cpus, plan_cpus
from tuner.metaschedule.build import BuildPool
from tuner.metaschedule.intrinsics import load_tensor_intrinsics
from tuner.metaschedule.rpc import RpcPool
from tuner.metaschedule.run import EvalConfig, LocalProfiler, RPCProfiler
from tuner.metaschedule.settings import GPU_POOL, LOCAL_POOL

if TYPE_CHECKING:
    from tuner.cluster.ray_builds import RayBuildPool
    from tuner.cluster.ray_nodes import RayCluster


class StageWorkers:
    """The long-lived build and profile workers, one set per resource, shared by all jobs.

    ``client:N`` -> a build pool pinned to the plan's client cores; ``device:llvm:N`` -> a
    profiler pinned to the plan's device N cores; ``device:cuda:N`` -> a profiler driving
    this host's GPU N (``local_gpus`` of them); ``device:rpc:KEY:N`` -> an RPC profiler for
    the pool with that key. Workers start on first use (or all at once with ``start``).

    With a ``cluster`` (``--ray``) its nodes' cores, ``client:NODE:i``, are resources too:
    the builds run there (``tuner.cluster.ray_builds``), while select and update keep to
    ``client:N`` here, on the plan's client cores, where the search state lives.
    ``resources`` then changes as nodes come and go.
    """

    def __init__(
        self,
        *,
        clients: int = 1,
        local_devices: int = 1,
        local_gpus: int = 0,
        rpc_pools: Mapping[RpcPool, int] | None = None,
        plan: CpuPlan | None = None,
        build_timeout_s: float = 30.0,
        run_timeout_s: float = 10.0,
        evaluator: EvalConfig | None = None,
        build_workers: int | None = None,
        cluster: RayCluster | None = None,
    ) -> None:
        if clients < 1:
            raise TunerError(f"need at least one client resource, got {clients}")
        self.plan = plan or plan_cpus(available_cpus(), devices=local_devices)
        if len(self.plan.devices) < local_devices:
            raise TunerError(
                f"the CPU plan has {len(self.plan.devices)} devices, need {local_devices}"
            )
        self.build_timeout_s = build_timeout_s
        self.run_timeout_s = run_timeout_s
        self.evaluator = evaluator or EvalConfig()
        self.build_workers = build_workers
        self.rpc_pools = dict(rpc_pools or {})
        self.cluster = cluster
        names = [f"client:{i}" for i in range(clients)]
        names += [f"{LOCAL_POOL}:{i}" for i in range(local_devices)]
        names += [f"{GPU_POOL}:{i}" for i in range(local_gpus)]
        for pool, servers in self.rpc_pools.items():
            names += pool.resources(servers)
        self._own: tuple[str, ...] = tuple(names)
        # Candidates built on cluster nodes, kept until closed (a node may leave first).
        self._ray_scratch = tempfile.mkdtemp(prefix="tuneloom-ray-") if cluster else None
        self._builders: dict[str, BuildPool | RayBuildPool] = {}
        self._profilers: dict[str, LocalProfiler | RPCProfiler] = {}
        self._lock = threading.Lock()

    @property
    def resources(self) -> tuple[str, ...]:
        """Every resource now: the cluster nodes' cores (if any), then this machine's."""
        cluster = self.cluster.resources if self.cluster is not None else ()
        return cluster + self._own

    @property
    def device_cores(self) -> int:
        """Cores of one local device: the ``num-cores`` kernels are built for unless the
        target says otherwise (without local devices, the client's core count; give RPC
        servers on other machines their own ``num-cores`` in the target)."""
        return len(self.plan.devices[0]) if self.plan.devices else len(self.plan.client)

    def cores(self, resource: str) -> tuple[int, ...]:
        """The CPUs a local resource's work runs on (a client's, or a local device's)."""
        if resource.startswith("client:"):
            return self.plan.client
        if resource.startswith(LOCAL_POOL + ":"):
            return self.plan.devices[int(resource.rpartition(":")[2])]
        raise TunerError(f"{resource!r} is not a local resource: its cores are not here")

    def device_pools(self) -> list[str]:
        pools = {resource_pool(r) for r in self.resources}
        local = [p for p in (LOCAL_POOL, GPU_POOL) if p in pools]
        return local + [pool.pool for pool in self.rpc_pools]

    def builder(self, resource: str) -> BuildPool | RayBuildPool:
        """The build pool of a client resource, or of a local device lent to client work
        (pinned to that device's cores); a cluster node's on that node."""
        with self._lock:
            pool = self._builders.get(resource)
            if pool is None:
                # Builds run on client cores and on local CPU devices lent to client work.
                if (
                    resource not in self.resources
                    or resource.startswith("device:rpc:")
                    or resource_pool(resource) == GPU_POOL
                ):
                    raise TunerError(f"no client or local device resource {resource!r} here")
                if self.cluster is not None and resource in self.cluster.slots:
                    pool = self._ray_builder(resource)
                    self._builders[resource] = pool
                    return pool
                client = resource.startswith("client:")
                pool = BuildPool(
                    self.cores(resource),
                    workers=self.build_workers if client else None,
                    timeout_s=self.build_timeout_s,
                )
                self._builders[resource] = pool
            return pool

    def ray_build_timings(self) -> list[Any]:
        """Every build stage's ``BuildTiming`` on the cluster nodes still here."""
        with self._lock:
            pools = list(self._builders.values())
        return [timing for pool in pools for timing in getattr(pool, "timings", ())]

    def forget(self, resources: tuple[str, ...]) -> None:
        """Close the build pools of resources that went away (a node left the cluster)."""
        with self._lock:
            pools = [self._builders.pop(r) for r in resources if r in self._builders]
        for pool in pools:
            pool.close()

    def _ray_builder(self, resource: str) -> RayBuildPool:
        from tuner.cluster.ray_builds import RayBuildPool

        assert self.cluster is not None
        cluster, slot = self.cluster, self.cluster.slots[resource]
        return RayBuildPool(
            resource,
            slot.node.node_id,
            slot.cores,
            timeout_s=self.build_timeout_s,
            on_lost=lambda reason: cluster.lost(resource, reason),
            scratch_dir=self._ray_scratch,
        )

    def profiler(self, resource: str) -> LocalProfiler | RPCProfiler:
        with self._lock:
            profiler = self._profilers.get(resource)
            if profiler is None:
                profiler = self._new_profiler(resource)
                self._profilers[resource] = profiler
            return profiler

    def start(self) -> None:
        """Start every worker now, while this process loads the host's tensor intrinsics
        (what the first TuneContext needs), so that the first stages do not pay for
        start-up."""
        from tvm.target import Target

        builders = [r for r in self.resources if r.startswith("client:")]
        if self.cluster is not None and self.cluster.slots:  # builds run on the nodes
            builders = [r for r in builders if r in self.cluster.slots]
        starters = [self.builder(r).start for r in builders]
        starters += [
            self.profiler(r).start
            for r in self.resources
            if resource_pool(r) in (LOCAL_POOL, GPU_POOL)
        ]
        with ThreadPoolExecutor(max(1, len(starters))) as pool:
            futures = [pool.submit(start) for start in starters]
            load_tensor_intrinsics(Target("llvm"))  # local devices are this host's CPU
            for future in futures:
                future.result()

    def close(self) -> None:
        """Stop every worker process."""
        with self._lock:
            builders, self._builders = self._builders, {}
            profilers, self._profilers = self._profilers, {}
        for builder in builders.values():
            builder.close()
        for profiler in profilers.values():
            profiler.close()
        if self._ray_scratch is not None:
            shutil.rmtree(self._ray_scratch, ignore_errors=True)

    def __enter__(self) -> StageWorkers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _new_profiler(self, resource: str) -> LocalProfiler | RPCProfiler:
        if resource not in self.resources:
            raise TunerError(f"no device resource {resource!r} here")
        if resource.startswith(LOCAL_POOL + ":"):
            index = int(resource.rpartition(":")[2])
            return LocalProfiler(
                self.plan.devices[index],
                evaluator=self.evaluator,
                timeout_s=self.run_timeout_s,
                name=resource,
            )
        if resource_pool(resource) == GPU_POOL:
            return LocalProfiler(
                None,
                evaluator=self.evaluator,
                timeout_s=self.run_timeout_s,
                name=resource,
                device=("cuda", int(resource.rpartition(":")[2])),
            )
        for pool in self.rpc_pools:
            if resource.startswith(pool.pool + ":"):
                return RPCProfiler(
                    pool.host,
                    pool.port,
                    pool.key,
                    evaluator=self.evaluator,
                    timeout_s=self.run_timeout_s,
                    name=resource,
                )
        raise TunerError(f"no device resource {resource!r} here")
