"""Client stages on a Ray cluster: node discovery and checks, builds on the nodes, a node
dying mid-build, a node joining later, a bad address, and no Ray without --ray."""

from __future__ import annotations

import itertools
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from collectors.events import ResourceEvent, StageEvent
from collectors.jobs import JobSpec, JobState, StageKind
from collectors.stores import open_store
from tests.tuner.ray_fixtures import ROOT, RayNodeProcess, RayTestCluster, node_env, start_cluster
from tests.tuner.rpc_fixtures import HOST, free_port
from tuner._base import TunerError, resource_pool
from tuner.cluster.ray_nodes import (
    NodeFacts,
    RayNode,
    alive_nodes,
    node_refusal,
    node_resources,
    node_slots,
    resolve_address,
)

NODE = RayNode("3f2a9c81d0e4b7aa" + "0" * 40, "10.0.0.7", 2)
OURS = NodeFacts("0.1.0", "0.27.0", (0, 1))
JOB = dict(trials=12, batch=4, population=32)


# --- pure: addresses, names, checks ----------------------------------------------------------


def test_auto_reads_ray_address_then_the_head_note(tmp_path: Path) -> None:
    note = tmp_path / "ray_current_cluster"
    assert resolve_address("auto", {"RAY_ADDRESS": "h:6379"}, note) == "h:6379"
    note.write_text("10.0.0.1:6380\n")
    assert resolve_address("auto", {}, note) == "10.0.0.1:6380"
    assert resolve_address(" 10.0.0.2:7000 ", {}, note) == "10.0.0.2:7000"


def test_auto_without_a_cluster_and_bad_addresses_are_refused(tmp_path: Path) -> None:
    with pytest.raises(TunerError, match="--ray auto found no running Ray cluster"):
        resolve_address("auto", {}, tmp_path / "missing")
    for bad in ("nohost", "h:port", ":6379", "h:70000", "ray://h:10001"):
        with pytest.raises(TunerError, match="HOST:PORT"):
            resolve_address(bad, {}, tmp_path / "missing")


def test_each_node_cpu_is_a_build_resource_named_by_the_node() -> None:
    assert node_resources(NODE) == ("client:3f2a9c81:0", "client:3f2a9c81:1")
    assert {resource_pool(r) for r in node_resources(NODE)} == {"node"}


def test_a_node_with_exactly_its_cores_pins_one_per_resource() -> None:
    pinned = node_slots(NODE, NodeFacts("0.1.0", "0.27.0", (4, 5)))
    assert [s.cores for s in pinned.values()] == [(4,), (5,)]
    shared = node_slots(NODE, NodeFacts("0.1.0", "0.27.0", (0, 1, 2, 3)))
    assert [s.cores for s in shared.values()] == [None, None]


def test_alive_nodes_skip_dead_ones_and_nodes_without_cpus() -> None:
    listing = [
        {"NodeID": "b" * 56, "Alive": True, "NodeManagerAddress": "h2", "Resources": {"CPU": 2.0}},
        {"NodeID": "a" * 56, "Alive": False, "NodeManagerAddress": "h1", "Resources": {"CPU": 1}},
        {"NodeID": "c" * 56, "Alive": True, "NodeManagerAddress": "h3", "Resources": {}},
    ]
    assert alive_nodes(listing) == [RayNode("b" * 56, "h2", 2)]


def test_a_node_with_other_versions_or_too_few_cores_is_refused_by_name() -> None:
    assert node_refusal(NODE, OURS, OURS) is None
    tvm = node_refusal(NODE, NodeFacts("0.1.0", "0.26.0", (0, 1)), OURS)
    assert tvm is not None and "3f2a9c81" in tvm and "TVM 0.26.0" in tvm and "\n" not in tvm
    ours = node_refusal(NODE, NodeFacts("0.2.0", "0.27.0", (0, 1)), OURS)
    assert ours is not None and "tuneloom 0.2.0" in ours
    cores = node_refusal(NODE, NodeFacts("0.1.0", "0.27.0", (3,)), OURS)
    assert cores is not None and "declares 2 CPUs" in cores and "--num-cpus 1" in cores


def test_resources_that_join_take_stages_and_those_that_leave_take_none() -> None:
    from scheduling_helpers import ScriptedDriver, make_sink, stage_events

    from tuner.clock import SimClock
    from tuner.scheduler import Scheduler

    clock = SimClock()
    sink = make_sink(clock)
    resources = ["client:0", "client:node1:0", "device:llvm:0"]
    scheduler = Scheduler(resources, "interleaved", clock=clock, sink=sink)
    for label in ("A", "B"):
        driver = ScriptedDriver(label, iterations=2)
        scheduler.submit_job(
            driver, name=label, target="llvm", device_pool="device:llvm", tasks=["t"],
            trials_total=driver.trials()[1],
        )  # fmt: skip
    scheduler.add_resources(["client:node2:0", "client:node1:0"])  # a known one is kept once
    assert scheduler.resources == (*resources, "client:node2:0")
    scheduler.remove_resources(["client:node1:0"])
    scheduler.run()
    where = {(e.stage, e.resource) for e in stage_events(sink)}
    assert {r for _, r in where} == {"client:0", "client:node2:0", "device:llvm:0"}
    # Builds run on the nodes' cores; select and update where the search state lives.
    assert {r for kind, r in where if kind == "build"} == {"client:node2:0"}
    assert {r for kind, r in where if kind in ("select", "update")} == {"client:0"}
    assert all(info.state == JobState.FINISHED for info in scheduler.list())


def test_without_nodes_builds_stay_on_the_client_and_nodes_are_no_device() -> None:
    from tuner._base import NODE_POOL, pool_for
    from tuner.clock import SimClock
    from tuner.scheduler import Scheduler

    assert resource_pool("client:node1:3") == NODE_POOL
    assert resource_pool("client:3") == "client"
    assert pool_for(StageKind.BUILD, "device:llvm") == "client"
    assert pool_for(StageKind.BUILD, "device:llvm", NODE_POOL) == NODE_POOL
    assert pool_for(StageKind.SELECT, "device:llvm", NODE_POOL) == "client"
    assert pool_for(StageKind.PROFILE, "device:llvm", NODE_POOL) == "device:llvm"
    scheduler = Scheduler(["client:0", "client:node1:0", "device:llvm:0"], "interleaved",
                          clock=SimClock())  # fmt: skip
    assert scheduler.catalog().devices == ("llvm",)


# --- the command line ------------------------------------------------------------------------


def _tuneloom(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tuneloom", *args],
        cwd=ROOT, env=node_env(), capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


def test_an_unreachable_ray_address_is_one_line_and_touches_nothing(tmp_path: Path) -> None:
    address = f"{HOST}:{free_port()}"
    db = tmp_path / "runs.db"
    out = _tuneloom("tune", "--ray", address, "--workload", "matmul:16", "--db", str(db))
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and address in lines[0] and "cannot reach the Ray cluster" in lines[0]
    assert list(tmp_path.iterdir()) == []  # no store, no runs folder


def test_a_server_with_an_unreachable_ray_address_starts_nothing(tmp_path: Path) -> None:
    address = f"{HOST}:{free_port()}"
    db = tmp_path / "jobs.db"
    out = _tuneloom("server", "--db", str(db), "--port", "0", "--ray", address, timeout=60)
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0 and address in out.stderr
    assert list(tmp_path.iterdir()) == []  # no store, lock, log or runs folder


@pytest.mark.slow
def test_without_ray_a_tune_run_never_imports_ray(tmp_path: Path) -> None:
    code = (
        "import sys; from tuneloom.cli import main;"
        f"rc = main(['tune', '--workload', 'matmul:16', '--trials', '2', '--batch', '2',"
        f" '--population', '8', '--db', {str(tmp_path / 'r.db')!r}, '--json']);"
        "print('RAY' if 'ray' in sys.modules else 'NO-RAY', rc)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=node_env(), capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "NO-RAY 0"


# --- a real cluster on 127.0.0.1 -------------------------------------------------------------


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[RayTestCluster]:
    folder = Path(tempfile.mkdtemp(prefix="tlray", dir="/tmp"))  # Ray's socket paths are short
    try:
        cluster = start_cluster(folder)
    except (RuntimeError, OSError) as exc:
        shutil.rmtree(folder, ignore_errors=True)
        pytest.skip(f"a Ray head cannot start here: {exc}")
    try:
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(folder, ignore_errors=True)


def _engine(tmp_path: Path, address: str):  # type: ignore[no-untyped-def]
    from tuner.engine import Engine, EngineSettings

    settings = EngineSettings(runs_dir=tmp_path / "runs", ray=address, profile_models=False)
    return Engine(settings, store=tmp_path / "runs.db")


def _stages(db: Path) -> list[StageEvent]:
    store = open_store(str(db))
    try:
        return [s.event for s in store.read(kinds=["stage"])]  # type: ignore[misc]
    finally:
        store.close()


@pytest.mark.slow
def test_a_node_declaring_more_cpus_than_it_may_use_is_refused(
    ray_cluster: RayTestCluster, tmp_path: Path
) -> None:
    worker = ray_cluster.add_worker(cpus=2, core=0)  # 2 CPUs declared, 1 core to run on
    _check_refused_alone(ray_cluster, worker, tmp_path, "declares 2 CPUs")


@pytest.mark.slow
def test_a_node_running_another_tuneloom_is_refused_by_name(
    ray_cluster: RayTestCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = tmp_path / "other-install"  # what an older install on that machine reports
    (other / "tuneloom-0.0.1.dist-info").mkdir(parents=True)
    (other / "tuneloom-0.0.1.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: tuneloom\nVersion: 0.0.1\n"
    )
    worker = ray_cluster.add_worker(path_first=other)
    # Ray puts the driver's working folder first on every worker's path: run from elsewhere,
    # as a server would, or this checkout's build metadata is found before the other install's.
    monkeypatch.chdir(tmp_path)
    _check_refused_alone(ray_cluster, worker, tmp_path, "tuneloom 0.0.1")


def _check_refused_alone(
    ray_cluster: RayTestCluster, worker: RayNodeProcess, tmp_path: Path, why: str
) -> None:
    """An engine on the cluster refuses ``worker`` (one line naming it and ``why``) and
    takes the head alone; the worker is stopped afterwards."""
    try:
        with _engine(tmp_path, ray_cluster.address) as engine:
            assert engine.cluster is not None
            (refusal,) = engine.cluster.refused.values()
            assert worker.node_id[:8] in refusal and why in refusal
            assert "\n" not in refusal
            nodes = {_node_of(r) for r in engine.scheduler.resources} - {None}
            assert worker.node_id[:8] not in nodes and len(nodes) == 1  # the head only
    finally:
        worker.stop()
        ray_cluster.workers.remove(worker)


def _presence(db: Path) -> list[ResourceEvent]:
    store = open_store(str(db))
    try:
        return [s.event for s in store.read(kinds=["resource"])]  # type: ignore[misc]
    finally:
        store.close()


def _never_two_on_one_resource(stages: list[StageEvent]) -> None:
    by_resource: dict[str, list[StageEvent]] = {}
    for stage in stages:
        by_resource.setdefault(stage.resource, []).append(stage)
    for resource, held in by_resource.items():
        held.sort(key=lambda s: s.start)
        for before, after in itertools.pairwise(held):
            assert after.start >= before.end, f"two stages at once on {resource}"


def _node_of(resource: str) -> str | None:
    parts = resource.split(":")
    return parts[1] if parts[0] == "client" and len(parts) == 3 else None


@pytest.mark.slow
def test_two_jobs_build_on_both_nodes(ray_cluster: RayTestCluster, tmp_path: Path) -> None:
    worker = ray_cluster.add_worker()
    try:
        with _engine(tmp_path, ray_cluster.address) as engine:
            nodes = {_node_of(r) for r in engine.scheduler.resources} - {None}
            assert len(nodes) == 2
            # Batches of 8 build for longer than the other job's select of 32 takes: the
            # first job's first build still runs when the second job's is ready.
            for workload in ("matmul:64", "dense:1x64x64"):
                engine.submit(JobSpec(workloads=(workload,), **{**JOB, "batch": 8, "trials": 16}))
            report = engine.run()
        assert [job.state for job in report.jobs] == ["finished", "finished"]
        stages = _stages(tmp_path / "runs.db")
        builds = {_node_of(s.resource) for s in stages if s.stage == "build"}
        assert builds == nodes  # builds landed on both nodes
        assert all(s.status == "ok" for s in stages)
        _never_two_on_one_resource(stages)
    finally:
        worker.stop()
        ray_cluster.workers.remove(worker)


@pytest.mark.slow
def test_a_node_killed_mid_build_leaves_and_the_jobs_finish(
    ray_cluster: RayTestCluster, tmp_path: Path
) -> None:
    worker = ray_cluster.add_worker()
    with _engine(tmp_path, ray_cluster.address) as engine:
        _check_not_attached_to(worker.node_id)
        doomed = {r for r in engine.scheduler.resources if _node_of(r) == worker.node_id[:8]}
        assert doomed
        for workload in ("matmul:64", "dense:1x64x64"):
            engine.submit(JobSpec(workloads=(workload,), **{**JOB, "trials": 16}))
        runner = threading.Thread(target=engine.run)
        runner.start()
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and not _building_on(engine, doomed):
            time.sleep(0.05)
        assert _building_on(engine, doomed), "no build ever ran on the worker node"
        worker.kill()
        runner.join(timeout=300)
        assert not runner.is_alive()
        assert not doomed & set(engine.scheduler.resources)  # its lane ended
        states = [info.state for info in engine.list()]
    ray_cluster.workers.remove(worker)
    assert states == ["finished", "finished"]
    stages = _stages(tmp_path / "runs.db")
    lost = [s for s in stages if s.resource in doomed and s.status == "error"]
    assert lost and "(will retry)" in (lost[0].error or "")
    again = [
        s for s in stages
        if (s.job, s.task, s.iteration, s.stage) == (lost[0].job, lost[0].task,
                                                     lost[0].iteration, "build")
        and s.status == "ok"
    ]  # fmt: skip
    assert again and again[0].resource not in doomed and again[0].start >= lost[0].end
    _never_two_on_one_resource(stages)
    left = {e.resource for e in _presence(tmp_path / "runs.db") if e.presence == "left"}
    assert left == doomed  # the timeline ends their lanes


@pytest.mark.slow
def test_a_node_joining_later_takes_stages(ray_cluster: RayTestCluster, tmp_path: Path) -> None:
    with _engine(tmp_path, ray_cluster.address) as engine:
        head = set(engine.scheduler.resources)
        engine.start()
        worker = ray_cluster.add_worker()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and set(engine.scheduler.resources) == head:
            time.sleep(0.2)
        joined = set(engine.scheduler.resources) - head
        assert joined and all(_node_of(r) for r in joined)
        for workload in ("matmul:64", "dense:1x64x64"):
            engine.submit(JobSpec(workloads=(workload,), **JOB))
        report = engine.run()
    worker.stop()
    ray_cluster.workers.remove(worker)
    assert [job.state for job in report.jobs] == ["finished", "finished"]
    assert {s.resource for s in _stages(tmp_path / "runs.db") if s.stage == "build"} & joined
    assert joined <= {e.resource for e in _presence(tmp_path / "runs.db")}
    assert json.dumps(report.as_json())  # the report names every lane, joined ones too


def _check_not_attached_to(node_id: str) -> None:
    """This process talks to the cluster through one node's raylet: not the one to kill."""
    import ray

    assert ray.get_runtime_context().get_node_id() != node_id, "attached to the worker node"


def _building_on(engine, resources: set[str]) -> bool:  # type: ignore[no-untyped-def]
    pools = engine.workers._builders
    return any(getattr(pools.get(r), "building", False) for r in resources)


@pytest.mark.slow
def test_a_server_killed_and_started_again_builds_on_the_cluster_again(
    ray_cluster: RayTestCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.tuneloom.server_process import ServerProcess
    from tuneloom.client import ServerClient

    monkeypatch.delenv("TUNELOOM_TOKEN", raising=False)
    server = ServerProcess(tmp_path / "jobs.db", "--ray", ray_cluster.address,
                           "--number", "2", "--min-repeat-ms", "5")  # fmt: skip
    try:
        server.start(timeout=120)
        client = ServerClient(server.url, timeout=30)
        job = client.submit(JobSpec(workloads=("matmul:64",), **{**JOB, "trials": 24}))
        deadline = time.monotonic() + 180
        while not any(s.stage == "build" and s.status == "ok" for s in _stages(server.db)):
            assert time.monotonic() < deadline, "no build finished before the kill"
            time.sleep(0.2)
        server.kill()
        killed_at = time.time()
        server.start(timeout=120)
        deadline = time.monotonic() + 300
        while (info := client.job(job)).state not in ("finished", "failed", "cancelled"):
            assert time.monotonic() < deadline, f"the job did not finish: {info}"
            time.sleep(0.5)
    finally:
        server.stop()
    assert info.state == "finished" and info.trials_done == 24
    after = [s for s in _stages(server.db) if s.start >= killed_at]
    builds = {s.resource for s in after if s.stage == "build" and s.status == "ok"}
    assert builds and all(_node_of(r) for r in builds)  # on the cluster's nodes again
    assert all(_node_of(s.resource) is None for s in after if s.stage in ("select", "update"))
