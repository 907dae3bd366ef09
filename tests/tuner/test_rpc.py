"""Device pools from a real TVM RPC tracker and servers on 127.0.0.1.

Discovery turns the servers under a key into resources; profiling goes through tracker
sessions; a server killed mid-profile costs at most the candidate it was running, and with
every server gone the stage fails cleanly and is retried once a server is back.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rpc_fixtures import free_port, rpc_cluster

from collectors.events import RecordEvent
from collectors.jobs import StageKind
from collectors.memory_store import MemoryStore
from collectors.sink import EventSink
from tuner._base import TunerError
from tuner.metaschedule.driver import MetaScheduleDriver
from tuner.metaschedule.rpc import RpcPool, discover, parse_rpc
from tuner.metaschedule.run import EvalConfig
from tuner.metaschedule.settings import SMALL_SEARCH, DriverSettings
from tuner.metaschedule.workers import StageWorkers


def test_parse_rpc_reads_host_port_key() -> None:
    assert parse_rpc("127.0.0.1:9190:cpu") == RpcPool("127.0.0.1", 9190, "cpu")
    pool = parse_rpc("localhost:1:my-key.v2")
    assert pool.pool == "device:rpc:my-key.v2"
    assert pool.resources(2) == ["device:rpc:my-key.v2:0", "device:rpc:my-key.v2:1"]


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("127.0.0.1:9190", "expected HOST:PORT:KEY"),
        ("127.0.0.1:port:cpu", "port must be 1..65535"),
        ("127.0.0.1:70000:cpu", "port must be 1..65535"),
        ("127.0.0.1:9190:a b", "key may hold"),
        ("", "expected HOST:PORT:KEY"),
    ],
)
def test_bad_rpc_pools_say_what_is_wrong(text: str, why: str) -> None:
    with pytest.raises(TunerError, match=why):
        parse_rpc(text)


def test_a_tracker_that_is_not_there_is_one_clear_error() -> None:
    port = free_port()
    started = time.monotonic()
    with pytest.raises(TunerError) as info:
        discover(RpcPool("127.0.0.1", port, "cpu"), timeout_s=2)
    assert f"127.0.0.1:{port}" in str(info.value)
    assert "cannot reach the RPC tracker" in str(info.value)
    assert time.monotonic() - started < 10


@pytest.fixture
def cluster() -> Iterator[Any]:
    with rpc_cluster(key="tltest", servers=2) as running:
        yield running


def rpc_workers(cluster: Any, evaluator: EvalConfig) -> StageWorkers:
    pool = parse_rpc(cluster.address)
    return StageWorkers(
        local_devices=0,
        rpc_pools={pool: len(discover(pool))},
        evaluator=evaluator,
        build_timeout_s=120.0,
        run_timeout_s=20.0,
    )


def rpc_driver(workers: StageWorkers, tmp_path: Path, sink: EventSink, **settings: Any) -> Any:
    """A driver of one matmul task profiling on the pool; ``settings`` of ``DriverSettings``."""
    return MetaScheduleDriver(
        "j-rpc",
        ["matmul:32"],
        DriverSettings(search=SMALL_SEARCH, device_pool="device:rpc:tltest", **settings),
        workers=workers,
        db_dir=tmp_path / "db",
        sink=sink,
    )


def run_until_profile(driver: Any) -> tuple[str, int, StageKind]:
    for _ in range(2):  # select and build on the client
        task, iteration, kind = driver.next_stage()
        assert kind != StageKind.PROFILE
        assert driver.run(task, iteration, kind, "client:0").ok
    step = driver.next_stage()
    assert step[2] == StageKind.PROFILE
    return step


@pytest.mark.slow
def test_discovery_and_profiling_through_a_real_tracker(cluster: Any, tmp_path: Path) -> None:
    assert discover(parse_rpc(cluster.address)) == ["device:rpc:tltest:0", "device:rpc:tltest:1"]
    with pytest.raises(TunerError, match="lists no server under key 'other'"):
        discover(RpcPool("127.0.0.1", cluster.port, "other"))

    store = MemoryStore()
    with rpc_workers(cluster, EvalConfig(number=2, min_repeat_ms=5)) as workers:
        assert workers.resources == ("client:0", "device:rpc:tltest:0", "device:rpc:tltest:1")
        driver = rpc_driver(workers, tmp_path, EventSink(store), trials=8, batch_size=4)
        resources = iter(["device:rpc:tltest:0", "device:rpc:tltest:1"])
        while (step := driver.next_stage()) is not None:
            task, iteration, kind = step
            resource = next(resources) if kind == StageKind.PROFILE else "client:0"
            result = driver.run(task, iteration, kind, resource)
            assert result.ok, result.error
        driver.close()
    records = [s.event for s in store.read(kinds=["record"])]
    assert len(records) == 8
    assert all(r.run_secs and r.error_class is None for r in records)


@pytest.mark.slow
def test_a_server_killed_mid_profile_costs_at_most_its_candidate(
    cluster: Any, tmp_path: Path
) -> None:
    store = MemoryStore()
    # ~0.3 s per candidate, so the kill lands inside the batch.
    with rpc_workers(cluster, EvalConfig(number=1, min_repeat_ms=300)) as workers:
        driver = rpc_driver(workers, tmp_path, EventSink(store), trials=8, batch_size=8)
        task, iteration, kind = run_until_profile(driver)
        killed: list[Any] = []

        def kill_the_busy_server() -> None:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not killed:
                server = cluster.busy_server()
                if server is not None:
                    time.sleep(0.4)
                    cluster.kill_server(server)
                    killed.append(server)
                time.sleep(0.05)

        killer = threading.Thread(target=kill_the_busy_server)
        killer.start()
        started = time.monotonic()
        results = [driver.run(task, iteration, kind, "device:rpc:tltest:0")]
        while (step := driver.next_stage())[2] == StageKind.PROFILE:
            results.append(driver.run(*step, "device:rpc:tltest:1"))
        killer.join()
        assert killed, "no server was busy"
        assert driver.run(*step, "client:0").ok  # the update
        elapsed = time.monotonic() - started
        driver.close()
    assert elapsed < 90  # nothing hung
    assert results[-1].ok
    assert all(r.ok or "will retry" in r.error for r in results)
    records = [s.event for s in store.read(kinds=["record"])]
    assert len(records) == 8
    failed = [r for r in records if r.run_secs is None]
    assert len(failed) <= 1
    assert all(r.error_class in ("run", "timeout") for r in failed)
    assert cluster.listed() == 1


@pytest.mark.slow
def test_with_every_server_gone_the_stage_fails_cleanly_and_is_retried(
    cluster: Any, tmp_path: Path
) -> None:
    store = MemoryStore()
    with rpc_workers(cluster, EvalConfig(number=2, min_repeat_ms=5)) as workers:
        driver = rpc_driver(
            workers, tmp_path, EventSink(store), trials=4, batch_size=4, profile_retries=3
        )
        task, iteration, kind = run_until_profile(driver)
        for server in list(cluster.servers):
            cluster.kill_server(server)
        deadline = time.monotonic() + 30
        while cluster.listed() and time.monotonic() < deadline:
            time.sleep(0.1)
        started = time.monotonic()
        failed = driver.run(task, iteration, kind, "device:rpc:tltest:0")
        assert time.monotonic() - started < 30
        assert not failed.ok
        assert "no server registered under key 'tltest'" in failed.error
        assert "will retry" in failed.error
        assert driver.next_stage() == (task, iteration, kind)  # the same stage again

        cluster.add_server()
        retried = driver.run(task, iteration, kind, "device:rpc:tltest:1")
        assert retried.ok, retried.error
        update = driver.next_stage()
        assert update[2] == StageKind.UPDATE and driver.run(*update, "client:0").ok
        driver.close()
    records = [s.event for s in store.read(kinds=[RecordEvent.kind])]
    assert len(records) == 4 and all(r.run_secs for r in records)


@pytest.mark.slow
def test_a_job_waits_for_its_pool_says_so_and_goes_on_when_a_server_is_back(
    cluster: Any, tmp_path: Path
) -> None:
    from collectors.jobs import JobSpec, JobState
    from tuner.engine import Engine, EngineSettings

    settings = EngineSettings(
        runs_dir=tmp_path / "runs", rpc=cluster.address, pause_on_stall=True,
        profile_retries=1, measure=EvalConfig(number=2, min_repeat_ms=5), search=SMALL_SEARCH,
        compile_models=False,
    )  # fmt: skip
    with Engine(settings, store=MemoryStore()) as engine:
        for server in list(cluster.servers):
            cluster.kill_server(server)
        deadline = time.monotonic() + 30
        while cluster.listed() and time.monotonic() < deadline:
            time.sleep(0.1)
        job = engine.submit(JobSpec(workloads=("matmul:16",), trials=8, batch=4))
        engine.serve()

        def info() -> Any:
            return next(i for i in engine.list() if i.id == job)

        deadline = time.monotonic() + 120
        while info().state != JobState.PAUSED:
            assert time.monotonic() < deadline, info()
            time.sleep(0.1)
        assert info().detail.startswith("waiting for device pool rpc:tltest: 0 of 2 servers")
        cluster.add_server()
        deadline = time.monotonic() + 180
        while info().state != JobState.FINISHED:
            assert time.monotonic() < deadline and info().state != JobState.FAILED, info()
            time.sleep(0.2)
        assert info().trials_done == 8
