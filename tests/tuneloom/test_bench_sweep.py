"""`tuneloom bench sweep`: grid files checked and expanded; a real sweep writes its rows."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tuneloom.cli import UserError
from tuneloom.commands.bench import COLUMNS, expand_grid, read_grid

ROOT = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_toml_and_json_grids_expand_to_every_combination(tmp_path: Path) -> None:
    toml = write(
        tmp_path, "grid.toml",
        'model = ["zoo:cnn", "zoo:mlp"]\ntrials = [4, 8]\npolicy = ["interleaved", "sequential"]\n'
        "build_workers = 2\n",
    )  # fmt: skip
    runs = expand_grid(read_grid(toml))
    assert len(runs) == 8
    assert {(r["model"], r["trials"], r["policy"]) for r in runs} == {
        (m, t, p)
        for m in ("zoo:cnn", "zoo:mlp")
        for t in (4, 8)
        for p in ("interleaved", "sequential")
    }
    assert all(r["build_workers"] == 2 and r["batch"] == 16 for r in runs)
    as_json = write(tmp_path, "grid.json", json.dumps({"model": "zoo:mlp", "trials": 4}))
    assert expand_grid(read_grid(as_json)) == [
        {"model": "zoo:mlp", "trials": 4, "policy": "feed-device", "batch": 16,
         "build_workers": None, "population": None, "repeat": 10, "baseline": None}
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('model = "zoo:mlp"\n', "trials is required"),
        ("trials = 4\n", "model is required"),
        ('model = "zoo:mlp"\ntrials = 4\nspeed = 3\n', "unknown setting speed"),
        ('model = "zoo:mlp"\ntrials = [4, 0]\n', "trials values must be positive integers"),
        ('model = "zoo:mlp"\ntrials = []\n', "trials lists no value"),
        ("model = 3\ntrials = 4\n", "model values must be text"),
        ("model = [\n", "not valid TOML"),
    ],
)
def test_bad_grids_are_named(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(UserError, match=message):
        read_grid(write(tmp_path, "grid.toml", text))


def test_a_missing_grid_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"grid\.toml"):
        read_grid(tmp_path / "grid.toml")


@pytest.mark.slow
def test_a_sweep_writes_one_row_per_run(tmp_path: Path) -> None:
    grid = write(
        tmp_path, "grid.toml",
        'model = "zoo:mlp"\ntrials = 4\nbatch = 4\npopulation = 32\n'
        'policy = ["interleaved", "sequential"]\nrepeat = 3\nbaseline = "tflite"\n',
    )  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-m", "tuneloom", "bench", "sweep", "--grid", str(grid),
         "--out", str(tmp_path / "runs"), "--json"],
        capture_output=True, text=True, cwd=ROOT, timeout=1200,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    with open(result["csv"], newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["policy"] for r in rows] == ["interleaved", "sequential"]
    for row in rows:
        assert set(row) == set(COLUMNS)
        assert row["status"] == "ok", row["error"]
        assert float(row["tuning_s"]) > 0
        assert int(row["trials_measured"]) > 0
        for stage in ("select", "build", "profile", "update"):
            assert float(row[f"{stage}_mean_s"]) > 0
        assert float(row["tvm_tuned_ms"]) > 0 and float(row["baseline_ms"]) > 0
