"""Best-record MetaSchedule database: one best valid record per workload and target, loadable
by TVM."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from tvm.s_tir import meta_schedule as ms

from collectors.events import TaskEvent
from collectors.exporters import databases_in_store, export_best_db
from collectors.importers import LogFormatError, import_paths
from collectors.memory_store import MemoryStore
from tests.collectors.importers.importer_helpers import MS_DB

WORKLOAD = "database_workload.json"
RECORD = "database_tuning_record.json"
MATMUL_BEST = 2.2487577583694218e-07
SCALE_BEST = 8.682261432618559e-09


def _rows(path: Path) -> list[list]:  # type: ignore[type-arg]
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _copy_db(tmp_path: Path, name: str) -> Path:
    return Path(shutil.copytree(MS_DB, tmp_path / name))


def test_keeps_only_the_best_record_per_workload(tmp_path: Path) -> None:
    summary = export_best_db([MS_DB], tmp_path / "best")
    workloads = _rows(tmp_path / "best" / WORKLOAD)
    records = _rows(tmp_path / "best" / RECORD)
    assert [w[0] for w in workloads] == ["7279999135373478120", "12394558615803984722"]
    assert [(r[0], r[1][1]) for r in records] == [(0, [MATMUL_BEST]), (1, [SCALE_BEST])]
    assert workloads == _rows(MS_DB / WORKLOAD)  # workload lines copied as they were
    source_lines = (MS_DB / RECORD).read_text().splitlines()
    assert (tmp_path / "best" / RECORD).read_text().splitlines()[0] in source_lines
    assert summary.to_dict() | {"path": "", "sources": []} == {
        "path": "", "sources": [], "records_read": 6, "valid_records": 5,
        "workloads_seen": 2, "workloads_written": 2, "records_written": 2,
        "targets": ["llvm -mtriple=x86_64-conda-linux-gnu"], "bad_lines": 0,
        "bad_line_details": [], "missing_sources": [],
    }  # fmt: skip


def test_merges_databases_and_renumbers(tmp_path: Path) -> None:
    # database "a" holds only the scale workload, with a better record than the fixture's
    a = tmp_path / "a"
    a.mkdir()
    workloads = (MS_DB / WORKLOAD).read_text().splitlines()
    (a / WORKLOAD).write_text(workloads[1] + "\n")
    scale = _rows(MS_DB / RECORD)[3]
    scale[0], scale[1][1] = 0, [SCALE_BEST / 2]
    (a / RECORD).write_text(json.dumps(scale) + "\n")
    export_best_db([a, MS_DB], tmp_path / "best")
    written = _rows(tmp_path / "best" / WORKLOAD)
    assert [w[0] for w in written] == ["12394558615803984722", "7279999135373478120"]
    records = _rows(tmp_path / "best" / RECORD)
    assert [(r[0], r[1][1]) for r in records] == [(0, [SCALE_BEST / 2]), (1, [MATMUL_BEST])]


def test_failure_marker_never_wins(tmp_path: Path) -> None:
    db = _copy_db(tmp_path, "db")
    rows = _rows(db / RECORD)
    for row in rows:
        if row[0] == 1:
            row[1][1] = [1e10]  # the scale workload only failed
    (db / RECORD).write_text("".join(json.dumps(r) + "\n" for r in rows))
    summary = export_best_db([db], tmp_path / "best")
    assert (summary.workloads_seen, summary.workloads_written) == (2, 1)
    assert [r[1][1] for r in _rows(tmp_path / "best" / RECORD)] == [[MATMUL_BEST]]
    assert len(_rows(tmp_path / "best" / WORKLOAD)) == 1


def test_keeps_the_best_record_of_each_target(tmp_path: Path) -> None:
    db = _copy_db(tmp_path, "db")
    rows = _rows(db / RECORD)
    elsewhere = []
    for row, secs in zip(rows, ([3e-6], [1e10], [1e10], [4e-6], [1e10], [5e-6]), strict=True):
        other = json.loads(json.dumps(row))
        other[1][1], other[1][2]["mcpu"] = secs, "cascadelake"
        elsewhere.append(other)
    (db / RECORD).write_text("".join(json.dumps(r) + "\n" for r in [*rows, *elsewhere]))
    summary = export_best_db([db], tmp_path / "best")
    written = [(r[0], r[1][2].get("mcpu"), r[1][1]) for r in _rows(tmp_path / "best" / RECORD)]
    # matmul (index 0): 3e-6 beats 5e-6 on cascadelake; scale's only valid record there: 4e-6
    assert written == [
        (0, None, [MATMUL_BEST]),
        (0, "cascadelake", [3e-6]),
        (1, None, [SCALE_BEST]),
        (1, "cascadelake", [4e-6]),
    ]
    assert (summary.workloads_written, summary.records_written) == (2, 4)
    assert summary.targets == [
        "llvm -mcpu=cascadelake -mtriple=x86_64-conda-linux-gnu",
        "llvm -mtriple=x86_64-conda-linux-gnu",
    ]
    assert (summary.records_read, summary.valid_records) == (12, 8)


def test_bad_lines_are_counted(tmp_path: Path) -> None:
    db = _copy_db(tmp_path, "db")
    with open(db / RECORD, "a") as stream:
        stream.write("[0, [[[], []], [1e-9]")  # truncated line 7
    summary = export_best_db([db], tmp_path / "best")
    assert summary.bad_lines == 1 and summary.bad_line_details[0]["line"] == 7
    assert _rows(tmp_path / "best" / RECORD)[0][1][1] == [MATMUL_BEST]


def test_refuses_to_overwrite_a_database(tmp_path: Path) -> None:
    export_best_db([MS_DB], tmp_path / "best")
    before = (tmp_path / "best" / RECORD).read_bytes()
    with pytest.raises(LogFormatError, match="already holds"):
        export_best_db([MS_DB], tmp_path / "best")
    with pytest.raises(LogFormatError, match="already holds"):
        export_best_db([MS_DB], MS_DB)
    assert (tmp_path / "best" / RECORD).read_bytes() == before


def test_source_must_be_a_database(tmp_path: Path) -> None:
    with pytest.raises(LogFormatError, match="tuning record file"):
        export_best_db([tmp_path], tmp_path / "best")
    with pytest.raises(LogFormatError, match="no MetaSchedule database"):
        export_best_db([], tmp_path / "best")


def test_store_names_the_databases_it_imported(tmp_path: Path) -> None:
    store = MemoryStore()
    import_paths([MS_DB], store, use_tvm=False)
    assert databases_in_store(store) == [MS_DB.resolve()]
    assert databases_in_store(MemoryStore()) == []


def test_store_names_the_databases_its_tuning_tasks_wrote(tmp_path: Path) -> None:
    store = MemoryStore()
    for seq, task in enumerate(("matmul:64x64x64", "dense:1x128x128")):
        store.append(
            [
                TaskEvent(
                    source="tuner",
                    seq=seq,
                    ts=1.0,
                    job="j1",
                    task=task,
                    op=task.split(":")[0],
                    detail=f"metaschedule_database={tmp_path / 'j1'}\nspec={task}",
                )
            ]
        )
    assert databases_in_store(store) == [tmp_path / "j1"]


def test_tvm_loads_the_written_database(tmp_path: Path) -> None:

    export_best_db([MS_DB], tmp_path / "best")
    db = ms.database.JSONDatabase(
        path_workload=str(tmp_path / "best" / WORKLOAD),
        path_tuning_record=str(tmp_path / "best" / RECORD),
        allow_missing=False,
    )
    records = db.get_all_tuning_records()
    assert len(records) == 2
    best = {}
    for line in (MS_DB / WORKLOAD).read_text().splitlines():
        workload = ms.database.Workload.from_json(json.loads(line))
        top = db.get_top_k(db.commit_workload(workload.mod), 5)
        assert len(top) == 1
        best[json.loads(line)[0]] = float(top[0].run_secs[0])
    assert best == {
        "7279999135373478120": pytest.approx(MATMUL_BEST),
        "12394558615803984722": pytest.approx(SCALE_BEST),
    }
