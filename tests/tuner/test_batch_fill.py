"""Spare candidates: a search whose candidates the driver filters may be asked for a few more
than the batch, which refill what the filter drops (off by default)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from collectors.jobs import StageKind
from tuner._base import TunerError
from tuner.metaschedule.driver import MetaScheduleDriver
from tuner.metaschedule.settings import SMALL_SEARCH, DriverSettings, SearchConfig, search_batch
from tuner.metaschedule.workers import StageWorkers


def test_only_a_search_whose_candidates_are_filtered_is_asked_for_spare_ones() -> None:
    assert search_batch(16, 4, filtered=True) == 20
    assert search_batch(16, 4, filtered=False) == 16
    assert search_batch(16, 0, filtered=True) == 16


def test_the_spare_is_a_share_of_the_batch_rounded_up_and_none_by_default() -> None:
    assert SearchConfig(spare_share=0.25).spare(16) == 4
    assert SearchConfig(spare_share=0.25).spare(1) == 1
    assert SearchConfig(spare_share=0.1).spare(16) == 2
    assert SearchConfig().spare(16) == 0


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
