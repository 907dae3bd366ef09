"""`tuneloom tune`: bad input is one clear error with nothing started; real runs report
per-job best latencies and per-resource busy/idle time, and store every stage and record."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from collectors.jsonl import export_jsonl
from collectors.sqlite_store import SQLiteStore
from tests.tuner.rpc_fixtures import free_port, rpc_cluster
from tuneloom.cli import UserError, build_parser, main
from tuner.metaschedule.targets import cuda_devices

SMALL = ["--batch", "8", "--population", "64", "--number", "2", "--min-repeat-ms", "5"]


def tune(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["tune", *args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    ("args", "why"),
    [
        (["--workload", "foo:3"], "unknown operator 'foo'"),
        (["--workload", "conv2d:1x3x4x4"], "conv2d takes NxCxHxW,KxRxS"),
        (["--workload", "matmul:8", "--policy", "fastest"], "unknown policy 'fastest'"),
        (["--workload", "matmul:8", "--target", "rocm"], "unknown target 'rocm'"),
        pytest.param(
            ["--workload", "matmul:8", "--target", "cuda"],
            "a cuda target needs an NVIDIA GPU here, and TVM sees none",
            marks=pytest.mark.skipif(cuda_devices() > 0, reason="this machine has a GPU"),
        ),
        (["--workload", "matmul:8", "--trials", "0"], "--trials must be a positive integer"),
        (["--workload", "matmul:8", "--trials", "-3"], "--trials must be a positive integer"),
        (["--workload", "matmul:8", "--batch", "0"], "--batch must be a positive integer"),
        (["--workload", "matmul:8", "--rpc", "nohost"], "expected HOST:PORT:KEY"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_nothing_starts(
    args: list[str], why: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "run.db"
    code, out, err = tune([*args, "--db", str(db)], capsys)
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("tuneloom tune: error: ")
    assert why in err
    assert not db.exists() and not (tmp_path / "run-runs").exists()


def test_a_missing_rpc_tracker_is_one_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    port = free_port()
    db = tmp_path / "run.db"
    rpc = f"127.0.0.1:{port}:cpu"
    code, _, err = tune(["--workload", "matmul:8", "--rpc", rpc, "--db", str(db)], capsys)
    assert code == 2 and err.count("\n") == 1
    assert f"127.0.0.1:{port}" in err and "cannot reach the RPC tracker" in err
    assert not db.exists()


@pytest.mark.parametrize(
    ("given", "lends", "wait_s"),
    [([], True, math.inf), (["--lend", "any"], True, math.inf), (["--lend", "off"], False, 0.0),
     (["--lend", "90s"], True, 90.0), (["--lend"], True, 0.0)],
)  # fmt: skip
def test_the_idle_device_is_lent_unless_told_otherwise(
    given: list[str], lends: bool, wait_s: float, tmp_path: Path
) -> None:
    from tuneloom.commands.options import engine_settings

    args = build_parser().parse_args(["tune", "zoo:mlp", "--db", "x.db", *given])
    settings = engine_settings(args, tmp_path, None)
    assert (settings.lend_idle_devices, settings.lend_wait_s) == (lends, wait_s)


@pytest.mark.parametrize(("given", "retime"), [([], "quiet"), (["--retime", "inline"], "inline"),
                                            (["--retime", "off"], "off")])  # fmt: skip
def test_would_be_bests_are_timed_again_quietly_unless_told_otherwise(
    given: list[str], retime: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tuneloom.commands.options import engine_settings

    args = build_parser().parse_args(["tune", "zoo:mlp", "--db", "x.db", *given])
    assert engine_settings(args, tmp_path, None).retime == retime
    with pytest.raises(SystemExit):
        build_parser().parse_args(["tune", "zoo:mlp", "--db", "x.db", "--retime", "twice"])
    assert "invalid choice: 'twice'" in capsys.readouterr().err


@pytest.mark.parametrize(("given", "siblings"), [([], 1), (["--siblings", "0"], 0),
                                              (["--siblings", "5"], 5)])  # fmt: skip
def test_tasks_take_one_sibling_schedule_per_batch_unless_told_otherwise(
    given: list[str], siblings: int, tmp_path: Path
) -> None:
    from tuneloom.commands.options import engine_settings

    for command in ("tune", "server"):
        argv = [command, "zoo:mlp"] if command == "tune" else [command]
        argv += ["--db", "x.db"]
        args = build_parser().parse_args([*argv, *given])
        assert engine_settings(args, tmp_path, None).search.siblings == siblings
    args = build_parser().parse_args(["tune", "zoo:mlp", "--db", "x.db", "--siblings", "-1"])
    with pytest.raises(UserError, match="--siblings must be 0 or more, got -1"):
        engine_settings(args, tmp_path, None)


@pytest.mark.parametrize(("given", "scope"), [([], "all-jobs"),
                                           (["--siblings-from", "job"], "job")])  # fmt: skip
def test_sibling_schedules_come_from_every_running_job_unless_told_otherwise(
    given: list[str], scope: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tuneloom.commands.options import engine_settings

    for command in ("tune", "server"):
        argv = [command, "zoo:mlp"] if command == "tune" else [command]
        args = build_parser().parse_args([*argv, "--db", "x.db", "--siblings", "2", *given])
        search = engine_settings(args, tmp_path, None).search
        assert (search.siblings, search.siblings_from) == (2, scope)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["tune", "zoo:mlp", "--db", "x.db", "--siblings-from", "all"])
    assert "invalid choice: 'all'" in capsys.readouterr().err


def test_help_documents_the_workload_grammar_and_job_mapping() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    text = sub.choices["tune"].format_help()
    for piece in ("matmul:MxNxK", "conv2d:NxCxHxW,KxRxS", "Each --workload flag is one job"):
        assert piece in " ".join(text.split())


def check_result(result: dict[str, Any], jobs: list[tuple[str, list[str]]], trials: int) -> None:
    tune_result = result
    assert tune_result["wall_s"] > 0
    assert [(j["name"], [t["name"] for t in j["tasks"]]) for j in tune_result["jobs"]] == jobs
    for job in tune_result["jobs"]:
        assert job["state"] == "finished"
        assert (Path(job["db_dir"]) / "database_tuning_record.json").is_file()
        for task in job["tasks"]:
            assert task["trials"] == trials
            assert task["best_latency_s"] > 0
    resources = tune_result["resources"]
    assert resources["client:0"]["busy_s"] > 0
    assert any(t["busy_s"] > 0 for name, t in resources.items() if name.startswith("device:"))
    for times in resources.values():
        assert times["busy_s"] >= 0 and times["idle_s"] >= 0
        assert times["busy_s"] + times["idle_s"] == pytest.approx(tune_result["wall_s"], abs=0.05)


@pytest.mark.slow
def test_two_jobs_tune_and_the_store_holds_every_stage_and_record(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "run.db"
    args = ["--workload", "matmul:32", "--workload", "dense:4x32x16,matmul:16"]
    args += ["--trials-per-task", "8"]
    code, out, _ = tune([*args, *SMALL, "--db", str(db), "--json"], capsys)
    assert code == 0
    result = json.loads(out)
    check_result(
        result,
        [
            ("matmul:32", ["matmul:32x32x32"]),
            ("dense:4x32x16,matmul:16", ["dense:4x32x16", "matmul:16x16x16"]),
        ],
        8,
    )
    assert set(result["resources"]) == {"client:0", "device:llvm:0"}
    for job in result["jobs"]:
        assert Path(job["db_dir"]).parent == tmp_path / "run-runs"

    out_file = tmp_path / "events.jsonl"
    with SQLiteStore(db, read_only=True) as store:
        export_jsonl(store, out_file)
    lines = [json.loads(line) for line in out_file.read_text().splitlines()]
    stages = [e for e in lines if e["kind"] == "stage"]
    records = [e for e in lines if e["kind"] == "record"]
    # Three task iterations of 8 candidates, four stages each and a quiet profile (each
    # task's first batch times its fastest again), and each job's last stage (a build of
    # "library": its database joins the schedule library).
    finals = [e for e in stages if e["task"] == "library"]
    assert [e["stage"] for e in finals] == ["build", "build"]
    assert len(stages) - len(finals) == 3 * 5
    assert {(e["job"], e["stage"]) for e in stages} >= {
        (job["id"], kind)
        for job in result["jobs"]
        for kind in ("select", "build", "profile", "update")
    }
    assert len(records) == 3 * 8
    assert all(r["run_secs"] for r in records)
    tasks = [e for e in lines if e["kind"] == "task"]
    assert sorted(t["task"] for t in tasks) == [
        "dense:4x32x16",
        "matmul:16x16x16",
        "matmul:32x32x32",
    ]
    finished = [e for e in lines if e["kind"] == "job" and e["change"] == "finished"]
    assert len(finished) == 2


@pytest.mark.slow
def test_tune_profiles_on_an_rpc_pool(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with rpc_cluster(key="tlcli", servers=2) as cluster:
        db = tmp_path / "rpc.db"
        args = ["--workload", "matmul:16", "--trials", "8", "--rpc", cluster.address]
        code, out, _ = tune([*args, *SMALL, "--db", str(db), "--json"], capsys)
    assert code == 0
    result = json.loads(out)
    check_result(result, [("matmul:16", ["matmul:16x16x16"])], 8)
    assert set(result["resources"]) == {
        "client:0",
        "device:rpc:tlcli:0",
        "device:rpc:tlcli:1",
    }
    with SQLiteStore(db, read_only=True) as store:
        profiles = store.stage_intervals(job=result["jobs"][0]["id"])
    assert set(profiles[profiles["stage"] == "profile"]["resource"]) <= {
        "device:rpc:tlcli:0",
        "device:rpc:tlcli:1",
    }
