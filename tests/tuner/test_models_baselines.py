"""Framework baselines: which model gets which baseline, feeding and output order, threads,
and clear errors for baselines a model cannot have."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from model_files import (
    SMALL_IMAGE,
    TEST_THREADS,
    assert_outputs_close,
    run_tvm,
    two_io_keras,
    two_output_onnx,
)

from tuner._base import TunerError
from tuner.models._base import BASELINES, ModelError
from tuner.models.baselines import configure_tensorflow_threads, open_baseline, tensorflow_threads
from tuner.models.loaders import load_model, random_inputs
from tuner.models.zoo import build_nn_mlp, build_onnx

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def keras_model():
    return load_model("zoo:mlp", batch_size=2)


@pytest.fixture(scope="module")
def onnx_model():
    return load_model(build_onnx("cnn", symbolic_batch=True, image_size=8), batch_size=2)


@pytest.fixture(scope="module")
def nn_model():
    module, shapes = build_nn_mlp(features=16, hidden=8)
    return load_model(module, input_shapes=shapes)


def test_baselines_per_framework(keras_model, onnx_model, nn_model) -> None:
    assert keras_model.baselines == ("tensorflow", "tflite")
    assert onnx_model.baselines == ("onnxruntime",)
    assert nn_model.baselines == ()
    assert set(BASELINES) == {"tensorflow", "tflite", "onnxruntime"}


@pytest.mark.parametrize(
    ("which", "baseline", "fragment"),
    [
        ("onnx", "tensorflow", "no tensorflow baseline for onnx models (available: onnxruntime)"),
        ("onnx", "tflite", "no tflite baseline for onnx models"),
        ("keras", "onnxruntime", "no onnxruntime baseline for keras models"),
        ("nn", "tflite", "no tflite baseline for relax-nn models (available: none)"),
        ("keras", "pytorch", "unknown baseline 'pytorch'; choose from tensorflow, tflite"),
    ],
)
def test_baselines_a_model_cannot_have(
    keras_model, onnx_model, nn_model, which: str, baseline: str, fragment: str
) -> None:
    model = {"keras": keras_model, "onnx": onnx_model, "nn": nn_model}[which]
    with pytest.raises(ModelError) as err:
        open_baseline(model, baseline, threads=1)
    assert str(err.value).startswith(f"model {model.name}:")
    assert fragment in str(err.value)


def test_missing_package_is_named(onnx_model, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import now raises ImportError
    with pytest.raises(ModelError, match="needs the onnxruntime package"):
        open_baseline(onnx_model, "onnxruntime", threads=1)


@pytest.mark.parametrize("threads", [0, -1, 1.5, True])
def test_threads_must_be_positive(keras_model, threads) -> None:
    with pytest.raises(ModelError, match="threads must be a positive integer"):
        open_baseline(keras_model, "tflite", threads=threads)


@pytest.mark.parametrize("baseline", ["tensorflow", "tflite"])
def test_keras_baselines_agree_with_tvm(keras_model, baseline: str) -> None:
    feeds = random_inputs(keras_model, seed=3)
    run = open_baseline(keras_model, baseline, threads=TEST_THREADS)
    out = run(feeds)
    assert isinstance(out, list) and all(isinstance(o, np.ndarray) for o in out)
    assert [o.shape for o in out] == [(2, 10)]
    assert_outputs_close(run_tvm(keras_model, feeds), out)
    # the same function answers again, and changes with its input
    np.testing.assert_array_equal(run(feeds)[0], out[0])
    assert not np.allclose(run(random_inputs(keras_model, seed=4))[0], out[0])


def test_onnxruntime_agrees_with_tvm(onnx_model) -> None:
    feeds = random_inputs(onnx_model)
    out = open_baseline(onnx_model, "onnxruntime", threads=1)(feeds)
    assert [o.shape for o in out] == [(2, 10)]
    assert_outputs_close(run_tvm(onnx_model, feeds), out)


def test_outputs_follow_the_model_output_order() -> None:
    keras_two = load_model(two_io_keras())
    feeds = random_inputs(keras_two)
    tvm_out = run_tvm(keras_two, feeds)
    for baseline in ("tensorflow", "tflite"):
        got = open_baseline(keras_two, baseline, threads=TEST_THREADS)(feeds)
        assert [g.shape for g in got] == [(1, 3), (1, 2)]
        assert_outputs_close(tvm_out, got)
    onnx_two = load_model(two_output_onnx())
    feeds = random_inputs(onnx_two)
    relu, neg = open_baseline(onnx_two, "onnxruntime", threads=1)(feeds)
    np.testing.assert_array_equal(relu, np.maximum(feeds["x"], 0))
    np.testing.assert_array_equal(neg, -feeds["x"])


def test_feeds_are_checked(keras_model) -> None:
    run = open_baseline(keras_model, "tflite", threads=1)
    with pytest.raises(ModelError, match="no value fed for input"):
        run({})
    with pytest.raises(ModelError, match=r"has shape \(1, 256\), expected \(2, 256\)"):
        run({"features": np.zeros((1, 256), np.float32)})


def test_tflite_baseline_resizes_an_open_batch(tmp_path: Path) -> None:
    from model_files import write_tflite

    model = load_model(write_tflite(tmp_path / "r.tflite", "resnet"), batch_size=3)
    feeds = random_inputs(model)
    out = open_baseline(model, "tflite", threads=1)(feeds)
    assert [o.shape for o in out] == [(3, 10)]
    assert_outputs_close(run_tvm(model, feeds), out)
    assert model.inputs[0].shape == (3, SMALL_IMAGE, SMALL_IMAGE, 3)


def test_tensorflow_threads_are_fixed_for_the_process(keras_model) -> None:
    assert tensorflow_threads() == (TEST_THREADS, 1)
    configure_tensorflow_threads(TEST_THREADS)  # same count again is fine
    with pytest.raises(TunerError, match=r"already started .*configure_tensorflow_threads\(1\)"):
        configure_tensorflow_threads(1)
    with pytest.raises(TunerError, match="fresh process"):
        open_baseline(keras_model, "tensorflow", threads=1)


def test_configure_tensorflow_threads_in_a_fresh_process() -> None:
    script = textwrap.dedent("""
        from tuner.models.baselines import configure_tensorflow_threads, tensorflow_threads
        configure_tensorflow_threads(1)
        from tuner.models.loaders import load_model
        from tuner.models.baselines import open_baseline
        model = load_model("zoo:mlp")
        open_baseline(model, "tensorflow", threads=1)
        print(tensorflow_threads())
    """)
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip().splitlines()[-1] == "(1, 1)"
