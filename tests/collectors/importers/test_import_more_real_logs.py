"""Excerpts of real tuning logs from public repositories (``data/more_real_logs``, sources
in its SOURCES.md): other TVM versions, targets and layouts than the importers' own fixtures.

Every expected value is read from the excerpt itself (costs, timestamps, error codes).
"""

from __future__ import annotations

import json

from collectors.importers.ms_trace import workload_names
from tests.collectors.importers.importer_helpers import DATA, jobs, read_events, records, tasks

MORE = DATA / "more_real_logs"


def test_tophub_llvm_v01_old_conv2d_signature_has_right_flops() -> None:
    """TVM 0.5 x86 NCHWc args: data, kernel, in_channel, kernel size, strides, padding, no
    dilation. The FLOPs are those of the convolution, not of a misread stride."""
    events, ctx = read_events(MORE / "tophub_llvm_v0.01.log")
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
