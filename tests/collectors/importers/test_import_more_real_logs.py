"""Excerpts of real tuning logs from public repositories: other TVM versions, targets and
layouts than the importers' own fixtures.

Excerpts under a licence this project can ship (Apache-2.0, MIT) are in ``data/more_real_logs``
(sources in its SOURCES.md). Those whose licence is unstated or GPL-3.0 are kept outside the
repository, in ``shared/real_logs/more/`` beside it (sources in its SOURCES.md): their tests
skip when that folder is absent, and ``test_import_synthetic_logs.py`` covers the same format
features with made-up lines.

Every expected value is read from the excerpt itself (costs, timestamps, error codes).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from collectors.importers import LogFormatError, import_paths
from collectors.importers.ms_trace import workload_names
from collectors.sqlite_store import SQLiteStore
from tests.collectors.importers.importer_helpers import (
    DATA,
    REAL_LOGS,
    jobs,
    read_events,
    records,
    stages,
    tasks,
)

MORE = DATA / "more_real_logs"
# Excerpts not shipped (licence unstated or GPL-3.0), beside the repository when present.
MORE_OUTSIDE = REAL_LOGS / "more"
SYNTHETIC = DATA / "synthetic_logs"


def outside_excerpt(name: str) -> Path:
    """Path of an excerpt kept outside the repository, or skip the test when it is absent."""
    path = MORE_OUTSIDE / name
    if not path.is_file():
        pytest.skip(
            f"excerpt {name} not found under {MORE_OUTSIDE} (licence unstated or GPL-3.0, "
            "so kept outside the repository; test_import_synthetic_logs.py covers its format)"
        )
    return path


def test_tophub_llvm_v01_old_conv2d_signature_has_right_flops() -> None:
    """TVM 0.5 x86 NCHWc args: data, kernel, in_channel, kernel size, strides, padding, no
    dilation. The FLOPs are those of the convolution, not of a misread stride."""
    events, ctx = read_events(outside_excerpt("tophub_llvm_v0.01.log"))
    assert ctx.bad_lines == 0
    found = tasks(events)
    assert [t.task for t in found] == [
        "topi_x86_conv2d_NCHWc(1x3x224x224, 64x3x7x7)",
        "topi_x86_conv2d_NCHWc(1x64x56x56, 64x64x3x3)",
        "topi_x86_conv2d_NCHWc(1x64x56x56, 128x64x3x3)",
    ]
    # 2 * N * K * OH * OW * C * KH * KW: 7x7 stride 2 pad 3, 3x3 stride 1 pad 1, stride 2
    assert [t.flops for t in found] == [
        2 * 64 * 112 * 112 * 3 * 7 * 7,
        2 * 64 * 56 * 56 * 64 * 3 * 3,
        2 * 128 * 28 * 28 * 64 * 3 * 3,
    ]
    assert [r.run_secs for r in records(events)] == [
        (9.593498664366054e-05,),
        (0.00010744781060336864,),
        (6.852437358421629e-05,),
    ]
    assert jobs(events)[-1].target == "llvm -mcpu=skylake-avx512"


def test_webllm_metaschedule_database_of_tvm_012() -> None:
    """A TVM 0.12 database (metal, Apple M-series host): its workloads are the graph layout
    before TVM 0.20, and workload 1's length header holds a ``{`` byte."""
    events, ctx = read_events(MORE / "webllm_log_db", use_tvm=False)
    assert ctx.bad_lines == 0
    found = tasks(events)
    assert [t.op for t in found] == ["T_take", "T_reshape"]
    assert [t.shapes for t in found] == [
        ((32001, 4096), (1,), (1, 4096)),
        ((1, 1, 4096), (1, 32, 128)),
    ]
    assert [r.run_secs for r in records(events)] == [
        (2.7195748109902266544e-05,),
        (2.7375978681120145044e-05,),
    ]
    target = jobs(events)[-1].target or ""
    assert target.startswith("metal -host=")
    assert "-max_threads_per_block=256" in target


def test_workload_names_of_both_graph_layouts() -> None:
    lines = (MORE / "webllm_log_db" / "database_workload.json").read_text().splitlines()
    names = [workload_names(json.loads(line)[1]) for line in lines]
    assert names == [("main", ["T_take"]), ("main", ["T_reshape", "T_squeeze"])]


def test_excerpts_have_sources() -> None:
    sources = (MORE / "SOURCES.md").read_text()
    for path in sorted(MORE.iterdir()):
        if path.name != "SOURCES.md":
            assert f"`{path.name}" in sources, path.name


def test_excerpts_kept_outside_have_sources() -> None:
    if not (MORE_OUTSIDE / "SOURCES.md").is_file():
        pytest.skip(f"{MORE_OUTSIDE} absent (excerpts kept outside the repository)")
    sources = (MORE_OUTSIDE / "SOURCES.md").read_text()
    for path in sorted(MORE_OUTSIDE.iterdir()):
        if path.name != "SOURCES.md":
            assert f"`{path.name}" in sources, path.name


def test_tophub_cuda_one_job_per_target(tmp_path: Path) -> None:
    """tophub's cuda_v0.01 tunes each workload on a GTX 1080 Ti and a Titan X: one job per
    target, so each device keeps its own tasks, latencies and timeline."""
    path = outside_excerpt("tophub_cuda_v0.01.log")
    events, ctx = read_events(path)
    assert ctx.bad_lines == 0
    finished = [j for j in jobs(events) if j.change == "finished"]
    assert [(j.target, j.trials) for j in finished] == [
        ("cuda -model=1080ti", 2),
        ("cuda -model=titanx", 2),
    ]
    first, second = (j.job for j in finished)
    assert second == f"{first}-t2"
    assert [j.name for j in finished] == [
        "tophub_cuda_v0.01.log [cuda -model=1080ti]",
        "tophub_cuda_v0.01.log [cuda -model=titanx]",
    ]
    best = {(r.job, r.task): r.run_secs for r in records(events)}
    conv = "topi_nn_conv2d(1x2048x7x7, 512x2048x1x1)"
    assert best[first, conv] == (8.870914716312056e-05,)
    assert best[second, conv] == (0.00015904646927966104,)
    # TVM 0.4 args (no dilation): 1x1 conv, 512 outputs over 7x7, 2048 inputs
    assert {t.flops for t in tasks(events) if t.task == conv} == {2.0 * 512 * 7 * 7 * 2048}
    assert {s.job: s.resource for s in stages(events)} == {
        first: "device:imported:" + ctx.source.rsplit(":", 1)[-1][:6] + ":0",
        second: "device:imported:" + ctx.source.rsplit(":", 1)[-1][:6] + ":1",
    }
    with SQLiteStore(tmp_path / "store.db") as store:
        (summary,) = import_paths([path], store)
        assert summary.jobs == [first, second]
        assert [(w.key, w.records, w.best_mean_cost_s) for w in summary.workloads][::2] == [
            (f"{first}/{conv}", 1, 8.870914716312056e-05),
            (f"{second}/{conv}", 1, 0.00015904646927966104),
        ]
        frame = store.jobs()
        assert list(frame["target"]) == ["cuda -model=1080ti", "cuda -model=titanx"]
        assert list(store.records().groupby("job").size()) == [2, 2]


def test_tophub_mali_reordered_target_options_are_one_job() -> None:
    events, ctx = read_events(outside_excerpt("tophub_mali_v0.05.log"))
    assert ctx.bad_lines == 0
    assert {j.job for j in jobs(events)} == {ctx.job}
    assert jobs(events)[-1].target == "opencl -model=rk3399 -device=mali"
    assert jobs(events)[-1].name == "tophub_mali_v0.05.log"
    assert [r.run_secs for r in records(events)] == [(0.0008410332727272727,), (0.0067990563,)]


def test_dropletsearch_tvm_010_three_costs_and_spaced_target() -> None:
    events, ctx = read_events(outside_excerpt("droplet_x86_AMD3700X_resnet18.log"))
    assert ctx.bad_lines == 0
    assert jobs(events)[-1].target == "llvm -keys=cpu"  # written "llvm -keys=cpu "
    first = records(events)[0]
    assert first.run_secs == (0.0027125522432432433, 0.0027131896756756755, 0.002713490243243243)
    (task,) = tasks(events)
    assert task.flops == 2.0 * 64 * 112 * 112 * 3 * 7 * 7


def test_tlcbench_t4_autotvm_error_codes() -> None:
    """CUDA AutoTVM log (TVM 0.8.dev0) with errors 1, 2, 4 and 6, each with costs [1e9]."""
    events, ctx = read_events(outside_excerpt("tlcbench_autotvm_t4_bert.kernel.log"))
    assert ctx.bad_lines == 0
    got = [(r.error, r.error_class, r.run_secs) for r in records(events)]
    assert got == [
        (None, None, (8.291627832384894e-06,)),
        ("INSTANTIATION_ERROR", "build", None),
        ("COMPILE_HOST", "build", None),
        ("RUNTIME_DEVICE", "run", None),
        ("BUILD_TIMEOUT", "timeout", None),
    ]
    assert [(t.op, t.flops) for t in tasks(events)] == [
        ("dense_small_batch.cuda", 2.0 * 1 * 768 * 768),
        ("dense_large_batch.cuda", 2.0 * 128 * 2304 * 768),
        ("dense_large_batch.cuda", 2.0 * 128 * 768 * 3072),
    ]


def test_roller_ansor_registered_workload_with_runtime_errors() -> None:
    events, ctx = read_events(MORE / "roller_ansor_relu_128_1008_42_42.log")
    assert ctx.bad_lines == 0
    (task,) = tasks(events)
    assert (task.op, task.task) == ("relu_layer", "relu_layer(128, 1008, 42, 42)")
    assert [(r.error, r.run_secs) for r in records(events)] == [
        ("RUNTIME_DEVICE", None),
        ("RUNTIME_DEVICE", None),
        ("RUNTIME_DEVICE", None),
        (None, (0.0192041,)),
    ]


def test_tlcbench_ansor_log_v05() -> None:
    """Ansor "v0.5": the task input has five items (no trailing list of the v0.6 layout)."""
    events, ctx = read_events(outside_excerpt("tlcbench_ansor_t4_bert_v0.5.json"))
    assert ctx.bad_lines == 0
    (task,) = tasks(events)
    assert task.op == "compute_dag"
    assert task.task.startswith("55cbf5c2")
    assert [r.run_secs for r in records(events)] == [(0.0389202,), (0.000854955,)]
    assert jobs(events)[-1].target == (
        "cuda -keys=cuda,gpu -max_num_threads=1024 -model=t4 -thread_warp_size=32"
    )


def test_metaschedule_record_file_without_workload_file(tmp_path: Path) -> None:
    """web-stable-diffusion ships only its record file: a one-line error naming both files,
    and nothing stored (not even the good log imported in the same call)."""
    record = MORE / "wsd_log_db" / "database_tuning_record.json"
    first = SYNTHETIC / "autotvm_v01_reordered_target.log"
    with SQLiteStore(tmp_path / "store.db") as store:
        import_paths([first], store)
        before = len(store.records())
        with pytest.raises(LogFormatError) as info:
            import_paths([SYNTHETIC / "autotvm_v01_x86_nchwc.log", record], store)
        lines = [x for x in first.read_text().splitlines() if x.startswith("{")]
        assert len(store.records()) == before == len(lines)
    message = str(info.value)
    assert "\n" not in message
    assert str(record) in message
    assert "database_workload.json" in message
