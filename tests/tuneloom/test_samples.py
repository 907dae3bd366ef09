"""The logs shipped in sample_logs/ import cleanly and hold what their names promise."""

from __future__ import annotations

import pytest

from collectors.importers import import_paths
from collectors.memory_store import MemoryStore
from tuneloom.cli import UserError, main
from tuneloom.samples import SAMPLE_DIR, load_sample, sample_names


def test_every_sample_loads_without_bad_lines() -> None:
    assert sample_names(), "sample_logs/ holds no *.jsonl sample"
    for name in sample_names():
        store = MemoryStore()
        assert load_sample(name, store) == store.last_pos() > 0


def test_the_real_tuning_sample_has_four_finished_jobs_with_records() -> None:
    store = MemoryStore()
    load_sample("tune-4-jobs", store)
    jobs = store.jobs()
    assert len(jobs) == 4
    assert set(jobs.state) == {"finished"}
    assert set(store.stage_intervals().clock) == {"wall"}
    records = store.records()
    assert records.mean_secs.notna().sum() > 0
    assert set(records.job) == set(jobs.job)
    first = store.record(int(records.pos.iloc[0]))
    assert first is not None and first.trace


def test_the_simulated_sample_says_it_is_simulated() -> None:
    store = MemoryStore()
    load_sample("simulated-8-jobs", store)
    assert set(store.stage_intervals().clock) == {"sim"}
    assert len(store.jobs()) == 8


def test_the_sample_metaschedule_database_imports() -> None:
    store = MemoryStore()
    (summary,) = import_paths([SAMPLE_DIR / "metaschedule-matmul-128"], store, use_tvm=False)
    assert summary.format == "metaschedule"
    assert summary.valid > 0 and summary.bad_lines == 0


def test_an_unknown_sample_is_one_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(UserError, match="no sample named 'nope'"):
        load_sample("nope", MemoryStore())
    assert main(["serve", "--sample", "nope", "--port", "0"]) == 2
    assert "samples: " in capsys.readouterr().err


def test_the_model_sample_is_one_model_job_whose_code_the_inspector_shows() -> None:
    from tuneloom.samples import sample_databases
    from tuner.metaschedule.inspector import MetaScheduleInspector

    store = MemoryStore()
    load_sample("tune-cnn-model", store)
    jobs = store.jobs()
    assert len(jobs) == 1 and jobs.model.iloc[0] == "zoo:cnn"
    tasks = [s.event for s in store.read(kinds=("task",))]
    assert any(t.op.startswith("conv2d") for t in tasks)
    assert any(not t.tunable for t in tasks)  # the reshape, marked and not dropped
    records = store.records()
    valid = records[records.mean_secs.notna()]
    record = store.record(int(valid.pos.iloc[0]))
    inspector = MetaScheduleInspector(store, database_dirs=sample_databases("tune-cnn-model"))
    assert "T.prim_func" in inspector.tir(record)


def test_the_reuse_sample_holds_a_cold_and_a_warm_started_job_of_one_model() -> None:
    from collectors.reuse import best_origins, job_reuse

    store = MemoryStore()
    load_sample("tune-cnn-warm-vs-cold", store)
    jobs, tasks = store.jobs(), store.tasks()
    assert len(jobs) == 2 and set(jobs.name) == {"cnn"} and set(jobs.state) == {"finished"}
    (warm,) = job_reuse(tasks)
    origins = best_origins(store.records(), tasks)
    warm_origins = set(origins[origins.job == warm].origin)
    assert any(o.startswith("reused from zoo:resnet/") for o in warm_origins)
    assert set(origins[origins.job != warm].origin) == {"tuned here"}
