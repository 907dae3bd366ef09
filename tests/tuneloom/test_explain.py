"""`tuneloom explain`: the bottleneck table from synthetic profile and graph events, the
decision summary from real trace structure, and one clear line for each bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from collectors.events import GraphEvent, ProfileEvent, RecordEvent
from collectors.modelgraph import KernelNode, ModelGraph
from collectors.sqlite_store import SQLiteStore
from tests.dashboard.searchspace_history import JOB, TASK, searchspace_history
from tuneloom.cli import main

ROOT = Path(__file__).resolve().parents[2]


def profile(model: str = "synthetic", tasks: tuple[str, ...] = (TASK, "")) -> ProfileEvent:
    return ProfileEvent(
        source="prof", seq=0, ts=5.0, job=JOB, model=model, variant="tuned",
        end_to_end_secs=0.010, kernels=("fused_matmul", "reshape"), tasks=tasks,
        calls=(2, 1), kernel_secs=(0.004, 0.001),
    )  # fmt: skip


def graph() -> GraphEvent:
    nodes = (
        KernelNode(id="n0", kernel="fused_matmul", op="matmul", task=TASK, layers=("dense_1",)),
        KernelNode(id="n1", kernel="fused_matmul", op="matmul", task=TASK, layers=("dense_2",)),
        KernelNode(id="n2", kernel="reshape", op="reshape", layers=("flatten",)),
    )
    text = ModelGraph("synthetic", nodes, (("n0", "n1"), ("n1", "n2"))).to_json()
    return GraphEvent(source="prof", seq=1, ts=5.0, job=JOB, model="synthetic", graph=text)


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    path = tmp_path / "s.db"
    with SQLiteStore(path) as store:
        searchspace_history(store, 200, decides=True)
    return path


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_json_report_with_profile_and_graph(store_path, capsys):
    with SQLiteStore(store_path) as store:
        store.append([profile(), graph()])
    code, out, _ = run(["explain", "synthetic", "--db", str(store_path), "--json"], capsys)
    assert code == 0
    report = json.loads(out)
    assert report["end_to_end_ms"] == pytest.approx(10.0)
    first, second = report["kernels"]
    assert first == {
        "name": "fused_matmul", "task": TASK, "calls": 2, "ms": pytest.approx(8.0),
        "ms_per_call": pytest.approx(4.0), "share": pytest.approx(0.8),
        "layers": ["dense_1", "dense_2"],
    }  # fmt: skip
    assert second["task"] is None and second["layers"] == ["flatten"]
    (task,) = report["tasks"]
    assert task["task"] == TASK and task["trials"] == 200
    assert task["decisions"][0]["decision"] == "tile j[inner]"
    assert any("tile j[inner] = 16 in " in line for line in task["summary"])


def test_text_report_without_profile_still_prints_tasks(store_path, capsys):
    code, out, _ = run(["explain", "synthetic", "--db", str(store_path)], capsys)
    assert code == 0
    assert f"no profile event for job {JOB}" in out
    assert f"task {TASK}: 200 trials" in out and "tile j[inner] = 16 in " in out


def test_undecodable_traces_are_named_and_the_rest_prints(store_path, capsys):
    with SQLiteStore(store_path) as store:
        store.append(
            [
                RecordEvent(
                    source="bad",
                    seq=i,
                    ts=9.0,
                    job=JOB,
                    task=TASK,
                    candidate=1000 + i,
                    trace="not a trace",
                    run_secs=(1e-3,),
                    origin="metaschedule",
                )
                for i in range(3)
            ]
        )
    code, out, _ = run(["explain", "synthetic", "--db", str(store_path), "--json"], capsys)
    (task,) = json.loads(out)["tasks"]
    assert code == 0 and task["undecoded"] == 3
    assert task["summary"][0].startswith("3 candidate trace(s) could not be decoded")
    assert any("tile j[inner] = 16" in line for line in task["summary"][1:])


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["resnet"], "the store holds no job for model 'resnet' (models here: synthetic)"),
        (["resnet", "--job", JOB], f"job {JOB} tuned model 'synthetic', not 'resnet'"),
        (["synthetic", "--job", "nope"], "the store holds no job 'nope'"),
    ],
)
def test_bad_model_or_job_is_one_line(store_path, capsys, argv, expected):
    code, out, err = run(["explain", *argv, "--db", str(store_path)], capsys)
    assert code == 2 and out == ""
    assert err.strip().startswith("tuneloom explain: error: ") and expected in err
    assert len(err.strip().splitlines()) == 1


def test_profile_of_another_shape_does_not_match(store_path, capsys):
    with SQLiteStore(store_path) as store:
        store.append([profile(tasks=("matmul:256x256x256", ""))])
    code, _, err = run(["explain", "synthetic", "--db", str(store_path)], capsys)
    assert code == 2 and "names tasks the job did not tune (matmul:256x256x256)" in err


def test_not_a_store(tmp_path, capsys):
    bad = tmp_path / "notes.db"
    bad.write_text("hello")
    code, _, err = run(["explain", "synthetic", "--db", str(bad)], capsys)
    assert code == 2 and "not a tuneloom store" in err and len(err.strip().splitlines()) == 1


def test_cli_entry_point_registers_explain(store_path):
    done = subprocess.run(
        [sys.executable, "-m", "tuneloom", "explain", "synthetic", "--db", str(store_path)],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"task {TASK}: 200 trials" in done.stdout
