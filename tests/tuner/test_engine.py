"""The engine: every way of starting a job goes through it, with real TVM.

A spec's workloads or model become one job; a model job's last stage compiles it into
``RUNS_DIR/<job>/compiled`` and every finished job joins the library, whichever way the job
was submitted. Bad specs are refused at submit with the reason, and other jobs go on.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import replace
from pathlib import Path

import pytest

from collectors.events import JobEvent, StageEvent, TaskEvent
from collectors.jobs import JobSpec, JobSpecError, JobState
from collectors.memory_store import MemoryStore
from collectors.reuse import parse_reused
from collectors.sqlite_store import SQLiteStore
from tuner._base import TunerError
from tuner.engine import COMPILE_TASK, Engine, EngineSettings
from tuner.metaschedule.driver import CHECK_TASK
from tuner.metaschedule.library import ScheduleLibrary
from tuner.metaschedule.run import EvalConfig
from tuner.metaschedule.settings import SMALL_SEARCH
from tuner.models._base import ModelError
from tuner.models.compiled import load_compiled

QUICK = EvalConfig(number=2, repeat=1, min_repeat_ms=5)


def settings(tmp_path: Path, **changes: object) -> EngineSettings:
    given = {"runs_dir": tmp_path / "runs", "measure": QUICK, "search": SMALL_SEARCH, **changes}
    return EngineSettings(**given)  # type: ignore[arg-type]


def test_specs_are_checked_before_a_job_is_planned(tmp_path: Path) -> None:
    for spec, why in [
        ({}, "a model or at least one workload"),
        ({"workloads": ("matmul:8",), "trials": 0}, "trials must be a positive integer"),
        ({"workloads": "matmul:8"}, "workloads must be a list"),
        ({"model": "zoo:cnn", "input_shapes": {"x": (1, 0)}}, "positive dimensions"),
        ({"workloads": ("matmul:8",), "reuse_sources": ()}, "reuse_sources"),
    ]:
        with pytest.raises(JobSpecError, match=why):
            JobSpec(**spec)  # type: ignore[arg-type]
    with Engine(settings(tmp_path)) as engine:
        for spec, why in [
            (JobSpec(workloads=("nope:8",)), "unknown operator 'nope'"),
            (JobSpec(workloads=("matmul:8",), target="rocm"), "unknown target 'rocm'"),
            (JobSpec(workloads=("matmul:8",), target="cuda"), "profiled on this host's GPUs"),
            (JobSpec(workloads=("matmul:8",), device="rpc:gpu"), "no device 'rpc:gpu'"),
            (JobSpec(model=str(tmp_path / "resnet.onnx")), r"resnet\.onnx: file not found"),
        ]:
            with pytest.raises(TunerError, match=why):
                engine.submit(spec)
        assert engine.list() == []
        catalog = engine.catalog()
    assert catalog.devices == ("llvm",)
    assert {"zoo:cnn", "zoo:mlp"} <= set(catalog.models)


def test_a_spec_round_trips_through_json() -> None:
    spec = JobSpec(
        model="zoo:cnn", trials=8, target={"kind": "llvm", "mcpu": "generic"}, device="rpc:pi",
        input_shapes={"x": (1, 3, 8, 8)}, model_batch=2, warm_start="/lib",
        reuse_sources=("zoo:resnet",),
    )  # fmt: skip
    assert JobSpec.from_dict(spec.to_dict()) == spec
    with pytest.raises(JobSpecError, match="unknown job spec field 'trails'"):
        JobSpec.from_dict({"model": "zoo:cnn", "trails": 3})


@pytest.mark.parametrize("retime", ["quiet", "inline"])
def test_the_engine_times_would_be_bests_again_as_its_settings_say(
    tmp_path: Path, retime: str
) -> None:
    """``quiet``: in quiet profiles of their own, each record holding that timing alone;
    ``inline``: in the same profile, no quiet profile, each record holding both."""
    store = MemoryStore()
    with Engine(settings(tmp_path, retime=retime), store=store) as engine:
        engine.submit(JobSpec(workloads=("matmul:16",), trials=8, batch=4))
        report = engine.run()
    assert report.jobs[0].state == "finished" and report.scheduler["retime"] == retime
    quiet = report.scheduler["quiet_profiles"] + report.scheduler["quiet_demoted"]
    timings = {len(s.event.run_secs) for s in store.read(kinds=("record",))}
    if retime == "quiet":
        assert quiet >= 1 and timings == {QUICK.repeat}
    else:
        assert quiet == 0 and timings == {QUICK.repeat, 2 * QUICK.repeat}
    with pytest.raises(TunerError, match="unknown retime mode 'twice'"):
        settings(tmp_path, retime="twice")


@pytest.mark.slow
def test_workload_jobs_run_and_report_and_join_the_library(tmp_path: Path) -> None:
    store = MemoryStore()
    library = tmp_path / "library"
    with Engine(settings(tmp_path, library=library), store=store) as engine:
        job = engine.submit(
            JobSpec(workloads=("matmul:16", "dense:2x16x8"), trials_per_task=8, batch=8)
        )
        report = engine.run()
    (done,) = report.jobs
    assert done.id == job and done.state == "finished"
    assert [t.name for t in done.tasks] == ["matmul:16x16x16", "dense:2x16x8"]
    assert [t.trials for t in done.tasks] == [8, 8]
    assert all(t.best_latency_s and t.best_latency_s > 0 for t in done.tasks)
    assert done.library is not None and done.library["added"] == 2
    assert len(ScheduleLibrary(library).entries()) == 2
    assert done.compiled is None  # workloads, not a model: nothing to compile
    finals = [s.event for s in store.read(kinds=("stage",), job=job)]
    assert finals[-1].task == "library" and finals[-1].stage == "build"
    assert report.as_json()["jobs"][0]["library"]["added"] == 2
    (finished,) = [s.event for s in store.read(kinds=("job",)) if s.event.change == "finished"]
    assert finished.detail == "16 trials; 2 schedule(s) added to the library"


@pytest.mark.slow
def test_a_model_job_beside_a_kernel_job_ends_compiled_and_a_bad_model_is_refused(
    tmp_path: Path,
) -> None:
    store = SQLiteStore(tmp_path / "run.db")
    with Engine(settings(tmp_path), store=store) as engine:
        kernel = engine.submit(JobSpec(workloads=("matmul:32",), trials=8, batch=4, name="k"))
        engine.serve()
        (tmp_path / "corrupt.onnx").write_bytes(b"\x0a\x05junk!" * 10)
        with pytest.raises(ModelError, match=r"corrupt\.onnx"):
            engine.submit(JobSpec(model=str(tmp_path / "corrupt.onnx"), trials=4))
        model = engine.submit(JobSpec(model="zoo:mlp", trials_per_task=4, batch=4))
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            states = {info.id: info.state for info in engine.list()}
            if all(state == JobState.FINISHED for state in states.values()):
                break
            time.sleep(0.5)
        report = engine.report()
    assert states == {kernel: JobState.FINISHED, model: JobState.FINISHED}
    infos = {job.id: job for job in report.jobs}
    tuned = [t for t in infos[model].tasks if not t.stopped]
    assert tuned and all(t.trials == 4 for t in tuned)
    # Each task's first batch has a would-be best, timed again in a quiet profile.
    quiet = report.scheduler["quiet_profiles"] + report.scheduler["quiet_demoted"]
    assert quiet >= 1 + len(tuned) and report.scheduler["quiet_profiles"] >= 1
    compiled = infos[model].compiled
    assert compiled == str(tmp_path / "runs" / model / "compiled")
    assert load_compiled(compiled).metadata["tuned"]
    assert infos[kernel].compiled is None
    tasks = [s.event for s in store.read(kinds=("task",), job=model)]
    assert tasks and all(isinstance(t, TaskEvent) and "model=mlp" in t.detail for t in tasks)
    stages = [s.event for s in store.read(kinds=("stage",), job=model)]
    last = [e for e in stages if e.task == COMPILE_TASK][-1]
    assert isinstance(last, StageEvent) and (last.task, last.stage) == (COMPILE_TASK, "build")
    assert last.resource.startswith("client:")  # never on the profiling core
    changes = [s.event for s in store.read(kinds=("job",), job=model)]
    assert isinstance(changes[-1], JobEvent) and changes[-1].change == "finished"
    assert f"compiled model in {compiled}" in changes[-1].detail
    jobs = {s.event.job for s in store.read(kinds=("job",))}
    assert jobs == {kernel, model}  # the refused model left no job behind
    records = store.records()
    assert len(records[records["job"] == kernel]) == 8
    store.close()


@pytest.mark.slow
def test_a_lone_jobs_tasks_run_side_by_side_within_its_whole_budget(tmp_path: Path) -> None:
    store = MemoryStore()
    spec = JobSpec(workloads=("matmul:64,dense:4x64x32",), trials=24, batch=8)
    with Engine(settings(tmp_path), store=store) as engine:
        job = engine.submit(spec)
        report = engine.run()
    (done,) = report.jobs
    assert done.state == "finished" and sum(t.trials for t in done.tasks) == 24
    assert all(t.trials >= 8 for t in done.tasks)  # every task gets a batch first
    stages = [s.event for s in store.read(kinds=("stage",), job=job)]
    profiles = [e for e in stages if e.stage == "profile"]
    client = [e for e in stages if e.resource.startswith("client:")]
    # Some task's profile ran while another task of the same job used the client.
    assert any(
        p.task != c.task and p.start < c.end and c.start < p.end for p in profiles for c in client
    )
    for resource in {e.resource for e in stages}:
        held = sorted((e.start, e.end) for e in stages if e.resource == resource)
        assert all(a[1] <= b[0] for a, b in itertools.pairwise(held))


@pytest.mark.slow
@pytest.mark.parametrize("scope", ["all-jobs", "job"])
def test_jobs_running_together_offer_each_other_their_bests_unless_told_not_to(
    tmp_path: Path, scope: str
) -> None:
    store = MemoryStore()
    search = replace(SMALL_SEARCH, siblings_from=scope)
    with Engine(settings(tmp_path, search=search), store=store) as engine:
        jobs = [
            engine.submit(JobSpec(workloads=(spec,), trials=24, batch=8))
            for spec in ("matmul:48", "matmul:64")
        ]
        report = engine.run()
    assert [j.state for j in report.jobs] == ["finished", "finished"]
    sources = {
        (s.event.job, found.source)
        for s in store.read(kinds=[TaskEvent.kind])
        for found in parse_reused(s.event.detail).values()
    }
    measured = sum(t.sibling_schedules for j in report.jobs for t in j.tasks)
    if scope == "job":  # one task each: no sibling anywhere
        assert sources == set() and measured == 0
    else:  # each job's later batches open with the other's newest best
        other = dict(zip(jobs, reversed(jobs), strict=True))
        assert sources and all(source.startswith(f"{other[job]}/") for job, source in sources)
        assert measured >= len(sources)


@pytest.mark.slow
def test_a_time_budget_stops_new_batches_and_says_so(tmp_path: Path) -> None:
    store = MemoryStore()
    spec = JobSpec(workloads=("matmul:64",), trials=10_000, batch=4, time_budget=4.0)
    with Engine(settings(tmp_path), store=store) as engine:
        job = engine.submit(spec)
        started = time.monotonic()
        report = engine.run()
        took = time.monotonic() - started
    (done,) = report.jobs
    trials = done.tasks[0].trials
    assert done.state == "finished" and 0 < trials < 10_000
    assert took < 4.0 + 30  # the batches under way finish; none starts after the budget
    assert done.detail == f"{trials} trials; time budget of 4s spent"
    (info,) = [s.event for s in store.read(kinds=("job",), job=job) if s.event.change == "finished"]
    assert info.trials == 10_000 and info.detail == done.detail  # asked, and why it stopped


@pytest.mark.slow
def test_a_target_latency_stops_a_model_job_once_its_compiled_model_meets_it(
    tmp_path: Path,
) -> None:
    store = MemoryStore()
    lax = JobSpec(model="zoo:mlp", trials=400, batch=4, target_latency=1000.0)
    strict = JobSpec(model="zoo:mlp", trials=12, batch=4, target_latency=1e-6, name="strict")
    with Engine(settings(tmp_path), store=store) as engine:
        met = engine.submit(lax)
        unmet = engine.submit(strict)
        report = engine.run()
    jobs = {job.id: job for job in report.jobs}
    assert {job.state for job in jobs.values()} == {"finished"}
    # Met at the first check, once every task had a batch: far fewer trials than asked.
    measured = sum(t.trials for t in jobs[met].tasks)
    assert 0 < measured < 400
    assert "target latency met: " in jobs[met].detail and "(target 1000 ms)" in jobs[met].detail
    checks = [s.event for s in store.read(kinds=("stage",), job=met) if s.event.task == CHECK_TASK]
    assert [(e.stage, e.resource.split(":")[0]) for e in checks] == [
        ("build", "client"), ("profile", "device"),
    ]  # fmt: skip
    # Never met: the whole budget is spent and the job says so.
    assert sum(t.trials for t in jobs[unmet].tasks) == 12
    assert "target latency 1e-06 ms not met (never measured)" in jobs[unmet].detail
    submitted = next(s.event for s in store.read(kinds=("job",), job=unmet))
    assert submitted.detail == "budget 12 trials; spread by gain; target latency 1e-06 ms"
