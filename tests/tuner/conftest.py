"""Fixtures for the tuner tests (helpers to import live in ``scheduling_helpers``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from scheduling_helpers import make_sink

from collectors.sink import EventSink
from tuner.clock import SimClock
from tuner.metaschedule.library import ScheduleLibrary

# The workloads of the short real tuning job that fills the reuse tests' library.
REUSE_SPECS = ("matmul:64", "conv2d:1x8x16x16,16x3x3,pad=1", "dense:1x256x128")


@pytest.fixture(scope="module")
def workers() -> Iterator[Any]:
    """Real build and profile workers (``StageWorkers``: processes), shared by a module's
    tests, with short timings."""
    from tuner.metaschedule.run import EvalConfig
    from tuner.metaschedule.workers import StageWorkers

    stage_workers = StageWorkers(
        evaluator=EvalConfig(number=2, repeat=1, min_repeat_ms=5),
        build_timeout_s=120.0,
        run_timeout_s=30.0,
    )
    yield stage_workers
    stage_workers.close()


@pytest.fixture
def sim_clock() -> SimClock:
    """A fresh simulated clock at 0.0."""
    return SimClock()


@pytest.fixture
def sim_sink(sim_clock: SimClock) -> EventSink:
    """A sink on ``sim_clock`` writing to a MemoryStore, stamping ``clock: "sim"``."""
    return make_sink(sim_clock)


# --- a real schedule library (tuning reuse) ---------------------------------------------


@pytest.fixture(scope="session")
def target() -> dict:
    from tuner.metaschedule.targets import target_config

    return target_config("llvm", 1)


@pytest.fixture(scope="session")
def tuned(tmp_path_factory: pytest.TempPathFactory, target: dict) -> Iterator[tuple[Path, dict]]:
    """A real tuning job's database and its task names by workload hash (from its events)."""
    from collectors.events import TaskEvent
    from collectors.memory_store import MemoryStore
    from collectors.sink import EventSink
    from tuner.clock import WallClock
    from tuner.metaschedule.driver import MetaScheduleDriver
    from tuner.metaschedule.run import EvalConfig
    from tuner.metaschedule.settings import SMALL_SEARCH, DriverSettings
    from tuner.metaschedule.workers import StageWorkers
    from tuner.scheduler import Scheduler

    db = tmp_path_factory.mktemp("job") / "db"
    store = MemoryStore()
    sink = EventSink(store)
    with StageWorkers(evaluator=EvalConfig(number=2, repeat=1, min_repeat_ms=5)) as workers:
        driver = MetaScheduleDriver(
            "j1",
            list(REUSE_SPECS),
            DriverSettings(trials_per_task=8, batch_size=8, search=SMALL_SEARCH, target=target),
            workers=workers,
            db_dir=db,
            sink=sink,
        )
        scheduler = Scheduler(workers.resources, "interleaved", clock=WallClock(), sink=sink)
        scheduler.submit_job(
            lambda job_id: driver, name="specs", target="llvm", device_pool="device:llvm",
            tasks=driver.tasks, trials_total=24,
        )  # fmt: skip
        scheduler.run()
    assert driver.trials() == (24, 24)
    events = [s.event for s in store.read(kinds=("task",))]
    names = {e.workload_hash: e.task for e in events if isinstance(e, TaskEvent)}
    yield db, names


@pytest.fixture(scope="session")
def library(tmp_path_factory: pytest.TempPathFactory, tuned: tuple[Path, dict]) -> ScheduleLibrary:
    db, names = tuned
    lib = ScheduleLibrary(tmp_path_factory.mktemp("lib") / "library", create=True)
    assert lib.add_database(db, model="specs", task_names=names).added == 3
    return lib


@pytest.fixture(scope="session")
def cnn_tasks(target: dict) -> list:
    from tuner.models.tasks import model_tasks
    from tuner.models.zoo import build_onnx

    return model_tasks(build_onnx("cnn", image_size=16), target)[1]
