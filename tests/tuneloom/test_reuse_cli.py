"""`tuneloom library`, `tuneloom reuse` and `tuneloom tune --warm-start`, end to end: finished
jobs join the library, a new model is scheduled from it (compiled and timed against untuned),
a warm-started job continues from it, and bad libraries are named without damaging them."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
SMALL = ["--batch", "4", "--population", "32"]


def tuneloom(*argv: str, library: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if library is not None:
        env["TUNELOOM_LIBRARY"] = str(library)
    return subprocess.run(
        [sys.executable, "-m", "tuneloom", *argv],
        capture_output=True, text=True, cwd=ROOT, timeout=900, env=env,
    )  # fmt: skip


def document(done: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def folder_digest(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(folder)).encode() + path.read_bytes())
    return digest.hexdigest()


@pytest.fixture(scope="module")
def mlp_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import onnx

    from tuner.models.zoo import build_onnx

    path = tmp_path_factory.mktemp("model") / "mlp.onnx"
    onnx.save(build_onnx("mlp"), str(path))
    return path


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A library filled by `tune` (the default library, named by TUNELOOM_LIBRARY)."""
    work = tmp_path_factory.mktemp("library")
    library = work / "library"
    result = document(
        tuneloom("tune", "--workload", "dense:1x64x32", "--workload", "matmul:64",
                 "--trials-per-task", "8", *SMALL, "--db", str(work / "t.sqlite"), "--json",
                 library=library)
    )
    assert result["library"] == str(library)
    assert [job["library"]["added"] for job in result["jobs"]] == [1, 1]
    return library


def test_finished_jobs_join_the_library_and_list_shows_them(library: Path) -> None:
    listed = document(tuneloom("library", "list", "--library", str(library), "--entries", "--json"))
    # Both jobs tune at once, so either may finish (and join the library) first.
    assert sorted(s["model"] for s in listed["sources"]) == ["dense:1x64x32", "matmul:64"]
    assert listed["op_classes"] == {"dense": 2}
    assert all(e["latency_s"] > 0 and e["trials"] >= 1 for e in listed["entries"])
    again = document(
        tuneloom("library", "add", listed["sources"][0]["path"], "--library", str(library),
                 "--json")
    )
    assert again["added"][0]["already_present"] and again["added"][0]["added"] == 0


def test_reuse_schedules_a_new_model_from_the_library_and_times_it(
    library: Path, mlp_file: Path, tmp_path: Path
) -> None:
    before = folder_digest(library)
    out = tmp_path / "reused"
    result = document(
        tuneloom("reuse", str(mlp_file), "--library", str(library), "--db", str(out),
                 "--reuse-limit", "2", "--eval-repeat", "3", "--json")
    )
    assert result["state"] == "finished" and result["sources"]  # chosen automatically
    assert set(result["sources"]) <= {"dense:1x64x32", "matmul:64"}
    assert result["covered"] > 0
    for name, task in result["tasks"].items():
        assert task["best_s"] > 0 and task["untuned_s"] > 0, name
        assert task["best_s"] <= task["untuned_s"]  # untuned is the fallback
        assert 1 <= len(task["reused"]) <= 2
        assert task["best_origin"].startswith(("reused from", "untuned"))
    evaluation = result["evaluate"]
    assert evaluation["outputs_match"] is True
    assert evaluation["tvm_reused_ms"] < evaluation["tvm_untuned_ms"]
    assert (out / "database_tuning_record.json").stat().st_size > 0
    assert (out / "compiled" / "tuned" / "model.so").is_file()
    # The reuse ran as a job's stages: they are in the store for the timeline.
    from collectors.sqlite_store import SQLiteStore

    store = SQLiteStore(result["store"], read_only=True)
    try:
        stages = store.stage_intervals()
    finally:
        store.close()
    assert set(stages["stage"]) == {"select", "build", "profile", "update"}
    assert folder_digest(library) == before  # reuse never writes to the library
    refused = tuneloom("reuse", str(mlp_file), "--library", str(library), "--db", str(out))
    assert refused.returncode == 2 and "already holds a MetaSchedule database" in refused.stderr


def test_tune_with_warm_start_measures_library_schedules_first(
    library: Path, mlp_file: Path, tmp_path: Path
) -> None:
    result = document(
        tuneloom("tune", str(mlp_file), "--warm-start", str(library), "--trials-per-task", "6",
                 *SMALL, "--db", str(tmp_path / "w.sqlite"), "--no-library", "--json")
    )
    (job,) = result["jobs"]
    assert job["state"] == "finished" and "library" not in job
    reuse = job["reuse"]
    assert reuse["sources"] and reuse["library"] == str(library)
    for task in job["tasks"]:
        assert task["trials"] == 6
        measured = reuse["tasks"][task["name"]]["reused"]
        assert 1 <= len(measured) <= 4 and all(m["latency_s"] for m in measured)


def test_a_library_for_another_target_falls_back_to_untuned_and_says_why(
    library: Path, mlp_file: Path, tmp_path: Path
) -> None:
    import shutil

    other = tmp_path / "other"
    shutil.copytree(library, other)
    index = other / "index.jsonl"
    lines = [json.loads(line) for line in index.read_text().splitlines()]
    for line in lines:
        line["target"]["mcpu"] = "cascadelake"
    index.write_text("".join(json.dumps(line) + "\n" for line in lines))
    result = document(
        tuneloom("reuse", str(mlp_file), "--library", str(other), "--db", str(tmp_path / "o"),
                 "--no-evaluate", "--json")
    )
    assert result["sources"] == []
    assert "the library holds: llvm -mcpu=cascadelake" in result["note"]
    for task in result["tasks"].values():
        assert task["reused"] == [] and task["best_origin"] == "untuned"
        assert "tuned for llvm -mcpu=cascadelake" in task["note"]


def test_bad_libraries_are_named_and_left_as_they_were(
    library: Path, mlp_file: Path, tmp_path: Path
) -> None:
    import shutil

    missing = tuneloom("reuse", str(mlp_file), "--library", str(tmp_path / "none"),
                       "--db", str(tmp_path / "a"))  # fmt: skip
    assert missing.returncode == 2 and "not a schedule library" in missing.stderr
    damaged = tmp_path / "damaged"
    shutil.copytree(library, damaged)
    with (damaged / "index.jsonl").open("a") as index:
        index.write('{"v": 1, "source": \n')
    before = folder_digest(damaged)
    for argv in (
        ("reuse", str(mlp_file), "--library", str(damaged), "--db", str(tmp_path / "b")),
        ("tune", str(mlp_file), "--warm-start", str(damaged), "--db", str(tmp_path / "c.db")),
        ("library", "add", str(next((library / "databases").iterdir())), "--library",
         str(damaged)),
    ):
        done = tuneloom(*argv)
        assert done.returncode == 2, argv
        assert "index.jsonl" in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert folder_digest(damaged) == before
    unknown = tuneloom("reuse", str(mlp_file), "--library", str(library), "--sources", "zoo:x",
                       "--db", str(tmp_path / "d"))  # fmt: skip
    assert unknown.returncode == 2 and "no such source in the library" in unknown.stderr


def test_an_imported_metaschedule_database_joins_the_library(tmp_path: Path) -> None:
    database = ROOT / "sample_logs" / "metaschedule-cnn-model"
    library = tmp_path / "library"
    result = document(
        tuneloom("import", str(database), "--db", str(tmp_path / "s.sqlite"), "--library",
                 str(library), "--json")
    )
    (added,) = result["library"]["added"]
    assert added["added"] > 0 and result["library"]["path"] == str(library)
    listed = document(tuneloom("library", "list", "--library", str(library), "--json"))
    assert {"conv2d", "dense"} <= set(listed["op_classes"])
    skipped = document(
        tuneloom("import", str(database), "--db", str(tmp_path / "t.sqlite"), "--no-library",
                 "--json")
    )
    assert "library" not in skipped


def test_an_unwritable_default_library_is_skipped_with_a_warning(tmp_path: Path) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    done = tuneloom("tune", "--workload", "matmul:32", "--trials", "2", *SMALL, "--db",
                    str(tmp_path / "t.db"), "--json", library=blocked / "library")
    result = document(done)
    assert "finished jobs will not join a schedule library" in done.stderr
    assert result["jobs"][0]["state"] == "finished" and "library" not in result
    named = tuneloom("tune", "--workload", "matmul:32", "--db", str(tmp_path / "u.db"),
                     "--library", str(blocked / "library"))
    assert named.returncode == 2 and "--library" in named.stderr
