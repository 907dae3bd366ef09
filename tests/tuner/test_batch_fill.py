"""Batches stay full: a select asks the search for a few spare candidates, refills what the
driver drops with them, and a task's short remainder of trials joins its last batch."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from collectors.jobs import StageKind
from tests.tuner.test_metaschedule import drive
from tuner._base import TunerError
from tuner.metaschedule.driver import MetaScheduleDriver
from tuner.metaschedule.settings import SMALL_SEARCH, DriverSettings, SearchConfig, batch_take
from tuner.metaschedule.workers import StageWorkers


@pytest.mark.parametrize(
    ("room", "taken"),
    [
        (64, 16),  # plenty left: a batch
        (21, 16),  # 5 would be left: worth a select of their own
        (20, 20),  # 4 would be left: they join this batch
        (17, 17),
        (16, 16),
        (5, 5),  # the last few
        (0, 0),
    ],
)
def test_a_remainder_of_at_most_the_spare_joins_the_batch(room: int, taken: int) -> None:
    assert batch_take(16, room, 4) == taken


def test_without_spare_a_batch_is_never_larger_than_the_batch_size() -> None:
    assert [batch_take(16, room, 0) for room in (17, 16, 3)] == [16, 16, 3]


def test_the_spare_is_a_share_of_the_batch_rounded_up() -> None:
    assert SearchConfig().spare(16) == 4
    assert SearchConfig().spare(1) == 1
    assert SearchConfig(spare_share=0.1).spare(16) == 2
    assert SearchConfig(spare_share=0).spare(16) == 0


@pytest.mark.parametrize("share", [-0.1, 1.5, "a quarter", True])
def test_a_bad_spare_share_is_named(share: object) -> None:
    with pytest.raises(TunerError, match="spare_share must be a number from 0 to 1"):
        SearchConfig(spare_share=share)  # type: ignore[arg-type]


def job(
    workers: StageWorkers, db_dir: Path, trials: int, batch: int, share: float
) -> MetaScheduleDriver:
    search = replace(SMALL_SEARCH, spare_share=share)
    settings = DriverSettings(trials_per_task=trials, batch_size=batch, search=search, seed=3)
    return MetaScheduleDriver("j1", ["matmul:32"], settings, workers=workers, db_dir=db_dir)


@pytest.mark.parametrize(("share", "batches"), [(0.25, [20]), (0.0, [16, 4])])
def test_a_short_remainder_of_a_tasks_trials_costs_no_select_of_its_own(
    workers: StageWorkers, tmp_path: Path, share: float, batches: list[int]
) -> None:
    driver = job(workers, tmp_path / "db", trials=20, batch=16, share=share)
    log = drive(driver, workers)
    (task,) = driver._tasks
    driver.close()
    assert task.batch_trials == batches
    selects = [r for _, _, kind, r in log if kind == StageKind.SELECT and r.candidates]
    assert [r.candidates for r in selects] == batches
    assert driver.trials() == (20, 20)


def first_batch(driver: MetaScheduleDriver) -> list[int]:
    """The structural hashes of the candidates the driver's first select keeps."""
    import tvm_ffi

    task, iteration, kind = driver.next_stage()
    assert kind == StageKind.SELECT and driver.run(task, iteration, kind, "client:0").ok
    return [tvm_ffi.structural_hash(c.sch.mod) for c in driver._by_name[task].candidates]


@pytest.mark.parametrize(("share", "kept"), [(0.5, 8), (0.0, 5)])
def test_the_spare_candidates_refill_a_batch_the_filter_of_measured_ones_cut(
    workers: StageWorkers, tmp_path: Path, share: float, kept: int
) -> None:
    # The same seed proposes the same candidates: the second job's search proposes first
    # what the first job's did, of which 3 count as measured already (as after a restart or
    # a grown search).
    reference = job(workers, tmp_path / "a", trials=8, batch=8, share=share)
    proposed = first_batch(reference)
    reference.close()
    again = job(workers, tmp_path / "b", trials=8, batch=8, share=share)
    (task,) = again._tasks
    task.measured.update(proposed[:3])
    kept_hashes = first_batch(again)
    again.close()
    assert len(kept_hashes) == kept
    assert not set(kept_hashes) & set(proposed[:3])
    assert kept_hashes[:5] == proposed[3:8]
