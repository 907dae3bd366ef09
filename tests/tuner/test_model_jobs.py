"""Model jobs through the scheduler's Control: a zoo model submitted as one job runs beside a
kernel job; a bad model is refused at submit, naming it, while the other jobs keep running."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

pytest.importorskip("tensorflow", reason="the models extra (tensorflow) is not installed")

from collectors.events import JobEvent, TaskEvent
from collectors.jobs import JobSpec, JobState
from collectors.sink import EventSink
from collectors.sqlite_store import SQLiteStore
from tuner.clock import WallClock
from tuner.engine import driver_factory
from tuner.metaschedule.settings import SMALL_SEARCH
from tuner.metaschedule.workers import StageWorkers
from tuner.models._base import ModelError
from tuner.scheduler import Scheduler


@pytest.mark.slow
def test_model_job_beside_a_kernel_job_and_a_bad_model_refused(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "run.db")
    sink = EventSink(store)
    workers = StageWorkers()
    scheduler = Scheduler(
        workers.resources,
        "interleaved",
        clock=WallClock(),
        sink=sink,
        driver_factory=driver_factory(
            workers=workers, runs_dir=tmp_path / "runs", sink=sink, batch_size=4,
            search=SMALL_SEARCH,
        ),
    )  # fmt: skip
    try:
        kernel = scheduler.submit(JobSpec(workloads=("matmul:32",), trials=8, name="kernel"))
        scheduler.start_background()
        (tmp_path / "corrupt.onnx").write_bytes(b"\x0a\x05junk!" * 10)
        with pytest.raises(ModelError, match=r"corrupt\.onnx"):
            scheduler.submit(JobSpec(model=str(tmp_path / "corrupt.onnx"), trials=4))
        model = scheduler.submit(JobSpec(model="zoo:mlp", trials=4))
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            states = {info.id: info.state for info in scheduler.list()}
            if all(state == JobState.FINISHED for state in states.values()):
                break
            time.sleep(0.5)
    finally:
        scheduler.stop()
        workers.close()
    assert states == {kernel: JobState.FINISHED, model: JobState.FINISHED}
    infos = {info.id: info for info in scheduler.list()}
    tunable = [t for t in infos[model].tasks if not t.startswith("reshape")]
    assert infos[model].trials_done == infos[model].trials_total == 4 * len(tunable)
    tasks = [s.event for s in store.read(kinds=("task",), job=model)]
    assert tasks and all(isinstance(t, TaskEvent) and "model=mlp" in t.detail for t in tasks)
    assert any("matmul" in t.op for t in tasks)
    jobs = {s.event.job for s in store.read(kinds=("job",)) if isinstance(s.event, JobEvent)}
    assert jobs == {kernel, model}  # the refused model left no job behind
    records = store.records()
    assert set(records["job"]) == {kernel, model}
    assert len(records[records["job"] == kernel]) == 8
    store.close()
