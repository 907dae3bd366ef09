"""`tuneloom tune MODEL` and `tuneloom evaluate MODEL`: a zoo model tuned, compiled, and
timed beside TensorFlow and TFLite with its outputs checked; bad models named in one line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
SMALL = ["--trials-per-task", "4", "--batch", "4", "--population", "32"]


def tuneloom(*argv: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tuneloom", *argv],
        capture_output=True, text=True, cwd=ROOT, timeout=timeout,
    )  # fmt: skip


def document(done: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def tuned_mlp(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    db = tmp_path_factory.mktemp("tune") / "run.db"
    return db, document(tuneloom("tune", "zoo:mlp", *SMALL, "--db", str(db), "--json"))


@pytest.mark.slow
def test_tune_a_zoo_model_as_one_job_and_compile_it(
    tuned_mlp: tuple[Path, dict[str, Any]],
) -> None:
    _, result = tuned_mlp
    (job,) = result["jobs"]
    assert job["state"] == "finished" and job["model"] == "zoo:mlp"
    tuned = [t for t in job["tasks"] if t["trials"]]
    assert tuned and all(t["trials"] == 4 for t in tuned)
    assert all(t["best_latency_s"] > 0 for t in tuned)
    compiled = Path(job["compiled"])
    assert (compiled / "model.so").is_file()
    metadata = json.loads((compiled / "model.json").read_text())
    assert metadata["tuned"] is True and metadata["source"] == "zoo:mlp"


@pytest.mark.slow
def test_tune_exits_1_when_a_model_job_tunes_but_does_not_compile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The job's tuning stands (finished, its records stored), but the user asked for a
    compiled model and did not get one: the exit status says so, and the output says why."""
    import tuner.engine
    from tuneloom.cli import main
    from tuner.models._base import ModelError

    def cannot_compile(model: Any, *_: Any, **__: Any) -> Path:
        raise ModelError(model.name, "cannot compile: the code generator refused it")

    monkeypatch.setattr(tuner.engine, "compile_and_save", cannot_compile)
    argv = ["tune", "zoo:mlp", *SMALL, "--db", str(tmp_path / "run.db"), "--no-library"]
    assert main([*argv, "--json"]) == 1
    (job,) = json.loads(capsys.readouterr().out)["jobs"]
    assert job["state"] == "finished" and "compiled" not in job
    assert job["compile_error"] == "model mlp: cannot compile: the code generator refused it"
    assert all(t["trials"] == 4 for t in job["tasks"] if t["trials"])


@pytest.mark.slow
def test_evaluate_compares_tuned_untuned_and_frameworks(
    tuned_mlp: tuple[Path, dict[str, Any]],
) -> None:
    db, _ = tuned_mlp
    result = document(tuneloom("evaluate", "zoo:mlp", "--db", str(db), "--repeat", "3", "--json"))
    assert result["tvm_untuned_ms"] > 0 and result["tvm_tuned_ms"] > 0
    assert set(result["baselines"]) == {"tensorflow", "tflite"}
    assert all(ms > 0 for ms in result["baselines"].values())
    assert result["outputs_match"] is True
    assert 0 <= result["max_abs_error"] <= result["tolerance"]
    # Every TVM result was compared with every baseline and with the other TVM result.
    assert set(result["errors"]) == {
        "tvm_untuned vs tvm_tuned", "tvm_untuned vs tensorflow", "tvm_untuned vs tflite",
        "tvm_tuned vs tensorflow", "tvm_tuned vs tflite",
    }  # fmt: skip


@pytest.mark.slow
def test_evaluate_without_a_database_times_the_untuned_model(tmp_path: Path) -> None:
    argv = ["evaluate", "zoo:mlp", "--baseline", "tflite", "--repeat", "3"]
    result = document(tuneloom(*argv, "--keep", str(tmp_path / "kept"), "--json"))
    assert "tvm_tuned_ms" not in result
    assert list(result["baselines"]) == ["tflite"]
    assert (tmp_path / "kept" / "untuned" / "model.so").is_file()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["evaluate", "zoo:nope"], "zoo:nope"),
        (["evaluate", "{tmp}/broken.onnx"], "broken.onnx"),
        (["tune", "{tmp}/broken.onnx", "--db", "{tmp}/x.db"], "broken.onnx"),
        (["tune", "{tmp}/missing.tflite", "--db", "{tmp}/x.db"], "missing.tflite"),
        (["evaluate", "zoo:mlp", "--baseline", "onnxruntime"], "no onnxruntime baseline"),
        (["evaluate", "zoo:mlp", "--baseline", "pytorch"], "unknown pytorch"),
        (["evaluate", "zoo:mlp", "--db", "{tmp}"], "must hold a MetaSchedule database"),
        (["tune", "zoo:mlp", "--db", "{tmp}/x.db", "--input-shape", "x:1xq"], "input-shape"),
        (["tune", "--db", "{tmp}/x.db"], "nothing to tune"),
    ],
)
def test_bad_models_and_options_are_one_line_naming_the_problem(
    tmp_path: Path, argv: list[str], message: str
) -> None:
    (tmp_path / "broken.onnx").write_bytes(b"\x08\x07this is not a protobuf at all")
    done = tuneloom(*[a.replace("{tmp}", str(tmp_path)) for a in argv], timeout=300)
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1, done.stderr
    assert message in done.stderr
    assert not (tmp_path / "x.db").exists()  # nothing started
