"""`tuneloom simulate`: figures as JSON or text, events into a store, bad input refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from collectors.stores import open_store
from tuneloom.cli import main


def run_json(capsys: pytest.CaptureFixture[str], *args: str) -> dict:
    assert main(["simulate", *args, "--json"]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    return json.loads(out)


def test_json_has_the_documented_figures(capsys: pytest.CaptureFixture[str]) -> None:
    result = run_json(
        capsys, "--jobs", "3", "--clients", "1", "--devices", "2", "--policy", "interleaved",
        "--seed", "4", "--iterations", "2",
    )  # fmt: skip
    assert result["clock"] == "sim"
    assert result["makespan_s"] >= result["lower_bound_s"] > 0
    assert set(result["utilization"]) == {"client:0", "device:sim:0", "device:sim:1"}
    assert all(0 < u <= 1 for u in result["utilization"].values())
    assert 0 < result["mean_completion_s"] <= result["makespan_s"]
    assert result["tasks"] == [4, 4, 4]
    assert "db" not in result


def test_same_seed_same_figures(capsys: pytest.CaptureFixture[str]) -> None:
    args = ("--jobs", "2", "--seed", "9", "--iterations", "2", "--mixed")
    first = run_json(capsys, *args)
    assert run_json(capsys, *args) == first
    assert run_json(capsys, "--jobs", "2", "--seed", "10", "--iterations", "2") != first


def test_sequential_is_slower_than_interleaved(capsys: pytest.CaptureFixture[str]) -> None:
    common = ("--jobs", "4", "--iterations", "2", "--seed", "1")
    inter = run_json(capsys, *common, "--policy", "interleaved")
    seq = run_json(capsys, *common, "--policy", "sequential")
    assert seq["makespan_s"] > 1.5 * inter["makespan_s"]
    assert seq["lower_bound_s"] == inter["lower_bound_s"]


def test_human_output_labels_the_run_simulated(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "--jobs", "2", "--iterations", "1"]) == 0
    out = capsys.readouterr().out
    assert "simulated run (clock: sim" in out
    for label in ("makespan", "lower bound", "mean completion", "client:0", "device:sim:0"):
        assert label in out


def test_db_stores_the_simulated_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "sim.db"
    result = run_json(capsys, "--jobs", "2", "--tasks", "1", "--iterations", "2", "--db", str(db))
    assert result["db"] == str(db)
    # A second run into the same store adds to it; nothing already stored is lost.
    again = run_json(
        capsys, "--jobs", "1", "--tasks", "1", "--iterations", "1", "--db", str(db), "--records"
    )
    store = open_store(str(db), read_only=True)
    try:
        jobs = store.jobs()
        assert len(jobs) == 3 and set(jobs["state"]) == {"finished"}
        assert set(jobs["clock"]) == {"sim"}
        stages = store.stage_intervals()
        assert len(stages) == 2 * 2 * 4 + 4
        assert set(stages["source"]) == {result["source"], again["source"]}
        assert len(store.records()) == 64
    finally:
        store.close()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--jobs", "0"], "--jobs must be a positive integer, got 0"),
        (["--devices", "-2"], "--devices must be a positive integer"),
        (["--clients", "0"], "--clients must be a positive integer"),
        (["--policy", "fastest"], "unknown policy 'fastest'; valid policies: interleaved"),
        (["--distribution", "paper"], "unknown stage-time distribution 'paper'"),
        (["--records"], "--records needs --db"),
        (["--device-kinds", "fast:8"], "--device-kinds: device kind 'fast:8' must look like"),
        (["--device-kinds", "a:1:1", "--devices", "2"], "--devices or --device-kinds, not both"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_nothing_is_created(
    args: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "never.db"
    extra = [] if "--records" in args else ["--db", str(db)]
    assert main(["simulate", *args, *extra]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1
    assert captured.err.startswith("tuneloom simulate: error: ")
    assert message in captured.err
    assert not db.exists()


def test_device_kinds_name_their_pools_and_are_reported(
    capsys: pytest.CaptureFixture[str],
) -> None:
    common = ("--jobs", "6", "--clients", "2", "--iterations", "2", "--seed", "1")
    result = run_json(capsys, *common, "--device-kinds", "fast:2:1.0,slow:2:2.5")
    assert result["devices"] == 4
    assert [k["name"] for k in result["device_kinds"]] == ["fast", "slow"]
    assert {r.rpartition(":")[0] for r in result["utilization"]} == {
        "client", "device:sim:fast", "device:sim:slow"
    }  # fmt: skip
    same = run_json(capsys, *common, "--device-kinds", "fast:2:1.0,slow:2:1.0")
    assert result["makespan_s"] > same["makespan_s"]  # slower devices, longer run
    assert main(["simulate", *common, "--device-kinds", "fast:2:1.0,slow:2:2.5"]) == 0
    assert "device kinds      fast: 2 x profile time 1, slow: 2 x profile time 2.5" in (
        capsys.readouterr().out
    )
