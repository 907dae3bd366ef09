"""cuda targets: the config, the GPU device resources, and each task's default schedule
measured first. This machine may have no GPU: what needs one runs where it has (see
``benchmarks/gpu_check.py``); here the GPU's presence is pretended where noted, and the
profiles then fail for real."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import tvm_ffi
from tvm.s_tir import Schedule
from tvm.s_tir import meta_schedule as ms
from tvm.target import Target

import tuner.engine
import tuner.metaschedule.targets as targets
from tuneloom.cli import main
from tuner._base import TunerError
from tuner.engine import _check_device
from tuner.metaschedule.gpu_default import default_schedule
from tuner.metaschedule.run import LocalProfiler
from tuner.metaschedule.workers import StageWorkers
from tuner.metaschedule.workloads import workload_module

CUDA = targets.target_config('{"kind": "cuda", "arch": "sm_90"}', 1)
WORKLOADS = ("matmul:64", "conv2d:1x8x16x16,16x3x3,pad=1", "dense:1x256x128")


@pytest.mark.parametrize("workload", WORKLOADS)
def test_the_default_schedule_binds_gpu_threads_and_replays_as_a_record(workload: str) -> None:
    mod = workload_module(workload)
    schedule = default_schedule(mod, Target(CUDA))
    assert schedule is not None
    assert "threadIdx" in schedule.mod.script()
    replayed = Schedule(mod)
    schedule.trace.apply_to_schedule(replayed, remove_postproc=False)
    assert tvm_ffi.structural_equal(replayed.mod, schedule.mod)
    assert not tvm_ffi.structural_equal(schedule.mod, mod)


def test_gpu_devices_are_resources_that_profile_on_the_gpu_and_never_build() -> None:
    workers = StageWorkers(local_devices=0, local_gpus=2)
    assert "device:cuda:0" in workers.resources and "device:cuda:1" in workers.resources
    assert workers.device_pools() == ["device:cuda"]
    with pytest.raises(TunerError, match="no client or local device resource"):
        workers.builder("device:cuda:0")
    profiler = workers.profiler("device:cuda:1")
    assert isinstance(profiler, LocalProfiler) and profiler.device == ("cuda", 1)
    workers.close()


def test_a_job_is_profiled_where_its_kernels_run() -> None:
    _check_device(CUDA, "device:cuda")
    _check_device(targets.target_config("llvm", 1), "device:llvm")
    with pytest.raises(TunerError, match="profiled on this host's GPUs, not on device:llvm"):
        _check_device(CUDA, "device:llvm")
    with pytest.raises(TunerError, match="profiled on this host's GPUs"):
        _check_device(CUDA, "device:rpc:pi")
    with pytest.raises(TunerError, match="cannot be timed on a GPU"):
        _check_device(targets.target_config("llvm", 1), "device:cuda")


def test_without_a_gpu_a_cuda_target_is_searched_within_every_gpus_limits() -> None:
    if targets.cuda_devices():
        pytest.skip("this machine has a GPU: its own limits are used")
    config = targets.target_config("cuda", 1)
    assert config["max_threads_per_block"] == 1024
    assert config["max_shared_memory_per_block"] == 49152


@pytest.mark.slow
def test_each_task_of_a_gpu_job_measures_its_default_schedule_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    if not targets.cuda_devices():  # pretend one: the search and builds are real
        monkeypatch.setattr(tuner.engine, "cuda_devices", lambda: 1)
    db = tmp_path / "run.db"
    code = main(
        ["tune", "--workload", "matmul:64", "--target", json.dumps(CUDA), "--trials", "9",
         "--batch", "8", "--population", "64", "--db", str(db), "--no-library", "--json"]
    )  # fmt: skip
    report = json.loads(capsys.readouterr().out)
    assert code in (0, 1), report
    (job,) = report["jobs"]
    assert job["tasks"][0]["trials"] == 9  # the default, then the search's batch of 8
    db_dir = Path(job["db_dir"])
    workloads = [json.loads(line) for line in (db_dir / "database_workload.json").open()]
    lines = [json.loads(line) for line in (db_dir / "database_tuning_record.json").open()]
    assert len(lines) == 9
    workload = ms.database.Workload.from_json(workloads[lines[0][0]])
    first = ms.database.TuningRecord.from_json(lines[0][1], workload)
    replayed = Schedule(workload.mod)
    first.trace.apply_to_schedule(replayed, remove_postproc=False)
    default = default_schedule(workload.mod, Target(CUDA))
    assert default is not None
    assert tvm_ffi.structural_equal(replayed.mod, default.mod)
    later = ms.database.TuningRecord.from_json(lines[1][1], workload)
    searched = Schedule(workload.mod)
    later.trace.apply_to_schedule(searched, remove_postproc=False)
    assert not tvm_ffi.structural_equal(searched.mod, default.mod)
