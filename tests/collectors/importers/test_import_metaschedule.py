"""MetaSchedule JSON databases: file order, failure marker, workload names, TVM decoding."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from collectors.importers import LogFormatError, detect, metaschedule, readable_trace
from collectors.importers.metaschedule import FAILED_ERROR
from collectors.importers.ms_database import database_paths, run_secs_of
from collectors.importers.ms_tvm import TvmDecoder
from tests.collectors.importers.importer_helpers import (
    MS_DB,
    jobs,
    read_events,
    records,
    stages,
    tasks,
)

# Run times in the fixture's record file, in file order (the third is MetaSchedule's 1e10 marker).
FIXTURE_SECS = [
    6.961162288239626e-06, 5.9885384908827345e-06, None, 8.682261432618559e-09,
    5.72244236580803e-06, 2.2487577583694218e-07,
]  # fmt: skip


def test_records_in_file_order_without_tvm() -> None:
    events, ctx = read_events(MS_DB, use_tvm=False)
    recs = records(events)
    assert ctx.bad_lines == 0
    assert [r.run_secs[0] if r.run_secs else None for r in recs] == FIXTURE_SECS
    failed = recs[2]
    assert (failed.error, failed.error_class) == (FAILED_ERROR, "other")
    assert [r.candidate for r in recs] == [0, 1, 2, 0, 3, 4]
    assert all(r.iteration is None for r in recs)
    assert stages(events) == []  # no timestamps, no timeline
    assert len({r.ts for r in recs}) == 1


def test_tasks_named_from_the_workload_without_tvm() -> None:
    events, _ = read_events(MS_DB, use_tvm=False)
    found = tasks(events)
    assert [(t.task, t.op) for t in found] == [
        ("matmul16(16x16, 16x16, 16x16)", "matmul16"),
        ("scale_relu64(64, 64)", "scale_relu64"),
    ]
    assert [t.workload_hash for t in found] == ["7279999135373478120", "12394558615803984722"]
    assert all(t.flops is None for t in found)  # FLOPs need TVM


def test_traces_are_kept_as_written_and_read_as_text_with_decisions() -> None:
    recs = records(read_events(MS_DB, use_tvm=False)[0])
    written = (MS_DB / "database_tuning_record.json").read_text().splitlines()
    assert [json.loads(r.trace or "") for r in recs] == [json.loads(x)[1][0] for x in written]
    assert {r.origin for r in recs} == {"metaschedule"}
    lines = (readable_trace(recs[0]) or "").splitlines()
    assert lines[0] == 'b0 = get_sblock(attrs=["C", "main"])'
    assert "v5, v6, v7, v8 = sample_perfect_tile(l2, attrs=[4, 64], decision=[1, 8, 2, 1])" in lines


def test_job_says_there_are_no_timestamps() -> None:
    events, _ = read_events(MS_DB, use_tvm=False)
    submitted, finished = jobs(events)
    assert submitted.detail == finished.detail
    assert finished.detail is not None
    assert "no timestamps" in finished.detail and "file order" in finished.detail
    assert f"metaschedule_database={MS_DB.resolve()}" in finished.detail.splitlines()
    assert finished.trials == 6
    assert finished.target == "llvm -keys=cpu -mtriple=x86_64-conda-linux-gnu -num-cores=1"


def test_tvm_decodes_script_flops_and_trace() -> None:
    events, ctx = read_events(MS_DB, use_tvm=True)
    assert ctx.notes == []
    matmul, scale = tasks(events)
    assert matmul.flops == 2 * 16 * 16 * 16
    assert scale.flops == 2 * 64
    assert matmul.detail is not None and "T.prim_func" in matmul.detail
    assert 'T.sblock("C")' in matmul.detail
    first = json.loads((MS_DB / "database_tuning_record.json").read_text().splitlines()[0])
    assert json.loads(records(events)[0].trace or "") == first[1][0]  # TVM reads it on demand


@pytest.mark.parametrize("given", ["dir", "record", "workload"])
def test_database_given_three_ways(given: str) -> None:
    path = {
        "dir": MS_DB,
        "record": MS_DB / "database_tuning_record.json",
        "workload": MS_DB / "database_workload.json",
    }[given]
    found = detect(path)
    assert found.format == "metaschedule"
    assert found.database == database_paths(MS_DB)


def test_record_file_without_workload_file_is_an_error(tmp_path: Path) -> None:
    shutil.copy(MS_DB / "database_tuning_record.json", tmp_path / "database_tuning_record.json")
    with pytest.raises(LogFormatError, match="no workload file"):
        detect(tmp_path / "database_tuning_record.json")


def test_named_pair_is_found(tmp_path: Path) -> None:
    shutil.copy(MS_DB / "database_tuning_record.json", tmp_path / "run1_tuning_record.json")
    shutil.copy(MS_DB / "database_workload.json", tmp_path / "run1_workload.json")
    found = detect(tmp_path / "run1_tuning_record.json")
    assert found.database is not None
    assert found.database.workload == tmp_path / "run1_workload.json"


def test_bad_record_lines_and_unknown_workloads(tmp_path: Path) -> None:
    shutil.copytree(MS_DB, tmp_path / "db")
    record_file = tmp_path / "db" / "database_tuning_record.json"
    lines = record_file.read_text().splitlines()
    lines.insert(1, lines[0][:300])  # truncated: line 2
    lines.insert(3, json.dumps([7, json.loads(lines[0])[1]]))  # unknown workload 7: line 4
    record_file.write_text("\n".join(lines) + "\n")
    events, ctx = read_events(tmp_path / "db", use_tvm=False)
    assert ctx.bad_lines == 2
    assert [d["line"] for d in ctx.bad_details] == [2, 4]
    assert "workload index 7" in ctx.bad_details[1]["reason"]
    assert len(records(events)) == 6


def test_corrupt_workload_line_makes_its_records_bad(tmp_path: Path) -> None:
    shutil.copytree(MS_DB, tmp_path / "db")
    workload_file = tmp_path / "db" / "database_workload.json"
    first, second = workload_file.read_text().splitlines()
    workload_file.write_text(first + "\n" + second[:100] + "\n")
    events, ctx = read_events(tmp_path / "db", use_tvm=False)
    assert len(records(events)) == 5  # the one record of workload 1 is lost, and reported
    reasons = [(d.get("file", ""), d["line"]) for d in ctx.bad_details]
    assert (str(workload_file), 2) in reasons
    assert (str(tmp_path / "db" / "database_tuning_record.json"), 4) in reasons


@pytest.mark.parametrize(
    ("value", "expected"),
    [([1e-3, 3e-3], (1e-3, 3e-3)), ([1e10], None), (None, None), ([], None), (["x"], None)],
)
def test_run_secs_of(value: object, expected: object) -> None:
    assert run_secs_of(value) == expected


def test_a_record_that_would_crash_tvm_is_imported_as_written(tmp_path: Path) -> None:
    shutil.copytree(MS_DB, tmp_path / "db")
    record_file = tmp_path / "db" / "database_tuning_record.json"
    lines = record_file.read_text().splitlines()
    broken = json.loads(lines[1])
    broken[1][3][0][2] = [16, None]  # a shape TVM dereferences without checking: it segfaults
    lines[1] = json.dumps(broken)
    record_file.write_text("\n".join(lines) + "\n")
    events, ctx = read_events(tmp_path / "db", use_tvm=True)
    recs = records(events)
    assert len(recs) == 6 and ctx.bad_lines == 0 and ctx.notes == []
    assert json.loads(recs[1].trace or "") == broken[1][0]  # no TVM call touches records
    assert (readable_trace(recs[1]) or "").startswith('b0 = get_sblock(attrs=["C", "main"])')


@pytest.mark.parametrize(
    ("worker", "note"),
    [
        (  # stray output first, then the answer
            'print("warning"); print(\'{"ready": false, "error": "ModuleNotFoundError: tvm"}\')',
            "TVM is not available (ModuleNotFoundError: tvm)",
        ),
        ("import sys; sys.exit(3)", "switched off after repeated crashes"),
    ],
)
def test_without_a_working_tvm_counts_and_latencies_still_work(
    monkeypatch: pytest.MonkeyPatch, worker: str, note: str
) -> None:
    def decoder(**kwargs: object) -> TvmDecoder:
        return TvmDecoder(command=[sys.executable, "-c", worker], max_restarts=1)

    monkeypatch.setattr(metaschedule, "TvmDecoder", decoder)
    events, ctx = read_events(MS_DB, use_tvm=True)
    recs = records(events)
    assert [r.run_secs[0] if r.run_secs else None for r in recs] == FIXTURE_SECS
    assert all((readable_trace(r) or "").startswith("b0 = get_sblock(") for r in recs)
    assert tasks(events)[0].flops is None
    assert any(note in n for n in ctx.notes), ctx.notes
