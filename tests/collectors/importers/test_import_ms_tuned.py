"""A database written by a real MetaSchedule run: import it with TVM decoding, export its best."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from collectors.events import RecordEvent
from collectors.exporters import databases_in_store, export_best_db
from collectors.importers import import_paths, readable_trace
from collectors.memory_store import MemoryStore

pytestmark = pytest.mark.slow

N = 32
TRIALS = 8


@pytest.fixture(scope="module")
def tuned_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Tune a 32x32 matmul for 8 trials on llvm into a fresh work dir."""
    import tvm
    from tvm import te
    from tvm.s_tir import meta_schedule as ms

    from tuner.metaschedule.intrinsics import load_tensor_intrinsics

    a = te.placeholder((N, N), name="A")
    b = te.placeholder((N, N), name="B")
    k = te.reduce_axis((0, N), name="k")
    c = te.compute((N, N), lambda i, j: te.sum(a[i, k] * b[k, j], axis=k), name="C")
    func = te.create_prim_func([a, b, c]).with_attr("global_symbol", "matmul32")
    work_dir = tmp_path_factory.mktemp("tuned")
    target = tvm.target.Target({"kind": "llvm", "num-cores": 1})
    load_tensor_intrinsics(target)  # the host's only, as the tuner loads them: not every target's
    ms.tune_tir(
        func,
        target,
        str(work_dir),
        max_trials_global=TRIALS,
        num_trials_per_iter=TRIALS,
        cost_model="random",
        num_tuning_cores=1,
        seed=7,
    )
    return work_dir


def test_import_with_tvm_decoding(tuned_db: Path) -> None:
    store = MemoryStore()
    (summary,) = import_paths([tuned_db], store, use_tvm=True)
    lines = (tuned_db / "database_tuning_record.json").read_text().splitlines()
    assert summary.format == "metaschedule"
    assert summary.records == len(lines) == TRIALS
    assert summary.bad_lines == 0
    (workload,) = summary.workloads
    secs = [json.loads(line)[1][1] for line in lines]
    valid = [sum(s) / len(s) for s in secs if s and sum(s) / len(s) < 1e9]
    assert workload.valid == summary.valid == len(valid)
    assert workload.best_mean_cost_s == pytest.approx(min(valid))
    (task,) = store.tasks().itertuples()
    assert task.op == "matmul32" and task.flops == 2 * N**3
    assert "T.prim_func" in task.detail
    first = store.record(int(store.records()["pos"].iloc[0]))
    assert isinstance(first, RecordEvent) and first.origin == "metaschedule"
    assert json.loads(first.trace or "") == json.loads(lines[0])[1][0]  # as TVM wrote it
    assert "sample_perfect_tile(" in (readable_trace(first) or "")


def test_best_db_from_the_store_is_loadable(tuned_db: Path, tmp_path: Path) -> None:
    from tvm.s_tir import meta_schedule as ms

    store = MemoryStore()
    import_paths([tuned_db], store, use_tvm=False)
    sources = databases_in_store(store)
    assert sources == [tuned_db.resolve()]
    summary = export_best_db(sources, tmp_path / "best")
    assert summary.workloads_written == 1
    db = ms.database.JSONDatabase(
        path_workload=str(tmp_path / "best" / "database_workload.json"),
        path_tuning_record=str(tmp_path / "best" / "database_tuning_record.json"),
        allow_missing=False,
    )
    (record,) = db.get_all_tuning_records()
    best = store.records()["mean_secs"].min()
    assert float(record.run_secs[0]) == pytest.approx(best)
