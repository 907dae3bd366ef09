"""Real logs from other people's TVM runs (kept outside the repository, see SOURCES.md there).

Expected counts are the ones SOURCES.md states for each file.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path

from collectors.events import Event
from collectors.importers import import_paths
from collectors.importers.ansor import render_trace
from collectors.sqlite_store import SQLiteStore
from tests.collectors.importers.importer_helpers import (
    jobs,
    read_events,
    real_log,
    records,
    stages,
    tasks,
)

AUTOTVM = "tlcbench_autotvm_platinum-8124m_bert-B1-float32.kernel.log"
ANSOR = "cutlass-eval_bert_ansor.log"
TOPHUB = "tophub_llvm_v0.04.log"


def _utc(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M")


def _no_overlap(events: list[Event]) -> bool:
    spans = sorted((s.start, s.end) for s in stages(events))
    return all(later[0] >= earlier[1] for earlier, later in pairwise(spans))


def test_autotvm_full_history() -> None:
    events, ctx = read_events(real_log(AUTOTVM))
    recs = records(events)
    assert ctx.bad_lines == 0
    assert len(recs) == 6800
    assert sum(r.run_secs is not None for r in recs) == 6150
    assert Counter(r.error for r in recs if r.error) == {"BUILD_TIMEOUT": 647, "RUNTIME_DEVICE": 3}
    assert Counter(r.error_class for r in recs if r.error_class) == {"timeout": 647, "run": 3}
    found = tasks(events)
    assert Counter(t.op for t in found) == {
        "dense_nopack.x86": 5,
        "dense_pack.x86": 4,
        "batch_matmul.x86": 2,
    }
    per_task = Counter(r.task for r in recs)
    assert len(per_task) == 11
    assert (min(per_task.values()), max(per_task.values())) == (324, 1008)
    assert all(t.flops for t in found)  # dense and batch_matmul FLOPs come from the args
    ts = [r.ts for r in recs]
    assert (_utc(min(ts)), _utc(max(ts))) == ("2021-01-12 12:39", "2021-01-12 16:56")
    assert ts != sorted(ts)  # not sorted in file order, and imported as it is
    assert jobs(events)[-1].target == (
        "llvm -keys=cpu -link-params=0 -mcpu=skylake-avx512 -model=platinum-8124m"
    )
    assert sum(s.candidates or 0 for s in stages(events)) == 6800
    assert _no_overlap(events)


def test_ansor_full_history() -> None:
    events, ctx = read_events(real_log(ANSOR))
    recs = records(events)
    assert ctx.bad_lines == 0
    assert len(recs) == 3021
    valid = [r for r in recs if r.run_secs is not None]
    assert len(valid) == 2856
    assert all(len(r.run_secs or ()) == 3 for r in valid)
    assert Counter(r.error for r in recs if r.error) == {
        "BUILD_TIMEOUT": 104,
        "COMPILE_HOST": 45,
        "RUNTIME_DEVICE": 16,
    }
    found = tasks(events)
    assert len(found) == 21
    assert len({t.task.split("(")[0] for t in found}) == 19  # 19 hashes, some with two shapes
    per_task = Counter(r.task for r in recs)
    assert (min(per_task.values()), max(per_task.values())) == (7, 832)
    ts = [r.ts for r in recs]
    assert ts == sorted(ts)
    assert (_utc(ts[0]), _utc(ts[-1])) == ("2023-01-30 08:20", "2023-01-30 11:25")
    assert jobs(events)[-1].target == (
        "cuda -keys=cuda,gpu -arch=sm_86 -max_num_threads=1024 -thread_warp_size=32"
    )
    assert {r.origin for r in recs} == {"ansor"}
    every_step = "\n".join(render_trace(r.trace or "[]") for r in recs)
    for name in ("split(", "reorder(", "compute_at(", "cache_read(", "annotate(", "fuse("):
        assert name in every_step
    assert "annotation=blockIdx.x" in every_step
    assert _no_overlap(events)


def test_tophub_best_only_with_comment_lines() -> None:
    events, ctx = read_events(real_log(TOPHUB))
    recs = records(events)
    assert ctx.bad_lines == 0
    assert len(recs) == 35
    assert all(r.run_secs is not None for r in recs)
    found = tasks(events)
    assert len(found) == 35
    assert {t.op for t in found} == {"conv2d_NCHWc.x86"}
    assert all(t.flops for t in found)
    assert jobs(events)[-1].target == "llvm -mcpu=skylake-avx512"
    ts = sorted(r.ts for r in recs)
    assert (_utc(ts[0])[:10], _utc(ts[-1])[:10]) == ("2018-10-19", "2018-10-20")


def test_real_logs_into_sqlite(tmp_path: Path) -> None:
    paths = [real_log(AUTOTVM), real_log(ANSOR), real_log(TOPHUB)]
    with SQLiteStore(tmp_path / "store.db") as store:
        summaries = import_paths(paths, store)
        assert [(s.records, s.valid, len(s.workloads)) for s in summaries] == [
            (6800, 6150, 11),
            (3021, 2856, 21),
            (35, 35, 35),
        ]
        assert len(store.records()) == 6800 + 3021 + 35
        assert list(store.jobs()["state"]) == ["finished"] * 3
        assert [s.stored for s in import_paths(paths, store)] == [0, 0, 0]
