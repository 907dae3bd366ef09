"""The core pinning plan (pure) and pinning a worker process (real processes)."""

from __future__ import annotations

import os
import sys

import cloudpickle
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tuner.cpus import CpuPlan, available_cpus, plan_cpus
from tuner.metaschedule.processes import PinnedWorker

cloudpickle.register_pickle_by_value(sys.modules[__name__])


def test_two_cores_give_the_client_core_0_and_the_device_core_1() -> None:
    assert plan_cpus([1, 0]) == CpuPlan(client=(0,), devices=((1,),), shared=False)


def test_one_core_is_shared_and_says_so() -> None:
    plan = plan_cpus([3])
    assert plan == CpuPlan(client=(3,), devices=((3,),), shared=True)
    assert "shared" in plan.describe()


def test_many_cores_split_half_to_the_devices() -> None:
    assert plan_cpus(range(16)) == CpuPlan(client=tuple(range(8)), devices=(tuple(range(8, 16)),))
    assert plan_cpus(range(8), devices=3) == CpuPlan(
        client=(0, 1, 2, 3, 4), devices=((5,), (6,), (7,))
    )
    assert plan_cpus(range(4), devices=0) == CpuPlan(client=(0, 1, 2, 3), devices=())


def test_bad_plans_raise() -> None:
    with pytest.raises(ValueError, match="no CPU cores"):
        plan_cpus([])
    with pytest.raises(ValueError, match="devices"):
        plan_cpus([0, 1], devices=-1)


@given(st.sets(st.integers(0, 63), min_size=1, max_size=32), st.integers(1, 4))
def test_unshared_plans_never_overlap_and_use_only_given_cores(
    cores: set[int], devices: int
) -> None:
    plan = plan_cpus(cores, devices=devices)
    assert len(plan.devices) == devices
    used = set(plan.client).union(*map(set, plan.devices))
    assert used <= cores
    assert all(plan.devices) and plan.client
    if not plan.shared:
        assert not set(plan.client) & set().union(*map(set, plan.devices))
        per_device = {len(d) for d in plan.devices}
        assert len(per_device) == 1
    else:
        assert len(cores) < devices + 1


def _thread_affinities() -> tuple[list[list[int]], str | None, str | None]:
    tasks = os.listdir("/proc/self/task")
    affinities = [sorted(os.sched_getaffinity(int(t))) for t in tasks]
    return affinities, os.environ.get("TVM_NUM_THREADS"), os.environ.get("OMP_NUM_THREADS")


def test_a_pinned_worker_pins_every_thread_and_sizes_thread_pools() -> None:
    core = available_cpus()[-1]
    with PinnedWorker([core], imports=["tvm"], name="pin test") as worker:
        affinities, tvm_threads, omp_threads = worker.call(_thread_affinities, timeout=60)
        assert affinities and all(a == [core] for a in affinities)
        assert (tvm_threads, omp_threads) == ("1", "1")
        import psutil

        assert psutil.Process(worker.pid).cpu_affinity() == [core]
