"""Run a model's tasks as one real MetaSchedule job on this machine (tests' helper)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from collectors.memory_store import MemoryStore
from collectors.sink import EventSink


def run_model_job(
    name: str,
    tasks: list,
    settings: Any,
    db_dir: Path,
    before: Callable[[Any], None] | None = None,
) -> tuple[Any, MemoryStore]:
    """(the finished driver, the store its events went to) for one job of ``tasks`` under
    ``settings`` (``DriverSettings``), its database in ``db_dir``; ``before(driver)`` runs
    once the driver exists, before any stage."""
    from tuner.clock import WallClock
    from tuner.metaschedule.driver import MetaScheduleDriver
    from tuner.metaschedule.workers import StageWorkers
    from tuner.scheduler import Scheduler

    store = MemoryStore()
    sink = EventSink(store)
    with StageWorkers() as workers:
        driver = MetaScheduleDriver(
            "j1", tasks, settings, workers=workers, db_dir=db_dir, sink=sink
        )
        if before is not None:
            before(driver)
        scheduler = Scheduler(workers.resources, "interleaved", clock=WallClock(), sink=sink)
        scheduler.submit_job(
            lambda job_id: driver, name=name, target="llvm", device_pool="device:llvm",
            tasks=driver.tasks, trials_total=driver.trials()[1],
        )  # fmt: skip
        scheduler.run()
    return driver, store
