"""The schedule library with real MetaSchedule databases and real TVM: entries, idempotent
adds, corrupt input refused with the library untouched, op classes read from the TIR.

The database added is ``sample_logs/metaschedule-matmul-128``: a real job's database (32
trials of a 128^3 matmul) as TVM wrote it, i.e. an imported database.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tuner.metaschedule.library import (
    MARKER,
    LibraryError,
    ScheduleLibrary,
    describe_workload,
    target_key,
)
from tuner.metaschedule.workloads import workload_module

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "sample_logs" / "metaschedule-matmul-128"
WORKLOADS = "database_workload.json"
RECORDS = "database_tuning_record.json"


def read_lines(path: Path) -> list[list]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def copy_db(dst: Path) -> Path:
    shutil.copytree(SAMPLE, dst)
    return dst


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (lock file aside) and its bytes."""
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != ".lock"
    }


def valid_means(record_file: Path) -> list[tuple[float, list]]:
    """(mean run time, record body) of every measured record, computed from the JSON."""
    out = []
    for _, body in read_lines(record_file):
        secs = body[1]
        if secs and sum(secs) / len(secs) < 1e9:
            out.append((sum(secs) / len(secs), body))
    return out


@pytest.fixture
def library(tmp_path: Path) -> ScheduleLibrary:
    return ScheduleLibrary(tmp_path / "lib", create=True)


def test_a_database_joins_with_its_best_record(library: ScheduleLibrary) -> None:
    (workload_hash, _), *_ = read_lines(SAMPLE / WORKLOADS)
    summary = library.add_database(SAMPLE, model="mm", task_names={workload_hash: "matmul:128"})
    assert summary.added == 1 and not summary.already_present
    (entry,) = library.entries()
    measured = valid_means(SAMPLE / RECORDS)
    best_mean, best_body = min(measured, key=lambda m: m[0])
    assert entry.latency_s == pytest.approx(best_mean)
    assert entry.trials == len(measured)
    assert entry.trace == best_body[0]
    assert entry.target["mcpu"] == best_body[2]["mcpu"]
    assert entry.target["num-cores"] == best_body[2]["num-cores"]
    assert (entry.model, entry.task, entry.label) == ("mm", "matmul:128", "mm/matmul:128")
    assert entry.workload_hash == workload_hash
    info = entry.workload
    assert (info.op_class, info.loop_kinds) == ("dense", "SSR")
    assert info.shapes == ((128, 128), (128, 128), (128, 128))
    assert info.flops == 2 * 128**3
    # The extract is a MetaSchedule database TVM reads: one workload, its best record.
    import tvm_ffi
    from tvm.s_tir import meta_schedule as ms

    extract = Path(entry.database)
    assert len(read_lines(extract / WORKLOADS)) == 1
    db = ms.database.JSONDatabase(
        path_workload=str(extract / WORKLOADS), path_tuning_record=str(extract / RECORDS)
    )
    mod = library.workload_module(entry)
    assert str(tvm_ffi.structural_hash(mod)) == workload_hash
    (record,) = db.get_top_k(db.commit_workload(mod), 5)
    assert float(np.mean([float(s) for s in record.run_secs])) == pytest.approx(best_mean)


def test_adding_the_same_database_twice_adds_nothing(
    library: ScheduleLibrary, tmp_path: Path
) -> None:
    first = library.add_database(SAMPLE)
    before = snapshot(library.folder)
    again = library.add_database(SAMPLE)
    copied = library.add_database(copy_db(tmp_path / "copy"))  # same content elsewhere
    assert again.already_present and again.added == 0 and again.source == first.source
    assert copied.already_present and copied.source == first.source
    assert snapshot(library.folder) == before
    # Another database whose best schedule the library holds already adds no entry either.
    grown = copy_db(tmp_path / "grown")
    line = read_lines(grown / RECORDS)[0]
    line[1][1] = [1e10]  # one more failed measurement: new content, same best record
    with open(grown / RECORDS, "a") as stream:
        stream.write(json.dumps(line) + "\n")
    more = library.add_database(grown)
    assert not more.already_present and more.added == 0
    assert any("already holds this schedule" in reason for reason in more.skipped)
    assert snapshot(library.folder) == before
    assert len(library.entries()) == 1


def _garbage_record(db: Path) -> str:
    with open(db / RECORDS, "a") as stream:
        stream.write("{not json\n")
    return f"{RECORDS}: line {len(read_lines_raw(db / RECORDS))}"


def _flipped_module(db: Path) -> str:
    (workload_hash, encoded), *rest = read_lines(db / WORKLOADS)
    cut = [workload_hash, encoded[: len(encoded) // 2]]
    (db / WORKLOADS).write_text("\n".join(json.dumps(x) for x in [cut, *rest]) + "\n")
    return f"{WORKLOADS}: line 1: the module does not decode"


def _wrong_hash(db: Path) -> str:
    (_, encoded), *_ = read_lines(db / WORKLOADS)
    (db / WORKLOADS).write_text(json.dumps(["12345", encoded]) + "\n")
    return f"{WORKLOADS}: line 1: the module does not match its structural hash"


def _index_out_of_range(db: Path) -> str:
    lines = read_lines(db / RECORDS)
    lines[3][0] = 7
    (db / RECORDS).write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    return f"{RECORDS}: line 4: workload index 7 has no workload line"


def _trace_for_another_workload(db: Path) -> str:
    lines = read_lines(db / RECORDS)
    best = min(range(len(lines)), key=lambda i: lines[i][1][1][0])
    for inst in lines[best][1][0][0]:
        if inst[0] == "GetSBlock" and inst[2][0] == "C":
            inst[2][0] = "no_such_block"
    (db / RECORDS).write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    return f"{RECORDS}: line {best + 1}: its trace does not replay on its own workload"


def read_lines_raw(path: Path) -> list[str]:
    return path.read_text().splitlines()


@pytest.mark.parametrize(
    "corrupt",
    [
        _garbage_record,
        _flipped_module,
        _wrong_hash,
        _index_out_of_range,
        _trace_for_another_workload,
    ],
)
def test_a_corrupt_database_is_refused_and_the_library_left_as_it_was(
    library: ScheduleLibrary, tmp_path: Path, corrupt
) -> None:
    library.add_database(SAMPLE, model="kept")
    before = snapshot(library.folder)
    bad = copy_db(tmp_path / "bad")
    expected = corrupt(bad)
    with pytest.raises(LibraryError) as info:
        library.add_database(bad, model="bad")
    message = str(info.value)
    assert str(bad) in message and expected in message
    assert "nothing was added to the library" in message
    assert snapshot(library.folder) == before
    assert [e.model for e in library.entries()] == ["kept"]


def test_a_folder_that_is_not_a_library_is_refused(tmp_path: Path) -> None:
    with pytest.raises(LibraryError, match=r"not a schedule library \(does not exist"):
        ScheduleLibrary(tmp_path / "missing")
    with pytest.raises(LibraryError, match=rf"not a schedule library \(has no {MARKER}"):
        ScheduleLibrary(SAMPLE)
    with pytest.raises(LibraryError, match="not empty; choose a new folder"):
        ScheduleLibrary(copy_db(tmp_path / "db"), create=True)
    (tmp_path / "file").write_text("x")
    with pytest.raises(LibraryError, match="it is a file"):
        ScheduleLibrary(tmp_path / "file", create=True)
    other = tmp_path / "other"
    other.mkdir()
    (other / MARKER).write_text('{"format": "something-else", "version": 1}')
    with pytest.raises(LibraryError, match="not a schedule library"):
        ScheduleLibrary(other)
    assert not (tmp_path / "missing").exists()
    created = ScheduleLibrary(tmp_path / "new", create=True)
    assert created.entries() == [] and ScheduleLibrary(tmp_path / "new").entries() == []


def test_a_missing_database_file_is_named(library: ScheduleLibrary, tmp_path: Path) -> None:
    db = copy_db(tmp_path / "db")
    (db / WORKLOADS).unlink()
    with pytest.raises(LibraryError, match="has no workload file"):
        library.add_database(db)


def test_a_damaged_index_is_a_clear_error_and_is_not_rewritten(library: ScheduleLibrary) -> None:
    library.add_database(SAMPLE)
    with open(library.index_path, "a") as stream:
        stream.write('{"v": 1, "source": "x"}\n')
    before = snapshot(library.folder)
    with pytest.raises(LibraryError, match=r"index.jsonl: line 2 is not a library entry"):
        library.entries()
    with pytest.raises(LibraryError, match="the library is damaged"):
        library.add_database(ROOT / "sample_logs" / "metaschedule-matmul-128")
    assert snapshot(library.folder) == before


def test_entries_filter_by_op_class_and_target(library: ScheduleLibrary, tmp_path: Path) -> None:
    other = copy_db(tmp_path / "elsewhere")
    lines = read_lines(other / RECORDS)
    for line in lines:
        line[1][2]["mcpu"] = "cascadelake"  # the same records, labelled for another CPU
    (other / RECORDS).write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    library.add_database(SAMPLE, model="here")
    library.add_database(other, model="there")
    here = read_lines(SAMPLE / RECORDS)[0][1][2]
    there = dict(here, mcpu="cascadelake")
    assert sorted(library.targets()) == sorted([target_key(here), target_key(there)])
    assert [e.model for e in library.entries(target=here)] == ["here"]
    assert [e.model for e in library.entries(target=dict(there, **{"num-cores": 8}))] == ["there"]
    assert len(library.entries(op_class="dense")) == 2
    assert library.entries(op_class="conv2d") == []
    with pytest.raises(LibraryError, match=r"unknown op class 'matmul' \(known: conv1d, conv2d"):
        library.entries(op_class="matmul")
    assert [(s.model, s.entries) for s in library.sources()] == [("here", 1), ("there", 1)]


def test_task_names_must_fit_the_database(library: ScheduleLibrary) -> None:
    with pytest.raises(LibraryError, match="lists 2 names but the database has 1 workloads"):
        library.add_database(SAMPLE, task_names=["a", "b"])
    summary = library.add_database(SAMPLE, task_names=["only"])
    assert summary.added == 1 and library.entries()[0].task == "only"


def test_a_database_without_measurements_adds_nothing(
    library: ScheduleLibrary, tmp_path: Path
) -> None:
    failed = copy_db(tmp_path / "failed")
    lines = read_lines(failed / RECORDS)
    for line in lines:
        line[1][1] = [1e10]
    (failed / RECORDS).write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    summary = library.add_database(failed)
    assert summary.added == 0 and "no measured schedule" in summary.skipped[0]
    assert library.entries() == []


def test_one_database_tuned_for_two_targets_gives_an_entry_per_target(
    library: ScheduleLibrary, tmp_path: Path
) -> None:
    """Each target's best tuned record is offered; a failed (1e10 s) record never is, nor is
    the untuned fallback record (a trace with no instruction), however fast it ran."""
    db = copy_db(tmp_path / "two")
    rows = read_lines(db / RECORDS)
    here = rows[0][1][2]
    there = dict(here, mcpu="cascadelake")
    fastest = min(valid_means(db / RECORDS), key=lambda m: m[0])[0]
    lake = [json.loads(json.dumps(row)) for row in rows[:6]]
    for row, secs in zip(lake, ([8e-5], [1e10], [6e-5, 8e-5], [1e10], [9e-5], [1e10]), strict=True):
        row[1][1], row[1][2] = secs, there
    untuned = []  # the reuse fallback of each target: no schedule, faster than any
    for target in (here, there):
        row = json.loads(json.dumps(rows[0]))
        row[1][0], row[1][1], row[1][2] = [[], []], [fastest / 10], target
        untuned.append(row)
    failed = json.loads(json.dumps(rows[1]))
    failed[1][1], failed[1][2] = [1e10], dict(here, mcpu="znver4")  # only failures there
    lines = [*rows, untuned[0], *lake[:3], untuned[1], *lake[3:], failed]
    (db / RECORDS).write_text("\n".join(json.dumps(x) for x in lines) + "\n")

    summary = library.add_database(db, model="two")
    assert summary.added == 2
    assert sorted(library.targets()) == sorted([target_key(here), target_key(there)])
    (zen,) = library.entries(target=here)
    (cascade,) = library.entries(target=there)
    assert library.entries(target=dict(here, mcpu="znver4")) == []
    measured = valid_means(SAMPLE / RECORDS)
    best_mean, best_body = min(measured, key=lambda m: m[0])
    assert (zen.latency_s, zen.trials) == (pytest.approx(best_mean), len(measured))
    assert zen.trace == best_body[0]
    assert (cascade.latency_s, cascade.trials) == (pytest.approx(7e-5), 3)
    assert cascade.trace == rows[2][1][0] and cascade.target["mcpu"] == "cascadelake"
    assert all(entry.trace[0] for entry in library.entries())  # no untuned schedule offered
    # The extract holds the workload once and one best record per target.
    extract = read_lines(Path(zen.database) / RECORDS)
    assert sorted((r[0], r[1][2]["mcpu"], r[1][1]) for r in extract) == sorted(
        [(0, here["mcpu"], best_body[1]), (0, "cascadelake", [6e-5, 8e-5])]
    )
    assert len(read_lines(Path(zen.database) / WORKLOADS)) == 1


def test_reading_a_library_imports_no_tvm(library: ScheduleLibrary) -> None:
    library.add_database(SAMPLE, model="mm")
    code = (
        "import sys\n"
        "import tuner.metaschedule.library.index\n"
        "assert 'tvm' not in sys.modules, 'the index imported tvm'\n"
        "from tuner.metaschedule.library import ScheduleLibrary\n"
        f"library = ScheduleLibrary({str(library.folder)!r})\n"
        "print(len(library.entries()), len(library.sources()), library.targets())\n"
        "assert 'tvm' not in sys.modules, 'reading the library imported tvm'\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("1 1 [")


# --- op classes from the TIR ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "op_class", "loops"),
    [
        ("matmul:32", "dense", "SSR"),
        ("dense:1x64x32", "dense", "SSR"),
        ("batch_matmul:2x8x8x8", "dense", "SSSR"),
        ("conv2d:1x4x8x8,8x3x3,pad=1", "conv2d", "SSSSRRR"),
        ("conv2d:1x4x8x8,8x1x1", "conv2d", "SSSSRRR"),
    ],
)
def test_op_class_of_builtin_workloads(spec: str, op_class: str, loops: str) -> None:
    info = describe_workload(workload_module(spec))
    assert (info.op_class, info.loop_kinds) == (op_class, loops)


def test_op_classes_of_model_tasks() -> None:
    """A tiny ONNX model: depthwise (groups == channels), grouped and 1x1 convs, pools, a
    global mean, a dense layer and a reshape, each classified from its fused TIR."""
    from onnx import TensorProto, helper, numpy_helper

    from tuner.metaschedule.targets import target_config
    from tuner.models.tasks import model_tasks

    rng = np.random.default_rng(0)

    def weight(name: str, shape: tuple[int, ...]):
        return numpy_helper.from_array(rng.standard_normal(shape).astype("float32"), name)

    inits = [
        weight("wd", (8, 1, 3, 3)),
        weight("wp", (16, 8, 1, 1)),
        weight("wg", (16, 4, 3, 3)),
        weight("wf", (16, 10)),
        numpy_helper.from_array(np.array([1, 16], dtype=np.int64), "shape"),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "wd"], ["d"], pads=[1, 1, 1, 1], group=8),
        helper.make_node("Relu", ["d"], ["dr"]),
        helper.make_node("Conv", ["dr", "wp"], ["p"]),
        helper.make_node("Conv", ["p", "wg"], ["g"], pads=[1, 1, 1, 1], group=4),
        helper.make_node("MaxPool", ["g"], ["m"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("GlobalAveragePool", ["m"], ["gap"]),
        helper.make_node("Reshape", ["gap", "shape"], ["flat"]),
        helper.make_node("MatMul", ["flat", "wf"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "classes",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, 16, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])],
        inits,
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    _, tasks = model_tasks(proto, target_config("llvm", 1))
    classes = {}
    for task in tasks:
        info = describe_workload(task.mod)
        classes.setdefault(info.op_class, []).append(info.anchor_shapes)
    # The depthwise conv reads 8 padded channels with an 8x1x3x3 weight.
    assert classes["depthwise"] == [((1, 8, 18, 18), (8, 1, 3, 3), (1, 8, 16, 16))]
    assert sorted(len(s) for s in classes["conv2d"]) == [3, 3]  # grouped (4 groups) and 1x1
    assert len(classes["pool"]) == 1 and len(classes["reduce"]) == 1
    assert classes["dense"] == [((1, 16), (16, 10), (1, 10))]
    assert "elementwise" in classes
