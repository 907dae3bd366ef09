"""The MetaSchedule adapter with real TVM: workers, build pool, profiler, driver, scheduler.

Tiny workloads and few trials. The failure tests break real candidates on purpose (a module
that cannot build, a library that is not one, a kernel that crashes its process, a kernel
that runs past its deadline) and check the records and that the job goes on.
"""

from __future__ import annotations

import itertools
import json
import os
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import pytest

from collectors.events import RecordEvent, StageEvent, TaskEvent
from collectors.importers.ms_database import RECORD_FILE as DB_RECORDS
from collectors.importers.ms_database import WORKLOAD_FILE as DB_WORKLOAD
from collectors.jobs import StageKind
from collectors.memory_store import MemoryStore
from collectors.sink import EventSink
from collectors.sqlite_store import SQLiteStore
from tuner._base import TunerError
from tuner.metaschedule.build import BuildPool
from tuner.metaschedule.driver import (
    CONFIRMATIONS,
    DeviceLost,
    MetaScheduleDriver,
    candidate_to_confirm,
)
from tuner.metaschedule.processes import PinnedWorker, WorkerCrashed, WorkerTimeout
from tuner.metaschedule.run import EvalConfig, LocalProfiler, ProfileBatch
from tuner.metaschedule.settings import SMALL_SEARCH, DriverSettings, SearchConfig
from tuner.metaschedule.targets import is_gpu, target_config
from tuner.metaschedule.workers import StageWorkers
from tuner.metaschedule.workloads import parse_workload, workload_module

MATMUL_ARGS = [["TENSOR", "float32", [16, 16]]] * 3


# --- fixtures and helpers ----------------------------------------------------------------------


def make_sink() -> tuple[MemoryStore, EventSink]:
    store = MemoryStore()
    return store, EventSink(store)


def broken_module() -> Any:
    """A real module that fails to build: its loop bound is a variable nobody passes in."""
    import tvm

    func = workload_module("matmul:8")["main"]
    n = tvm.tirx.Var("n", "int32")
    loop = tvm.tirx.For(tvm.tirx.Var("i", "int32"), 0, n, tvm.tirx.ForKind.SERIAL, func.body)
    return tvm.IRModule({"main": func.with_body(loop)})


def crashing_library(folder: Path) -> str:
    """A real shared library whose kernel calls a symbol that does not exist: calling it
    kills the process that runs it."""
    import tvm
    from tvm import te

    a = te.placeholder((4,), "float32", name="A")
    out = te.compute(
        (4,), lambda i: tvm.tirx.call_extern("float32", "tuneloom_missing_symbol", a[i]), name="B"
    )
    path = str(folder / "crash.so")
    mod = tvm.IRModule({"main": te.create_prim_func([a, out])})
    tvm.tirx.build(mod, target="llvm").export_library(path)
    return path


def llvm_target(workers: StageWorkers) -> Any:
    from tvm.target import Target

    return Target(target_config("llvm", workers.device_cores))


def drive(driver: MetaScheduleDriver, workers: StageWorkers, limit: int = 1000) -> list[tuple]:
    """Run a driver's stages in order on the workers' first client and device resources."""
    client = next(r for r in workers.resources if r.startswith("client:"))
    device = next(r for r in workers.resources if r.startswith("device:"))
    log = []
    for _ in range(limit):
        step = driver.next_stage()
        if step is None:
            return log
        task, iteration, kind = step
        result = driver.run(task, iteration, kind, device if kind == StageKind.PROFILE else client)
        log.append((task, iteration, kind, result))
    raise AssertionError("the driver did not finish")


def events(store: Any, cls: type) -> list[Any]:
    return [s.event for s in store.read(kinds=[cls.kind])]


def check_compiles(db_dir: Path, spec: str, target: Any) -> None:
    """compile_tir with the job's database gives a schedule that computes the workload."""
    import tvm
    from tvm.s_tir import meta_schedule as ms

    database = ms.database.JSONDatabase(
        path_workload=str(db_dir / DB_WORKLOAD), path_tuning_record=str(db_dir / DB_RECORDS)
    )
    sch = ms.tir_integration.compile_tir(database, workload_module(spec), target)
    assert sch is not None
    built = tvm.tirx.build(sch.mod, target=target)
    workload = parse_workload(spec)
    rng = np.random.default_rng(1)
    a, b = (rng.random(shape, dtype=np.float32) for shape in workload.shapes[:2])
    out = tvm.runtime.tensor(np.zeros(workload.shapes[2], dtype=np.float32))
    built(tvm.runtime.tensor(a), tvm.runtime.tensor(b), out)
    expected = a @ b if workload.op == "matmul" else a @ b.T
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-4, atol=1e-4)


# --- the worker process -----------------------------------------------------------------------


def test_worker_survives_timeouts_crashes_and_errors() -> None:
    with PinnedWorker(name="test worker") as worker:
        assert worker.call(int, "7", timeout=30) == 7
        first = worker.pid
        started = time.monotonic()
        with pytest.raises(WorkerTimeout, match=r"killed after 0\.3 s"):
            worker.call(time.sleep, 5, timeout=0.3)
        assert time.monotonic() - started < 4
        assert worker.pid is None and not psutil.pid_exists(first)
        with pytest.raises(WorkerCrashed, match="died"):
            worker.call(os.abort, timeout=30)
        with pytest.raises(ValueError, match="invalid literal"):
            worker.call(int, "x", timeout=30)
        assert worker.call(int, "8", timeout=30) == 8
        assert worker.starts == 3
        last = worker.pid
    assert worker.pid is None and not psutil.pid_exists(last)


def test_worker_restarts_after_max_uses() -> None:
    with PinnedWorker(max_uses=2, name="recycled") as worker:
        pids = [worker.call(os.getpid, timeout=30) for _ in range(5)]
    assert pids[0] == pids[1] != pids[2] == pids[3] != pids[4]


# --- build pool and local profiler ----------------------------------------------------------------


def test_build_pool_builds_good_modules_and_reports_bad_ones(workers: StageWorkers) -> None:
    target = llvm_target(workers)
    with BuildPool(workers.plan.client, timeout_s=120) as pool:
        good, bad = pool.build([workload_module("matmul:16"), broken_module()], target)
        assert good.error is None and os.path.isfile(good.artifact)
        assert bad.artifact is None
        assert bad.error.startswith("build failed:")
        assert "not passed in as API arguments" in bad.error
        for pid in pool.pids:
            assert psutil.Process(pid).cpu_affinity() == list(workers.plan.client)
        pool.timeout_s = 0.001
        (late,) = pool.build([workload_module("matmul:16")], target)
        assert late.artifact is None and "timed out" in late.error
        pool.timeout_s = 120
        (again,) = pool.build([workload_module("matmul:16")], target)
        assert again.error is None
        scratch = pool.scratch_dir
    assert not os.path.exists(scratch)


def test_profiler_measures_good_kernels_and_classifies_failures(
    workers: StageWorkers, tmp_path: Path
) -> None:
    target = llvm_target(workers)
    with BuildPool(workers.plan.client, timeout_s=120) as pool:
        (good,) = pool.build([workload_module("matmul:16")], target)
        garbage = tmp_path / "not-a-library.so"
        garbage.write_bytes(b"this is not a shared library")
        crash = crashing_library(tmp_path)
        device = workers.plan.devices[0]
        profiler = LocalProfiler(device, evaluator=EvalConfig(number=2, min_repeat_ms=5))
        try:
            batch = profiler.profile(
                [good.artifact, str(garbage), crash, good.artifact],
                [MATMUL_ARGS, MATMUL_ARGS, [["TENSOR", "float32", [4]]] * 2, MATMUL_ARGS],
            )
            assert psutil.Process(profiler.worker.pid).cpu_affinity() == list(device)
        finally:
            profiler.close()
        assert batch.unavailable is None
        ok, bad_file, crashed, after = batch.outcomes
        assert ok.error is None and ok.run_secs and all(s > 0 for s in ok.run_secs)
        assert bad_file.run_secs is None and bad_file.error_class == "run"
        assert crashed.run_secs is None and crashed.error_class == "run"
        assert "crashed" in crashed.error
        assert after.run_secs  # the worker came back after the crash

        slow = LocalProfiler(device, evaluator=EvalConfig(min_repeat_ms=5000), timeout_s=0.5)
        try:
            (late,) = slow.profile([good.artifact], [MATMUL_ARGS]).outcomes
        finally:
            slow.close()
        assert late.run_secs is None and late.error_class == "timeout"


def test_a_cpu_candidate_is_timed_on_a_thread_of_its_own(
    workers: StageWorkers, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tuner.metaschedule import run

    timed_on: list[threading.Thread] = []
    real_time = run._time

    def recording_time(*args: Any, **kwargs: Any) -> list[float]:
        timed_on.append(threading.current_thread())
        return real_time(*args, **kwargs)

    monkeypatch.setattr(run, "_time", recording_time)
    with BuildPool(workers.plan.client, timeout_s=120) as pool:
        (good,) = pool.build([workload_module("matmul:16")], llvm_target(workers))
        secs = run.run_local(good.artifact, MATMUL_ARGS, EvalConfig(number=2, min_repeat_ms=5))
    assert secs and all(s > 0 for s in secs)
    (thread,) = timed_on
    assert thread is not threading.current_thread() and thread.name == "tuneloom-timing"


# --- targets --------------------------------------------------------------------------------


def test_targets_fill_in_the_host_cpu_and_device_cores() -> None:
    config = target_config("llvm", 3)
    assert config["kind"] == "llvm" and config["num-cores"] == 3
    assert config["mcpu"] not in ("", "native")
    assert target_config('{"kind": "llvm", "mcpu": "native", "num-cores": 2}', 1)["num-cores"] == 2
    for bad, why in [
        ("rocm", "unknown target 'rocm'"),
        ("{nope", "not valid JSON"),
        ('{"kind": "cuda", "host": "cuda"}', "host must be llvm"),
        ('{"kind": "cuda", "host": 5}', "host must be llvm"),
        ('{"kind": "cuda", "arch": "zz"}', "invalid CUDA arch"),
    ]:
        with pytest.raises(TunerError, match=why):
            target_config(bad, 1)


def test_a_cuda_target_gets_an_llvm_host_for_this_cpu() -> None:
    config = target_config('{"kind": "cuda", "arch": "sm_80"}', 3)
    assert config["arch"] == "sm_80" and "num-cores" not in config and is_gpu(config)
    host = config["host"]
    assert host["kind"] == "llvm" and host["mcpu"] == target_config("llvm", 1)["mcpu"]
    assert not is_gpu(target_config("llvm", 1))
    named = target_config('{"kind": "cuda", "arch": "sm_90", "host": {"kind": "llvm"}}', 2)
    assert named["host"]["mcpu"] == host["mcpu"]
    from tvm.target import Target

    assert Target(named).host is not None


# --- the driver -----------------------------------------------------------------------------


@pytest.mark.slow
def test_driver_tunes_tasks_round_robin_and_its_database_compiles(
    workers: StageWorkers, tmp_path: Path
) -> None:
    store, sink = make_sink()
    driver = MetaScheduleDriver(
        "j1-test",
        ["matmul:64,dense:4x64x32"],
        DriverSettings(
            trials_per_task=16,
            batch_size=8,
            # Each task's search alone (sibling schedules: test_sibling_schedules below).
            search=replace(SMALL_SEARCH, xgb_warmup_samples=8, siblings=0),
            seed=3,
        ),
        workers=workers,
        db_dir=tmp_path / "j1",
        sink=sink,
    )
    assert driver.tasks == ("matmul:64x64x64", "dense:4x64x32")
    assert driver.trials() == (0, 32)
    log = drive(driver, workers)
    driver.close()

    # Each batch: select, build, profile, update; between the last two, a second (quiet)
    # profile times again the candidates that would become the task's best or came within
    # CONFIRM_MARGIN of it: always in a task's first batch, where it has no best yet.
    kinds = ["select", "build", "profile", "update"]
    expected = [(task, it, kind) for it in range(2) for task in driver.tasks for kind in kinds]
    steps = [(t, i, str(k)) for t, i, k, _ in log]
    again = [n for n, step in enumerate(steps) if n and step[2] == "profile" == steps[n - 1][2]]
    assert [step for n, step in enumerate(steps) if n not in again] == expected
    assert {steps[n][:2] for n in again} >= {(task, 0) for task in driver.tasks}
    assert all(result.ok for *_, result in log)
    assert all(1 <= log[n][3].candidates <= CONFIRMATIONS for n in again)
    assert all(r.candidates == 8 for n, (*_, r) in enumerate(log) if n not in again)
    assert driver.trials() == (32, 32)
    assert driver.next_stage() is None

    tasks = {e.task: e for e in events(store, TaskEvent)}
    assert set(tasks) == set(driver.tasks)
    matmul = tasks["matmul:64x64x64"]
    assert matmul.op == "matmul" and matmul.flops == 2 * 64**3
    assert matmul.shapes == ((64, 64), (64, 64), (64, 64)) and matmul.dtype == "float32"
    assert matmul.detail.splitlines() == [
        f"metaschedule_database={(tmp_path / 'j1').resolve()}",
        "spec=matmul:64x64x64",
    ]
    hashes = [json.loads(line)[0] for line in (tmp_path / "j1" / DB_WORKLOAD).open()]
    assert sorted(hashes) == sorted(e.workload_hash for e in tasks.values())

    records = events(store, RecordEvent)
    assert len(records) == 32
    for task in driver.tasks:
        mine = [r for r in records if r.task == task]
        assert [r.candidate for r in mine] == list(range(16))
        assert [r.iteration for r in mine] == [0] * 8 + [1] * 8
    for record in records:
        assert record.workload_hash == tasks[record.task].workload_hash
        assert record.origin == "metaschedule"
        assert record.run_secs and record.error is None and record.error_class is None
        insts, decisions = json.loads(record.trace)
        assert insts[0][0] == "GetSBlock" and isinstance(decisions, list)
    # The shared cost model is trained from the first update on (8 samples of warm-up).
    untrained = [r for r in records if r.task == "matmul:64x64x64" and r.iteration == 0]
    assert all(r.predicted is None for r in untrained)
    assert all(isinstance(r.predicted, float) for r in records if r not in untrained)
    best = {s.name: s.best_latency_s for s in driver.summary()}
    for task in driver.tasks:
        assert best[task] == min(r.mean_secs for r in records if r.task == task)
    # A would-be best timed again on this machine's cores holds that one timing.
    assert len({len(r.run_secs) for r in records}) == 1

    lines = (tmp_path / "j1" / DB_RECORDS).read_text().splitlines()
    assert len(lines) == 32
    target = llvm_target(workers)
    check_compiles(tmp_path / "j1", "matmul:64", target)
    check_compiles(tmp_path / "j1", "dense:4x64x32", target)


def test_the_candidate_to_confirm_is_a_new_best_not_yet_timed_twice() -> None:
    assert candidate_to_confirm([3.0, 1.0, 2.0], None, set()) == 1  # the task's first batch
    assert candidate_to_confirm([3.0, 1.0, 2.0], 1.5, set()) == 1
    assert candidate_to_confirm([3.0, 1.0, 2.0], 1.0, set()) is None  # no better than the best
    assert candidate_to_confirm([3.0, 1.0, 2.0], 0.5, set()) is None
    assert candidate_to_confirm([3.0, None, 2.0], 2.5, set()) == 2  # not measured: skipped
    assert candidate_to_confirm([None, None], None, set()) is None
    # Timed twice already: its combined mean stays the fastest, nothing more to confirm...
    assert candidate_to_confirm([3.0, 1.2, 2.0], 2.5, {1}) is None
    # ...or it rose above another, which is confirmed next.
    assert candidate_to_confirm([3.0, 2.2, 2.0], 2.5, {1}) == 2
    # Within a margin of the best (or of a candidate timed twice), it is timed again too.
    assert candidate_to_confirm([3.0, 1.02, 2.0], 1.0, set(), 0.03) == 1
    assert candidate_to_confirm([3.0, 1.04, 2.0], 1.0, set(), 0.03) is None
    assert candidate_to_confirm([1.0, 1.02, 2.0], None, {0}, 0.03) == 1
    assert candidate_to_confirm([1.0, 1.02, 2.0], None, {0, 1}, 0.03) is None


class FaultyWorkers:
    """Real workers, but the chosen candidates of the first batch are broken on purpose:
    candidate ``build_bad`` is replaced by a module that cannot build, and the ``run_bad``-th
    library of the batch's profile (built candidates only) by a file that is not a library;
    the first ``unavailable`` profile stages report the device as unreachable, and the first
    ``build_raises`` build stages raise."""

    def __init__(
        self,
        real: StageWorkers,
        *,
        build_bad: int | None = None,
        run_bad: int | None = None,
        unavailable: int = 0,
        build_raises: int = 0,
        garbage: Path | None = None,
    ) -> None:
        self.real = real
        self.build_raises = build_raises
        self.build_bad = build_bad
        self.run_bad = run_bad
        self.unavailable = unavailable
        self.garbage = garbage
        self.batches = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def builder(self, resource: str) -> Any:
        pool = self.real.builder(resource)
        outer = self

        class Builder:
            def build(self, mods: list[Any], target: Any) -> Any:
                if outer.build_raises:
                    outer.build_raises -= 1
                    raise OSError("disk full")
                mods = list(mods)
                if outer.build_bad is not None and outer.batches == 0:
                    mods[outer.build_bad] = broken_module()
                outer.batches += 1
                return pool.build(mods, target)

        return Builder()

    def profiler(self, resource: str) -> Any:
        real = self.real.profiler(resource)
        outer = self

        class Profiler:
            def profile(self, artifacts: list[str], args_info: list[Any]) -> ProfileBatch:
                if outer.unavailable:
                    outer.unavailable -= 1
                    return ProfileBatch([None] * len(artifacts), "device switched off")
                artifacts = list(artifacts)
                # The batch's profile, not a would-be best timed again after it.
                if outer.run_bad is not None and outer.batches == 1 and len(artifacts) > 1:
                    artifacts[outer.run_bad] = str(outer.garbage)
                return real.profile(artifacts, args_info)

        return Profiler()


@pytest.mark.slow
def test_failed_candidates_become_records_and_the_job_goes_on(
    workers: StageWorkers, tmp_path: Path
) -> None:
    garbage = tmp_path / "garbage.so"
    garbage.write_bytes(b"not a library")
    # Candidate 0 cannot build, so the profiler's second library is candidate 2's.
    faulty = FaultyWorkers(workers, build_bad=0, run_bad=1, garbage=garbage)
    store, sink = make_sink()
    driver = MetaScheduleDriver(
        "j-faulty",
        ["matmul:32"],
        DriverSettings(trials_per_task=16, batch_size=8, search=SMALL_SEARCH),
        workers=faulty,
        db_dir=tmp_path / "db",
        sink=sink,
    )
    log = drive(driver, faulty)  # type: ignore[arg-type]
    driver.close()
    assert [str(k) for _, _, k, _ in log] == ["select", "build", "profile", "update"] * 2
    assert all(result.ok for *_, result in log)
    build = log[1][3]
    assert build.candidates == 7  # one of 8 did not build

    records = events(store, RecordEvent)
    assert len(records) == 16
    first = {r.candidate: r for r in records if r.iteration == 0}
    assert first[0].error_class == "build" and first[0].run_secs is None
    assert "not passed in as API arguments" in first[0].error
    assert first[2].error_class == "run" and first[2].run_secs is None
    measured = [r for r in records if r.candidate not in (0, 2)]
    assert all(r.run_secs and r.error_class is None for r in measured)
    run_secs = [json.loads(line)[1][1] for line in (tmp_path / "db" / DB_RECORDS).open()]
    assert sum(1 for secs in run_secs if secs == [1e10]) == 2  # committed like MetaSchedule
    check_compiles(tmp_path / "db", "matmul:32", llvm_target(workers))


@pytest.mark.slow
def test_same_seed_gives_the_same_candidates(workers: StageWorkers, tmp_path: Path) -> None:
    def first_batch(seed: int, name: str) -> list[str]:
        driver = MetaScheduleDriver(
            name,
            ["matmul:32"],
            DriverSettings(trials_per_task=8, batch_size=8, search=SMALL_SEARCH, seed=seed),
            workers=workers,
            db_dir=tmp_path / name,
        )
        task, iteration, kind = driver.next_stage()
        assert driver.run(task, iteration, kind, "client:0").ok
        traces = [str(c.sch.trace) for c in driver._by_name[task].candidates]
        driver.close()
        return traces

    assert first_batch(5, "a") == first_batch(5, "b")
    assert first_batch(5, "c") != first_batch(6, "d")


def run_in_thread(
    driver: MetaScheduleDriver, stage: tuple[str, int, StageKind, str], results: dict[str, Any]
) -> threading.Thread:
    """Run one stage on a new thread (as the scheduler's workers do); its result lands in
    ``results`` under the stage kind's name."""
    thread = threading.Thread(target=lambda: results.setdefault(str(stage[2]), driver.run(*stage)))
    thread.start()
    return thread


def profile_first_batch(driver: MetaScheduleDriver, task: str) -> None:
    """Select, build and profile ``task``'s first batch, as the scheduler would."""
    for kind in (StageKind.SELECT, StageKind.BUILD, StageKind.PROFILE):
        resource = "device:llvm:0" if kind == StageKind.PROFILE else "client:0"
        assert driver.run(task, 0, kind, resource).ok


def test_the_quiet_profile_times_would_be_bests_again_and_their_records_hold_that_timing(
    workers: StageWorkers, tmp_path: Path
) -> None:
    store = MemoryStore()
    driver = MetaScheduleDriver(
        "j-quiet",
        ["matmul:24"],
        DriverSettings(trials_per_task=8, batch_size=8, search=SMALL_SEARCH, seed=2),
        workers=workers,
        db_dir=tmp_path / "j",
        sink=EventSink(store),
    )
    (task,) = driver.tasks
    profile_first_batch(driver, task)
    assert driver.wants_quiet(task)  # the task's first batch: its fastest is a would-be best
    first = list(driver._by_name[task].runs)
    quiet = driver.run(task, 0, StageKind.PROFILE, "device:llvm:0")
    assert quiet.ok and not driver.wants_quiet(task)
    again = driver._by_name[task].runs
    timed = [i for i, (a, b) in enumerate(zip(first, again, strict=True)) if a is not b]
    assert len(timed) == quiet.candidates and 1 <= len(timed) <= CONFIRMATIONS
    fastest = min(range(len(first)), key=lambda i: np.mean(first[i].run_secs))
    assert fastest in timed
    assert driver.run(task, 0, StageKind.UPDATE, "client:0").ok
    records = {r.candidate: r for r in events(store, RecordEvent)}
    for i in timed:  # the record holds the quiet timing alone
        assert tuple(records[i].run_secs) == tuple(again[i].run_secs)
    driver.close()


@pytest.mark.parametrize(("second", "takes_third"), [(1.01, False), (1.5, True)])
def test_a_quiet_timing_that_disagrees_with_the_batch_gets_a_third_and_the_median_stands(
    workers: StageWorkers, tmp_path: Path, second: float, takes_third: bool
) -> None:
    """The device answers the quiet profile's timings as scripted: a second timing 1 %
    from the batch's stands; one 50 % above it is outvoted by a third near the first."""
    driver = MetaScheduleDriver(
        f"j-third-{takes_third}",
        ["matmul:24"],
        DriverSettings(trials_per_task=8, batch_size=8, search=SMALL_SEARCH, seed=2),
        workers=workers,
        db_dir=tmp_path / "j",
    )
    (task,) = driver.tasks
    profile_first_batch(driver, task)
    t = driver._by_name[task]
    fastest = min(range(len(t.runs)), key=lambda i: np.mean(t.runs[i].run_secs))
    batch_s = float(np.mean(t.runs[fastest].run_secs))
    calls: list[int] = []

    def scripted(task: Any, i: int, profiler: Any) -> tuple[float, ...]:
        calls.append(i)
        factor = second if len(calls) == 1 else 1.02
        return (batch_s * factor,)

    driver._time_once = scripted  # type: ignore[method-assign]
    assert driver.run(task, 0, StageKind.PROFILE, "device:llvm:0").ok  # the quiet profile
    assert calls[0] == fastest
    if takes_third:
        assert calls[:2] == [fastest, fastest]  # timed a third time
        assert t.runs[fastest].run_secs == (batch_s * 1.02,)  # the median of 1, 1.5, 1.02
    else:
        assert calls.count(fastest) == 1
        assert t.runs[fastest].run_secs == (batch_s * 1.01,)
    driver.close()


@pytest.mark.parametrize("retime", ["inline", "off"])
def test_retime_inline_times_would_be_bests_in_the_same_profile_and_off_not_at_all(
    workers: StageWorkers, tmp_path: Path, retime: str
) -> None:
    store = MemoryStore()
    driver = MetaScheduleDriver(
        f"j-{retime}",
        ["matmul:24"],
        DriverSettings(trials_per_task=8, batch_size=8, search=SMALL_SEARCH, seed=2, retime=retime),
        workers=workers,
        db_dir=tmp_path / "j",
        sink=EventSink(store),
    )
    (task,) = driver.tasks
    profile_first_batch(driver, task)
    assert not driver.wants_quiet(task)  # no quiet profile: the update is next
    assert driver.run(task, 0, StageKind.UPDATE, "client:0").ok
    timings = [len(r.run_secs) for r in events(store, RecordEvent)]
    repeat = workers.evaluator.repeat
    assert len(timings) == 8
    if retime == "off":
        assert timings == [repeat] * 8
    else:  # would-be bests (the batch's fastest first) hold both timings, the others one
        twice = timings.count(2 * repeat)
        assert 1 <= twice <= CONFIRMATIONS and timings.count(repeat) == 8 - twice
    driver.close()


def test_an_unknown_retime_mode_is_named() -> None:
    with pytest.raises(TunerError, match=r"unknown retime mode 'twice'.*quiet, inline, off"):
        DriverSettings(retime="twice")


def test_an_update_does_not_wait_for_another_tasks_select(
    workers: StageWorkers, tmp_path: Path
) -> None:
    """One task's update (database commits, cost model training) finishes while another
    task's select is still running, and both batches land in the database."""
    driver = MetaScheduleDriver(
        "j-overlap",
        ["matmul:16,matmul:24"],
        DriverSettings(trials_per_task=16, batch_size=4, search=SMALL_SEARCH, seed=1),
        workers=workers,
        db_dir=tmp_path / "j",
    )
    first, second = driver.tasks
    steps = {task: (iteration, kind) for task, iteration, kind in driver.ready(frozenset())}
    assert set(steps) == {first, second}
    profile_first_batch(driver, first)
    assert driver.wants_quiet(first)  # its first batch's fastest, timed again quietly
    assert driver.run(first, 0, StageKind.PROFILE, "device:llvm:0").ok

    entered, release = threading.Event(), threading.Event()
    predict = driver._predict

    def held_predict(task: Any, candidates: list[Any]) -> list[float | None]:
        if task.name == second:  # the select of the second task stays under way
            entered.set()
            release.wait(60)
        return predict(task, candidates)

    driver._predict = held_predict  # type: ignore[method-assign]
    results: dict[str, Any] = {}
    selecting = run_in_thread(driver, (second, 0, StageKind.SELECT, "client:0"), results)
    try:
        assert entered.wait(60)
        updating = run_in_thread(driver, (first, 0, StageKind.UPDATE, "client:0"), results)
        updating.join(60)
        assert not updating.is_alive(), "the update waited for the other task's select"
        assert selecting.is_alive()
        assert results["update"].ok and results["update"].candidates == 4
    finally:
        release.set()
        selecting.join(60)
    assert results["select"].ok and results["select"].candidates == 4
    driver._predict = predict  # type: ignore[method-assign]
    drive(driver, workers)
    driver.close()
    assert driver.trials() == (32, 32)
    lines = (tmp_path / "j" / DB_RECORDS).read_text().splitlines()
    assert len(lines) == 32 and all(json.loads(line) for line in lines)


def test_a_select_under_way_keeps_its_search_when_the_budget_runs_out(
    workers: StageWorkers, tmp_path: Path
) -> None:
    """The job's budget runs out while another task's select is under way: the scheduler's
    next ``ready`` leaves that task alone, and the select ends it when it returns. (Ending it
    in ``ready`` freed the task's search under the running select and crashed the process.)"""
    settings = DriverSettings(
        trials=4, trials_per_task=16, batch_size=4, parallel_tasks=3, search=SMALL_SEARCH, seed=1
    )
    driver = MetaScheduleDriver(
        "j-spent", ["matmul:16,matmul:24"], settings, workers=workers, db_dir=tmp_path / "j"
    )
    first, second = driver.tasks
    assert driver.run(first, 0, StageKind.SELECT, "client:0").candidates == 4  # the budget
    entered, release = threading.Event(), threading.Event()
    start_task = driver._start_task

    def held_start(task: Any, **kwargs: Any) -> None:
        start_task(task, **kwargs)  # the search exists: the select is under way
        entered.set()
        release.wait(60)

    driver._start_task = held_start  # type: ignore[method-assign]
    results: dict[str, Any] = {}
    selecting = run_in_thread(driver, (second, 0, StageKind.SELECT, "device:llvm:0"), results)
    held = driver._by_name[second]
    try:
        assert entered.wait(60)
        assert driver.ready(frozenset({second})) == [(first, 0, StageKind.BUILD)]
        assert not held.done and held.ctx is not None, "the search was freed under its select"
    finally:
        release.set()
        selecting.join(60)
    assert results["select"].ok and results["select"].candidates == 0
    assert held.done and held.failed is None and held.ctx is None
    drive(driver, workers)
    driver.close()
    assert driver.trials() == (4, 4)


@pytest.mark.slow
def test_a_stalled_search_goes_on_with_a_larger_population_and_measures_nothing_twice(
    workers: StageWorkers, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tvm_ffi
    from tvm.s_tir import Schedule

    import tuner.metaschedule.driver as driver_module

    # Stalled after two batches: the cost model has learned enough (its warm-up is 32
    # samples) to rank the measured schedules the new search starts from above the rest.
    monkeypatch.setattr(driver_module, "stalled", lambda history: len(history) == 2)
    store, sink = make_sink()
    settings = DriverSettings(trials_per_task=48, batch_size=16, search=SearchConfig())
    driver = MetaScheduleDriver(
        "j1", ["matmul:16"], settings, workers=workers, db_dir=tmp_path / "db", sink=sink
    )
    drive(driver, workers)
    driver.close()
    details = [e.detail for e in events(store, TaskEvent)]
    grown = [line for d in details for line in d.splitlines() if line.startswith("search=")]
    assert grown and grown[-1] == "search=population 512 from trial 32: population 128 stalled"
    from tvm.s_tir import meta_schedule as ms

    database = ms.database.JSONDatabase(
        path_workload=str(tmp_path / "db" / DB_WORKLOAD),
        path_tuning_record=str(tmp_path / "db" / DB_RECORDS),
    )
    records = database.get_all_tuning_records()
    assert len(records) == 48
    mods = set()
    for record in records:
        schedule = Schedule(record.workload.mod)
        record.trace.apply_to_schedule(schedule, remove_postproc=False)
        mods.add(tvm_ffi.structural_hash(schedule.mod))
    assert len(mods) == 48  # the wider search proposed nothing the first one measured


@pytest.mark.slow
def test_a_restarted_job_goes_on_with_the_search_that_had_grown(
    workers: StageWorkers, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tuner.metaschedule.driver as driver_module
    from tuner.metaschedule.resume import ResumeState

    # The first run's search stalls after its second batch, where its budget ends.
    monkeypatch.setattr(driver_module, "stalled", lambda history: len(history) == 2)
    monkeypatch.setattr(
        driver_module, "first_stall", lambda history: 2 if len(history) >= 2 else None
    )

    def job(trials: int, **more: Any) -> MetaScheduleDriver:
        settings = DriverSettings(trials_per_task=trials, batch_size=16, search=SearchConfig())
        return MetaScheduleDriver(
            "j1", ["matmul:16"], settings, workers=workers, db_dir=tmp_path / "db", **more
        )

    first = job(32)
    drive(first, workers)
    first.close()

    store, sink = make_sink()
    again = job(48, sink=sink, resume=ResumeState())
    (task,) = again._tasks
    assert task.trials == 32 and task.grown and task.grown_at == 32
    step = again.next_stage()
    assert step is not None and step[2] == StageKind.SELECT
    client = next(r for r in workers.resources if r.startswith("client:"))
    assert again.run(*step, client).ok
    assert task.ctx.search_strategy.population_size == 512  # not the first run's 128
    drive(again, workers)
    again.close()
    details = [e.detail for e in events(store, TaskEvent)]
    grown = [line for d in details for line in d.splitlines() if line.startswith("search=")]
    assert grown and grown[-1] == "search=population 512 from trial 32: population 128 stalled"


@pytest.mark.slow
def test_unreachable_device_is_retried_then_stalls_the_job(
    workers: StageWorkers, tmp_path: Path
) -> None:
    stalls: list[tuple[str, str]] = []
    faulty = FaultyWorkers(workers, unavailable=3)
    driver = MetaScheduleDriver(
        "j-stall",
        ["matmul:32"],
        DriverSettings(trials_per_task=8, batch_size=8, search=SMALL_SEARCH, profile_retries=2),
        workers=faulty,
        db_dir=tmp_path / "db",
        on_stall=lambda job, reason: stalls.append((job, reason)),
    )
    log = drive(driver, faulty)  # type: ignore[arg-type]
    driver.close()
    profiles = [result for _, _, kind, result in log if kind == StageKind.PROFILE]
    assert [p.ok for p in profiles] == [False, False, False, True]
    assert "device switched off (will retry)" in profiles[0].error
    assert "job stalled" in profiles[2].error
    assert stalls == [
        (
            "j-stall",
            "device pool device:llvm unavailable after 3 attempts: "
            "device:llvm:0: device switched off",
        )
    ]
    assert driver.trials() == (8, 8)

    failing = FaultyWorkers(workers, unavailable=10)
    driver = MetaScheduleDriver(
        "j-lost",
        ["matmul:32"],
        DriverSettings(trials_per_task=8, batch_size=8, search=SMALL_SEARCH, profile_retries=1),
        workers=failing,
        db_dir=tmp_path / "db2",
    )
    with pytest.raises(DeviceLost, match="unavailable after 2 attempts"):
        drive(driver, failing)  # type: ignore[arg-type]
    driver.close()


@pytest.mark.slow
def test_a_stage_that_raises_is_retried_then_stops_its_task(
    workers: StageWorkers, tmp_path: Path
) -> None:
    def job(name: str, raises: int) -> tuple[MetaScheduleDriver, list[tuple], MemoryStore]:
        faulty = FaultyWorkers(workers, build_raises=raises)
        store, sink = make_sink()
        driver = MetaScheduleDriver(
            name,
            ["matmul:32,dense:2x32x16"],
            DriverSettings(trials_per_task=8, batch_size=8, search=SMALL_SEARCH),
            workers=faulty,
            db_dir=tmp_path / name,
            sink=sink,
        )
        log = drive(driver, faulty)  # type: ignore[arg-type]
        driver.close()
        return driver, log, store

    driver, log, _ = job("once", 1)
    builds = [result for _, _, kind, result in log if kind == StageKind.BUILD]
    assert [b.ok for b in builds] == [False, True, True]
    assert builds[0].error == "OSError: disk full (will retry)"
    assert driver.trials() == (16, 16)

    driver, log, store = job("always", 3)
    builds = [(task, result) for task, _, kind, result in log if kind == StageKind.BUILD]
    assert [(task, r.ok) for task, r in builds] == [
        ("matmul:32x32x32", False),
        ("matmul:32x32x32", False),
        ("matmul:32x32x32", False),
        ("dense:2x32x16", True),
    ]
    assert builds[2][1].error == "OSError: disk full (task stopped)"
    assert driver.trials() == (8, 16)
    stopped = driver.summary()[0]
    assert stopped.done and stopped.trials == 0
    assert stopped.error == "build failed 3 times in a row: OSError: disk full"
    last = [e for e in events(store, TaskEvent) if e.task == "matmul:32x32x32"][-1]
    assert "stopped=build failed 3 times in a row: OSError: disk full" in last.detail.splitlines()
    assert last.tunable is False


@pytest.mark.slow
def test_close_mid_batch_removes_built_libraries(workers: StageWorkers, tmp_path: Path) -> None:
    driver = MetaScheduleDriver(
        "j-cancel",
        ["matmul:32"],
        DriverSettings(trials_per_task=16, batch_size=4, search=SMALL_SEARCH),
        workers=workers,
        db_dir=tmp_path / "db",
    )
    for _ in range(2):  # select, build
        task, iteration, kind = driver.next_stage()
        assert driver.run(task, iteration, kind, "client:0").ok
    artifacts = [b.artifact for b in driver._by_name[task].builds]
    assert artifacts and all(os.path.isfile(a) for a in artifacts)
    driver.close(cancelled=True)
    assert not any(os.path.exists(a) for a in artifacts)
    assert (tmp_path / "db" / DB_WORKLOAD).is_file()


@pytest.mark.slow
def test_bad_driver_inputs_raise_before_anything_runs(
    workers: StageWorkers, tmp_path: Path
) -> None:
    common = {"workers": workers, "db_dir": tmp_path / "db"}
    with pytest.raises(TunerError, match="trials per task must be a positive integer, got 0"):
        MetaScheduleDriver("j", ["matmul:8"], DriverSettings(trials_per_task=0), **common)
    with pytest.raises(TunerError, match="trials must be a positive integer, got -2"):
        DriverSettings(trials=-2)
    with pytest.raises(TunerError, match="unknown allocator 'best'"):
        DriverSettings(trials=8, allocator="best")
    with pytest.raises(TunerError, match="time budget must be a positive number"):
        DriverSettings(trials=8, time_budget_s=0)
    with pytest.raises(TunerError, match="unknown operator"):
        MetaScheduleDriver("j", ["nope:8"], DriverSettings(trials_per_task=4), **common)
    with pytest.raises(TunerError, match="no device pool 'device:rpc:x'"):
        MetaScheduleDriver(
            "j",
            ["matmul:8"],
            DriverSettings(trials_per_task=4, device_pool="device:rpc:x"),
            **common,
        )
    with pytest.raises(TunerError, match="unknown target"):
        MetaScheduleDriver(
            "j", ["matmul:8"], DriverSettings(trials_per_task=4, target="opencl"), **common
        )


# --- under the scheduler ------------------------------------------------------------------------


@pytest.mark.slow
def test_two_jobs_interleave_under_the_scheduler_into_sqlite(
    workers: StageWorkers, tmp_path: Path
) -> None:
    from tuner.clock import WallClock
    from tuner.scheduler import Scheduler

    store = SQLiteStore(tmp_path / "run.db")
    sink = EventSink(store)
    scheduler = Scheduler(workers.resources, "interleaved", clock=WallClock(), sink=sink)
    drivers: dict[str, MetaScheduleDriver] = {}

    def maker(spec: str) -> Any:
        def make(job_id: str) -> MetaScheduleDriver:
            drivers[job_id] = MetaScheduleDriver(
                job_id,
                [spec],
                DriverSettings(trials_per_task=16, batch_size=8, search=SMALL_SEARCH),
                workers=workers,
                db_dir=tmp_path / "runs" / job_id,
                sink=sink,
            )
            return drivers[job_id]

        return make

    for spec in ("matmul:64", "dense:8x64x32"):
        scheduler.submit_job(
            maker(spec),
            name=spec,
            target="llvm",
            device_pool="device:llvm",
            tasks=[parse_workload(spec).name],
            trials_total=16,
        )
    scheduler.run()
    infos = scheduler.list()
    assert [str(i.state) for i in infos] == ["finished", "finished"]
    assert [(i.trials_done, i.trials_total) for i in infos] == [(16, 16), (16, 16)]
    store.close()

    store = SQLiteStore(tmp_path / "run.db", read_only=True)
    stages = events(store, StageEvent)
    profiles = [s for s in stages if s.stage == "profile"]
    assert len(stages) - len(profiles) == 2 * 2 * 3  # two jobs, two iterations
    assert all(s.status == "ok" for s in stages)
    # Each batch's profile, and after some a quiet one: its would-be bests timed again
    # while no select, build or update ran (always in a task's first batch).
    quiet = [
        s
        for s in profiles
        if any(
            o.start < s.start and (o.job, o.task, o.iteration) == (s.job, s.task, s.iteration)
            for o in profiles
        )
    ]
    assert 2 <= len(quiet) <= 4 and len(profiles) == 4 + len(quiet)
    assert {(s.job, s.iteration) for s in quiet} >= {(i.id, 0) for i in infos}
    client_work = [s for s in stages if s.stage != "profile"]
    for s in quiet:
        assert not [w for w in client_work if w.start < s.end and s.start < w.end], s
    for resource in workers.resources:
        spans = sorted((s.start, s.end) for s in stages if s.resource == resource)
        assert all(a_end <= b_start for (_, a_end), (b_start, _) in itertools.pairwise(spans))
    assert {s.resource for s in stages if s.stage == "profile"} == {"device:llvm:0"}
    first, second = (i.id for i in infos)
    ends = max(s.end for s in stages if s.job == first)
    assert min(s.start for s in stages if s.job == second) < ends  # interleaved, not one by one
    records = events(store, RecordEvent)
    assert {j: sum(1 for r in records if r.job == j) for j in (first, second)} == {
        first: 16,
        second: 16,
    }
    store.close()
    check_compiles(tmp_path / "runs" / first, "matmul:64", llvm_target(workers))
