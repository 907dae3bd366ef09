"""A job's search state shared between threads: the locked database and the cost model whose
XGBoost calls go one thread at a time (real TVM, a tiny matmul)."""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
import pytest
from tvm.s_tir import meta_schedule as ms
from tvm.target import Target

from tuner.metaschedule.cost_model import SharedXGBModel
from tuner.metaschedule.locked_database import LockedDatabase
from tuner.metaschedule.settings import SMALL_SEARCH
from tuner.metaschedule.targets import target_config
from tuner.metaschedule.workloads import workload_module


def search(database: Any, model: Any) -> tuple[Any, list[Any]]:
    """A search of matmul:32 on ``database`` and ``model``, and its first batch."""
    target = Target(target_config("llvm", 1))
    ctx = ms.TuneContext(
        workload_module("matmul:32"),
        target=target,
        space_generator="post-order-apply",
        search_strategy=SMALL_SEARCH.strategy(1),
        task_name="matmul",
        rand_state=7,
        num_threads=1,
    )
    ctx.pre_tuning(
        max_trials=64,
        num_trials_per_iter=8,
        design_spaces=ctx.generate_design_space(),
        database=database,
        cost_model=model,
    )
    return ctx, list(ctx.generate_measure_candidates())


def results_for(candidates: list[Any]) -> list[Any]:
    """Latencies that differ per candidate (the model needs something to learn)."""
    return [ms.runner.RunnerResult([1e-4 * (1 + i)], None) for i in range(len(candidates))]


def in_thread(work: Any) -> tuple[threading.Thread, dict[str, Any]]:
    out: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: out.setdefault("value", work()))
    thread.start()
    return thread, out


@pytest.fixture(scope="module")
def trained() -> tuple[Any, Any, list[Any]]:
    model = SharedXGBModel(num_warmup_samples=0, verbose_eval=0)
    ctx, candidates = search(LockedDatabase(ms.database.MemoryDatabase()), model)
    model.update(ctx, candidates, results_for(candidates))
    assert model.booster is not None
    return model, ctx, candidates


def test_a_prediction_waits_while_another_thread_is_inside_xgboost(trained: Any) -> None:
    model, ctx, candidates = trained
    alone = np.asarray(model.predict(ctx, candidates))
    with model.booster_lock:
        thread, out = in_thread(lambda: np.asarray(model.predict(ctx, candidates)))
        time.sleep(0.5)
        assert thread.is_alive() and "value" not in out  # waiting at the booster
    thread.join(30)
    assert not thread.is_alive()
    np.testing.assert_array_equal(out["value"], alone)
    assert len(alone) == len(candidates) and np.isfinite(alone).all()


def test_selects_predict_while_an_update_trains(trained: Any) -> None:
    model, ctx, candidates = trained
    expected = np.asarray(model.predict(ctx, candidates))
    threads = [in_thread(lambda: np.asarray(model.predict(ctx, candidates))) for _ in range(3)]
    model.update(ctx, candidates, results_for(candidates)[::-1])  # retrains meanwhile
    for thread, out in threads:
        thread.join(60)
        assert not thread.is_alive()
        assert out["value"].shape == expected.shape and np.isfinite(out["value"]).all()
    assert not np.array_equal(np.asarray(model.predict(ctx, candidates)), expected)


def test_the_locked_database_serves_the_search_and_commits_wait_for_its_lock() -> None:
    inner = ms.database.MemoryDatabase()
    database = LockedDatabase(inner)
    model = SharedXGBModel(num_warmup_samples=0, verbose_eval=0)
    ctx, candidates = search(database, model)
    workload = database.commit_workload(ctx.mod)
    target = Target(target_config("llvm", 1))

    def commit(candidate: Any, seconds: float) -> None:
        database.commit_tuning_record(
            ms.database.TuningRecord(candidate.sch.trace, workload, [seconds], target)
        )

    with database.lock:
        thread, _ = in_thread(lambda: commit(candidates[0], 3e-4))
        time.sleep(0.3)
        assert thread.is_alive() and len(inner) == 0  # the commit waits for the lock
    thread.join(30)
    commit(candidates[1], 1e-4)
    assert len(database) == len(inner) == 2
    best = database.get_top_k(workload, 1)
    assert [float(s) for s in best[0].run_secs] == [1e-4]
    assert database.has_workload(ctx.mod)
    # The search starts its next batch from the database's best records, through the lock.
    ctx.notify_runner_results(candidates, results_for(candidates))
    assert len(list(ctx.generate_measure_candidates())) > 0
