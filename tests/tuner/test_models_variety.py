"""Model kinds beyond the zoo's CNNs: attention, sequences, transposed convolutions, several
inputs and outputs, integer inputs, TFLite files with an open batch. Each is imported,
compiled untuned and run on random inputs against every framework that can run it; what TVM
cannot import or lower fails with one line naming the operator and the model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from model_files import TEST_THREADS, assert_outputs_close, run_tvm, save_keras, write_tflite_of
from model_variety_files import (
    keras_conv1d,
    keras_gru_sequences,
    keras_recurrent,
    keras_sequence_dense,
    keras_transformer,
    keras_transposed_1d_3d,
    keras_unet,
    nhwc_conv2d_transpose_model,
    onnx_attention,
    onnx_gelu_gemm,
    onnx_ids_two_outputs,
    onnx_resize_bn,
    onnx_scatter_max,
)

from tuner.models._base import LoadedModel, ModelError
from tuner.models.baselines import open_baseline
from tuner.models.loaders import load_model, random_inputs

TARGET = {"kind": "llvm", "num-cores": TEST_THREADS}


def check_every_baseline(model: LoadedModel) -> None:
    """TVM's untuned outputs match every baseline the model has, on random inputs."""
    feeds = random_inputs(model, seed=7)
    got = run_tvm(model, feeds)
    assert model.baselines
    for name in model.baselines:
        assert_outputs_close(got, open_baseline(model, name, threads=TEST_THREADS)(feeds))
    assert any(np.abs(out).max() > 1e-3 for out in got), "outputs all near zero: a weak check"


def assert_one_line(err: pytest.ExceptionInfo, model: str, *fragments: str) -> None:
    """A one-line ModelError naming ``model`` and holding every fragment."""
    text = str(err.value)
    assert isinstance(err.value, ModelError)
    assert text.startswith(f"model {model}:") and "\n" not in text, text
    for fragment in fragments:
        assert fragment in text, (fragment, text)


@pytest.mark.parametrize(
    "build",
    [keras_transformer, keras_unet, keras_transposed_1d_3d, keras_recurrent],
    ids=lambda f: f.__name__,
)
def test_keras_models_match_tensorflow_and_tflite(build: Any, tmp_path: Path) -> None:
    path = save_keras(build(), tmp_path / "model.keras")
    model = load_model(path)
    assert model.baselines == ("tensorflow", "tflite")
    check_every_baseline(model)


def test_integer_inputs_and_several_outputs_keep_their_dtypes_and_order() -> None:
    transformer = load_model(keras_transformer())
    assert [(s.name, s.dtype) for s in transformer.inputs] == [("tokens", "int32")]
    two = load_model(keras_transposed_1d_3d())
    assert [s.name for s in two.inputs] == ["signal", "volume"]
    outputs = run_tvm(two, random_inputs(two, seed=1))
    assert [o.shape for o in outputs] == [(1, 5), (1, 2)]  # dict outputs, by sorted key


@pytest.mark.parametrize("build", [keras_conv1d, keras_sequence_dense], ids=lambda f: f.__name__)
def test_tflite_files_with_an_open_batch_import_and_match(build: Any, tmp_path: Path) -> None:
    """EXPAND_DIMS (Conv1D) and RESHAPEs whose targets TFLite computes at run time."""
    model = load_model(write_tflite_of(build(), tmp_path / "model.tflite"))
    assert model.inputs[0].shape[0] == 1
    check_every_baseline(model)


@pytest.mark.parametrize(
    "build",
    [onnx_attention, onnx_gelu_gemm, onnx_resize_bn, onnx_ids_two_outputs],
    ids=lambda f: f.__name__,
)
def test_onnx_models_match_onnxruntime(build: Any) -> None:
    model = load_model(build(), name=build.__name__)
    assert model.baselines == ("onnxruntime",)
    check_every_baseline(model)


def test_tflite_operator_tvm_fails_on_is_named_with_its_loop(tmp_path: Path) -> None:
    path = save_keras(keras_gru_sequences(), tmp_path / "gru.keras")
    with pytest.raises(ModelError) as err:
        load_model(path)
    assert_one_line(err, str(path), "TFLite importer fails on operator SLICE (inside WHILE)")


def test_onnx_operator_tvm_fails_on_is_named_and_nothing_printed(
    capsys: pytest.CaptureFixture,
) -> None:
    with pytest.raises(ModelError) as err:
        load_model(onnx_scatter_max(), name="scatter")
    assert_one_line(err, "scatter", "ONNX importer fails on operator ScatterElements", "max")
    assert capsys.readouterr().out == ""


def test_an_operator_tvm_cannot_lower_is_named_before_tuning_and_at_compile() -> None:
    from tuner.models.compiled import compile_model
    from tuner.models.tasks import extract_tasks

    model = nhwc_conv2d_transpose_model()
    fragments = ("TVM cannot lower operator(s) relax.nn.conv2d_transpose (NHWC, IOHW)",)
    with pytest.raises(ModelError) as err:
        extract_tasks(model, TARGET)
    assert_one_line(err, "nhwc-deconv", *fragments)
    with pytest.raises(ModelError) as err:
        compile_model(model, TARGET, None)
    assert_one_line(err, "nhwc-deconv", *fragments)


@pytest.mark.slow
def test_attention_model_tunes_and_the_tuned_build_matches_onnxruntime(tmp_path: Path) -> None:
    from model_jobs import run_model_job

    from tuner.metaschedule.settings import SMALL_SEARCH, DriverSettings
    from tuner.models.compiled import compile_and_save, load_compiled, read_metadata
    from tuner.models.tasks import extract_tasks

    model = load_model(onnx_attention(), name="attention")
    tasks = extract_tasks(model, TARGET)
    assert {"matmul", "softmax", "layer_norm", "transpose"} <= {t.name for t in tasks}
    settings = DriverSettings(trials_per_task=2, batch_size=2, search=SMALL_SEARCH, target=TARGET)
    driver, store = run_model_job(model.name, tasks, settings, tmp_path / "db")
    assert driver.trials()[0] > 0 and len(store.records()) > 0
    tuned = compile_and_save(model, TARGET, tmp_path / "t", database_dir=tmp_path / "db")
    assert read_metadata(tuned)["tuned"] is True
    feeds = random_inputs(model, seed=3)
    want = open_baseline(model, "onnxruntime", threads=TEST_THREADS)(feeds)
    assert_outputs_close(load_compiled(tuned).run(feeds), want)
